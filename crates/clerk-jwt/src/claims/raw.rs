//! The payload sorted into untyped slots in one pass ([`RawClaims`]), then judged into
//! [`SessionClaims`] once the signature verified.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::fva::FvaSlot;
use serde_json::{Map, Value};

use super::org::{OrgSlot, parse_org_v1, parse_org_v2};
use super::{Actor, CommaList, FactorAge, SessionClaims, SessionStatus, is_email_address};
use crate::json::{Key, Scalar, describe, duplicate, fill, fill_extra};

/// A claim with the wrong type; becomes `token-verification-failed`.
pub(crate) type ClaimError = String;

/// The claims, typed after the signature verified.
pub(crate) struct Parsed {
    pub(crate) claims: SessionClaims,
    pub(crate) has_sid: bool,
    pub(crate) email_present: EmailClaim,
}

/// What the `email` claim held, for the email rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmailClaim {
    Valid,
    Missing,
    Empty,
    NotString,
    NotAddress,
}

pub(super) fn wrong(name: &str, expected: &str, value: &Value) -> ClaimError {
    format!(
        "claim {name} must be {expected}, found {}",
        describe(Some(value))
    )
}

pub(super) fn wrong_scalar(name: &str, expected: &str, value: &Scalar<'_>) -> ClaimError {
    format!(
        "claim {name} must be {expected}, found {}",
        value.describe()
    )
}

/// A string field of a nested object (`o`, `act`).
pub(super) fn opt_string(
    map: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ClaimError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(name, "a string", &other)),
    }
}

/// A top-level string claim; null counts as absent.
pub(super) fn string(name: &str, value: Option<Scalar<'_>>) -> Result<Option<String>, ClaimError> {
    match value {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(wrong_scalar(name, "a string", &other)),
    }
}

/// A NumericDate: an integer, or a finite number with a fraction (floored).
fn date(name: &str, value: Option<Scalar<'_>>) -> Result<Option<i64>, ClaimError> {
    match value {
        None => Ok(None),
        Some(Scalar::Int(i)) => Ok(Some(i)),
        #[allow(clippy::cast_possible_truncation)]
        Some(Scalar::Float(f)) if f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(Some(f.floor() as i64))
        }
        Some(other @ (Scalar::Float(_) | Scalar::BigUint(_))) => Err(wrong_scalar(
            name,
            "a number of seconds within range",
            &other,
        )),
        Some(other) => Err(wrong_scalar(name, "a number", &other)),
    }
}

/// A claim kept as JSON (arrays, objects); null counts as absent.
fn nested(value: Option<Scalar<'_>>) -> Option<Value> {
    match value {
        None | Some(Scalar::Null) => None,
        Some(other) => Some(other.into_value()),
    }
}

/// The payload sorted into slots, in one pass over the JSON, with nothing judged yet:
/// types are checked only after the signature verified.
#[derive(Debug, Default)]
pub(crate) struct RawClaims<'a> {
    pub(super) iss: Option<Scalar<'a>>,
    pub(super) sub: Option<Scalar<'a>>,
    pub(super) sid: Option<Scalar<'a>>,
    pub(super) azp: Option<Scalar<'a>>,
    pub(super) jti: Option<Scalar<'a>>,
    pub(super) exp: Option<Scalar<'a>>,
    pub(super) nbf: Option<Scalar<'a>>,
    pub(super) iat: Option<Scalar<'a>>,
    pub(super) aud: Option<Scalar<'a>>,
    pub(super) v: Option<Scalar<'a>>,
    pub(super) sts: Option<Scalar<'a>>,
    pub(super) fva: Option<FvaSlot<'a>>,
    pub(super) fea: Option<Scalar<'a>>,
    pub(super) pla: Option<Scalar<'a>>,
    pub(super) act: Option<Scalar<'a>>,
    pub(super) o: Option<OrgSlot<'a>>,
    pub(super) email: Option<Scalar<'a>>,
    pub(super) email_verified: Option<Scalar<'a>>,
    pub(super) org_id: Option<Scalar<'a>>,
    pub(super) org_slug: Option<Scalar<'a>>,
    pub(super) org_role: Option<Scalar<'a>>,
    pub(super) org_permissions: Option<Scalar<'a>>,
    pub(super) extra: Map<String, Value>,
}

