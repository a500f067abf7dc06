//! Sealing: what the store writes of a session is encrypted (AES-256-GCM) and bound to
//! the Redis key it is written under.
//!
//! A sealed blob is `[1] ‖ key id (4 bytes) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16
//! bytes)`. The key id is the first four bytes of the key's SHA-256, so a blob names the
//! key that opens it without revealing it; the nonce is random for every write; the
//! additional authenticated data is the full Redis key, so a blob copied under another
//! key does not open. A plaintext blob (the explicit opt-out) is `[0] ‖ JSON`.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// The length of an encryption key, in bytes (AES-256).
pub const KEY_LEN: usize = 32;

const SEALED_V1: u8 = 1;
const PLAINTEXT_V0: u8 = 0;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why a list of encryption keys was refused. Names the key by its position (from 1),
/// never by its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key was given.
    #[error(
        "no encryption key given: give one or more base64 keys of 32 bytes (e.g. from `openssl rand -base64 32`)"
    )]
    Empty,
    /// A key is not base64 (standard or URL-safe, padded or not).
    #[error("encryption key {position} is not base64")]
    NotBase64 {
        /// Its position in the list, from 1.
        position: usize,
    },
    /// A key does not decode to 32 bytes.
    #[error("encryption key {position} is {len} bytes long, not 32")]
    Length {
        /// Its position in the list, from 1.
        position: usize,
        /// How many bytes it decodes to.
        len: usize,
    },
    /// A key appears twice.
    #[error("encryption key {position} repeats key {first}")]
    Duplicate {
        /// Its position in the list, from 1.
        position: usize,
        /// The position of its first appearance.
        first: usize,
    },
}

/// One AES-256-GCM key and its id.
struct Key {
    id: [u8; KEY_ID_LEN],
    key: RandomizedNonceKey,
}

/// The keys that seal and open what the store writes: the first seals, every one opens
/// (so a key is rotated by putting the new one first and keeping the old one until the
/// entries it sealed have expired). `Debug` shows the key ids, never a key. Cheap to
/// clone.
#[derive(Clone)]
pub struct EncryptionKeys {
    keys: Arc<[Key]>,
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| hex(&k.id)).collect();
        f.debug_struct("EncryptionKeys").field("ids", &ids).finish()
    }
}

impl EncryptionKeys {
    /// Parses base64 keys of 32 bytes each (standard or URL-safe alphabet, padded or
    /// not), separated by commas or whitespace; the first seals.
    ///
    /// ```
    /// use redis_store::EncryptionKeys;
    ///
    /// let keys = EncryptionKeys::parse(
    ///     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=, 8J+UkfCflJHwn5SR8J+UkfCflJHwn5SR8J+UkfCflJE=",
    /// )?;
    /// assert_eq!(keys.len(), 2);
    /// let err = EncryptionKeys::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= c2hvcnQ=")
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "encryption key 2 is 5 bytes long, not 32");
    /// # Ok::<(), redis_store::KeyError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut raw = Vec::new();
        let parts = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty());
        for (index, part) in parts.enumerate() {
            let position = index + 1;
            let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(part).ok())
                .ok_or(KeyError::NotBase64 { position })?;
            let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| KeyError::Length {
                position,
                len: bytes.len(),
            })?;
            raw.push(key);
        }
        Self::from_bytes(raw)
    }

    /// Keys from their bytes; the first seals.
    pub fn from_bytes(keys: impl IntoIterator<Item = [u8; KEY_LEN]>) -> Result<Self, KeyError> {
        let mut parsed: Vec<Key> = Vec::new();
        let mut seen: Vec<[u8; 32]> = Vec::new();
        for (index, bytes) in keys.into_iter().enumerate() {
            if let Some(first) = seen.iter().position(|s| *s == bytes) {
                return Err(KeyError::Duplicate {
                    position: index + 1,
                    first: first + 1,
                });
            }
            let fingerprint = digest(&SHA256, &bytes);
            let mut id = [0; KEY_ID_LEN];
            id.copy_from_slice(&fingerprint.as_ref()[..KEY_ID_LEN]);
            let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes)
                .expect("AES-256-GCM takes any 32-byte key");
            seen.push(bytes);
            parsed.push(Key { id, key });
        }
        if parsed.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(EncryptionKeys {
            keys: parsed.into(),
        })
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key list holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The ids of the keys (the first four bytes of each key's SHA-256, in hex), the
    /// sealing key first: safe to log, to tell which key is in use.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex(&k.id)).collect()
    }
}

