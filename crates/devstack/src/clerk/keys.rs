//! The local Clerk's signing key: generated, given as PEM or kept in a file; the
//! instance id (`kid`) and the default secret key derived from it.

use clerk_jwt::SecretKey;
use clerk_jwt::testing::TestKey;
use serde_json::Value;

use super::SigningKeySource;
use crate::{Error, Result};

/// An RSA-2048 signing key with a `kid`, as a Clerk instance has: the local Clerk's own
/// ([`LocalClerk::signing_key`](super::LocalClerk::signing_key)), or another one
/// ([`SigningKey::generate`]) to forge tokens the real Clerk would never issue, with
/// [`TokenDraft::sign_with`](super::TokenDraft::sign_with). `Debug` shows only the
/// `kid`.
#[derive(Debug)]
pub struct SigningKey(TestKey);

impl SigningKey {
    /// A fresh key named `kid`.
    pub fn generate(kid: impl Into<String>) -> Self {
        SigningKey(TestKey::generate(kid))
    }

    /// The `kid` tokens signed by this key carry.
    pub fn kid(&self) -> &str {
        self.0.kid()
    }

    /// A JWKS document holding this key only.
    pub fn jwks(&self) -> Value {
        self.0.jwks()
    }

    /// The public key as PEM.
    pub fn public_pem(&self) -> String {
        self.0.public_pem()
    }

    /// The private key as PEM, e.g. for [`SigningKeySource::Pem`].
    pub fn private_pem(&self) -> String {
        self.0.private_pem()
    }

    pub(super) fn test_key(&self) -> &TestKey {
        &self.0
    }
}

pub(super) fn load_key(source: &SigningKeySource) -> Result<SigningKey> {
    let pem = match source {
        SigningKeySource::Generate => TestKey::generate("ins_pending").private_pem(),
        SigningKeySource::Pem(pem) => pem.clone(),
        SigningKeySource::File(path) => match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let pem = TestKey::generate("ins_pending").private_pem();
                write_private_file(path, &pem).map_err(|e| Error::KeyFile {
                    path: path.clone(),
                    detail: format!("cannot create it: {e}"),
                })?;
                tracing::info!(path = %path.display(), "created a new signing key file");
                pem
            }
            Err(error) => {
                return Err(Error::KeyFile {
                    path: path.clone(),
                    detail: error.to_string(),
                });
            }
        },
    };
    let bad_key = |e: clerk_jwt::KeyError| match source {
        SigningKeySource::File(path) => Error::KeyFile {
            path: path.clone(),
            detail: e.to_string(),
        },
        _ => Error::invalid("signing key", e.to_string()),
    };
    let probe = TestKey::from_pem("ins_pending", &pem).map_err(bad_key)?;
    let kid = instance_id_for(&probe.public_pem());
    TestKey::from_pem(kid, &pem)
        .map(SigningKey)
        .map_err(bad_key)
}

fn write_private_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// `ins_2…`: 26 base62 characters derived from the public key, so a persisted key keeps
/// its `kid`.
fn instance_id_for(public_pem: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_pem.as_bytes());
    let chars: String = digest
        .as_ref()
        .iter()
        .take(26)
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect();
    format!("ins_2{chars}")
}

pub(super) fn secret_key_for(key: &SigningKey) -> SecretKey {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("devstack secret key\n{}", key.private_pem()).as_bytes(),
    );
    let body: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    SecretKey::new(format!("sk_test_{body}")).expect("well-formed secret key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_and_secret_key_follow_the_key() {
        let key = load_key(&SigningKeySource::Generate).unwrap();
        assert!(
            key.kid().starts_with("ins_2") && key.kid().len() == 31,
            "{}",
            key.kid()
        );
        let again = load_key(&SigningKeySource::Pem(key.private_pem())).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(secret_key_for(&again), secret_key_for(&key));
        assert!(secret_key_for(&key).expose().starts_with("sk_test_"));
        let err = load_key(&SigningKeySource::Pem("nope".into())).unwrap_err();
        assert!(err.to_string().starts_with("invalid signing key"), "{err}");
    }
}
