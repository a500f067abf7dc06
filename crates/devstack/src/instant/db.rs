//! The emulator's embedded store: namespaces of entities with attributes, links between
//! entities, InstaML transactions ([`transact`]) and InstaQL queries ([`query`]).
//! Permissions are not evaluated.

mod query;
mod transact;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::util::parse_uuid;

/// The `$users` namespace.
pub(crate) const USERS: &str = "$users";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entity {
    pub(crate) attrs: Map<String, Value>,
    /// Unix seconds.
    pub(crate) created_at: i64,
    seq: u64,
}

/// A link attribute: `fwd_ns.fwd_label` points at `rev_ns`, which sees it back as
/// `rev_ns.rev_label` (InstantDB's forward and reverse identities).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkAttr {
    fwd_ns: String,
    fwd_label: String,
    rev_ns: String,
    rev_label: String,
}

/// A link triple: (link attribute index, from entity, to entity).
type Triple = (usize, String, String);

/// How to take back one change a transaction made (see [`Db::transact`]).
#[derive(Debug, Clone, PartialEq)]
enum Undo {
    /// `seq` had this value.
    Seq(u64),
    /// This attribute was added to `attrs`.
    Attr(String, String),
    /// This namespace map was created.
    Namespace(String),
    /// This entity was in this state (`None`: absent) before it was created, extended
    /// or removed.
    Entity {
        ns: String,
        id: String,
        before: Option<Entity>,
    },
    /// A link attribute was pushed onto `links`.
    Link,
    /// This triple was inserted.
    TripleInserted(Triple),
    /// This triple was removed.
    TripleRemoved(Triple),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Db {
    namespaces: BTreeMap<String, BTreeMap<String, Entity>>,
    attrs: BTreeSet<(String, String)>,
    links: Vec<LinkAttr>,
    triples: BTreeSet<Triple>,
    /// The same triples as (link attribute index, to entity, from entity), to find
    /// the links pointing at an entity without a scan.
    reverse: BTreeSet<Triple>,
    seq: u64,
    /// While a transaction runs, how to undo what it changed so far, oldest first;
    /// `None` outside a transaction.
    journal: Option<Vec<Undo>>,
}

impl Db {
    pub(crate) fn new() -> Self {
        let mut db = Db::default();
        for attr in ["id", "email", "type", "imageURL"] {
            db.attrs.insert((USERS.into(), attr.into()));
        }
        db.namespaces.insert(USERS.into(), BTreeMap::new());
        db
    }

    pub(crate) fn entity(&self, ns: &str, id: &str) -> Option<&Entity> {
        self.namespaces.get(ns)?.get(id)
    }

    /// The entities of a namespace in creation order.
    pub(crate) fn entities(&self, ns: &str) -> Vec<(&String, &Entity)> {
        let mut rows: Vec<_> = self
            .namespaces
            .get(ns)
            .map(|rows| rows.iter().collect())
            .unwrap_or_default();
        rows.sort_by_key(|(_, e)| e.seq);
        rows
    }

    /// The first entity whose `attr` equals `value`.
    pub(crate) fn find_by_attr(&self, ns: &str, attr: &str, value: &Value) -> Option<String> {
        if attr == "id" {
            let id = value.as_str().and_then(parse_uuid)?;
            return self.entity(ns, &id).map(|_| id);
        }
        // The earliest created match, in one pass: no sorted copy of the namespace.
        self.namespaces
            .get(ns)?
            .iter()
            .filter(|(_, e)| e.attrs.get(attr) == Some(value))
            .min_by_key(|(_, e)| e.seq)
            .map(|(id, _)| id.clone())
    }

    /// Notes how to undo a change, when a transaction is running.
    fn record(&mut self, undo: impl FnOnce() -> Undo) {
        if let Some(journal) = &mut self.journal {
            journal.push(undo());
        }
    }

    /// Adds an attribute to `attrs` (journalled).
    fn add_attr(&mut self, ns: &str, label: &str) {
        if self.attrs.insert((ns.to_owned(), label.to_owned())) {
            self.record(|| Undo::Attr(ns.to_owned(), label.to_owned()));
        }
    }

