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

#[derive(Debug, Clone, Default)]
pub(crate) struct Db {
    namespaces: BTreeMap<String, BTreeMap<String, Entity>>,
    attrs: BTreeSet<(String, String)>,
    links: Vec<LinkAttr>,
    /// (link attribute index, from entity, to entity).
    triples: BTreeSet<(usize, String, String)>,
    seq: u64,
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
        self.entities(ns)
            .into_iter()
            .find(|(_, e)| e.attrs.get(attr) == Some(value))
            .map(|(id, _)| id.clone())
    }

    /// Creates the entity if needed and sets attributes.
    pub(crate) fn upsert(&mut self, ns: &str, id: &str, attrs: Map<String, Value>, now: i64) {
        self.seq += 1;
        let seq = self.seq;
        self.attrs.insert((ns.to_owned(), "id".to_owned()));
        for key in attrs.keys() {
            self.attrs.insert((ns.to_owned(), key.clone()));
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
        self.triples.retain(|(_, from, to)| from != id && to != id);
        Some(removed)
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
        let mut ids: Vec<(u64, String)> = self
            .triples
            .iter()
            .filter(|(i, from, to)| *i == index && if forward { from == id } else { to == id })
            .map(|(_, from, to)| if forward { to.clone() } else { from.clone() })
            .filter_map(|other| {
                let seq = self.entity(&target_ns, &other)?.seq;
                Some((seq, other))
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