/// How the store protects what it writes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Sealing {
    /// Encrypt with these keys; refuse anything not sealed by one of them.
    Keys(EncryptionKeys),
    /// Write JSON in the clear: whoever reads Redis gets working InstantDB refresh
    /// tokens. An explicit opt-out, for development; the server warns about it.
    Plaintext,
}

impl Sealing {
    /// Whether values are encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Sealing::Keys(_))
    }

    /// Seals `plaintext` for the Redis key `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        match self {
            Sealing::Plaintext => {
                let mut out = Vec::with_capacity(1 + plaintext.len());
                out.push(PLAINTEXT_V0);
                out.extend_from_slice(plaintext);
                out
            }
            Sealing::Keys(keys) => {
                let key = &keys.keys[0];
                let mut body = plaintext.to_vec();
                let nonce = key
                    .key
                    .seal_in_place_append_tag(Aad::from(aad), &mut body)
                    .expect("AES-256-GCM seals any value this store writes");
                let mut out = Vec::with_capacity(HEADER_LEN + body.len());
                out.push(SEALED_V1);
                out.extend_from_slice(&key.id);
                out.extend_from_slice(nonce.as_ref());
                out.extend_from_slice(&body);
                out
            }
        }
    }

    /// Whether a blob is well formed but sealed with a key these keys do not include
    /// (or sealed while there are none): another configuration's value, not damage.
    pub(crate) fn is_sealed_elsewhere(&self, blob: &[u8]) -> bool {
        match (self, blob.first()) {
            (Sealing::Plaintext, Some(&SEALED_V1)) => true,
            (Sealing::Keys(keys), Some(&SEALED_V1)) => {
                blob.len() >= HEADER_LEN + AES_256_GCM.tag_len()
                    && !keys.keys.iter().any(|k| k.id[..] == blob[1..=KEY_ID_LEN])
            }
            _ => false,
        }
    }

    /// The ids of the keys (none for plaintext): what a sealed blob names in its
    /// bytes 1..=4.
    pub(crate) fn key_ids(&self) -> Vec<[u8; KEY_ID_LEN]> {
        match self {
            Sealing::Plaintext => Vec::new(),
            Sealing::Keys(keys) => keys.keys.iter().map(|k| k.id).collect(),
        }
    }

    /// The id (hex) of the key a blob [sealed elsewhere](Self::is_sealed_elsewhere)
    /// was sealed with.
    pub(crate) fn foreign_key_id(&self, blob: &[u8]) -> Option<String> {
        self.is_sealed_elsewhere(blob)
            .then(|| hex(&blob[1..=KEY_ID_LEN]))
    }

    /// Opens a blob written under the Redis key `aad`.
    pub(crate) fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&version, rest) = blob.split_first().ok_or(OpenError::Malformed)?;
        match (self, version) {
            (Sealing::Plaintext, PLAINTEXT_V0) => Ok(rest.to_vec()),
            (Sealing::Plaintext, SEALED_V1) => Err(OpenError::SealedButNoKey),
            (Sealing::Keys(_), PLAINTEXT_V0) => Err(OpenError::Plaintext),
            (Sealing::Keys(keys), SEALED_V1) => {
                if blob.len() < HEADER_LEN + AES_256_GCM.tag_len() {
                    return Err(OpenError::Malformed);
                }
                let id = &blob[1..=KEY_ID_LEN];
                let nonce = &blob[1 + KEY_ID_LEN..HEADER_LEN];
                let mut found = false;
                for key in keys.keys.iter().filter(|k| k.id == id) {
                    found = true;
                    let nonce = Nonce::try_assume_unique_for_key(nonce)
                        .map_err(|_| OpenError::Malformed)?;
                    let mut body = blob[HEADER_LEN..].to_vec();
                    if let Ok(plain) = key.key.open_in_place(nonce, Aad::from(aad), &mut body) {
                        let len = plain.len();
                        body.truncate(len);
                        return Ok(body);
                    }
                }
                Err(if found {
                    OpenError::Tampered
                } else {
                    OpenError::UnknownKey
                })
            }
            _ => Err(OpenError::UnknownVersion),
        }
    }
}

