//! Verification keys: one RSA public key parsed once, sets of them by `kid`, and the
//! sources they come from (static JWKS, PEM, remote JWKS).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::remote::RemoteJwks;

/// The smallest RSA modulus accepted, in bits (Clerk uses 2048).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 8192;

/// Why a key could not be used. Maps to [`crate::Reason::JwkFailedToResolve`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text is not one public key block with a body.
    #[error("PEM public key does not decode: {0}")]
    Pem(String),
    /// The PEM body is not base64.
    #[error("PEM public key does not decode")]
    PemBase64(#[source] base64::DecodeError),
    /// The DER is not an RSA public key.
    #[error("not an RSA public key (expected an SPKI \"PUBLIC KEY\" or PKCS#1 \"RSA PUBLIC KEY\")")]
    NotRsa,
    /// The modulus (leading zero bytes not counted) is outside 2048..=8192 bits.
    #[error("RSA key of {0} bits is outside the accepted {MIN_RSA_BITS}..={MAX_RSA_BITS} bits")]
    Size(usize),
    /// The modulus or exponent is empty or all zero bytes, so it cannot be an RSA key.
    /// Names the key's `kid` (when it has one) and the field, never the value.
    #[error("rsa key {} has an empty or all-zero {field}", KidLabel(.kid.as_deref()))]
    EmptyComponent {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// The field: `n` (modulus) or `e` (exponent).
        field: &'static str,
    },
    /// An RSA signing JWK has no `kid`, so no token could name it.
    #[error("an RSA signing JWK has no kid")]
    JwkNoKid,
    /// A JWK lacks a field it needs.
    #[error("JWK {kid:?} has no {field}")]
    JwkMissing {
        /// The key's `kid`.
        kid: String,
        /// The missing field: `n` or `e`.
        field: &'static str,
    },
    /// A JWK field is not base64url.
    #[error("JWK {kid:?}: {field} is not base64url")]
    JwkBase64 {
        /// The key's `kid`.
        kid: String,
        /// The field: `n` or `e`.
        field: &'static str,
        /// What the decoder said.
        #[source]
        source: base64::DecodeError,
    },
    /// A JWK's modulus and exponent are not a usable RSA key.
    #[error("JWK {kid:?} is not a usable RSA key")]
    Jwk {
        /// The key's `kid`.
        kid: String,
        /// Why ([`KeyError::NotRsa`] or [`KeyError::Size`]).
        #[source]
        source: Box<KeyError>,
    },
    /// The JWKS document is not JSON of the form `{"keys": [...]}`.
    #[error("JWKS document is not JSON of the form {{\"keys\": [...]}}")]
    Jwks(#[source] Arc<serde_json::Error>),
    /// A key of the JWKS document is not a JSON object of the expected shape.
    #[error("JWKS document holds a malformed key")]
    JwksKey(#[source] Arc<serde_json::Error>),
    /// The JWKS holds no RSA signing key usable for RS256.
    #[error("JWKS holds no usable RS256 signing key")]
    NoUsableKeys,
}

/// Shows a `kid` in a [`KeyError`] message: quoted, or "without a kid".
struct KidLabel<'a>(Option<&'a str>);

impl fmt::Display for KidLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kid) => write!(f, "{kid:?}"),
            None => f.write_str("without a kid"),
        }
    }
}

/// One RSA public key, parsed once, that verifies RS256 signatures.
///
/// Cloning is an `Arc` increment: the key is shared, never copied.
#[derive(Clone)]
pub struct VerifyingKey(Arc<KeyInner>);

struct KeyInner {
    parsed: ParsedPublicKey,
    kid: Option<String>,
    bits: usize,
    /// The exponent then the modulus, both without leading zeros: what makes two keys
    /// the same key, whichever fetch parsed them.
    components: Box<[u8]>,
}

