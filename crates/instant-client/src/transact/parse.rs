//! Transactions read from InstantDB's wire JSON, as a browser sends them to a server
//! that forwards them: strict (only the shapes the official SDKs send), bounded
//! ([`Transaction::MAX_STEPS`]), and with messages that name positions and JSON kinds,
//! never values (attributes hold user data; serde's own messages quote the value, so
//! every visitor here refuses with its own words).
//!
//! The steps are streamed: each one is read as a `serde_json::Value` and judged by
//! plain functions, which the `Deserialize` impls of [`EntityId`], [`LinkTarget`] and
//! [`UpdateOptions`] share.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Action, EntityId, LinkTarget, Step, Transaction, UpdateOptions};
use crate::error::without_values;

const STEPS: &str = "steps";
const THROW_ON_MISSING_ATTRS: &str = "throw-on-missing-attrs?";

/// What an entity id may be, in messages.
const ENTITY_ID: &str = "a uuid or an [attribute, value] lookup";

/// The message of a parse failure: ours without serde_json's position suffix (the
/// step number says where), or a syntax error described without any value.
pub(super) fn describe(err: &serde_json::Error) -> String {
    if !err.is_data() {
        return crate::error::describe_json_error(err);
    }
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    without_values(text.strip_suffix(&position).unwrap_or(&text))
}

/// A JSON value's kind, for messages: never the value.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn elements(n: usize) -> String {
    if n == 1 {
        "1 element".to_owned()
    } else {
        format!("{n} elements")
    }
}

/// A UUID in its hyphenated form only (`Uuid::try_parse` also takes the simple,
/// braced and URN forms, which InstantDB does not).
fn uuid(s: &str) -> Option<Uuid> {
    if s.len() == 36 {
        Uuid::try_parse(s).ok()
    } else {
        None
    }
}

// ---- Pieces: `Err` says what was found instead -------------------------------------

fn entity_id(v: Value) -> Result<EntityId, String> {
    match v {
        Value::String(s) => uuid(&s)
            .map(EntityId::Id)
            .ok_or_else(|| "a string that is not a uuid".to_owned()),
        Value::Array(pair) => {
            let n = pair.len();
            let Ok([attr, value]) = <[Value; 2]>::try_from(pair) else {
                return Err(format!("an array of {} (a lookup is a pair)", elements(n)));
            };
            match attr {
                Value::String(attr) if !attr.is_empty() => Ok(EntityId::Lookup { attr, value }),
                other => Err(format!("a lookup whose attribute is {}", kind(&other))),
            }
        }
        other => Err(kind(&other).to_owned()),
    }
}

/// Whether a link target that is an array is one lookup rather than several ids: two
/// elements, the first a string that is not a UUID. Either reading serializes back to
/// the same JSON.
fn is_lookup_pair(items: &[Value]) -> bool {
    matches!(items, [Value::String(attr), _] if uuid(attr).is_none())
}

fn link_target(v: Value) -> Result<LinkTarget, String> {
    match v {
        Value::Array(items) if !is_lookup_pair(&items) => items
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                entity_id(id).map_err(|what| format!("an array whose element {} is {what}", i + 1))
            })
            .collect::<Result<_, _>>()
            .map(LinkTarget::Many),
        one => entity_id(one).map(LinkTarget::One),
    }
}

/// Options, or the whole message.
fn options(v: Value) -> Result<UpdateOptions, String> {
    let Value::Object(map) = v else {
        return Err(format!("options must be a json object, got {}", kind(&v)));
    };
    let mut opts = UpdateOptions::default();
    for (key, value) in map {
        match (key.as_str(), value) {
            ("upsert", Value::Bool(upsert)) => opts.upsert = Some(upsert),
            ("upsert", other) => {
                return Err(format!(
                    "option `upsert` must be a boolean, got {}",
                    kind(&other)
                ));
            }
            _ => return Err("unknown option (the only one is `upsert`)".to_owned()),
        }
    }
    Ok(opts)
}

