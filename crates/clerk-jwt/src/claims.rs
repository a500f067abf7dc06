//! The typed claims of a Clerk session token, versions 1 and 2.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::token::describe;

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
    #[serde(rename = "fea", skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
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
    /// v2: the permission names of `o.per`, split. v1: `org_permissions` as sent.
    pub permissions: Vec<String>,
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
            return org.permissions.clone();
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

/// The claims, parsed after the signature verified. `sid` is `None` when absent.
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

fn opt_string(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>, ClaimError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(name, "a string", &other)),
    }
}

/// A NumericDate: an integer, or a finite number with a fraction (floored).
fn numeric_date(name: &str, value: &Value) -> Result<i64, ClaimError> {
    let Value::Number(n) = value else {
        return Err(wrong(name, "a number", value));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(f.floor() as i64)
        }
        _ => Err(wrong(name, "a number of seconds within range", value)),
    }
}

fn opt_date(map: &mut Map<String, Value>, name: &str) -> Result<Option<i64>, ClaimError> {
    match map.remove(name) {
        None => Ok(None),
        Some(value) => numeric_date(name, &value).map(Some),
    }
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Parsed {
    /// Types the claims, removing known ones from the map; what remains is `extra`.
    pub(crate) fn from_payload(mut map: Map<String, Value>) -> Result<Parsed, ClaimError> {
        let sub = match map.remove("sub") {
            Some(Value::String(s)) => s,
            Some(other) => return Err(wrong("sub", "a string", &other)),
            None => return Err("claim sub is missing".into()),
        };
        let exp = match map.remove("exp") {
            Some(value) => numeric_date("exp", &value)?,
            None => return Err("claim exp is missing".into()),
        };
        let nbf = opt_date(&mut map, "nbf")?;
        let iat = opt_date(&mut map, "iat")?;
        let iss = opt_string(&mut map, "iss")?.unwrap_or_default();
        let sid = opt_string(&mut map, "sid")?;
        let azp = opt_string(&mut map, "azp")?;
        let jti = opt_string(&mut map, "jti")?;
        let aud = match map.remove("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(wrong("aud", "a string or an array of strings", &other)),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(wrong("aud", "a string or an array of strings", &other)),
        };
        let version = match map.remove("v") {
            None | Some(Value::Null) => 1,
            Some(value) => value
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| wrong("v", "a small positive integer", &value))?,
        };
        let status = opt_string(&mut map, "sts")?.map(|s| match s.as_str() {
            "active" => SessionStatus::Active,
            "pending" => SessionStatus::Pending,
            _ => SessionStatus::Other(s),
        });
        let factor_age = match map.remove("fva") {
            None | Some(Value::Null) => None,
            Some(value) => Some(parse_fva(&value)?),
        };
        let features = opt_string(&mut map, "fea")?
            .map(|f| comma_list(&f))
            .unwrap_or_default();
        let plan = opt_string(&mut map, "pla")?;
        let actor = match map.remove("act") {
            None | Some(Value::Null) => None,
            Some(value) => Some(parse_actor(value)?),
        };
        let organization = if version >= 2 {
            match map.remove("o") {
                None | Some(Value::Null) => None,
                Some(value) => Some(parse_org_v2(value)?),
            }
        } else {
            parse_org_v1(&mut map)?
        };
        let (email, email_present) = match map.remove("email") {
            None | Some(Value::Null) => (None, EmailClaim::Missing),
            Some(Value::String(s)) if s.trim().is_empty() => (None, EmailClaim::Empty),
            Some(Value::String(s)) if !is_email_address(&s) => (None, EmailClaim::NotAddress),
            Some(Value::String(s)) => (Some(s), EmailClaim::Valid),
            Some(_) => (None, EmailClaim::NotString),
        };
        let email_verified = match map.remove("email_verified") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(other) => {
                return Err(wrong(
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
                extra: map,
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

fn parse_org_v2(value: Value) -> Result<Organization, ClaimError> {
    let Value::Object(mut map) = value else {
        return Err(wrong("o", "an object", &value));
    };
    let id = match opt_string(&mut map, "id")? {
        Some(id) => id,
        None => return Err("claim o.id is missing".into()),
    };
    let permissions = opt_string(&mut map, "per")?
        .map(|p| p.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default();
    let feature_permission_map = match opt_string(&mut map, "fpm")? {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|n| {
                n.trim().parse::<u64>().map_err(|_| {
                    format!("claim o.fpm must be comma-separated integers, found {text:?}")
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Organization {
        id,
        slug: opt_string(&mut map, "slg")?,
        role: opt_string(&mut map, "rol")?.map(|r| {
            if r.starts_with("org:") {
                r
            } else {
                format!("org:{r}")
            }
        }),
        permissions,
        feature_permission_map,
    })
}

fn parse_org_v1(map: &mut Map<String, Value>) -> Result<Option<Organization>, ClaimError> {
    let id = opt_string(map, "org_id")?;
    let slug = opt_string(map, "org_slug")?;
    let role = opt_string(map, "org_role")?;
    let permissions = match map.remove("org_permissions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(wrong("org_permissions", "an array of strings", &other)),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong("org_permissions", "an array of strings", &other)),
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
        let Value::Object(map) = value else { panic!() };
        Parsed::from_payload(map)
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
        assert_eq!(org.permissions, ["read", "manage"]);
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
