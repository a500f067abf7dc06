//! The typed claims of a Clerk session token, versions 1 and 2.

use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::json::{Key, Scalar, StrictValue, describe, describe_str, duplicate, fill, fill_extra};

/// The claims of a verified Clerk session token.
///
/// Known claims are typed; every other claim (custom claims from the dashboard
/// included) is kept in [`SessionClaims::extra`]. Serializes with the token's own claim
/// names where a field maps to one claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionClaims {
    /// `iss`: the Frontend API URL.
    pub iss: String,
    /// `sub`: the user id (`user_…`).
    pub sub: String,
    /// `sid`: the session id (`sess_…`).
    pub sid: String,
    /// `azp`: the origin of the page that minted the token, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// `exp`, Unix seconds.
    pub exp: i64,
    /// `iat`, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// `nbf`, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `aud`, as a list (a single string becomes one item).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// `v`: the claims version; 1 when absent.
    #[serde(rename = "v")]
    pub version: u32,
    /// `sts`: the session status (v2).
    #[serde(rename = "sts", skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    /// `fva`: minutes since the first and second factor were verified (v2).
    #[serde(rename = "fva", skip_serializing_if = "Option::is_none")]
    pub factor_age: Option<FactorAge>,
    /// The active organization: `o` (v2) or `org_*` (v1).
    #[serde(rename = "org", skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
    /// `fea`: features, each with its `u:` / `o:` scope prefix kept.
    #[serde(rename = "fea", skip_serializing_if = "CommaList::is_empty")]
    pub features: CommaList,
    /// `pla`: the plan, `u:<slug>` or `o:<slug>`.
    #[serde(rename = "pla", skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// `act`: who is impersonating the user, when someone is.
    #[serde(rename = "act", skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The custom `email` claim, when it is a non-empty string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The custom `email_verified` claim (a boolean or the string `"true"`/`"false"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Every other claim, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A comma-separated list as Clerk sends it (`fea`, `o.per`), kept as one string.
///
/// Items are trimmed; positions are kept (an empty item stays one), because `o.fpm`
/// bitmasks index into `o.per` by position.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CommaList(String);

impl CommaList {
    /// The list as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The items, trimmed.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let text = if self.0.trim().is_empty() {
            None
        } else {
            Some(self.0.as_str())
        };
        text.into_iter().flat_map(|t| t.split(',').map(str::trim))
    }

    /// Whether the list has no item.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// How many items the list has.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether `item` is one of the items.
    pub fn contains(&self, item: &str) -> bool {
        self.iter().any(|i| i == item)
    }
}

impl fmt::Debug for CommaList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for CommaList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// `sts`: a session's status. Unknown values are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// `active`.
    Active,
    /// `pending`: the user has a task left (Clerk's SDK treats this as signed out).
    Pending,
    /// Any other value.
    Other(String),
}

impl SessionStatus {
    /// The status as it appears in the token.
    pub fn as_str(&self) -> &str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Pending => "pending",
            SessionStatus::Other(s) => s,
        }
    }
}

