//! Where the session store lives: in this process (the default) or in Redis, shared
//! by every replica and by the CLI.

use std::fmt;
use std::sync::Arc;

use auth_core::{MemorySessionStore, SessionStore, StoreLimits};
use redis_store::{EncryptionKeys, RedisStore, RedisStoreConfig, RedisUrl, Sealing};

use crate::Problem;

/// The default prefix of every Redis key.
pub const DEFAULT_STORE_PREFIX: &str = "clerk-instant:";

const URL: &str = "SESSION_STORE_URL (--session-store-url)";
const PREFIX: &str = "SESSION_STORE_PREFIX (--session-store-prefix)";
const KEY: &str = "SESSION_STORE_ENCRYPTION_KEY (--session-store-encryption-key)";
const PLAINTEXT: &str = "SESSION_STORE_ALLOW_PLAINTEXT (--session-store-allow-plaintext)";

/// How many of the newest stored sessions [`StoreChoice::check_keys`] looks at.
pub const KEY_CHECK_SAMPLE: usize = 50;

/// The session store settings as given. `Debug` redacts the URL's password and the
/// encryption keys.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct StoreArgs {
    /// Where the InstantDB sessions, sign-outs and webhook deliveries are kept so that
    /// several replicas (and the CLI) share them: a Redis URL,
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. Unset: in
    /// this process's memory, lost at a restart.
    #[arg(long, env = "SESSION_STORE_URL", hide_env_values = true)]
    pub session_store_url: Option<String>,
    /// The prefix of every Redis key (several deployments can share one Redis).
    #[arg(long, env = "SESSION_STORE_PREFIX", default_value = DEFAULT_STORE_PREFIX)]
    pub session_store_prefix: String,
    /// The keys that seal refresh tokens in Redis (AES-256-GCM): base64 of 32 random
    /// bytes each (`openssl rand -base64 32`), separated by commas; the first seals, all
    /// open, so a key rotates by putting the new one first. Can also be read from a
    /// file with --session-store-encryption-key-file.
    #[arg(long, env = "SESSION_STORE_ENCRYPTION_KEY", hide_env_values = true)]
    pub session_store_encryption_key: Option<String>,
    /// A file holding SESSION_STORE_ENCRYPTION_KEY (a mounted secret).
    #[arg(long, env = "SESSION_STORE_ENCRYPTION_KEY_FILE")]
    pub session_store_encryption_key_file: Option<std::path::PathBuf>,
    /// Stores refresh tokens in Redis in the clear (development only): whoever can read
    /// Redis can then act as every signed-in user in InstantDB.
    #[arg(long, env = "SESSION_STORE_ALLOW_PLAINTEXT", default_value_t = false)]
    pub session_store_allow_plaintext: bool,
}

impl Default for StoreArgs {
    fn default() -> Self {
        StoreArgs {
            session_store_url: None,
            session_store_prefix: DEFAULT_STORE_PREFIX.to_owned(),
            session_store_encryption_key: None,
            session_store_encryption_key_file: None,
            session_store_allow_plaintext: false,
        }
    }
}

impl fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreArgs")
            .field(
                "session_store_url",
                &self.session_store_url.as_deref().map(|u| {
                    RedisUrl::parse(u).map_or_else(|_| "(unparsed)".into(), |u| u.to_string())
                }),
            )
            .field("session_store_prefix", &self.session_store_prefix)
            .field(
                "session_store_encryption_key",
                &self.session_store_encryption_key.as_ref().map(|_| "…"),
            )
            .field(
                "session_store_encryption_key_file",
                &self.session_store_encryption_key_file,
            )
            .field(
                "session_store_allow_plaintext",
                &self.session_store_allow_plaintext,
            )
            .finish()
    }
}

/// The checked choice of store.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// In this process (lost at a restart; one replica only).
    Memory,
    /// In Redis (not connected yet: it connects on first use).
    Redis(RedisStore),
}