/// Why a stored blob did not open. Logged (as its text), never shown with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("the value is too short or malformed")]
    Malformed,
    #[error("the value has an unknown format version")]
    UnknownVersion,
    #[error("the value is in the clear but the store has encryption keys")]
    Plaintext,
    #[error("the value is sealed but the store has no encryption key")]
    SealedButNoKey,
    #[error("the value was sealed with a key the store does not have")]
    UnknownKey,
    #[error("the value does not authenticate (tampered, or moved from another key)")]
    Tampered,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seeds: &[u8]) -> EncryptionKeys {
        EncryptionKeys::from_bytes(seeds.iter().map(|s| [*s; KEY_LEN])).unwrap()
    }

    const AAD: &[u8] = b"clerk-instant:s:sess_1";
    const SECRET: &[u8] = b"{\"refresh_token\":\"4d1f7c2a-0000-4000-8000-000000000001\"}";

    #[test]
    fn a_sealed_value_round_trips_and_hides_the_plaintext() {
        let sealing = Sealing::Keys(keys(&[1]));
        let blob = sealing.seal(AAD, SECRET);
        assert_eq!(blob[0], SEALED_V1);
        assert_eq!(blob.len(), HEADER_LEN + SECRET.len() + 16);
        assert!(!blob.windows(8).any(|w| SECRET.windows(8).any(|s| s == w)));
        assert_eq!(sealing.open(AAD, &blob).unwrap(), SECRET);
        // A random nonce per write: the same value seals differently each time.
        assert_ne!(sealing.seal(AAD, SECRET), blob);
    }

    #[test]
    fn a_tampered_value_is_refused_not_decrypted_into_garbage() {
        let sealing = Sealing::Keys(keys(&[1]));
        let blob = sealing.seal(AAD, SECRET);
        for index in [HEADER_LEN, HEADER_LEN + 5, blob.len() - 1, 6] {
            let mut tampered = blob.clone();
            tampered[index] ^= 0x01;
            assert_eq!(
                sealing.open(AAD, &tampered),
                Err(OpenError::Tampered),
                "byte {index}"
            );
        }
        let mut bad_id = blob.clone();
        bad_id[1] ^= 0x01;
        assert_eq!(sealing.open(AAD, &bad_id), Err(OpenError::UnknownKey));
        assert_eq!(
            sealing.open(AAD, &blob[..HEADER_LEN + 3]),
            Err(OpenError::Malformed)
        );
        assert_eq!(sealing.open(AAD, &[]), Err(OpenError::Malformed));
        assert_eq!(
            sealing.open(AAD, &[7, 1, 2]),
            Err(OpenError::UnknownVersion)
        );
    }

    #[test]
    fn a_value_moved_to_another_key_is_refused() {
        let sealing = Sealing::Keys(keys(&[1]));
        let blob = sealing.seal(AAD, SECRET);
        assert_eq!(
            sealing.open(b"clerk-instant:s:sess_2", &blob),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn the_wrong_key_is_refused() {
        let blob = Sealing::Keys(keys(&[1])).seal(AAD, SECRET);
        assert_eq!(
            Sealing::Keys(keys(&[2])).open(AAD, &blob),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn another_configurations_value_is_told_apart_from_damage() {
        let blob = Sealing::Keys(keys(&[1])).seal(AAD, SECRET);
        // Sealed with a key the reader lacks, or while it has none: another's.
        assert!(Sealing::Keys(keys(&[2])).is_sealed_elsewhere(&blob));
        assert!(Sealing::Plaintext.is_sealed_elsewhere(&blob));
        // Its own, damaged, truncated, plaintext or of another version: not.
        let own = Sealing::Keys(keys(&[2, 1]));
        assert!(!own.is_sealed_elsewhere(&blob));
        let mut tampered = blob.clone();
        tampered[HEADER_LEN] ^= 0x01;
        assert!(!own.is_sealed_elsewhere(&tampered));
        assert!(!Sealing::Keys(keys(&[2])).is_sealed_elsewhere(&blob[..HEADER_LEN]));
        let plain = Sealing::Plaintext.seal(AAD, SECRET);
        assert!(!own.is_sealed_elsewhere(&plain));
        assert!(!own.is_sealed_elsewhere(&[7, 1, 2]));
        assert!(!own.is_sealed_elsewhere(&[]));
    }

    #[test]
    fn rotation_the_new_key_seals_and_the_old_one_still_opens() {
        let old = Sealing::Keys(keys(&[1]));
        let rotated = Sealing::Keys(keys(&[2, 1]));
        let before = old.seal(AAD, SECRET);
        assert_eq!(rotated.open(AAD, &before).unwrap(), SECRET);
        let after = rotated.seal(AAD, SECRET);
        assert_eq!(after[1..=KEY_ID_LEN], keys(&[2]).keys[0].id);
        assert_eq!(
            old.open(AAD, &after),
            Err(OpenError::UnknownKey),
            "the old list cannot open what the new key sealed"
        );
    }

    #[test]
    fn a_keyed_store_refuses_plaintext_and_a_plaintext_store_refuses_sealed_values() {
        let keyed = Sealing::Keys(keys(&[1]));
        let plain = Sealing::Plaintext;
        let planted = plain.seal(AAD, SECRET);
        assert_eq!(planted[0], PLAINTEXT_V0);
        assert_eq!(plain.open(AAD, &planted).unwrap(), SECRET);
        assert_eq!(keyed.open(AAD, &planted), Err(OpenError::Plaintext));
        assert_eq!(
            plain.open(AAD, &keyed.seal(AAD, SECRET)),
            Err(OpenError::SealedButNoKey)
        );
    }

    #[test]
    fn keys_parse_with_errors_that_name_positions_never_values() {
        let a = STANDARD.encode([1u8; 32]);
        let b = URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        let keys = EncryptionKeys::parse(&format!(" {a},\n{b} ")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys.ids()[0],
            hex(&digest(&SHA256, &[1u8; 32]).as_ref()[..4])
        );

        let short = STANDARD.encode([9u8; 16]);
        let cases = [
            ("", KeyError::Empty),
            (" , ", KeyError::Empty),
            (
                &format!("{a} not*base64!"),
                KeyError::NotBase64 { position: 2 },
            ),
            (
                &format!("{a},{short}"),
                KeyError::Length {
                    position: 2,
                    len: 16,
                },
            ),
            (
                &format!("{a},{b},{a}"),
                KeyError::Duplicate {
                    position: 3,
                    first: 1,
                },
            ),
        ];
        for (text, expected) in cases {
            let err = EncryptionKeys::parse(text).unwrap_err();
            assert_eq!(err, expected, "{text:?}");
            let message = err.to_string();
            for part in text.split([',', ' ']).filter(|p| p.len() > 4) {
                assert!(!message.contains(part), "{message}");
            }
        }
        assert_eq!(
            KeyError::Length {
                position: 2,
                len: 16
            }
            .to_string(),
            "encryption key 2 is 16 bytes long, not 32"
        );
    }

    #[test]
    fn debug_shows_key_ids_never_key_material() {
        let bytes = [0x42u8; 32];
        let keys = EncryptionKeys::from_bytes([bytes]).unwrap();
        let text = format!("{:?}", Sealing::Keys(keys));
        let b64 = STANDARD.encode(bytes);
        assert!(!text.contains(&b64) && !text.contains("42424242"), "{text}");
        assert!(text.contains("ids"), "{text}");
    }
}