impl Serialize for SessionStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `fva`: minutes since each factor was verified; `None` where Clerk sends `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FactorAge {
    /// Minutes since the first factor, if any.
    pub first: Option<i64>,
    /// Minutes since the second factor, if any.
    pub second: Option<i64>,
}

/// The active organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Organization {
    /// `o.id` / `org_id`.
    pub id: String,
    /// `o.slg` / `org_slug`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The role key with its `org:` prefix (v2 sends `o.rol` without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// v2: the permission names of `o.per`. v1: `org_permissions` as sent.
    pub permissions: CommaList,
    /// v2: `o.fpm`, one bitmask over [`Organization::permissions`] per organization
    /// feature of `fea`, in order. Empty for v1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feature_permission_map: Vec<u64>,
}

/// `act`: the impersonator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Actor {
    /// `act.sub`: who is acting.
    pub sub: String,
    /// `act.sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `act.iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `act.type`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl SessionClaims {
    /// Features of one scope (`"u"` for the user, `"o"` for the organization), without
    /// the prefix.
    pub fn features_of(&self, scope: &str) -> Vec<&str> {
        self.features
            .iter()
            .filter_map(|f| f.split_once(':'))
            .filter(|(s, _)| *s == scope)
            .map(|(_, name)| name)
            .collect()
    }

    /// The full organization permissions (`org:<feature>:<permission>`), as Clerk's SDK
    /// derives them: from `o.per`, `o.fpm` and the organization features of `fea` for v2,
    /// from `org_permissions` for v1.
    pub fn org_permissions(&self) -> Vec<String> {
        let Some(org) = &self.organization else {
            return Vec::new();
        };
        if self.version < 2 {
            return org.permissions.iter().map(str::to_owned).collect();
        }
        let mut out = Vec::new();
        for (feature, bits) in self
            .features_of("o")
            .into_iter()
            .zip(&org.feature_permission_map)
        {
            for (index, permission) in org.permissions.iter().enumerate().take(64) {
                if bits & (1u64 << index) != 0 {
                    out.push(format!("org:{feature}:{permission}"));
                }
            }
        }
        out
    }
}

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

fn wrong(name: &str, expected: &str, value: &Value) -> ClaimError {
    format!(
        "claim {name} must be {expected}, found {}",
        describe(Some(value))
    )
}

fn wrong_scalar(name: &str, expected: &str, value: &Scalar<'_>) -> ClaimError {
    format!(
        "claim {name} must be {expected}, found {}",
        value.describe()
    )
}

/// A string field of a nested object (`o`, `act`).
fn opt_string(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>, ClaimError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(name, "a string", &other)),
    }
}

/// A top-level string claim; null counts as absent.
fn string(name: &str, value: Option<Scalar<'_>>) -> Result<Option<String>, ClaimError> {
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
    iss: Option<Scalar<'a>>,
    sub: Option<Scalar<'a>>,
    sid: Option<Scalar<'a>>,
    azp: Option<Scalar<'a>>,
    jti: Option<Scalar<'a>>,
    exp: Option<Scalar<'a>>,
    nbf: Option<Scalar<'a>>,
    iat: Option<Scalar<'a>>,
    aud: Option<Scalar<'a>>,
    v: Option<Scalar<'a>>,
    sts: Option<Scalar<'a>>,
    fva: Option<Scalar<'a>>,
    fea: Option<Scalar<'a>>,
    pla: Option<Scalar<'a>>,
    act: Option<Scalar<'a>>,
    o: Option<OrgSlot<'a>>,
    email: Option<Scalar<'a>>,
    email_verified: Option<Scalar<'a>>,
    org_id: Option<Scalar<'a>>,
    org_slug: Option<Scalar<'a>>,
    org_role: Option<Scalar<'a>>,
    org_permissions: Option<Scalar<'a>>,
    extra: Map<String, Value>,
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
                        "fva" => &mut c.fva,
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
        let status = string("sts", c.sts.take())?.map(|s| match s.as_str() {
            "active" => SessionStatus::Active,
            "pending" => SessionStatus::Pending,
            _ => SessionStatus::Other(s),
        });
        let factor_age = nested(c.fva.take()).map(|v| parse_fva(&v)).transpose()?;
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

fn parse_fva(value: &Value) -> Result<FactorAge, ClaimError> {
    let expected = "an array of two integers";
    let Value::Array(items) = value else {
        return Err(wrong("fva", expected, value));
    };
    let minutes = |item: Option<&Value>| -> Result<Option<i64>, ClaimError> {
        match item.and_then(Value::as_i64) {
            Some(-1) => Ok(None),
            Some(m) => Ok(Some(m)),
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
    id: Option<Scalar<'a>>,
    slg: Option<Scalar<'a>>,
    rol: Option<Scalar<'a>>,
    per: Option<Scalar<'a>>,
    fpm: Option<Scalar<'a>>,
    others: Map<String, Value>,
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
    fn into_value(self) -> Value {
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

fn parse_org_v2(slot: OrgSlot<'_>) -> Result<Option<Organization>, ClaimError> {
    let o = match slot {
        OrgSlot::Object(o) => o,
        OrgSlot::Other(Scalar::Null) => return Ok(None),
        OrgSlot::Other(other) => return Err(wrong_scalar("o", "an object", &other)),
    };
    let Some(id) = string("o.id", o.id)? else {
        return Err("claim o.id is missing".into());
    };
    let permissions = CommaList(string("o.per", o.per)?.unwrap_or_default());
    let feature_permission_map = match string("o.fpm", o.fpm)? {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|n| {
                n.trim().parse::<u64>().map_err(|_| {
                    format!(
                        "claim o.fpm must be comma-separated integers, found {}",
                        describe_str(&text)
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(Organization {
        id,
        slug: string("o.slg", o.slg)?,
        role: string("o.rol", o.rol)?.map(|r| {
            if r.starts_with("org:") {
                r
            } else {
                let mut key = String::with_capacity(4 + r.len());
                key.push_str("org:");
                key.push_str(&r);
                key
            }
        }),
        permissions,
        feature_permission_map,
    }))
}

fn parse_org_v1(
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

/// A plausible email address: one `@`, a non-empty local part and domain, no
/// whitespace or control characters, at most 254 bytes. Deliverability is Clerk's
/// business; this rejects the values a broken template produces.
pub(crate) fn is_email_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && !text.contains("{{")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Parsed, ClaimError> {
        let bytes = serde_json::to_vec(&value).unwrap();
        let mut raw = RawClaims::default();
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        DeserializeSeed::deserialize(&mut raw, &mut de).unwrap();
        raw.take_parsed()
    }

    #[test]
    fn v2_organization_permissions_follow_fpm_bits() {
        let parsed = parse(json!({
            "sub": "user_1", "exp": 10, "sid": "sess_1", "v": 2,
            "fea": "u:chat,o:dashboard,o:billing",
            "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,2"}
        }))
        .unwrap();
        let claims = parsed.claims;
        let org = claims.organization.as_ref().unwrap();
        assert_eq!(org.role.as_deref(), Some("org:admin"));
        assert_eq!(
            org.permissions.iter().collect::<Vec<_>>(),
            ["read", "manage"]
        );
        assert_eq!(claims.features_of("u"), ["chat"]);
        assert_eq!(
            claims.org_permissions(),
            [
                "org:dashboard:read",
                "org:dashboard:manage",
                "org:billing:manage"
            ]
        );
    }

    #[test]
    fn v2_org_without_per_or_fpm_does_not_fail() {
        let parsed = parse(json!({"sub": "u", "exp": 1, "v": 2, "o": {"id": "org_1"}})).unwrap();
        let org = parsed.claims.organization.clone().unwrap();
        assert!(org.permissions.is_empty());
        assert!(parsed.claims.org_permissions().is_empty());
    }

    #[test]
    fn v1_org_claims_are_read_and_removed_from_extra() {
        let parsed = parse(json!({
            "sub": "u", "exp": 1, "org_id": "org_1", "org_role": "org:member",
            "org_slug": "s", "org_permissions": ["org:x:read"], "custom": 1
        }))
        .unwrap();
        let claims = parsed.claims;
        assert_eq!(claims.version, 1);
        assert_eq!(claims.org_permissions(), ["org:x:read"]);
        assert_eq!(
            claims.extra,
            json!({"custom": 1}).as_object().cloned().unwrap()
        );
    }

    #[test]
    fn numeric_dates_are_i64_and_fractions_are_floored() {
        let far = 4_102_444_800_i64 * 100; // beyond i32 and beyond 2038
        let parsed = parse(json!({"sub": "u", "exp": far, "iat": 12.9})).unwrap();
        assert_eq!(parsed.claims.exp, far);
        assert_eq!(parsed.claims.iat, Some(12));
        assert!(parse(json!({"sub": "u", "exp": "10"})).is_err());
        assert!(parse(json!({"sub": "u", "exp": 1e300})).is_err());
        assert!(parse(json!({"sub": "u", "exp": u64::MAX})).is_err());
    }

    #[test]
    fn email_verified_accepts_bool_and_strings() {
        for (value, want) in [
            (json!(true), Some(true)),
            (json!("true"), Some(true)),
            (json!(false), Some(false)),
            (json!("false"), Some(false)),
            (json!(null), None),
        ] {
            let parsed =
                parse(json!({"sub": "u", "exp": 1, "email_verified": value.clone()})).unwrap();
            assert_eq!(parsed.claims.email_verified, want, "{value}");
        }
        assert!(parse(json!({"sub": "u", "exp": 1, "email_verified": 1})).is_err());
    }

    #[test]
    fn email_addresses() {
        for ok in ["a@b.co", "alice+x@example.com", "u@localhost"] {
            assert!(is_email_address(ok), "{ok}");
        }
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@c.d",
            "a@.com",
            "{{user.primary_email_address}}",
        ] {
            assert!(!is_email_address(bad), "{bad}");
        }
    }
}
