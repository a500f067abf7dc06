//! InstaML transactions on the store: steps checked first, then applied in place with
//! an undo journal that takes them back when a step fails.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{Db, LinkAttr, USERS};
use crate::instant::error::ApiError;
use crate::util::{new_uuid, parse_uuid};

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

/// A running transaction: rolls the store back when dropped uncommitted.
struct Rollback<'a> {
    db: &'a mut Db,
}

impl<'a> Rollback<'a> {
    fn begin(db: &'a mut Db) -> Self {
        db.begin();
        Rollback { db }
    }

    fn commit(self) {
        self.db.commit();
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        // After commit the journal is gone and this does nothing.
        self.db.rollback();
    }
}

impl Db {
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
        // Applied in place, journalled: the guard rolls back unless committed, so an
        // error (or a panic) part-way leaves the store as it was, without copying it.
        let tx = Rollback::begin(self);
        let mut outcome = TxOutcome::default();
        for step in &steps {
            tx.db.apply(step, now, &mut outcome)?;
        }
        tx.commit();
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
                            self.add_link(LinkAttr {
                                fwd_ns: ns.to_owned(),
                                fwd_label: label.clone(),
                                rev_ns: label.clone(),
                                rev_label: ns.to_owned(),
                            });
                            self.add_attr(ns, &label);
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
                        self.set_triple(triple, link);
                    }
                }
            }
            // Rule params only matter to permissions, which are not evaluated.
            _ => {}
        }
        Ok(())
    }
}
