//! Splitting and decoding a compact JWS without trusting it: three base64url parts,
//! a header and a payload that are JSON objects with no duplicate keys at any depth.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::Reason;

/// A JSON object.
pub(crate) type JsonObject = Map<String, Value>;

/// The longest token accepted, in bytes. Clerk's cookie limit is about 4 KB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The longest signature accepted, in bytes (RSA-8192).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// The `cat` header of a Clerk session token.
pub const CAT_SESSION: &str = "cl_B7d4PD111AAA";
/// The `cat` header of a Clerk JWT-template token.
pub const CAT_JWT_TEMPLATE: &str = "cl_B7d4PD222AAA";
/// The `cat` header of a Clerk machine token.
pub const CAT_MACHINE: &str = "cl_B7d4PD333AAA";

/// A rejection found while decoding, before any key is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub(crate) reason: Reason,
    pub(crate) detail: String,
}

impl DecodeError {
    fn invalid(detail: impl Into<String>) -> Self {
        DecodeError {
            reason: Reason::TokenInvalid,
            detail: detail.into(),
        }
    }
}

/// What the header says, after the header rules passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedHeader {
    pub(crate) kid: Option<String>,
    pub(crate) cat: Option<String>,
    /// `typ` is `at+jwt`: an OAuth access token, not a session token.
    pub(crate) access_token: bool,
}

/// A token split and decoded, not yet verified.
pub(crate) struct Decoded<'a> {
    /// `<header>.<payload>` as sent: the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    pub(crate) header: Map<String, Value>,
    pub(crate) payload: Map<String, Value>,
    signature: [u8; MAX_SIGNATURE_BYTES],
    signature_len: usize,
}

impl fmt::Debug for Decoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The header and payload are not secret; the token as a whole is, so the
        // signature and the raw parts stay out.
        f.debug_struct("Decoded")
            .field("header", &self.header)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl<'a> Decoded<'a> {
    /// Runs the first rule group: size, three base64url parts, JSON objects.
    pub(crate) fn parse(token: &'a str) -> Result<Self, DecodeError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(DecodeError::invalid(format!(
                "token is {} bytes, more than the {MAX_TOKEN_BYTES} accepted",
                token.len()
            )));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DecodeError::invalid(
                "token must have three dot-separated parts (header.payload.signature)",
            ));
        };
        if header.is_empty() || payload.is_empty() {
            return Err(DecodeError::invalid("token has an empty header or payload"));
        }
        let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
        let header_json = decode_part(header, "header")?;
        let payload_json = decode_part(payload, "payload")?;
        let mut sig = [0u8; MAX_SIGNATURE_BYTES];
        if signature.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
            return Err(DecodeError::invalid("signature is too long"));
        }
        let signature_len = URL_SAFE_NO_PAD
            .decode_slice(signature.as_bytes(), &mut sig)
            .map_err(|e| DecodeError::invalid(format!("signature is not base64url: {e}")))?;
        let header = parse_object(&header_json, "header")?;
        let payload = parse_object(&payload_json, "payload")?;
        Ok(Decoded {
            signing_input,
            header,
            payload,
            signature: sig,
            signature_len,
        })
    }

    /// The decoded signature bytes.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature[..self.signature_len]
    }

    /// Runs the header rules: `alg`, `typ`, `crit`, `kid`.
    pub(crate) fn check_header(&self, kid_required: bool) -> Result<CheckedHeader, DecodeError> {
        let header = &self.header;
        match header.get("alg") {
            Some(Value::String(alg)) if alg == "RS256" => {}
            other => {
                return Err(DecodeError {
                    reason: Reason::TokenInvalidAlgorithm,
                    detail: format!(
                        "alg {} is not accepted; Clerk session tokens use RS256",
                        describe(other)
                    ),
                });
            }
        }
        let access_token = match header.get("typ") {
            None => false,
            Some(Value::String(typ)) if typ == "JWT" => false,
            Some(Value::String(typ))
                if typ.eq_ignore_ascii_case("at+jwt")
                    || typ.eq_ignore_ascii_case("application/at+jwt") =>
            {
                true
            }
            other => {
                return Err(DecodeError::invalid(format!(
                    "typ {} is not JWT",
                    describe(other)
                )));
            }
        };
        if header.contains_key("crit") {
            return Err(DecodeError::invalid(
                "the header has a crit parameter, which no Clerk token uses",
            ));
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
            None if !kid_required => None,
            None => {
                return Err(DecodeError::invalid(
                    "the header has no kid, so no key of the JWKS can be chosen",
                ));
            }
            Some(other) => {
                return Err(DecodeError::invalid(format!(
                    "kid {} is not a non-empty string",
                    describe(Some(other))
                )));
            }
        };
        let cat = match header.get("cat") {
            None | Some(Value::Null) => None,
            Some(Value::String(cat)) => Some(cat.clone()),
            Some(other) => {
                return Err(DecodeError::invalid(format!(
                    "cat {} is not a string",
                    describe(Some(other))
                )));
            }
        };
        Ok(CheckedHeader {
            kid,
            cat,
            access_token,
        })
    }
}