/// The links of a link or unlink step, with their targets rewritten as they
/// serialize; or the whole message.
fn links(action: Action, v: Value) -> Result<Value, String> {
    let name = action.as_str();
    let Value::Object(map) = v else {
        return Err(format!(
            "{name} arguments must be a json object of labels to entity ids, got {}",
            kind(&v)
        ));
    };
    if map.is_empty() {
        return Err(format!("{name} arguments must name at least one label"));
    }
    let mut links = Map::new();
    for (label, target) in map {
        if label.is_empty() {
            return Err(format!("{name} labels must be non-empty"));
        }
        let target = link_target(target).map_err(|what| {
            format!(
                "{name} targets must be entity ids ({ENTITY_ID}, or an array of these), got {what}"
            )
        })?;
        links.insert(label, target.into_value());
    }
    Ok(Value::Object(links))
}

/// One step, or what is wrong with it.
fn step(v: Value) -> Result<Step, String> {
    let Value::Array(items) = v else {
        return Err(format!("a step must be a json array, got {}", kind(&v)));
    };
    let len = items.len();
    let mut items = items.into_iter();
    let action = match items.next() {
        None => return Err("a step must not be empty".to_owned()),
        Some(Value::String(name)) => Action::parse(&name).ok_or_else(|| {
            "unknown step kind (expected create, update, merge, delete, link, unlink or ruleParams)"
                .to_owned()
        })?,
        Some(other) => {
            return Err(format!(
                "the step kind must be a string, got {}",
                kind(&other)
            ));
        }
    };
    let name = action.as_str();
    let (min, max, expected) = match action {
        Action::Create | Action::Update | Action::Merge => (4, 5, "4 or 5"),
        Action::Delete => (3, 4, "3 or 4"),
        Action::Link | Action::Unlink | Action::RuleParams => (4, 4, "4"),
    };
    if !(min..=max).contains(&len) {
        return Err(format!("{name} steps have {expected} elements, got {len}"));
    }
    // Past the arity check, only a delete's arguments and options can be absent.
    let mut next = || items.next().unwrap_or(Value::Null);
    let etype = match next() {
        Value::String(etype) if !etype.is_empty() => etype,
        other => {
            return Err(format!(
                "the entity type must be a non-empty string, got {}",
                kind(&other)
            ));
        }
    };
    let id = entity_id(next())
        .map_err(|what| format!("the entity id must be {ENTITY_ID}, got {what}"))?;
    let (args, opts) = match action {
        Action::Create | Action::Update | Action::Merge => {
            let attrs = match next() {
                attrs @ Value::Object(_) => attrs,
                other => {
                    return Err(format!(
                        "{name} attributes must be a json object, got {}",
                        kind(&other)
                    ));
                }
            };
            let opts = if len == max {
                Some(options(next())?)
            } else {
                None
            };
            (Some(attrs), opts)
        }
        Action::Delete => match next() {
            Value::Null => (None, None),
            other => {
                return Err(format!(
                    "a delete step takes no arguments (its 4th element, if any, is null), got {}",
                    kind(&other)
                ));
            }
        },
        Action::Link | Action::Unlink => (Some(links(action, next())?), None),
        Action::RuleParams => match next() {
            params @ Value::Object(_) => (Some(params), None),
            other => {
                return Err(format!(
                    "ruleParams arguments must be a json object, got {}",
                    kind(&other)
                ));
            }
        },
    };
    Ok(Step {
        action,
        etype,
        id,
        args,
        opts,
    })
}

// ---- Deserialize ------------------------------------------------------------------

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        entity_id(Value::deserialize(d)?).map_err(|what| {
            de::Error::custom(format!("an entity id must be {ENTITY_ID}, got {what}"))
        })
    }
}

impl<'de> Deserialize<'de> for LinkTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        link_target(Value::deserialize(d)?).map_err(|what| {
            de::Error::custom(format!(
                "a link target must be an entity id ({ENTITY_ID}) or an array of them, got {what}"
            ))
        })
    }
}

