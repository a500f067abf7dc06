//! Splitting and decoding a compact JWS without trusting it: three base64url parts,
//! a header and a payload that are JSON objects with no duplicate keys at any depth.

use std::fmt;
use std::sync::LazyLock;

use base64::Engine;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::Reason;
use crate::claims::RawClaims;
use crate::json::{Key, Scalar, StrictValue, fill, fill_extra};

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
pub(crate) struct CheckedHeader<'a> {
    pub(crate) kid: Option<&'a str>,
    pub(crate) cat: Option<&'a str>,
    /// `typ` is `at+jwt`: an OAuth access token, not a session token.
    pub(crate) access_token: bool,
}

/// A token split and base64-decoded, not yet parsed or verified.
pub(crate) struct Decoded<'a> {
    /// `<header>.<payload>` as sent: the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    /// Header, payload and signature, decoded one after the other into one buffer (one
    /// allocation: a 2 KB buffer on the stack was tried, and zeroing and moving it cost
    /// ten times what the allocation does).
    bytes: Vec<u8>,
    header_end: usize,
    payload_end: usize,
}

impl fmt::Debug for Decoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token as a whole is a credential: show nothing of it.
        f.debug_struct("Decoded").finish_non_exhaustive()
    }
}

/// A token split into its three base64url parts, not yet decoded.
#[derive(Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// The header part, as sent.
    pub(crate) header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a [u8],
}

impl<'a> Parts<'a> {
    /// The first rule group, part one: size and three parts.
    ///
    /// The header ends at the first dot and the signature starts after the last, so
    /// the long payload is not scanned here: a dot inside it (more than three parts)
    /// cannot pass base64url decoding, and every error path asks [`Parts::check`]
    /// first, so such a token is refused for its parts, as before anything else.
    pub(crate) fn split(token: &'a str) -> Result<Self, DecodeError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(DecodeError::invalid(format!(
                "token is {} bytes, more than the {MAX_TOKEN_BYTES} accepted",
                token.len()
            )));
        }
        let (Some(first), Some(last)) = (token.find('.'), token.rfind('.')) else {
            return Err(not_three_parts());
        };
        if first == last {
            return Err(not_three_parts());
        }
        let parts = Parts {
            header: &token[..first],
            payload: &token[first + 1..last],
            signature: &token[last + 1..],
            signing_input: &token.as_bytes()[..last],
        };
        if parts.header.is_empty() || parts.payload.is_empty() {
            return Err(parts.check("token has an empty header or payload"));
        }
        if parts.signature.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
            return Err(parts.check("signature is too long"));
        }
        Ok(parts)
    }

    /// The error to report instead of `detail`: more than three parts comes first.
    #[cold]
    fn check(&self, detail: impl Into<String>) -> DecodeError {
        if self.payload.contains('.') {
            not_three_parts()
        } else {
            DecodeError::invalid(detail)
        }
    }

    /// Part two: base64url. The header is skipped when `with_header` is false (its
    /// exact bytes were seen, decoded and checked before).
    pub(crate) fn decode(self, with_header: bool) -> Result<Decoded<'a>, DecodeError> {
        self.decode_parts(with_header)
            .map_err(|e| self.check(e.detail))
    }

    fn decode_parts(self, with_header: bool) -> Result<Decoded<'a>, DecodeError> {
        // One allocation for all three parts (base64 shrinks by a quarter).
        let mut bytes = Vec::with_capacity((self.signing_input.len() / 4 + 1) * 3 + 400);
        if with_header {
            decode_part(self.header, "header", &mut bytes)?;
        } else {
            // Still the same alphabet check as decoding would make.
            debug_assert!(!self.header.is_empty());
        }
        let header_end = bytes.len();
        // A payload that decodes holds no dot: the token has exactly three parts.
        decode_part(self.payload, "payload", &mut bytes)?;
        let payload_end = bytes.len();
        decode_part(self.signature, "signature", &mut bytes)?;
        Ok(Decoded {
            signing_input: self.signing_input,
            bytes,
            header_end,
            payload_end,
        })
    }
}

impl<'a> Decoded<'a> {
    /// The first rule group, part one: size, three parts, base64url.
    pub(crate) fn split(token: &'a str) -> Result<Self, DecodeError> {
        Parts::split(token)?.decode(true)
    }

    fn header_json(&self) -> &[u8] {
        &self.bytes[..self.header_end]
    }

    fn payload_json(&self) -> &[u8] {
        &self.bytes[self.header_end..self.payload_end]
    }

    /// The first rule group, part two: the header and the payload are JSON objects with
    /// no duplicate key. Claims are sorted into typed slots but not judged.
    pub(crate) fn parse(&self) -> Result<(RawHeader<'_>, RawClaims<'_>), DecodeError> {
        let header = self.parse_header()?;
        let mut claims = RawClaims::default();
        self.parse_claims_into(&mut claims)?;
        Ok((header, claims))
    }

