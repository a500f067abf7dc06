//! The `fva` claim: Clerk sends two integers, read into a pair without building a JSON
//! array; any other value is kept whole for the type check after the signature.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use crate::json::{Scalar, StrictValue};

/// `fva` as sent: exactly two integers, or any other value (judged later).
#[derive(Debug)]
pub(crate) enum FvaSlot<'a> {
    Pair(i64, i64),
    Other(Scalar<'a>),
}

impl<'de> Deserialize<'de> for FvaSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FvaVisitor;
        impl<'de> Visitor<'de> for FvaVisitor {
            type Value = FvaSlot<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FvaSlot<'de>, A::Error> {
                // Up to three items as they come; the same strictness as any array
                // (nested objects refuse duplicate keys, numbers must be finite).
                let first = seq.next_element::<Scalar<'de>>()?;
                let second = match first {
                    Some(_) => seq.next_element::<Scalar<'de>>()?,
                    None => None,
                };
                let third = match second {
                    Some(_) => seq.next_element::<StrictValue>()?,
                    None => None,
                };
                if let (Some(Scalar::Int(a)), Some(Scalar::Int(b)), None) =
                    (&first, &second, &third)
                {
                    return Ok(FvaSlot::Pair(*a, *b));
                }
                let mut items: Vec<Value> = first
                    .into_iter()
                    .chain(second)
                    .map(Scalar::into_value)
                    .collect();
                items.extend(third.map(|StrictValue(v)| v));
                while let Some(StrictValue(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(FvaSlot::Other(Scalar::Nested(Value::Array(items))))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<FvaSlot<'de>, A::Error> {
                let value = Scalar::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FvaSlot::Other(value))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(Scalar::Str(v.into())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(Scalar::Str(v.to_owned().into())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(Scalar::Str(v.into())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(Scalar::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(
                    i64::try_from(v).map_or(Scalar::BigUint(v), Scalar::Int),
                ))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FvaSlot<'de>, E> {
                if v.is_finite() {
                    Ok(FvaSlot::Other(Scalar::Float(v)))
                } else {
                    Err(E::custom("number is not finite"))
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(Scalar::Bool(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<FvaSlot<'de>, E> {
                Ok(FvaSlot::Other(Scalar::Null))
            }
        }
        deserializer.deserialize_any(FvaVisitor)
    }
}
