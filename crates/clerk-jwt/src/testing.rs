//! Test helpers (feature `testing`): RSA keys, Clerk-shaped session tokens with any
//! claim or header changed, and the matching JWKS.
//!
//! ```
//! use clerk_jwt::testing::{TestKey, TokenBuilder};
//! use clerk_jwt::{KeySet, Verifier};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let key = TestKey::generate("ins_test");
//! let issuer = "https://clerk.example.com";
//! let verifier = Verifier::builder()
//!     .issuer(issuer)
//!     .keys(KeySet::from_jwks_json(key.jwks().to_string().as_bytes()).unwrap())
//!     .build()
//!     .unwrap();
//! let now = verifier.now();
//! let token = TokenBuilder::session(&key, issuer, now).claim("email", "bob@example.com").sign();
//! let claims = verifier.verify(&token).await.unwrap();
//! assert_eq!(claims.email.as_deref(), Some("bob@example.com"));
//! # });
//! ```

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::keys::{KeyError, VerifyingKey};
use crate::token::CAT_SESSION;

/// An RSA-2048 signing key with a `kid`, as a Clerk instance has.
pub struct TestKey {
    kid: String,
    pair: KeyPair,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Armours DER as PEM with 64-column lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            label = Some(rest.trim_end_matches('-').to_owned());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or_else(|| KeyError::Pem("no BEGIN line".into()))?;
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(KeyError::PemBase64)?;
    Ok((label, der))
}

impl TestKey {
    /// Generates a fresh RSA-2048 key (about 0.1 s).
    pub fn generate(kid: impl Into<String>) -> Self {
        TestKey {
            kid: kid.into(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        }
    }

    /// Loads a private key from PEM (`PRIVATE KEY` PKCS#8 or `RSA PRIVATE KEY`).
    pub fn from_pem(kid: impl Into<String>, pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_decode(pem)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            other => return Err(KeyError::Pem(format!("unexpected PEM block {other:?}"))),
        }
        .map_err(|_| KeyError::NotRsa)?;
        Ok(TestKey {
            kid: kid.into(),
            pair,
        })
    }

    /// The private key as PKCS#8 PEM, to persist it.
    pub fn private_pem(&self) -> String {
        let der = self.pair.as_der().expect("PKCS#8 encoding");
        pem_encode("PRIVATE KEY", der.as_ref())
    }

    /// The public key as SPKI PEM, the form of `CLERK_JWT_KEY`.
    pub fn public_pem(&self) -> String {
        let der = self.pair.public_key().as_der().expect("SPKI encoding");
        pem_encode("PUBLIC KEY", der.as_ref())
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, in Clerk's shape.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A JWKS document holding this key only.
    pub fn jwks(&self) -> Value {
        jwks(&[self])
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        let public = self.pair.public_key();
        VerifyingKey::from_components(
            Some(self.kid.clone()),
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        )
        .expect("generated key is valid")
    }

    /// Signs `message` with RS256 (deterministic: PKCS#1 v1.5).
    pub fn sign_rs256(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing");
        signature
    }

    /// Encodes and signs a token from a header and payload given as JSON.
    pub fn sign_json(&self, header: &Value, payload: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        self.sign_raw(&input)
    }

    /// Signs `<header>.<payload>` given as text, already base64url-encoded or not: it
    /// is used as is, so malformed tokens with a valid signature can be made.
    pub fn sign_raw(&self, signing_input: &str) -> String {
        let signature = self.sign_rs256(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A JWKS document holding these keys.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Builds a token: a Clerk v2 session token by default, any part changeable.
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenBuilder<'k> {
    key: &'k TestKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

/// The user id of [`TokenBuilder::session`] tokens.
pub const TEST_USER_ID: &str = "user_2test000000000000000000000";
/// The session id of [`TokenBuilder::session`] tokens.
pub const TEST_SESSION_ID: &str = "sess_2test000000000000000000000";
/// The email of [`TokenBuilder::session`] tokens.
pub const TEST_EMAIL: &str = "alice@example.com";

impl<'k> TokenBuilder<'k> {
    /// A token with only `alg`, `kid` and `typ` in the header and no claims.
    pub fn empty(key: &'k TestKey) -> Self {
        let header = json!({"alg": "RS256", "kid": key.kid(), "typ": "JWT"});
        TokenBuilder {
            key,
            header: header.as_object().cloned().unwrap_or_default(),
            claims: Map::new(),
        }
    }

    /// A Clerk v2 session token issued at `now` by `issuer`, living 60 s, with the
    /// `email` and `email_verified` custom claims this integration needs.
    pub fn session(key: &'k TestKey, issuer: &str, now: i64) -> Self {
        let claims = json!({
            "iss": issuer,
            "sub": TEST_USER_ID,
            "sid": TEST_SESSION_ID,
            "exp": now + 60,
            "iat": now,
            "nbf": now - 10,
            "jti": format!("{:020x}", now),
            "v": 2,
            "fva": [0, -1],
            "sts": "active",
            "email": TEST_EMAIL,
            "email_verified": true,
        });
        TokenBuilder::empty(key)
            .header("cat", CAT_SESSION)
            .claims(claims)
    }

    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Sets every claim of a JSON object.
    pub fn claims(mut self, claims: Value) -> Self {
        if let Value::Object(map) = claims {
            self.claims.extend(map);
        }
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header parameter.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// The claims as they stand.
    pub fn claims_json(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// Encodes and signs with the builder's key.
    pub fn sign(&self) -> String {
        self.sign_with(self.key)
    }

    /// Encodes with this header and claims, signed by another key (the header keeps the
    /// builder key's `kid` unless it was changed).
    pub fn sign_with(&self, key: &TestKey) -> String {
        key.sign_json(
            &Value::Object(self.header.clone()),
            &Value::Object(self.claims.clone()),
        )
    }
}