    /// The header as a JSON object (UTF-8 is validated once per part: cheaper than once
    /// per string).
    pub(crate) fn parse_header(&self) -> Result<RawHeader<'_>, DecodeError> {
        let header = utf8(self.header_json(), "header")?;
        serde_json::from_str::<RawHeader<'_>>(header).map_err(|e| json_error("header", &e))
    }

    /// The payload as a JSON object, sorted into `claims` in place (the slots are large:
    /// filling them where they live saves copying them around).
    pub(crate) fn parse_claims_into<'s>(
        &'s self,
        claims: &mut RawClaims<'s>,
    ) -> Result<(), DecodeError> {
        let payload = utf8(self.payload_json(), "payload")?;
        if crate::claims::scan(payload, claims).is_some() {
            return Ok(());
        }
        // The scanner gave up: serde_json decides, and words the error.
        *claims = RawClaims::default();
        parse_claims_serde(payload, claims)
    }

    /// The header and payload as JSON objects, for display.
    pub(crate) fn parse_objects(&self) -> Result<(JsonObject, JsonObject), DecodeError> {
        Ok((
            parse_object(self.header_json(), "header")?,
            parse_object(self.payload_json(), "payload")?,
        ))
    }

    /// The decoded signature bytes.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.bytes[self.payload_end..]
    }
}

/// The payload sorted into `claims` by `serde_json`: the reference the scanner
/// ([`crate::claims::scan`]) agrees with, and its fallback.
#[cold]
pub(crate) fn parse_claims_serde<'s>(
    payload: &'s str,
    claims: &mut RawClaims<'s>,
) -> Result<(), DecodeError> {
    let mut de = serde_json::Deserializer::from_str(payload);
    serde::de::DeserializeSeed::deserialize(&mut *claims, &mut de)
        .and_then(|()| de.end())
        .map_err(|e| json_error("payload", &e))
}

#[cold]
fn not_three_parts() -> DecodeError {
    DecodeError::invalid("token must have three dot-separated parts (header.payload.signature)")
}

fn utf8<'b>(bytes: &'b [u8], name: &str) -> Result<&'b str, DecodeError> {
    std::str::from_utf8(bytes)
        .map_err(|_| DecodeError::invalid(format!("{name} is not valid JSON: not UTF-8")))
}

fn json_error(name: &str, error: &serde_json::Error) -> DecodeError {
    if error.is_data() && error.to_string().starts_with("invalid type") {
        DecodeError::invalid(format!("{name} is not a JSON object"))
    } else {
        DecodeError::invalid(format!("{name} is not valid JSON: {error}"))
    }
}

/// The header parameters the rules look at, untyped until judged.
#[derive(Debug, Default)]
pub(crate) struct RawHeader<'a> {
    alg: Option<Scalar<'a>>,
    typ: Option<Scalar<'a>>,
    kid: Option<Scalar<'a>>,
    cat: Option<Scalar<'a>>,
    crit: Option<Scalar<'a>>,
    /// Other parameters (`oiat`, `jku`, …): kept only to refuse duplicates.
    others: JsonObject,
}

impl<'de> Deserialize<'de> for RawHeader<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = RawHeader<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<RawHeader<'de>, A::Error> {
                let mut h = RawHeader::default();
                while let Some(Key(key)) = access.next_key()? {
                    match key.as_ref() {
                        "alg" => fill(&mut h.alg, &key, &mut access)?,
                        "typ" => fill(&mut h.typ, &key, &mut access)?,
                        "kid" => fill(&mut h.kid, &key, &mut access)?,
                        "cat" => fill(&mut h.cat, &key, &mut access)?,
                        "crit" => fill(&mut h.crit, &key, &mut access)?,
                        _ => fill_extra(&mut h.others, key, &mut access)?,
                    }
                }
                Ok(h)
            }
        }
        deserializer.deserialize_map(HeaderVisitor)
    }
}

