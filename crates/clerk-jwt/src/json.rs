//! Strict JSON building blocks: values whose objects hold no duplicate key at any depth,
//! and scalars that borrow from the input when they can.
//!
//! The hot path parses a payload once into typed slots of [`Scalar`]s without judging
//! their types (that waits until the signature has verified), so nothing is allocated
//! for a string without escapes until the claims are built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value whose objects, at every depth, hold no duplicate key.
pub(crate) struct StrictValue(pub(crate) Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(Key(key)) = access.next_key()? {
            if map.contains_key(key.as_ref()) {
                return Err(duplicate(&key));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key.into_owned(), value);
        }
        Ok(Value::Object(map))
    }
}

/// The error for a key seen twice in one object.
pub(crate) fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!(
        "duplicate key {}",
        describe(Some(&Value::String(key.to_owned())))
    ))
}

/// A short, safe description of a JSON value for error messages.
pub(crate) fn describe(value: Option<&Value>) -> String {
    match value {
        None => "(missing)".into(),
        Some(Value::String(s)) => describe_str(s),
        Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(_)) => "(an array)".into(),
        Some(Value::Object(_)) => "(an object)".into(),
    }
}

/// A string quoted for an error message, or a placeholder when it is long.
pub(crate) fn describe_str(s: &str) -> String {
    if s.len() <= 40 {
        format!("{s:?}")
    } else {
        "(a long string)".into()
    }
}

/// An object key, borrowed from the input unless it holds escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, kept untyped until its type is judged. Strings without escapes
/// borrow from the input; arrays and objects become strict [`Value`]s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// An integer above `i64::MAX`.
    BigUint(u64),
    Float(f64),
    Bool(bool),
    Null,
    /// An array or an object.
    Nested(Value),
}

impl<'a> Scalar<'a> {
    /// The value as JSON, for error messages and for claims kept untyped.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Scalar::Str(s) => Value::String(s.into_owned()),
            Scalar::Int(i) => Value::from(i),
            Scalar::BigUint(u) => Value::from(u),
            Scalar::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Null => Value::Null,
            Scalar::Nested(v) => v,
        }
    }

    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Scalar::Str(s) => describe_str(s),
            Scalar::Int(i) => i.to_string(),
            Scalar::BigUint(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
            Scalar::Nested(v) => describe(Some(v)),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(i64::try_from(v).map_or(Scalar::BigUint(v), Scalar::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                if v.is_finite() {
                    Ok(Scalar::Float(v))
                } else {
                    Err(E::custom("number is not finite"))
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
                StrictVisitor.visit_seq(seq).map(Scalar::Nested)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
                StrictVisitor.visit_map(map).map(Scalar::Nested)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Stores `value` in `slot`, refusing a second value for the same key.
pub(crate) fn fill<'de, A: MapAccess<'de>>(
    slot: &mut Option<Scalar<'de>>,
    key: &str,
    access: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(duplicate(key));
    }
    *slot = Some(access.next_value()?);
    Ok(())
}

/// Stores an unknown key's value in `extra`, refusing duplicates.
pub(crate) fn fill_extra<'de, A: MapAccess<'de>>(
    extra: &mut Map<String, Value>,
    key: Cow<'de, str>,
    access: &mut A,
) -> Result<(), A::Error> {
    if extra.contains_key(key.as_ref()) {
        return Err(duplicate(&key));
    }
    let StrictValue(value) = access.next_value()?;
    extra.insert(key.into_owned(), value);
    Ok(())
}