/// Fills the slots where they are (they are large: moving them costs more than filling
/// them).
impl<'de> DeserializeSeed<'de> for &mut RawClaims<'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        struct ClaimsVisitor<'a, 'de>(&'a mut RawClaims<'de>);
        impl<'de> Visitor<'de> for ClaimsVisitor<'_, 'de> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
                let c = self.0;
                while let Some(Key(key)) = access.next_key()? {
                    let slot = match key.as_ref() {
                        "iss" => &mut c.iss,
                        "sub" => &mut c.sub,
                        "sid" => &mut c.sid,
                        "azp" => &mut c.azp,
                        "jti" => &mut c.jti,
                        "exp" => &mut c.exp,
                        "nbf" => &mut c.nbf,
                        "iat" => &mut c.iat,
                        "aud" => &mut c.aud,
                        "v" => &mut c.v,
                        "sts" => &mut c.sts,
                        "fva" => {
                            if c.fva.is_some() {
                                return Err(duplicate(&key));
                            }
                            c.fva = Some(access.next_value()?);
                            continue;
                        }
                        "fea" => &mut c.fea,
                        "pla" => &mut c.pla,
                        "act" => &mut c.act,
                        "o" => {
                            if c.o.is_some() {
                                return Err(duplicate(&key));
                            }
                            c.o = Some(access.next_value()?);
                            continue;
                        }
                        "email" => &mut c.email,
                        "email_verified" => &mut c.email_verified,
                        "org_id" => &mut c.org_id,
                        "org_slug" => &mut c.org_slug,
                        "org_role" => &mut c.org_role,
                        "org_permissions" => &mut c.org_permissions,
                        _ => {
                            fill_extra(&mut c.extra, key, &mut access)?;
                            continue;
                        }
                    };
                    fill(slot, &key, &mut access)?;
                }
                Ok(())
            }
        }
        deserializer.deserialize_map(ClaimsVisitor(self))
    }
}

