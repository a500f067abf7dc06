//! The typed claims of a Clerk session token, versions 1 and 2.

mod fva;
mod org;
mod raw;
mod scan;

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

pub(crate) use raw::{EmailClaim, Parsed, RawClaims};
pub(crate) use scan::{assert_agrees, scan};

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

/// A plausible email address: one `@`, a non-empty local part and domain, no
/// whitespace or control characters, at most 254 bytes. Deliverability is Clerk's
/// business; this rejects the values a broken template produces.
///
/// One pass over the bytes (every real address is ASCII); text with other characters
/// is also checked character by character for Unicode whitespace and controls.
pub(crate) fn is_email_address(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() > 254 {
        return false;
    }
    let mut at = None;
    let mut ascii = true;
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'@' if at.is_some() => return false,
            b'@' => at = Some(i),
            // A template placeholder left in (`{{user.email}}`).
            b'{' if prev == b'{' => return false,
            // In ASCII, every whitespace character but the space is a control character.
            b' ' | 0..=0x1f | 0x7f => return false,
            0x80.. => ascii = false,
            _ => {}
        }
        prev = b;
    }
    let Some(at) = at else {
        return false;
    };
    let (local, domain) = (&text[..at], &text[at + 1..]);
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && (ascii || !text.chars().any(|c| c.is_whitespace() || c.is_control()))
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeSeed;
    use serde_json::json;

    use super::raw::ClaimError;
    use super::*;

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

    fn claim_error(value: Value) -> String {
        match parse(value) {
            Ok(_) => panic!("accepted"),
            Err(detail) => detail,
        }
    }

    #[test]
    fn fva_pairs_and_every_other_shape() {
        let fva = |value: Value| parse(json!({"sub": "u", "exp": 1, "fva": value}));
        let age = |first, second| Some(FactorAge { first, second });
        assert_eq!(
            fva(json!([5, -1])).unwrap().claims.factor_age,
            age(Some(5), None)
        );
        assert_eq!(
            fva(json!([-1, 7])).unwrap().claims.factor_age,
            age(None, Some(7))
        );
        assert_eq!(fva(json!(null)).unwrap().claims.factor_age, None);
        let expected = "claim fva must be an array of two integers, found";
        for (value, found) in [
            (json!([1, 2, 3]), "(an array)"),
            (json!([1]), "(an array)"),
            (json!([]), "(an array)"),
            (json!([1, "2"]), "(an array)"),
            (json!([1.5, 2]), "(an array)"),
            (json!([u64::MAX, 2]), "(an array)"),
            (json!({"a": 1}), "(an object)"),
            (json!("1,2"), "\"1,2\""),
            (json!(3), "3"),
            (json!(true), "true"),
        ] {
            assert_eq!(
                claim_error(json!({"sub": "u", "exp": 1, "fva": value.clone()})),
                format!("{expected} {found}"),
                "{value}"
            );
        }
        // Arrays in fva are as strict as any other JSON: duplicate keys are refused.
        let bytes = br#"{"sub":"u","exp":1,"fva":[{"k":1,"k":2},2]}"#;
        let mut raw = RawClaims::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let err = DeserializeSeed::deserialize(&mut raw, &mut de).unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        let bytes = br#"{"sub":"u","exp":1,"fva":[1,2],"fva":[1,2]}"#;
        let mut raw = RawClaims::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let err = DeserializeSeed::deserialize(&mut raw, &mut de).unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
    }

    #[test]
    fn session_status_role_and_fpm_read_in_place() {
        let claims = |extra: Value| {
            let mut base = json!({"sub": "u", "exp": 1, "v": 2});
            base.as_object_mut()
                .unwrap()
                .extend(extra.as_object().cloned().unwrap());
            parse(base)
        };
        for (sts, want) in [
            ("active", SessionStatus::Active),
            ("pending", SessionStatus::Pending),
            ("revoked", SessionStatus::Other("revoked".into())),
        ] {
            let parsed = claims(json!({"sts": sts})).unwrap();
            assert_eq!(parsed.claims.status, Some(want));
        }
        assert_eq!(claims(json!({"sts": null})).unwrap().claims.status, None);
        assert_eq!(
            claims(json!({"sts": 1})).err().unwrap(),
            "claim sts must be a string, found 1"
        );
        let org = |o: Value| claims(json!({"o": o}));
        let parsed = org(json!({"id": "org_1", "rol": "org:admin", "fpm": " 1 ,2"})).unwrap();
        let organization = parsed.claims.organization.unwrap();
        assert_eq!(organization.role.as_deref(), Some("org:admin"));
        assert_eq!(organization.feature_permission_map, [1, 2]);
        let parsed = org(json!({"id": "org_1", "rol": null, "fpm": null})).unwrap();
        let organization = parsed.claims.organization.unwrap();
        assert_eq!(organization.role, None);
        assert!(organization.feature_permission_map.is_empty());
        assert_eq!(
            org(json!({"id": "org_1", "rol": 1})).err().unwrap(),
            "claim o.rol must be a string, found 1"
        );
        assert_eq!(
            org(json!({"id": "org_1", "fpm": [1]})).err().unwrap(),
            "claim o.fpm must be a string, found (an array)"
        );
        assert_eq!(
            org(json!({"id": "org_1", "fpm": "1,x"})).err().unwrap(),
            "claim o.fpm must be comma-separated integers, found \"1,x\""
        );
    }

    #[test]
    fn email_addresses() {
        for ok in [
            "a@b.co",
            "alice+x@example.com",
            "u@localhost",
            "\u{e9}t\u{e9}@b.co",
        ] {
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
            "a\tb@c.d",
            "a@c.d\u{b}",
            "a@c.d\u{7f}",
            "\u{e9}t\u{e9}\u{a0}@c.d",
            "\u{e9}@c.d\u{85}",
        ] {
            assert!(!is_email_address(bad), "{bad}");
        }
    }
}