impl VerifyingKey {
    /// Builds a key from the big-endian modulus and exponent (leading zero bytes of the
    /// modulus, which some JWKS producers emit, are ignored). A modulus or exponent that is
    /// empty or all zero bytes is [`KeyError::EmptyComponent`].
    pub fn from_components(kid: Option<String>, n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        // Both are non-empty after stripping, so the first byte is not zero and the bit
        // count below cannot underflow.
        let (Some(&first), false) = (n.first(), e.is_empty()) else {
            let field = if n.is_empty() { "n" } else { "e" };
            return Err(KeyError::EmptyComponent { kid, field });
        };
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::Size(bits));
        }
        let parsed = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| KeyError::NotRsa)?;
        // The exponent's length first, so that no two (e, n) pairs share a byte string.
        let e_len = u32::try_from(e.len()).unwrap_or(u32::MAX).to_be_bytes();
        let components = [&e_len[..], e, n].concat().into_boxed_slice();
        Ok(VerifyingKey(Arc::new(KeyInner {
            parsed,
            kid,
            bits,
            components,
        })))
    }

    /// Parses a DER RSA public key: SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`).
    pub fn from_der(kid: Option<String>, der: &[u8]) -> Result<Self, KeyError> {
        let key = aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|_| KeyError::NotRsa)?;
        VerifyingKey::from_components(
            kid,
            key.modulus().big_endian_without_leading_zero(),
            key.exponent().big_endian_without_leading_zero(),
        )
    }

    /// Parses a PEM public key as Clerk's dashboard shows it (API keys, JWT public key).
    ///
    /// Accepts SPKI (`-----BEGIN PUBLIC KEY-----`) and PKCS#1
    /// (`-----BEGIN RSA PUBLIC KEY-----`), the bare base64 body without the armour lines,
    /// and text whose newlines were written as the two characters `\n` (as in many
    /// `.env` files).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.replace("\\n", "\n");
        let mut body = String::with_capacity(pem.len());
        let mut armoured = false;
        for line in pem.lines() {
            let line = line.trim();
            if line.starts_with("-----BEGIN ") {
                if !(line.contains("PUBLIC KEY")) {
                    return Err(KeyError::Pem(format!(
                        "expected a PUBLIC KEY block, found {line:?} (a private key or certificate is not accepted)"
                    )));
                }
                armoured = true;
                continue;
            }
            if line.starts_with("-----END ") {
                break;
            }
            body.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
        if body.is_empty() {
            return Err(KeyError::Pem(if armoured {
                "the PEM block is empty".into()
            } else {
                "no PEM block or base64 text found".into()
            }));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(KeyError::PemBase64)?;
        VerifyingKey::from_der(None, &der)
    }

    /// The `kid` this key was published under, if any.
    pub fn kid(&self) -> Option<&str> {
        self.0.kid.as_deref()
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.0.bits
    }

    /// Whether both are the same RSA key under the same `kid` (the same parse, or two
    /// parses of one published key).
    pub(crate) fn same_key(&self, other: &VerifyingKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.kid == other.0.kid && self.0.components == other.0.components)
    }

    /// Checks an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature over `message`.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.parsed.verify_sig(message, signature).is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.0.kid)
            .field("bits", &self.0.bits)
            .finish_non_exhaustive()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A set of keys by `kid`, as read from a JWKS document.