impl StoreChoice {
    /// `memory`, `redis` or `redis (unencrypted)`, for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Memory => "memory".to_owned(),
            StoreChoice::Redis(store) => format!(
                "redis at {} (prefix {:?}{})",
                store.url(),
                store.prefix(),
                if store.is_encrypted() {
                    ", refresh tokens sealed"
                } else {
                    ", refresh tokens in the clear"
                }
            ),
        }
    }

    /// At start-up: whether this replica's encryption keys open the newest sessions the
    /// other replicas stored (up to [`KEY_CHECK_SAMPLE`]; nothing to check for the
    /// memory store). `Ok(Some(problem))` when some are sealed with keys it lacks: it
    /// would answer 503 for those sessions, so it should not start. `Err` when Redis
    /// did not answer, which is not a configuration problem (readiness reports it).
    pub async fn check_keys(&self) -> Result<Option<Problem>, auth_core::StoreError> {
        let StoreChoice::Redis(store) = self else {
            return Ok(None);
        };
        let found = store.foreign_seals(KEY_CHECK_SAMPLE).await?;
        if found.foreign == 0 {
            return Ok(None);
        }
        let ids: Vec<&str> = found.key_ids.iter().map(String::as_str).collect();
        Ok(Some(Problem {
            setting: if store.is_encrypted() { KEY } else { PLAINTEXT },
            message: format!(
                "{} of the {} newest sessions in Redis are sealed with a key this replica does not have (key id {}): it would answer 503 for them; give every replica the same keys (to rotate, give every replica old,new first, then new,old)",
                found.foreign,
                found.sampled,
                ids.join(", ")
            ),
        }))
    }

    /// Whether refresh tokens would be stored in Redis in the clear (warn about it).
    pub fn is_plaintext(&self) -> bool {
        matches!(self, StoreChoice::Redis(store) if !store.is_encrypted())
    }

    /// The store (no network call: the Redis store connects on first use, so a Redis
    /// that is down at start-up makes requests answer 503 until it is back). Every
    /// call for a Redis choice shares one connection.
    pub fn build(&self, limits: StoreLimits) -> Arc<dyn SessionStore> {
        match self {
            StoreChoice::Memory => Arc::new(MemorySessionStore::new(limits)),
            StoreChoice::Redis(store) => Arc::new(store.clone()),
        }
    }
}