impl<'de> Deserialize<'de> for UpdateOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        options(Value::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TransactionVisitor)
    }
}

/// Visitor methods refusing every JSON scalar with `Self::refuse(kind)`, for visitors
/// that want an object or an array.
macro_rules! refuse_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(Self::refuse("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(Self::refuse("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(Self::refuse("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(Self::refuse("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(Self::refuse("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(Self::refuse("null"))
        }
    };
}

struct TransactionVisitor;

impl TransactionVisitor {
    fn refuse<E: de::Error>(got: &str) -> E {
        E::custom(format!("a transaction must be a json object, got {got}"))
    }
}

impl<'de> Visitor<'de> for TransactionVisitor {
    type Value = Transaction;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a transaction object")
    }

    refuse_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Transaction, A::Error> {
        Err(Self::refuse("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Transaction, A::Error> {
        let mut steps = None;
        let mut throw_on_missing_attrs = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Steps if steps.is_some() => {
                    return Err(de::Error::custom(format!("duplicate key `{STEPS}`")));
                }
                Key::Steps => steps = Some(map.next_value_seed(StepsSeed)?),
                Key::ThrowOnMissingAttrs if throw_on_missing_attrs.is_some() => {
                    return Err(de::Error::custom(format!(
                        "duplicate key `{THROW_ON_MISSING_ATTRS}`"
                    )));
                }
                Key::ThrowOnMissingAttrs => match map.next_value::<Value>()? {
                    Value::Bool(throw) => throw_on_missing_attrs = Some(throw),
                    other => {
                        return Err(de::Error::custom(format!(
                            "`{THROW_ON_MISSING_ATTRS}` must be a boolean, got {}",
                            kind(&other)
                        )));
                    }
                },
            }
        }
        Ok(Transaction {
            steps: steps.ok_or_else(|| de::Error::custom(format!("missing `{STEPS}`")))?,
            throw_on_missing_attrs: throw_on_missing_attrs.unwrap_or(false),
        })
    }
}

/// A top-level key.
enum Key {
    Steps,
    ThrowOnMissingAttrs,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{STEPS}` or `{THROW_ON_MISSING_ATTRS}`")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        match key {
            STEPS => Ok(Key::Steps),
            THROW_ON_MISSING_ATTRS => Ok(Key::ThrowOnMissingAttrs),
            _ => Err(E::custom(format!(
                "unknown top-level key (the only keys are `{STEPS}` and `{THROW_ON_MISSING_ATTRS}`)"
            ))),
        }
    }
}

/// The `steps` array, read one step at a time and never past the limit.
struct StepsSeed;

impl<'de> DeserializeSeed<'de> for StepsSeed {
    type Value = Vec<Step>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Step>, D::Error> {
        d.deserialize_any(self)
    }
}

impl StepsSeed {
    fn refuse<E: de::Error>(got: &str) -> E {
        E::custom(format!("`{STEPS}` must be a json array, got {got}"))
    }
}

impl<'de> Visitor<'de> for StepsSeed {
    type Value = Vec<Step>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of steps")
    }

    refuse_scalars!();

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<Step>, A::Error> {
        Err(Self::refuse("an object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Step>, A::Error> {
        let hint = seq.size_hint().unwrap_or(0);
        let mut steps = Vec::with_capacity(hint.min(Transaction::MAX_STEPS));
        loop {
            if steps.len() == Transaction::MAX_STEPS {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "too many steps: a transaction has at most {}",
                        Transaction::MAX_STEPS
                    )));
                }
                return Ok(steps);
            }
            let Some(value) = seq.next_element::<Value>()? else {
                return Ok(steps);
            };
            let n = steps.len() + 1;
            steps.push(step(value).map_err(|e| de::Error::custom(format!("step {n}: {e}")))?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "00000000-0000-4000-8000-000000000001";

    #[test]
    fn only_hyphenated_uuids_are_ids() {
        let id = Uuid::parse_str(ID).unwrap();
        assert_eq!(entity_id(json!(ID)), Ok(EntityId::Id(id)));
        assert_eq!(
            entity_id(json!(ID.to_uppercase())),
            Ok(EntityId::Id(id)),
            "any case, written back in lowercase"
        );
        for other in [
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            "x".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                entity_id(json!(other)),
                Err("a string that is not a uuid".to_owned()),
                "{other}"
            );
        }
    }

    #[test]
    fn lookups_are_pairs_with_a_named_attribute() {
        assert_eq!(
            entity_id(json!(["handle", 42])),
            Ok(EntityId::lookup("handle", 42))
        );
        assert_eq!(
            entity_id(json!(["email", null])),
            Ok(EntityId::lookup("email", Value::Null))
        );
        assert_eq!(
            entity_id(json!(["email"])),
            Err("an array of 1 element (a lookup is a pair)".to_owned())
        );
        assert_eq!(
            entity_id(json!(["", "x"])),
            Err("a lookup whose attribute is an empty string".to_owned())
        );
    }

    #[test]
    fn a_link_target_pair_is_a_lookup_unless_it_starts_with_a_uuid() {
        let id = Uuid::parse_str(ID).unwrap();
        assert_eq!(
            link_target(json!(["email", ID])),
            Ok(LinkTarget::One(EntityId::lookup("email", ID)))
        );
        assert_eq!(
            link_target(json!([ID, ID])),
            Ok(LinkTarget::from(vec![id, id]))
        );
        assert_eq!(
            link_target(json!([["email", "a"], ID])),
            Ok(LinkTarget::Many(vec![
                EntityId::lookup("email", "a"),
                EntityId::Id(id)
            ]))
        );
        assert_eq!(link_target(json!([])), Ok(LinkTarget::Many(Vec::new())));
        assert_eq!(
            link_target(json!([ID, 5])),
            Err("an array whose element 2 is a number".to_owned())
        );
    }

    #[test]
    fn the_step_limit_is_inclusive() {
        let step = json!(["delete", "goals", ID]);
        let at_limit = json!({"steps": vec![step.clone(); Transaction::MAX_STEPS]});
        let tx: Transaction = serde_json::from_value(at_limit).unwrap();
        assert_eq!(tx.len(), Transaction::MAX_STEPS);
        let over = json!({"steps": vec![step; Transaction::MAX_STEPS + 1]});
        let err = serde_json::from_value::<Transaction>(over).unwrap_err();
        assert_eq!(
            err.to_string(),
            "too many steps: a transaction has at most 1000"
        );
    }

    #[test]
    fn a_step_past_the_limit_is_not_judged() {
        // The 1001st element is skipped unread: the limit is what is reported.
        let mut body = String::from(r#"{"steps":["#);
        for _ in 0..Transaction::MAX_STEPS {
            body.push_str(&format!(r#"["delete","goals","{ID}"],"#));
        }
        body.push_str(r#"{"not":"a step"}]}"#);
        let err = Transaction::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input for POST /admin/transact: too many steps: a transaction has at most 1000"
        );
    }

    #[test]
    fn numbers_are_forwarded_unchanged() {
        // Found by the `transaction` fuzz target: without serde_json's exact float
        // parsing (`float_roundtrip`) a number can be read one unit in the last place
        // off, so what is sent on reads back as another number again (here …3e-150,
        // then …4e-150): forwarding changed a user's number.
        let body = format!(
            r#"{{"steps": [["update", "goals", "{ID}", {{"n": 1.0000000000000002e-150}}]]}}"#
        );
        let tx = Transaction::from_json(body.as_bytes()).unwrap();
        let sent = serde_json::to_string(&tx).unwrap();
        let again = Transaction::from_json(sent.as_bytes()).unwrap();
        assert_eq!(again, tx, "{sent}");
        assert_eq!(serde_json::to_string(&again).unwrap(), sent);
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        let err = Transaction::from_json(br#"{"steps": [}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input for POST /admin/transact: the body is not json (expected value at line 1 column 12)"
        );
    }
}