///
/// A JWKS holds a handful of keys, so they are kept in a list: a lookup compares a few
/// strings instead of hashing an attacker-chosen `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, VerifyingKey)>,
    skipped: usize,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    ///
    /// Keys that are not RSA signing keys for RS256 (other `kty`, `use` other than
    /// `sig`, `alg` other than `RS256`) are skipped; an RSA key without a `kid`, or with
    /// bad base64 or a bad size, is an error, since it would silently never verify. A
    /// document with no usable key is an error.
    pub fn from_jwks_json(json: &[u8]) -> Result<Self, KeyError> {
        let doc: JwksDocument =
            serde_json::from_slice(json).map_err(|e| KeyError::Jwks(Arc::new(e)))?;
        let mut set = KeySet::default();
        for value in doc.keys {
            let jwk: RsaJwk = match serde_json::from_value(value) {
                Ok(jwk) => jwk,
                Err(e) => return Err(KeyError::JwksKey(Arc::new(e))),
            };
            let usable = jwk.kty == "RSA"
                && jwk.use_.as_deref().is_none_or(|u| u == "sig")
                && jwk.alg.as_deref().is_none_or(|a| a == "RS256");
            if !usable {
                set.skipped += 1;
                continue;
            }
            let Some(kid) = jwk.kid else {
                return Err(KeyError::JwkNoKid);
            };
            let decode = |field: Option<String>, name: &'static str| {
                let text = field.ok_or_else(|| KeyError::JwkMissing {
                    kid: kid.clone(),
                    field: name,
                })?;
                URL_SAFE_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .map_err(|source| KeyError::JwkBase64 {
                        kid: kid.clone(),
                        field: name,
                        source,
                    })
            };
            let n = decode(jwk.n, "n")?;
            let e = decode(jwk.e, "e")?;
            let key =
                VerifyingKey::from_components(Some(kid.clone()), &n, &e).map_err(|source| {
                    match source {
                        // Already names the kid and the field.
                        KeyError::EmptyComponent { .. } => source,
                        source => KeyError::Jwk {
                            kid: kid.clone(),
                            source: Box::new(source),
                        },
                    }
                })?;
            set.insert(kid, key);
        }
        if set.keys.is_empty() {
            return Err(KeyError::NoUsableKeys);
        }
        Ok(set)
    }

    /// Builds a set from keys that each carry a `kid` (keys without one are left out).
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        let mut set = KeySet::default();
        for key in keys {
            if let Some(kid) = key.0.kid.clone() {
                set.insert(kid, key);
            }
        }
        set
    }

    /// Adds a key; a later key with the same `kid` replaces the earlier one.
    fn insert(&mut self, kid: String, key: VerifyingKey) {
        match self.keys.iter_mut().find(|(k, _)| *k == kid) {
            Some(slot) => slot.1 = key,
            None => self.keys.push((kid, key)),
        }
    }

    /// The key published under `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// Whether the set holds this very key under its `kid`.
    pub(crate) fn holds(&self, key: &VerifyingKey) -> bool {
        key.kid()
            .and_then(|kid| self.get(kid))
            .is_some_and(|held| held.same_key(key))
    }

    /// Whether some key of `previous` is not in this set (it was retired or replaced).
    pub(crate) fn retires_some_of(&self, previous: &KeySet) -> bool {
        previous.keys.iter().any(|(_, key)| !self.holds(key))
    }

    /// The `kid`s in the set, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        kids.sort_unstable();
        kids
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys of the document were skipped as not RS256 signing keys.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.kids())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Where a [`crate::Verifier`] gets its keys.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A fixed JWKS document; a token's `kid` must name one of its keys.
    Static(KeySet),
    /// One PEM public key (the dashboard's JWT public key): networkless; `kid` is not required.
    Pem(VerifyingKey),
    /// A JWKS fetched over HTTP and cached (Frontend API or Backend API).
    Remote(RemoteJwks),
}

impl From<KeySet> for KeySource {
    fn from(set: KeySet) -> Self {
        KeySource::Static(set)
    }
}

impl From<RemoteJwks> for KeySource {
    fn from(remote: RemoteJwks) -> Self {
        KeySource::Remote(remote)
    }
}

impl KeySource {
    /// Whether tokens must name their key with `kid` (every JWKS source).
    pub(crate) fn requires_kid(&self) -> bool {
        !matches!(self, KeySource::Pem(_))
    }

    /// A number that changes whenever a key leaves the source (a remote JWKS refresh
    /// that dropped or replaced a key); fixed sources never change.
    pub(crate) fn retirements(&self) -> u64 {
        match self {
            KeySource::Remote(remote) => remote.retirements(),
            KeySource::Static(_) | KeySource::Pem(_) => 0,
        }
    }

    /// Whether `key` verifies tokens here now: the PEM key, a key of the static set, or
    /// a key the remote JWKS's cached set still publishes under its `kid`.
    pub(crate) fn holds(&self, key: &VerifyingKey) -> bool {
        match self {
            KeySource::Remote(remote) => remote.holds(key),
            KeySource::Static(set) => set.holds(key),
            KeySource::Pem(pem) => pem.same_key(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_documents_without_usable_keys() {
        assert!(matches!(
            KeySet::from_jwks_json(b"{\"keys\": []}"),
            Err(KeyError::NoUsableKeys)
        ));
        assert!(matches!(
            KeySet::from_jwks_json(br#"{"keys": [{"kty": "EC", "crv": "P-256"}]}"#),
            Err(KeyError::NoUsableKeys)
        ));
        assert!(matches!(
            KeySet::from_jwks_json(b"<html>"),
            Err(KeyError::Jwks(_))
        ));
        assert!(matches!(
            KeySet::from_jwks_json(br#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#),
            Err(KeyError::JwkNoKid)
        ));
    }

    #[test]
    fn rejects_small_keys_and_bad_pem() {
        assert!(matches!(
            VerifyingKey::from_components(None, &[0xc5; 128], &[1, 0, 1]),
            Err(KeyError::Size(1024))
        ));
        assert!(matches!(
            VerifyingKey::from_pem("not a key"),
            Err(KeyError::PemBase64(_))
        ));
        assert!(matches!(
            VerifyingKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
            Err(KeyError::NotRsa)
        ));
    }
}
