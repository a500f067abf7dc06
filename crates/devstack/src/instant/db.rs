//! The emulator's embedded store: namespaces of entities with attributes, links between
//! entities, InstaML transactions and InstaQL queries. Permissions are not evaluated.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::util::{new_uuid, parse_uuid};

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

/// An entity id as given in a step: a UUID or a lookup `[attr, value]`.
#[derive(Debug, Clone, PartialEq)]
enum Eid {
    Id(String),
    Lookup(String, Value),
}

fn parse_eid(value: &Value) -> Option<Eid> {
    match value {
        Value::String(text) => {
            if let Some(id) = parse_uuid(text) {
                return Some(Eid::Id(id));
            }
            // The encoded form: lookup__<attr>__<json value>.
            let rest = text.strip_prefix("lookup__")?;
            let (attr, json) = rest.split_once("__")?;
            let value = serde_json::from_str(json).ok()?;
            Some(Eid::Lookup(attr.to_owned(), value))
        }
        Value::Array(pair) if pair.len() == 2 => {
            let attr = pair[0].as_str()?;
            Some(Eid::Lookup(attr.to_owned(), pair[1].clone()))
        }
        Value::Object(map) if map.len() == 1 => {
            let (attr, value) = map.iter().next()?;
            Some(Eid::Lookup(attr.clone(), value.clone()))
        }
        _ => None,
    }
}

const ACTIONS: [&str; 7] = [
    "create",
    "update",
    "merge",
    "link",
    "unlink",
    "delete",
    "ruleParams",
];

/// A step, checked.
struct Step<'a> {
    action: &'a str,
    etype: &'a str,
    eid: Eid,
    args: Option<&'a Value>,
    opts: Option<&'a Value>,
}

/// What a transaction did that the auth tables must follow.
#[derive(Debug, Default)]
pub(crate) struct TxOutcome {
    pub(crate) deleted_users: Vec<String>,
}

fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    deep_merge(existing, value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        _ => None,
    }
}