/// A short, safe description of a JSON value for error messages.
pub(crate) fn describe(value: Option<&Value>) -> String {
    match value {
        None => "(missing)".into(),
        Some(Value::String(s)) if s.len() <= 40 => format!("{s:?}"),
        Some(Value::String(_)) => "(a long string)".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(_)) => "(an array)".into(),
        Some(Value::Object(_)) => "(an object)".into(),
    }
}

fn decode_part(part: &str, name: &str) -> Result<Vec<u8>, DecodeError> {
    URL_SAFE_NO_PAD
        .decode(part.as_bytes())
        .map_err(|e| DecodeError::invalid(format!("{name} is not base64url: {e}")))
}

fn parse_object(json: &[u8], name: &str) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_slice::<StrictValue>(json) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        Ok(_) => Err(DecodeError::invalid(format!("{name} is not a JSON object"))),
        Err(e) => Err(DecodeError::invalid(format!(
            "{name} is not valid JSON: {e}"
        ))),
    }
}

/// Splits and decodes a token for display, without verifying anything.
pub(crate) fn decode_unverified(token: &str) -> Result<(JsonObject, JsonObject), DecodeError> {
    Decoded::parse(token).map(|d| (d.header, d.payload))
}

/// A JSON value whose objects, at every depth, hold no duplicate key.
struct StrictValue(Value);

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
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {}",
                    describe(Some(&Value::String(key)))
                )));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        for payload in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"o":{"id":"x","id":"y"}}"#,
            r#"{"a":[{"k":1,"k":2}]}"#,
        ] {
            let err = Decoded::parse(&token(r#"{"alg":"RS256"}"#, payload)).unwrap_err();
            assert_eq!(err.reason, Reason::TokenInvalid, "{payload}");
            assert!(err.detail.contains("duplicate key"), "{}", err.detail);
        }
        let err = Decoded::parse(&token(r#"{"alg":"RS256","alg":"none"}"#, "{}")).unwrap_err();
        assert!(err.detail.contains("duplicate key"));
    }

    #[test]
    fn structure_rules() {
        let ok_header = b64(r#"{"alg":"RS256"}"#);
        let ok_payload = b64("{}");
        let cases = [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!(".{ok_payload}.sig"),
            format!("{ok_header}..sig"),
            format!("{ok_header}.{ok_payload}.s+g"),
            format!("{ok_header}.{ok_payload}=.sig"),
            format!("{}.{ok_payload}.sig", b64("[1]")),
            format!("{}.{ok_payload}.sig", b64("\"s\"")),
            format!("{ok_header}.{}.sig", b64("null")),
            format!("{ok_header}.{}.sig", b64("{} trailing")),
            format!("{ok_header}.{}.sig", b64("{\"a\":")),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for case in cases {
            let err = Decoded::parse(&case).expect_err(&case);
            assert_eq!(err.reason, Reason::TokenInvalid, "{case}: {}", err.detail);
        }
        // Exactly at the limit is still parsed (and then fails on content, not size).
        let pad = "A".repeat(MAX_TOKEN_BYTES - ok_header.len() - ok_payload.len() - 2);
        let at_limit = format!("{ok_header}.{ok_payload}.{pad}");
        assert_eq!(at_limit.len(), MAX_TOKEN_BYTES);
        let err = Decoded::parse(&at_limit).unwrap_err();
        assert!(!err.detail.contains("bytes, more than"), "{}", err.detail);
    }

    #[test]
    fn empty_signature_is_parsed_so_alg_none_is_named() {
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        let decoded = Decoded::parse(&none).unwrap();
        assert!(decoded.signature().is_empty());
        let err = decoded.check_header(true).unwrap_err();
        assert_eq!(err.reason, Reason::TokenInvalidAlgorithm);
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let t = token(r#"{"alg":"RS256"}"#, r#"{"a":1}"#);
        let decoded = Decoded::parse(&t).unwrap();
        let expected = &t[..t.rfind('.').unwrap()];
        assert_eq!(decoded.signing_input, expected.as_bytes());
        assert_eq!(decoded.signature(), b"sig");
    }
}