    /// Creates the entity if needed and sets attributes.
    pub(crate) fn upsert(&mut self, ns: &str, id: &str, attrs: Map<String, Value>, now: i64) {
        let old_seq = self.seq;
        self.record(|| Undo::Seq(old_seq));
        self.seq += 1;
        let seq = self.seq;
        self.add_attr(ns, "id");
        for key in attrs.keys() {
            self.add_attr(ns, key);
        }
        if !self.namespaces.contains_key(ns) {
            self.namespaces.insert(ns.to_owned(), BTreeMap::new());
            self.record(|| Undo::Namespace(ns.to_owned()));
        }
        if self.journal.is_some() {
            let before = self.entity(ns, id).cloned();
            self.record(|| Undo::Entity {
                ns: ns.to_owned(),
                id: id.to_owned(),
                before,
            });
        }
        let entity = self
            .namespaces
            .entry(ns.to_owned())
            .or_default()
            .entry(id.to_owned())
            .or_insert_with(|| Entity {
                attrs: Map::new(),
                created_at: now,
                seq,
            });
        entity.attrs.extend(attrs);
    }

    /// Deletes an entity and every link touching it.
    pub(crate) fn delete(&mut self, ns: &str, id: &str) -> Option<Entity> {
        let removed = self.namespaces.get_mut(ns)?.remove(id)?;
        self.record(|| Undo::Entity {
            ns: ns.to_owned(),
            id: id.to_owned(),
            before: Some(removed.clone()),
        });
        let mut touching = BTreeSet::new();
        for index in 0..self.links.len() {
            touching.extend(Db::starting_with(&self.triples, index, id).cloned());
            touching.extend(
                Db::starting_with(&self.reverse, index, id)
                    .map(|(i, to, from)| (*i, from.clone(), to.clone())),
            );
        }
        for triple in touching {
            self.set_triple(triple, false);
        }
        Some(removed)
    }