impl StoreArgs {
    /// Checks the settings; every problem at once.
    pub fn resolve(&self) -> Result<StoreChoice, Vec<Problem>> {
        let mut problems = Vec::new();
        let key_text = match (
            &self.session_store_encryption_key,
            &self.session_store_encryption_key_file,
        ) {
            (Some(_), Some(_)) => {
                problems.push(Problem {
                    setting: KEY,
                    message: "is given both directly and as a file; keep one".into(),
                });
                None
            }
            (Some(text), None) => Some(text.clone()),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(error) => {
                    problems.push(Problem {
                        setting: KEY,
                        message: format!(
                            "the file {} cannot be read ({}); check the path and its permissions",
                            path.display(),
                            error.kind()
                        ),
                    });
                    None
                }
            },
            (None, None) => None,
        };
        let Some(url) = &self.session_store_url else {
            if key_text.is_some() || self.session_store_allow_plaintext {
                problems.push(Problem {
                    setting: URL,
                    message: "is not set, so the store is in memory and the encryption settings do nothing; set it to your Redis URL or remove them".into(),
                });
            }
            return if problems.is_empty() {
                Ok(StoreChoice::Memory)
            } else {
                Err(problems)
            };
        };
        let url = match RedisUrl::parse(url.trim()) {
            Ok(url) => Some(url),
            Err(error) => {
                problems.push(Problem {
                    setting: URL,
                    message: format!(
                        "{error}; expected redis://[user:password@]host:port[/db] or rediss://…"
                    ),
                });
                None
            }
        };
        let prefix = self.session_store_prefix.trim();
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(Problem {
                setting: PREFIX,
                message:
                    "must be non-empty, without spaces or control characters (e.g. clerk-instant:)"
                        .into(),
            });
        }
        let sealing = match (key_text, self.session_store_allow_plaintext) {
            (Some(text), false) => match EncryptionKeys::parse(&text) {
                Ok(keys) => Some(Sealing::Keys(keys)),
                Err(error) => {
                    problems.push(Problem {
                        setting: KEY,
                        message: format!(
                            "{error}; each key is base64 of 32 random bytes (openssl rand -base64 32)"
                        ),
                    });
                    None
                }
            },
            (Some(_), true) => {
                problems.push(Problem {
                    setting: PLAINTEXT,
                    message: "is set together with an encryption key; remove one".into(),
                });
                None
            }
            (None, true) => Some(Sealing::Plaintext),
            (None, false) => {
                problems.push(Problem {
                    setting: KEY,
                    message: "is required with a Redis store, so refresh tokens are not readable in Redis: set it to base64 of 32 random bytes (openssl rand -base64 32), or set SESSION_STORE_ALLOW_PLAINTEXT=true to store them in the clear (development only)".into(),
                });
                None
            }
        };
        match (url, sealing) {
            (Some(url), Some(sealing)) if problems.is_empty() => {
                match RedisStore::new(RedisStoreConfig::new(url, sealing).prefix(prefix)) {
                    Ok(store) => Ok(StoreChoice::Redis(store)),
                    Err(error) => Err(vec![Problem {
                        setting: URL,
                        message: format!("{error}; check the URL"),
                    }]),
                }
            }
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn args() -> StoreArgs {
        StoreArgs::default()
    }

    #[test]
    fn no_url_is_the_memory_store() {
        assert!(matches!(args().resolve(), Ok(StoreChoice::Memory)));
    }

    #[test]
    fn a_redis_store_needs_a_key_or_an_explicit_opt_out() {
        let mut a = args();
        a.session_store_url = Some("redis://:hunter2@127.0.0.1:6379/0".into());
        let problems = a.resolve().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].setting, KEY);
        assert!(
            problems[0]
                .message
                .contains("SESSION_STORE_ALLOW_PLAINTEXT")
        );

        a.session_store_allow_plaintext = true;
        let choice = a.resolve().unwrap();
        assert!(choice.is_plaintext());
        assert!(
            !choice.describe().contains("hunter2"),
            "{}",
            choice.describe()
        );

        a.session_store_allow_plaintext = false;
        a.session_store_encryption_key = Some(KEY_B64.into());
        let choice = a.resolve().unwrap();
        assert!(!choice.is_plaintext());
        assert!(choice.describe().contains("sealed"));
    }

    #[test]
    fn bad_values_are_problems_that_quote_no_secret() {
        let mut a = args();
        a.session_store_url = Some("http://:hunter2@example.com".into());
        a.session_store_encryption_key = Some("c2VjcmV0LWJ1dC1zaG9ydA==".into());
        a.session_store_prefix = "has space".into();
        let problems = a.resolve().unwrap_err();
        let settings: Vec<_> = problems.iter().map(|p| p.setting).collect();
        assert_eq!(settings, [URL, PREFIX, KEY]);
        for problem in &problems {
            assert!(!problem.message.contains("hunter2"), "{problem:?}");
            assert!(!problem.message.contains("c2VjcmV0"), "{problem:?}");
        }
        let debug = format!("{a:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("c2VjcmV0"),
            "{debug}"
        );
    }

    #[test]
    fn encryption_settings_without_a_url_are_a_mistake() {
        let mut a = args();
        a.session_store_encryption_key = Some(KEY_B64.into());
        assert_eq!(a.resolve().unwrap_err()[0].setting, URL);
    }

    #[test]
    fn the_key_can_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("store-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, format!("{KEY_B64}\n")).unwrap();
        let mut a = args();
        a.session_store_url = Some("redis://127.0.0.1:6379".into());
        a.session_store_encryption_key_file = Some(path.clone());
        assert!(!a.resolve().unwrap().is_plaintext());
        a.session_store_encryption_key_file = Some(dir.join("missing"));
        assert_eq!(a.resolve().unwrap_err()[0].setting, KEY);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