impl RawHeader<'_> {
    /// Runs the header rules: `alg`, `typ`, `crit`, `kid`.
    pub(crate) fn check(&self, kid_required: bool) -> Result<CheckedHeader<'_>, DecodeError> {
        match &self.alg {
            Some(Scalar::Str(alg)) if alg == "RS256" => {}
            other => {
                return Err(DecodeError {
                    reason: Reason::TokenInvalidAlgorithm,
                    detail: format!(
                        "alg {} is not accepted; Clerk session tokens use RS256",
                        describe_scalar(other.as_ref())
                    ),
                });
            }
        }
        let access_token = match &self.typ {
            None => false,
            Some(Scalar::Str(typ)) if typ == "JWT" => false,
            Some(Scalar::Str(typ))
                if typ.eq_ignore_ascii_case("at+jwt")
                    || typ.eq_ignore_ascii_case("application/at+jwt") =>
            {
                true
            }
            other => {
                return Err(DecodeError::invalid(format!(
                    "typ {} is not JWT",
                    describe_scalar(other.as_ref())
                )));
            }
        };
        if self.crit.is_some() {
            return Err(DecodeError::invalid(
                "the header has a crit parameter, which no Clerk token uses",
            ));
        }
        let kid = match &self.kid {
            Some(Scalar::Str(kid)) if !kid.is_empty() => Some(kid.as_ref()),
            None if !kid_required => None,
            None => {
                return Err(DecodeError::invalid(
                    "the header has no kid, so no key of the JWKS can be chosen",
                ));
            }
            Some(other) => {
                return Err(DecodeError::invalid(format!(
                    "kid {} is not a non-empty string",
                    other.describe()
                )));
            }
        };
        let cat = match &self.cat {
            None | Some(Scalar::Null) => None,
            Some(Scalar::Str(cat)) => Some(cat.as_ref()),
            Some(other) => {
                return Err(DecodeError::invalid(format!(
                    "cat {} is not a string",
                    other.describe()
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

fn describe_scalar(value: Option<&Scalar<'_>>) -> String {
    value.map_or_else(|| "(missing)".to_owned(), Scalar::describe)
}

/// The base64url engine without padding: SIMD where the CPU has it (same strictness as
/// the scalar engine: no padding, canonical trailing bits).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn base64url() -> &'static impl Engine {
    static ENGINE: LazyLock<base64::engine::Simd> =
        LazyLock::new(|| base64::engine::Simd::url_safe(base64::engine::general_purpose::NO_PAD));
    &*ENGINE
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn base64url() -> &'static impl Engine {
    &base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn decode_part(part: &str, name: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    base64url()
        .decode_vec(part.as_bytes(), out)
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
    Decoded::split(token)?.parse_objects()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// Both JSON paths must agree on what is malformed.
    fn parse(token: &str) -> Result<(), DecodeError> {
        let decoded = Decoded::split(token)?;
        let typed = decoded.parse().map(|_| ());
        let objects = decoded.parse_objects().map(|_| ());
        assert_eq!(typed.is_ok(), objects.is_ok(), "{typed:?} vs {objects:?}");
        typed
    }

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
            let err = parse(&token(r#"{"alg":"RS256"}"#, payload)).unwrap_err();
            assert_eq!(err.reason, Reason::TokenInvalid, "{payload}");
            assert!(err.detail.contains("duplicate key"), "{}", err.detail);
        }
        let err = parse(&token(r#"{"alg":"RS256","alg":"none"}"#, "{}")).unwrap_err();
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
            let err = parse(&case).expect_err(&case);
            assert_eq!(err.reason, Reason::TokenInvalid, "{case}: {}", err.detail);
        }
        // Exactly at the limit is still parsed (and then fails on content, not size).
        let pad = "A".repeat(MAX_TOKEN_BYTES - ok_header.len() - ok_payload.len() - 2);
        let at_limit = format!("{ok_header}.{ok_payload}.{pad}");
        assert_eq!(at_limit.len(), MAX_TOKEN_BYTES);
        let err = parse(&at_limit).unwrap_err();
        assert!(!err.detail.contains("bytes, more than"), "{}", err.detail);
    }

    #[test]
    fn more_than_three_parts_is_named_before_any_other_fault() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64("{}");
        let long_sig = "A".repeat(MAX_SIGNATURE_BYTES * 2);
        for case in [
            format!("{h}.{p}.{p}.sig"),
            format!("{h}.{p}.sig.sig"),
            format!("{h}..{p}.sig"),
            format!("{h}.{p}..sig"),
            format!("{h}.{p}.."),
            format!("x.{p}.{p}.sig"),
            format!("{h}.{p}.{p}.{long_sig}"),
            format!("{h}.{p}.x+y.sig"),
            "...".into(),
            "a.b.c.d.e".into(),
        ] {
            for with_header in [true, false] {
                let err = Parts::split(&case)
                    .and_then(|parts| parts.decode(with_header))
                    .map(|_| ())
                    .expect_err(&case);
                assert_eq!(err.reason, Reason::TokenInvalid, "{case}");
                assert_eq!(
                    err.detail,
                    "token must have three dot-separated parts (header.payload.signature)",
                    "{case}"
                );
            }
        }
        // Three parts with faults of their own keep their own texts.
        for (case, detail) in [
            (format!(".{p}.sig"), "token has an empty header or payload"),
            (format!("{h}..sig"), "token has an empty header or payload"),
            (format!("{h}.{p}.{long_sig}"), "signature is too long"),
        ] {
            let err = Parts::split(&case).map(|_| ()).unwrap_err();
            assert_eq!(err.detail, detail, "{case}");
        }
        let err = Decoded::split(&format!("{h}.{p}.s+g"))
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.detail.starts_with("signature is not base64url"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn empty_signature_is_parsed_so_alg_none_is_named() {
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        let decoded = Decoded::split(&none).unwrap();
        assert!(decoded.signature().is_empty());
        let err = decoded.parse().unwrap().0.check(true).unwrap_err();
        assert_eq!(err.reason, Reason::TokenInvalidAlgorithm);
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let t = token(r#"{"alg":"RS256"}"#, r#"{"a":1}"#);
        let decoded = Decoded::split(&t).unwrap();
        let expected = &t[..t.rfind('.').unwrap()];
        assert_eq!(decoded.signing_input, expected.as_bytes());
        assert_eq!(decoded.signature(), b"sig");
    }
}