fn query_error(query: &Value, message: &str) -> ApiError {
    ApiError::validation_message("query", query.clone(), message)
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

    // ---- Transactions ----

    fn check_steps<'a>(steps: &'a [Value], input: &Value) -> Result<Vec<Step<'a>>, ApiError> {
        let malformed = |index: usize| {
            ApiError::validation(
                "steps",
                input.clone(),
                vec![
                    json!({"expected": "a step [action, etype, eid, args?, opts?]", "in": [index]}),
                ],
            )
        };
        let mut out = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let Some(items) = step.as_array() else {
                return Err(malformed(index));
            };
            let action = items.first().and_then(Value::as_str).unwrap_or_default();
            if !ACTIONS.contains(&action) || items.len() < 3 {
                return Err(malformed(index));
            }
            let Some(etype) = items[1].as_str().filter(|e| !e.is_empty()) else {
                return Err(malformed(index));
            };
            let Some(eid) = parse_eid(&items[2]) else {
                let shown = match &items[2] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                return Err(ApiError::validation(
                    "steps",
                    input.clone(),
                    vec![json!({
                        "message": format!("Invalid entity ID '{shown}'. Entity IDs must be UUIDs or lookup references."),
                        "in": [index, 2],
                    })],
                ));
            };
            let args = items.get(3).filter(|a| !a.is_null());
            let needs_object = matches!(action, "create" | "update" | "merge" | "link" | "unlink");
            if needs_object && args.is_some_and(|a| !a.is_object()) {
                return Err(malformed(index));
            }
            out.push(Step {
                action,
                etype,
                eid,
                args,
                opts: items.get(4).filter(|o| o.is_object()),
            });
        }
        Ok(out)
    }

    /// The attributes these steps would create (InstantDB creates them on the fly
    /// unless `throw-on-missing-attrs?`).
    fn missing_attrs(&self, steps: &[Step<'_>]) -> Vec<String> {
        let mut known = self.attrs.clone();
        let mut links: Vec<(String, String)> = Vec::new();
        let mut missing = Vec::new();
        let mut need = |known: &mut BTreeSet<(String, String)>, ns: &str, label: &str| {
            if known.insert((ns.to_owned(), label.to_owned())) {
                missing.push(format!("{ns}.{label}"));
            }
        };
        for step in steps {
            if let Eid::Lookup(attr, _) = &step.eid {
                need(&mut known, step.etype, attr);
            }
            match step.action {
                "create" | "update" | "merge" => {
                    need(&mut known, step.etype, "id");
                    for key in step
                        .args
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                    {
                        if key != "id" {
                            need(&mut known, step.etype, key);
                        }
                    }
                }
                "link" => {
                    for (label, _) in step.args.and_then(Value::as_object).into_iter().flatten() {
                        let exists = self.link_attr(step.etype, label).is_some()
                            || links.iter().any(|(ns, l)| {
                                (ns == step.etype && l == label) || (ns == label && l == step.etype)
                            });
                        if !exists {
                            links.push((step.etype.to_owned(), label.clone()));
                            need(&mut known, step.etype, label);
                        }
                    }
                }
                _ => {}
            }
        }
        missing
    }

    /// Resolves an eid for writing: a lookup that matches nothing creates the entity
    /// with that attribute (as InstantDB does).
    fn resolve_for_write(&mut self, ns: &str, eid: &Eid, now: i64) -> String {
        match eid {
            Eid::Id(id) => id.clone(),
            Eid::Lookup(attr, value) => match self.find_by_attr(ns, attr, value) {
                Some(id) => id,
                None => {
                    let id = if attr == "id" {
                        value.as_str().and_then(parse_uuid).unwrap_or_else(new_uuid)
                    } else {
                        new_uuid()
                    };
                    let mut attrs = Map::new();
                    if attr != "id" {
                        attrs.insert(attr.clone(), value.clone());
                    }
                    self.upsert(ns, &id, attrs, now);
                    id
                }
            },
        }
    }

    fn resolve_existing(&self, ns: &str, eid: &Eid) -> Option<String> {
        match eid {
            Eid::Id(id) => Some(id.clone()),
            Eid::Lookup(attr, value) => self.find_by_attr(ns, attr, value),
        }
    }

    fn eid_text(eid: &Eid) -> String {
        match eid {
            Eid::Id(id) => id.clone(),
            Eid::Lookup(attr, value) => json!([attr, value]).to_string(),
        }
    }

    /// Applies InstaML steps atomically: on error nothing changes.
    pub(crate) fn transact(
        &mut self,
        steps_json: &Value,
        throw_on_missing_attrs: bool,
        now: i64,
    ) -> Result<TxOutcome, ApiError> {
        let Some(steps) = steps_json.as_array() else {
            return Err(ApiError::param_malformed(&["body", "steps"], steps_json));
        };
        let steps = Db::check_steps(steps, steps_json)?;
        if throw_on_missing_attrs {
            let missing = self.missing_attrs(&steps);
            if !missing.is_empty() {
                return Err(ApiError::validation(
                    "steps",
                    steps_json.clone(),
                    vec![json!({
                        "message": "Attributes are missing in your schema",
                        "hint": {"attributes": missing},
                    })],
                ));
            }
        }
        let mut next = self.clone();
        let mut outcome = TxOutcome::default();
        for step in &steps {
            next.apply(step, now, &mut outcome)?;
        }
        *self = next;
        Ok(outcome)
    }

    fn apply(
        &mut self,
        step: &Step<'_>,
        now: i64,
        outcome: &mut TxOutcome,
    ) -> Result<(), ApiError> {
        let ns = step.etype;
        let args: Map<String, Value> = step
            .args
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        match step.action {
            "create" | "update" | "merge" => {
                let existing = self.resolve_existing(ns, &step.eid);
                let exists = existing
                    .as_deref()
                    .is_some_and(|id| self.entity(ns, id).is_some());
                if step.action == "create" && exists {
                    return Err(ApiError::validation_message(
                        "tx-step",
                        json!([{"etype": ns, "eid": Db::eid_text(&step.eid)}]),
                        &format!("Creating entities that exist: {}", Db::eid_text(&step.eid)),
                    ));
                }
                let no_upsert = step
                    .opts
                    .and_then(|o| o.get("upsert"))
                    .and_then(Value::as_bool)
                    == Some(false);
                if no_upsert && !exists {
                    return Err(ApiError::validation_message(
                        "tx-step",
                        json!([{"etype": ns, "eid": Db::eid_text(&step.eid)}]),
                        &format!(
                            "Updating entities that don't exist: {}",
                            Db::eid_text(&step.eid)
                        ),
                    ));
                }
                let id = self.resolve_for_write(ns, &step.eid, now);
                let mut attrs = args;
                attrs.remove("id");
                if step.action == "merge" {
                    let current = self
                        .entity(ns, &id)
                        .map(|e| e.attrs.clone())
                        .unwrap_or_default();
                    let mut merged = Map::new();
                    for (key, patch) in attrs {
                        let mut value = current.get(&key).cloned().unwrap_or(Value::Null);
                        if value.is_object() && patch.is_object() {
                            deep_merge(&mut value, &patch);
                        } else {
                            value = patch;
                        }
                        merged.insert(key, value);
                    }
                    attrs = merged;
                }
                self.upsert(ns, &id, attrs, now);
            }
            "delete" => {
                if let Some(id) = self.resolve_existing(ns, &step.eid)
                    && self.delete(ns, &id).is_some()
                    && ns == USERS
                {
                    outcome.deleted_users.push(id);
                }
            }
            "link" | "unlink" => {
                let link = step.action == "link";
                let source = if link {
                    Some(self.resolve_for_write(ns, &step.eid, now))
                } else {
                    self.resolve_existing(ns, &step.eid)
                };
                let Some(source) = source else {
                    return Ok(());
                };
                for (label, targets) in args {
                    let (index, forward) = match self.link_attr(ns, &label) {
                        Some(found) => found,
                        None if link => {
                            self.links.push(LinkAttr {
                                fwd_ns: ns.to_owned(),
                                fwd_label: label.clone(),
                                rev_ns: label.clone(),
                                rev_label: ns.to_owned(),
                            });
                            self.attrs.insert((ns.to_owned(), label.clone()));
                            (self.links.len() - 1, true)
                        }
                        None => continue,
                    };
                    let target_ns = self.target_ns(index, forward).to_owned();
                    let targets = match targets {
                        Value::Array(items) => items,
                        single => vec![single],
                    };
                    for target in targets {
                        let Some(target) = parse_eid(&target) else {
                            return Err(ApiError::validation(
                                "steps",
                                target.clone(),
                                vec![
                                    json!({"message": format!("Invalid entity ID '{target}'. Entity IDs must be UUIDs or lookup references.")}),
                                ],
                            ));
                        };
                        let target = if link {
                            Some(self.resolve_for_write(&target_ns, &target, now))
                        } else {
                            self.resolve_existing(&target_ns, &target)
                        };
                        let Some(target) = target else { continue };
                        let triple = if forward {
                            (index, source.clone(), target)
                        } else {
                            (index, target, source.clone())
                        };
                        if link {
                            self.triples.insert(triple);
                        } else {
                            self.triples.remove(&triple);
                        }
                    }
                }
            }
            // Rule params only matter to permissions, which are not evaluated.
            _ => {}
        }
        Ok(())
    }

    // ---- Queries ----

    /// Runs an InstaQL query. `$$ruleParams` is accepted and ignored.
    pub(crate) fn query(&self, query: &Value) -> Result<Value, ApiError> {
        let Some(map) = query.as_object() else {
            return Err(ApiError::param_malformed(&["body", "query"], query));
        };
        let mut out = Map::new();
        for (ns, node) in map {
            if ns.starts_with("$$") {
                continue;
            }
            let Some(node) = node.as_object() else {
                return Err(query_error(query, &format!("{ns} must be an object")));
            };
            let ids: Vec<String> = self
                .entities(ns)
                .into_iter()
                .map(|(id, _)| id.clone())
                .collect();
            out.insert(
                ns.clone(),
                Value::Array(self.query_node(ns, node, ids, query)?),
            );
        }
        Ok(Value::Object(out))
    }

    fn query_node(
        &self,
        ns: &str,
        node: &Map<String, Value>,
        ids: Vec<String>,
        query: &Value,
    ) -> Result<Vec<Value>, ApiError> {
        let options = match node.get("$") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(options)) => options.clone(),
            Some(_) => return Err(query_error(query, "$ must be an object")),
        };
        let mut rows: Vec<(String, &Entity)> = ids
            .into_iter()
            .filter_map(|id| self.entity(ns, &id).map(|e| (id, e)))
            .collect();
        if let Some(filter) = options.get("where") {
            let Some(filter) = filter.as_object() else {
                return Err(query_error(query, "where must be an object"));
            };
            let mut kept = Vec::new();
            for (id, entity) in rows {
                if self.matches(ns, &id, filter, query)? {
                    kept.push((id, entity));
                }
            }
            rows = kept;
        }
        if let Some(order) = options.get("order").and_then(Value::as_object)
            && let Some((key, direction)) = order.iter().next()
        {
            let descending = direction.as_str() == Some("desc");
            rows.sort_by(|(_, a), (_, b)| {
                let ordering = if key == "serverCreatedAt" {
                    a.seq.cmp(&b.seq)
                } else {
                    let null = Value::Null;
                    compare(
                        a.attrs.get(key).unwrap_or(&null),
                        b.attrs.get(key).unwrap_or(&null),
                    )
                    .unwrap_or(Ordering::Equal)
                };
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let as_count = |key: &str| -> Result<Option<usize>, ApiError> {
            match options.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        query_error(query, &format!("{key} must be a non-negative integer"))
                    }),
            }
        };
        let offset = as_count("offset")?.unwrap_or(0);
        let limit = as_count("limit")?;
        let fields: Option<Vec<&str>> = options
            .get("fields")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect());
        let mut out = Vec::new();
        for (id, entity) in rows
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
        {
            let mut object = Map::new();
            object.insert("id".into(), Value::String(id.clone()));
            for (key, value) in &entity.attrs {
                if fields.as_ref().is_none_or(|f| f.contains(&key.as_str())) {
                    object.insert(key.clone(), value.clone());
                }
            }
            for (label, child) in node {
                if label == "$" {
                    continue;
                }
                let Some(child) = child.as_object() else {
                    return Err(query_error(query, &format!("{label} must be an object")));
                };
                let children = match self.linked(ns, &id, label) {
                    Some((target_ns, ids)) => self.query_node(&target_ns, child, ids, query)?,
                    None => Vec::new(),
                };
                object.insert(label.clone(), Value::Array(children));
            }
            out.push(Value::Object(object));
        }
        Ok(out)
    }

    /// The values at a where path (`title`, `id`, `todos`, `todos.title`, `owner.id`).
    fn path_values(&self, ns: &str, id: &str, path: &str) -> Vec<Value> {
        let segments: Vec<&str> = path.split('.').collect();
        let Some((last, hops)) = segments.split_last() else {
            return Vec::new();
        };
        let mut current = vec![(ns.to_owned(), id.to_owned())];
        for hop in hops {
            current = current
                .iter()
                .filter_map(|(ns, id)| self.linked(ns, id, hop))
                .flat_map(|(target_ns, ids)| ids.into_iter().map(move |id| (target_ns.clone(), id)))
                .collect();
        }
        let mut values = Vec::new();
        for (ns, id) in current {
            if *last == "id" {
                values.push(Value::String(id));
            } else if let Some(value) = self.entity(&ns, &id).and_then(|e| e.attrs.get(*last)) {
                values.push(value.clone());
            } else if let Some((_, ids)) = self.linked(&ns, &id, last) {
                values.extend(ids.into_iter().map(Value::String));
            }
        }
        values
    }

    fn matches(
        &self,
        ns: &str,
        id: &str,
        filter: &Map<String, Value>,
        query: &Value,
    ) -> Result<bool, ApiError> {
        for (key, condition) in filter {
            let ok = match key.as_str() {
                "and" | "or" => {
                    let Some(clauses) = condition.as_array() else {
                        return Err(query_error(
                            query,
                            &format!("{key} must be a list of where clauses"),
                        ));
                    };
                    let mut results = Vec::new();
                    for clause in clauses {
                        let Some(clause) = clause.as_object() else {
                            return Err(query_error(
                                query,
                                &format!("{key} must be a list of where clauses"),
                            ));
                        };
                        results.push(self.matches(ns, id, clause, query)?);
                    }
                    if key == "and" {
                        results.iter().all(|r| *r)
                    } else {
                        results.iter().any(|r| *r)
                    }
                }
                path => {
                    let values = self.path_values(ns, id, path);
                    match condition {
                        Value::Object(ops)
                            if !ops.is_empty() && ops.keys().all(|k| k.starts_with('$')) =>
                        {
                            let mut all = true;
                            for (op, operand) in ops {
                                all &= Db::operator(op, operand, &values, query)?;
                            }
                            all
                        }
                        _ => values.iter().any(|v| v == condition),
                    }
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn operator(
        op: &str,
        operand: &Value,
        values: &[Value],
        query: &Value,
    ) -> Result<bool, ApiError> {
        let ordered = |want: &[Ordering]| {
            values
                .iter()
                .any(|v| compare(v, operand).is_some_and(|o| want.contains(&o)) && !v.is_null())
        };
        Ok(match op {
            "$in" => {
                let Some(options) = operand.as_array() else {
                    return Err(query_error(query, "$in must be a list"));
                };
                values.iter().any(|v| options.contains(v))
            }
            "$ne" | "$not" => !values.iter().any(|v| v == operand),
            "$isNull" => {
                let is_null = values.iter().all(Value::is_null);
                operand.as_bool() == Some(is_null)
            }
            "$gt" => ordered(&[Ordering::Greater]),
            "$gte" => ordered(&[Ordering::Greater, Ordering::Equal]),
            "$lt" => ordered(&[Ordering::Less]),
            "$lte" => ordered(&[Ordering::Less, Ordering::Equal]),
            other => {
                return Err(query_error(
                    query,
                    &format!("the emulator does not support the where operator {other}"),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
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
