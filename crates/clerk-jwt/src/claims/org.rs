//! The `o` claim: sorted into slots with the rest of the payload, then read as v2's
//! compact organization or as v1's `org_*` claims.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::raw::{ClaimError, string, wrong, wrong_scalar};
use super::{CommaList, Organization};
use crate::json::{Key, Scalar, StrictValue, describe_str, fill, fill_extra};

/// `o` as sent: an object sorted into slots, or any other value (an error for v2).
#[derive(Debug)]
pub(crate) enum OrgSlot<'a> {
    Object(RawOrg<'a>),
    Other(Scalar<'a>),
}

/// The fields of `o`, untyped until judged. Unknown fields are checked for duplicates
/// and kept for the v1 case, where `o` is just another claim.
#[derive(Debug, Default)]
pub(crate) struct RawOrg<'a> {
    pub(super) id: Option<Scalar<'a>>,
    pub(super) slg: Option<Scalar<'a>>,
    pub(super) rol: Option<Scalar<'a>>,
    pub(super) per: Option<Scalar<'a>>,
    pub(super) fpm: Option<Scalar<'a>>,
    pub(super) others: Map<String, Value>,
}

impl<'de> Deserialize<'de> for OrgSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Anything that is not an object goes through the scalar parser.
        struct OrgVisitor;
        impl<'de> Visitor<'de> for OrgVisitor {
            type Value = OrgSlot<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<OrgSlot<'de>, A::Error> {
                let mut o = RawOrg::default();
                while let Some(Key(key)) = access.next_key()? {
                    let slot = match key.as_ref() {
                        "id" => &mut o.id,
                        "slg" => &mut o.slg,
                        "rol" => &mut o.rol,
                        "per" => &mut o.per,
                        "fpm" => &mut o.fpm,
                        _ => {
                            fill_extra(&mut o.others, key, &mut access)?;
                            continue;
                        }
                    };
                    fill(slot, &key, &mut access)?;
                }
                Ok(OrgSlot::Object(o))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::Str(v.into())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::Str(v.to_owned().into())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::BigUint(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::Float(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::Bool(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<OrgSlot<'de>, E> {
                Ok(OrgSlot::Other(Scalar::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrgSlot<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(StrictValue(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OrgSlot::Other(Scalar::Nested(Value::Array(items))))
            }
        }
        deserializer.deserialize_any(OrgVisitor)
    }
}

impl OrgSlot<'_> {
    /// `o` as JSON, for a v1 token where it is not the organization claim.
    pub(super) fn into_value(self) -> Value {
        match self {
            OrgSlot::Other(scalar) => scalar.into_value(),
            OrgSlot::Object(o) => {
                let mut map = o.others;
                for (name, slot) in [
                    ("id", o.id),
                    ("slg", o.slg),
                    ("rol", o.rol),
                    ("per", o.per),
                    ("fpm", o.fpm),
                ] {
                    if let Some(value) = slot {
                        map.insert(name.to_owned(), value.into_value());
                    }
                }
                Value::Object(map)
            }
        }
    }
}

pub(super) fn parse_org_v2(slot: OrgSlot<'_>) -> Result<Option<Organization>, ClaimError> {
    let o = match slot {
        OrgSlot::Object(o) => o,
        OrgSlot::Other(Scalar::Null) => return Ok(None),
        OrgSlot::Other(other) => return Err(wrong_scalar("o", "an object", &other)),
    };
    let Some(id) = string("o.id", o.id)? else {
        return Err("claim o.id is missing".into());
    };
    let permissions = CommaList(string("o.per", o.per)?.unwrap_or_default());
    // `fpm` and `rol` are read where they lie in the payload: only what is kept is
    // allocated (the bitmasks, the role with its prefix).
    let feature_permission_map = match o.fpm {
        None | Some(Scalar::Null) => Vec::new(),
        Some(Scalar::Str(text)) => {
            let mut masks = Vec::new();
            for n in text.split(',') {
                match n.trim().parse::<u64>() {
                    Ok(mask) => masks.push(mask),
                    Err(_) => {
                        return Err(format!(
                            "claim o.fpm must be comma-separated integers, found {}",
                            describe_str(&text)
                        ));
                    }
                }
            }
            masks
        }
        Some(other) => return Err(wrong_scalar("o.fpm", "a string", &other)),
    };
    let slug = string("o.slg", o.slg)?;
    let role = match o.rol {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Str(r)) if r.starts_with("org:") => Some(r.into_owned()),
        Some(Scalar::Str(r)) => {
            let mut key = String::with_capacity(4 + r.len());
            key.push_str("org:");
            key.push_str(&r);
            Some(key)
        }
        Some(other) => return Err(wrong_scalar("o.rol", "a string", &other)),
    };
    Ok(Some(Organization {
        id,
        slug,
        role,
        permissions,
        feature_permission_map,
    }))
}

pub(super) fn parse_org_v1(
    id: Option<Scalar<'_>>,
    slug: Option<Scalar<'_>>,
    role: Option<Scalar<'_>>,
    permissions: Option<Scalar<'_>>,
) -> Result<Option<Organization>, ClaimError> {
    let id = string("org_id", id)?;
    let slug = string("org_slug", slug)?;
    let role = string("org_role", role)?;
    let expected = "an array of strings";
    let permissions = match permissions {
        None | Some(Scalar::Null) => CommaList::default(),
        Some(Scalar::Nested(Value::Array(items))) => CommaList(
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) if !s.contains(',') => Ok(s),
                    other => Err(wrong("org_permissions", expected, &other)),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
        ),
        Some(other) => return Err(wrong_scalar("org_permissions", expected, &other)),
    };
    Ok(id.map(|id| Organization {
        id,
        slug,
        role,
        permissions,
        feature_permission_map: Vec::new(),
    }))
}