impl RawClaims<'_> {
    /// Judges the types and builds the typed claims; unknown claims become `extra`.
    pub(crate) fn take_parsed(&mut self) -> Result<Parsed, ClaimError> {
        let c = self;
        let sub = match c.sub.take() {
            Some(Scalar::Str(s)) => s.into_owned(),
            Some(other) => return Err(wrong_scalar("sub", "a string", &other)),
            None => return Err("claim sub is missing".into()),
        };
        let exp = match c.exp.take() {
            Some(value) => date("exp", Some(value))?.unwrap_or_default(),
            None => return Err("claim exp is missing".into()),
        };
        let nbf = date("nbf", c.nbf.take())?;
        let iat = date("iat", c.iat.take())?;
        let iss = string("iss", c.iss.take())?.unwrap_or_default();
        let sid = string("sid", c.sid.take())?;
        let azp = string("azp", c.azp.take())?;
        let jti = string("jti", c.jti.take())?;
        let aud_expected = "a string or an array of strings";
        let aud = match c.aud.take() {
            None | Some(Scalar::Null) => Vec::new(),
            Some(Scalar::Str(s)) => vec![s.into_owned()],
            Some(Scalar::Nested(Value::Array(items))) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(wrong("aud", aud_expected, &other)),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(wrong_scalar("aud", aud_expected, &other)),
        };
        let version = match c.v.take() {
            None | Some(Scalar::Null) => 1,
            Some(Scalar::Int(v)) if (1..=i64::from(u32::MAX)).contains(&v) => {
                u32::try_from(v).unwrap_or(1)
            }
            Some(other) => return Err(wrong_scalar("v", "a small positive integer", &other)),
        };
        // The two statuses Clerk sends are matched where they lie in the payload: no
        // string is allocated for them.
        let status = match c.sts.take() {
            Some(Scalar::Str(s)) if s == "active" => Some(SessionStatus::Active),
            Some(Scalar::Str(s)) if s == "pending" => Some(SessionStatus::Pending),
            other => string("sts", other)?.map(SessionStatus::Other),
        };
        let factor_age = match c.fva.take() {
            None => None,
            Some(FvaSlot::Pair(first, second)) => Some(FactorAge {
                first: minutes(first),
                second: minutes(second),
            }),
            Some(FvaSlot::Other(other)) => {
                nested(Some(other)).map(|v| parse_fva(&v)).transpose()?
            }
        };
        let features = CommaList(string("fea", c.fea.take())?.unwrap_or_default());
        let plan = string("pla", c.pla.take())?;
        let actor = nested(c.act.take()).map(parse_actor).transpose()?;
        let mut extra = std::mem::take(&mut c.extra);
        let v1_claims = [
            ("org_id", c.org_id.take()),
            ("org_slug", c.org_slug.take()),
            ("org_role", c.org_role.take()),
            ("org_permissions", c.org_permissions.take()),
        ];
        let organization = if version >= 2 {
            for (name, value) in v1_claims {
                if let Some(value) = value {
                    extra.insert(name.to_owned(), value.into_value());
                }
            }
            match c.o.take() {
                Some(slot) => parse_org_v2(slot)?,
                None => None,
            }
        } else {
            if let Some(o) = c.o.take() {
                extra.insert("o".to_owned(), o.into_value());
            }
            let [id, slug, role, permissions] = v1_claims.map(|(_, value)| value);
            parse_org_v1(id, slug, role, permissions)?
        };
        let (email, email_present) = match c.email.take() {
            None | Some(Scalar::Null) => (None, EmailClaim::Missing),
            Some(Scalar::Str(s)) if s.trim().is_empty() => (None, EmailClaim::Empty),
            Some(Scalar::Str(s)) if !is_email_address(&s) => (None, EmailClaim::NotAddress),
            Some(Scalar::Str(s)) => (Some(s.into_owned()), EmailClaim::Valid),
            Some(_) => (None, EmailClaim::NotString),
        };
        let email_verified = match c.email_verified.take() {
            None | Some(Scalar::Null) => None,
            Some(Scalar::Bool(b)) => Some(b),
            Some(Scalar::Str(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Scalar::Str(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(other) => {
                return Err(wrong_scalar(
                    "email_verified",
                    "a boolean or \"true\"/\"false\"",
                    &other,
                ));
            }
        };
        let has_sid = sid.is_some();
        Ok(Parsed {
            claims: SessionClaims {
                iss,
                sub,
                sid: sid.unwrap_or_default(),
                azp,
                exp,
                iat,
                nbf,
                jti,
                aud,
                version,
                status,
                factor_age,
                organization,
                features,
                plan,
                actor,
                email,
                email_verified,
                extra,
            },
            has_sid,
            email_present,
        })
    }
}

/// `fva` minutes: `-1` means the factor was never verified.
fn minutes(m: i64) -> Option<i64> {
    (m != -1).then_some(m)
}

fn parse_fva(value: &Value) -> Result<FactorAge, ClaimError> {
    let expected = "an array of two integers";
    let Value::Array(items) = value else {
        return Err(wrong("fva", expected, value));
    };
    let minutes = |item: Option<&Value>| -> Result<Option<i64>, ClaimError> {
        match item.and_then(Value::as_i64) {
            Some(m) => Ok(minutes(m)),
            None => Err(wrong("fva", expected, value)),
        }
    };
    if items.len() != 2 {
        return Err(wrong("fva", expected, value));
    }
    Ok(FactorAge {
        first: minutes(items.first())?,
        second: minutes(items.get(1))?,
    })
}

fn parse_actor(value: Value) -> Result<Actor, ClaimError> {
    let Value::Object(mut map) = value else {
        return Err(wrong("act", "an object", &value));
    };
    let sub = match map.remove("sub") {
        Some(Value::String(s)) => s,
        other => {
            return Err(format!(
                "claim act.sub must be a string, found {}",
                describe(other.as_ref())
            ));
        }
    };
    Ok(Actor {
        sub,
        sid: opt_string(&mut map, "sid")?,
        iss: opt_string(&mut map, "iss")?,
        kind: opt_string(&mut map, "type")?,
    })
}