    /// The triples of `set` whose link attribute is `index` and whose first entity
    /// is `id`.
    fn starting_with<'a>(
        set: &'a BTreeSet<Triple>,
        index: usize,
        id: &'a str,
    ) -> impl Iterator<Item = &'a Triple> {
        set.range((index, id.to_owned(), String::new())..)
            .take_while(move |(i, first, _)| *i == index && first == id)
    }

    fn insert_triple(&mut self, triple: Triple) {
        let (index, from, to) = &triple;
        self.reverse.insert((*index, to.clone(), from.clone()));
        self.triples.insert(triple);
    }

    fn remove_triple(&mut self, triple: &Triple) -> bool {
        let (index, from, to) = triple;
        self.reverse.remove(&(*index, to.clone(), from.clone()));
        self.triples.remove(triple)
    }

    /// Adds a link attribute (journalled).
    fn add_link(&mut self, attr: LinkAttr) {
        self.links.push(attr);
        self.record(|| Undo::Link);
    }

    /// Inserts (`link`) or removes a triple (journalled).
    fn set_triple(&mut self, triple: Triple, link: bool) {
        if link {
            if !self.triples.contains(&triple) {
                self.insert_triple(triple.clone());
                self.record(|| Undo::TripleInserted(triple));
            }
        } else if self.remove_triple(&triple) {
            self.record(|| Undo::TripleRemoved(triple));
        }
    }

    /// Starts journalling changes so that [`Db::rollback`] can take them back.
    fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Keeps the changes since [`Db::begin`].
    fn commit(&mut self) {
        self.journal = None;
    }

    /// Takes back every change since [`Db::begin`], newest first.
    fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Seq(seq) => self.seq = seq,
                Undo::Attr(ns, label) => {
                    self.attrs.remove(&(ns, label));
                }
                Undo::Namespace(ns) => {
                    self.namespaces.remove(&ns);
                }
                Undo::Entity { ns, id, before } => {
                    let rows = self.namespaces.entry(ns).or_default();
                    match before {
                        Some(entity) => {
                            rows.insert(id, entity);
                        }
                        None => {
                            rows.remove(&id);
                        }
                    }
                }
                Undo::Link => {
                    self.links.pop();
                }
                Undo::TripleInserted(triple) => {
                    self.remove_triple(&triple);
                }
                Undo::TripleRemoved(triple) => {
                    self.insert_triple(triple);
                }
            }
        }
    }

    fn link_attr(&self, ns: &str, label: &str) -> Option<(usize, bool)> {
        self.links.iter().enumerate().find_map(|(index, attr)| {
            if attr.fwd_ns == ns && attr.fwd_label == label {
                Some((index, true))
            } else if attr.rev_ns == ns && attr.rev_label == label {
                Some((index, false))
            } else {
                None
            }
        })
    }

    fn target_ns(&self, index: usize, forward: bool) -> &str {
        let attr = &self.links[index];
        if forward { &attr.rev_ns } else { &attr.fwd_ns }
    }

    /// The namespace and ids an entity links to through `label`, in creation order of
    /// the targets; `None` when no such link attribute exists.
    fn linked(&self, ns: &str, id: &str, label: &str) -> Option<(String, Vec<String>)> {
        let (index, forward) = self.link_attr(ns, label)?;
        let target_ns = self.target_ns(index, forward).to_owned();
        let set = if forward {
            &self.triples
        } else {
            &self.reverse
        };
        let mut ids: Vec<(u64, String)> = Db::starting_with(set, index, id)
            .filter_map(|(_, _, other)| {
                let seq = self.entity(&target_ns, other)?.seq;
                Some((seq, other.clone()))
            })
            .collect();
        ids.sort();
        Some((target_ns, ids.into_iter().map(|(_, id)| id).collect()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const G1: &str = "00000000-0000-4000-8000-000000000001";
    const T1: &str = "00000000-0000-4000-8000-000000000002";
    const T2: &str = "00000000-0000-4000-8000-000000000003";

    fn seeded() -> Db {
        let mut db = Db::new();
        db.transact(
            &json!([
                ["update", "goals", G1, {"title": "Get fit", "meta": {"a": 1, "b": {"c": 2}}}],
                ["create", "todos", T1, {"title": "run", "n": 2}],
                ["create", "todos", T2, {"title": "swim", "n": 5}],
                ["link", "goals", G1, {"todos": [T1, T2]}],
            ]),
            false,
            100,
        )
        .unwrap();
        db
    }

    #[test]
    fn queries_follow_links_both_ways_with_where_and_limit() {
        let db = seeded();
        let result = db
            .query(&json!({"goals": {"$": {"where": {"title": "Get fit"}}, "todos": {"$": {"limit": 1}}}}))
            .unwrap();
        assert_eq!(result["goals"][0]["id"], G1);
        assert_eq!(
            result["goals"][0]["todos"],
            json!([{"id": T1, "title": "run", "n": 2}])
        );
        let back = db
            .query(&json!({"todos": {"$": {"where": {"id": T2}}, "goals": {}}}))
            .unwrap();
        assert_eq!(back["todos"][0]["goals"][0]["title"], "Get fit");
        let dotted = db
            .query(&json!({"goals": {"$": {"where": {"todos.title": "swim"}}}}))
            .unwrap();
        assert_eq!(dotted["goals"].as_array().unwrap().len(), 1);
        let ops = db
            .query(&json!({"todos": {"$": {"where": {"n": {"$gt": 3}}}}, "nothing": {}}))
            .unwrap();
        assert_eq!(ops["todos"], json!([{"id": T2, "title": "swim", "n": 5}]));
        assert_eq!(ops["nothing"], json!([]));
    }

    /// `{"goals": {"todos": {"goals": {"todos": …}}}}`, `levels` namespaces deep.
    fn nested(levels: usize) -> Value {
        let mut node = json!({});
        for level in (0..levels).rev() {
            let label = if level % 2 == 0 { "goals" } else { "todos" };
            node = json!({ label: node });
        }
        node
    }

    #[test]
    fn an_answer_that_nesting_multiplies_is_refused_not_built() {
        // G1 links T1 and T2 and each links back: every two levels double the rows
        // (40 levels took 25 s and 256 MB before the limit; 60 would take hours).
        let db = seeded();
        let fine = db.query(&nested(20)).unwrap();
        assert_eq!(fine["goals"][0]["todos"][1]["goals"][0]["id"], G1);
        let err = db.query(&nested(60)).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(
            err.body["hint"]["errors"][0]["message"],
            format!(
                "the answer is too large: the emulator returns at most {} rows per query",
                query::MAX_ANSWER_ROWS
            )
        );
    }

    #[test]
    fn a_where_path_round_a_cycle_stays_the_size_of_the_store() {
        // 200 hops between G1 and its two todos: 2^100 paths before, 3 entities now.
        let db = seeded();
        let path = ["todos.goals"; 100].join(".") + ".title";
        let result = db
            .query(&json!({"goals": {"$": {"where": {path: "Get fit"}}}}))
            .unwrap();
        assert_eq!(result["goals"][0]["id"], G1);
    }

    #[test]
    fn the_deepest_query_json_allows_runs_on_a_server_thread_stack() {
        // serde_json refuses more than 128 levels of nesting: this body is the deepest
        // it reads, and over a cycle of single links the evaluator recurses once per
        // level. Tokio's workers have 2 MiB of stack.
        const LEVELS: usize = 125;
        let mut db = Db::new();
        db.transact(
            &json!([
                ["update", "goals", G1, {"title": "Get fit"}],
                ["update", "todos", T1, {"title": "run"}],
                ["link", "goals", G1, {"todos": T1}],
            ]),
            false,
            1,
        )
        .unwrap();
        let body = format!(
            "{{\"query\": {}}}",
            serde_json::to_string(&nested(LEVELS)).unwrap()
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        let answer = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || db.query(&body["query"]).map(|v| v.to_string().len()))
            .unwrap()
            .join()
            .unwrap();
        let len = answer.unwrap();
        assert!(
            len > LEVELS * 40,
            "{len} bytes: the links were not followed"
        );
    }

    #[test]
    fn merge_is_deep_and_unlink_and_delete_remove_links() {
        let mut db = seeded();
        db.transact(
            &json!([
                ["merge", "goals", G1, {"meta": {"b": {"d": 3}, "a": null}}],
                ["unlink", "goals", G1, {"todos": T1}],
                ["delete", "todos", T2, null],
            ]),
            false,
            101,
        )
        .unwrap();
        let result = db.query(&json!({"goals": {"todos": {}}})).unwrap();
        assert_eq!(result["goals"][0]["meta"], json!({"b": {"c": 2, "d": 3}}));
        assert_eq!(result["goals"][0]["todos"], json!([]));
    }

    #[test]
    fn lookups_find_or_create() {
        let mut db = Db::new();
        db.transact(
            &json!([["update", "profiles", ["handle", "al"], {"name": "Al"}]]),
            false,
            1,
        )
        .unwrap();
        db.transact(
            &json!([["update", "profiles", "lookup__handle__\"al\"", {"name": "Alice"}]]),
            false,
            2,
        )
        .unwrap();
        let result = db.query(&json!({"profiles": {}})).unwrap();
        assert_eq!(result["profiles"].as_array().unwrap().len(), 1);
        assert_eq!(result["profiles"][0]["name"], "Alice");
        assert_eq!(result["profiles"][0]["handle"], "al");
    }

    const G2: &str = "00000000-0000-4000-8000-000000000004";
    const T3: &str = "00000000-0000-4000-8000-000000000005";
    const N1: &str = "00000000-0000-4000-8000-000000000006";
    const U1: &str = "00000000-0000-4000-8000-000000000007";
    const P1: &str = "00000000-0000-4000-8000-000000000008";
    const MISSING: &str = "00000000-0000-4000-8000-0000000000ff";

    /// Steps making every kind of change a transaction can make, then `last`.
    fn every_change_then(last: Value) -> Value {
        json!([
            // An upsert of an existing entity, with a new attribute.
            ["update", "goals", G1, {"title": "Changed", "color": "red"}],
            // A new entity, then the same one extended.
            ["update", "goals", G2, {"title": "New"}],
            ["merge", "goals", G2, {"meta": {"x": 1}}],
            ["merge", "goals", G1, {"meta": {"b": {"d": 3}, "a": null}}],
            // A new namespace.
            ["create", "notes", N1, {"text": "n"}],
            // A lookup that creates its entity.
            ["update", "profiles", ["handle", "bo"], {"name": "Bo"}],
            // An existing link attribute, and a new one whose lookup target is created.
            ["link", "goals", G2, {"todos": [T1, T3], "tags": [["label", "x"]]}],
            ["unlink", "goals", G1, {"todos": T2}],
            // Drops G1->T1 and G2->T1.
            ["delete", "todos", T1, null],
            ["delete", "$users", U1, null],
            ["link", "todos", T2, {"goals": G2}],
            // A link from an entity to itself, dropped with it.
            ["create", "people", P1, {}],
            ["link", "people", P1, {"people": [P1, G1]}],
            ["delete", "people", P1, null],
            last,
        ])
    }

    fn seeded_with_a_user() -> Db {
        let mut db = seeded();
        let mut attrs = Map::new();
        attrs.insert("email".into(), json!("u@example.com"));
        db.upsert(USERS, U1, attrs, 100);
        db
    }

    #[test]
    fn a_transaction_whose_last_step_fails_leaves_the_store_exactly_as_before() {
        let failing_last_steps = [
            (
                json!(["create", "todos", T2, {}]),
                format!("Creating entities that exist: {T2}"),
            ),
            (
                json!(["update", "todos", MISSING, {"n": 1}, {"upsert": false}]),
                format!("Updating entities that don't exist: {MISSING}"),
            ),
            (
                json!(["link", "goals", G1, {"todos": [T2, "not-an-id"]}]),
                "Invalid entity ID".to_owned(),
            ),
        ];
        for (last, message) in failing_last_steps {
            let mut db = seeded_with_a_user();
            let before = db.clone();
            let err = db
                .transact(&every_change_then(last), false, 200)
                .unwrap_err();
            assert!(err.text().contains(&message), "{}", err.text());
            assert_eq!(db, before, "after a failed {message:?}");
        }
    }

    #[test]
    fn the_same_steps_without_the_failing_one_all_apply() {
        let mut db = seeded_with_a_user();
        let before = db.clone();
        let outcome = db
            .transact(
                &every_change_then(json!(["ruleParams", "goals", G1, {}])),
                false,
                200,
            )
            .unwrap();
        assert_ne!(db, before);
        assert_eq!(db.journal, None);
        let mirrored: BTreeSet<_> = db
            .triples
            .iter()
            .map(|(i, from, to)| (*i, to.clone(), from.clone()))
            .collect();
        assert_eq!(db.reverse, mirrored);
        // Deleted: T1 (linked from G1 and G2) and P1 (to itself and to G1).
        let dangling: Vec<_> = db
            .triples
            .iter()
            .filter(|(_, from, to)| [from, to].iter().any(|e| [T1, P1].contains(&e.as_str())))
            .collect();
        assert_eq!(dangling, Vec::<&Triple>::new());
        assert_eq!(outcome.deleted_users, vec![U1.to_owned()]);
        let result = db
            .query(&json!({"goals": {"todos": {}, "tags": {}}, "notes": {}, "profiles": {}, "$users": {}}))
            .unwrap();
        assert_eq!(
            result,
            json!({
                "goals": [
                    {"id": G1, "title": "Changed", "color": "red",
                     "meta": {"b": {"c": 2, "d": 3}}, "todos": [], "tags": []},
                    {"id": G2, "title": "New", "meta": {"x": 1},
                     // T3 is linked to but was never created, so not shown.
                     "todos": [{"id": T2, "title": "swim", "n": 5}],
                     "tags": [{"id": result["goals"][1]["tags"][0]["id"], "label": "x"}]},
                ],
                "notes": [{"id": N1, "text": "n"}],
                "profiles": [{"id": result["profiles"][0]["id"], "handle": "bo", "name": "Bo"}],
                "$users": [],
            })
        );
    }

    #[test]
    fn a_lookup_matching_several_entities_picks_the_earliest_created() {
        // The later one has the smaller id, so id order would pick it.
        const LATER: &str = "00000000-0000-4000-8000-000000000010";
        const EARLIER: &str = "00000000-0000-4000-8000-000000000020";
        let mut db = Db::new();
        db.transact(
            &json!([
                ["create", "profiles", EARLIER, {"handle": "al"}],
                ["create", "profiles", LATER, {"handle": "al"}],
                ["update", "profiles", ["handle", "al"], {"name": "Al"}],
            ]),
            false,
            1,
        )
        .unwrap();
        assert_eq!(db.entity("profiles", EARLIER).unwrap().attrs["name"], "Al");
        assert!(
            !db.entity("profiles", LATER)
                .unwrap()
                .attrs
                .contains_key("name")
        );
    }

    #[test]
    fn errors_leave_the_store_unchanged() {
        let mut db = seeded();
        let before = db.query(&json!({"goals": {}, "todos": {}})).unwrap();
        let err = db
            .transact(
                &json!([["update", "goals", G1, {"title": "x"}], ["create", "todos", T1, {}]]),
                false,
                5,
            )
            .unwrap_err();
        assert_eq!(
            err.body["message"],
            format!("Validation failed for tx-step: Creating entities that exist: {T1}")
        );
        assert_eq!(
            db.query(&json!({"goals": {}, "todos": {}})).unwrap(),
            before
        );
        let err = db
            .transact(
                &json!([["update", "profiles", "x", {"handle": "a"}]]),
                false,
                5,
            )
            .unwrap_err();
        assert_eq!(
            err.body["message"],
            "Validation failed for steps: Invalid entity ID 'x'. Entity IDs must be UUIDs or lookup references."
        );
        let err = db
            .transact(&json!([["update", "goals", G1, {"color": "red"}]]), true, 5)
            .unwrap_err();
        assert_eq!(
            err.body["hint"]["errors"][0]["hint"]["attributes"],
            json!(["goals.color"])
        );
        let err = db
            .transact(
                &json!([["update", "goals", T2, {"title": "z"}, {"upsert": false}]]),
                false,
                5,
            )
            .unwrap_err();
        assert!(
            err.text().contains("Updating entities that don't exist"),
            "{}",
            err.text()
        );
    }
}
