//! A JWKS fetched over HTTP and cached: per URL, with a TTL, a rate limit on refreshes
//! caused by unknown `kid`s, single-flight fetching, and a bounded stale window.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::keys::{KeyError, KeySet, VerifyingKey};
use crate::publishable_key::PublishableKey;
use crate::secret::SecretKey;

/// The Backend API base URL.
pub const DEFAULT_BACKEND_API_URL: &str = "https://api.clerk.com";

/// However it is configured, no refresh follows another fetch sooner than this, and the
/// unknown-`kid` cooldown is never shorter (an attacker chooses the `kid`).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// How a [`RemoteJwks`] caches and fetches.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// How long fetched keys are used before a refresh is due. Default 1 h.
    pub ttl: Duration,
    /// The minimum time between two refreshes caused by an unknown `kid`. Default
    /// 5 min; never less than [`MIN_REFRESH_INTERVAL`]. Other fetches (the first, the
    /// TTL refresh, [`RemoteJwks::refresh`]) do not start it: an unknown `kid` seen
    /// [`MIN_REFRESH_INTERVAL`] after one of them is fetched for at once, so a genuine
    /// key rotation is picked up within seconds.
    pub kid_refresh_cooldown: Duration,
    /// How long past the TTL cached keys keep verifying while refreshes fail.
    /// Default 6 h.
    pub max_stale: Duration,
    /// Timeout for one whole fetch. Default 5 s.
    pub timeout: Duration,
    /// Timeout for connecting. Default 3 s.
    pub connect_timeout: Duration,
    /// The largest JWKS body accepted. Default 256 KiB.
    pub max_body_bytes: usize,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            ttl: Duration::from_secs(3600),
            kid_refresh_cooldown: Duration::from_secs(300),
            max_stale: Duration::from_secs(6 * 3600),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_body_bytes: 256 * 1024,
        }
    }
}

impl RemoteOptions {
    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the unknown-`kid` refresh cooldown (raised to [`MIN_REFRESH_INTERVAL`]).
    pub fn kid_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.kid_refresh_cooldown = cooldown;
        self
    }

    /// Sets how long stale keys may serve while refreshes fail.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why a JWKS fetch failed. Never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No answer within the timeout.
    #[error("GET {url} timed out")]
    Timeout {
        /// The JWKS URL.
        url: String,
    },
    /// The connection failed or broke.
    #[error("GET {url} failed")]
    Transport {
        /// The JWKS URL.
        url: String,
        /// The HTTP client's error (its URL removed: the message names it).
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The Backend API refused the secret key.
    #[error("GET {url} answered HTTP {status}: the secret key was refused")]
    Unauthorized {
        /// The JWKS URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// Any other non-200 answer.
    #[error("GET {url} answered HTTP {status}")]
    Status {
        /// The JWKS URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body was larger than allowed.
    #[error("GET {url} returned more than {limit} bytes")]
    TooLarge {
        /// The JWKS URL.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not a usable JWKS.
    #[error("GET {url} returned an unusable JWKS")]
    Invalid {
        /// The JWKS URL.
        url: String,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The cached keys outlived their TTL and stale window before another fetch was
    /// allowed (only when the TTL and stale window are shorter than the refresh floor).
    #[error("the keys from {url} expired and may not be fetched again yet")]
    Expired {
        /// The JWKS URL.
        url: String,
    },
}

impl FetchError {
    /// Whether the secret key was refused (fix the configuration, do not retry).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, FetchError::Unauthorized { .. })
    }
}

/// What a key lookup in a remote JWKS found.
#[derive(Debug, Clone)]
pub(crate) enum LookupError {
    /// The JWKS was loaded and has no such key.
    KidMismatch,
    /// No usable keys: the fetch failed (or recently failed) and nothing cached serves.
    Unavailable(FetchError),
}

/// A snapshot of a cache's state, for health checks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheStatus {
    /// The URL the keys come from.
    pub url: String,
    /// The `kid`s cached.
    pub kids: Vec<String>,
    /// When the keys were last fetched successfully (clock seconds).
    pub fetched_at: Option<i64>,
    /// The cause of the last failed fetch, if the last fetch failed.
    pub last_error: Option<FetchError>,
    /// How many HTTP requests this cache has made.
    pub fetches: u64,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    fetched_at: i64,
    /// The last fetch of any kind.
    last_attempt: Option<i64>,
    /// The last fetch an unknown `kid` caused (the cooldown runs from it).
    last_kid_attempt: Option<i64>,
    last_error: Option<FetchError>,
}

struct Inner {
    url: String,
    secret: Option<SecretKey>,
    client: reqwest::Client,
    options: RemoteOptions,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    /// Bumped after a fetch stored a key set lacking a key of the one before.
    retirements: AtomicU64,
}

/// A remote JWKS with its own cache. Cheap to clone; clones share the cache.
///
/// Each instance caches the keys of one URL only, so tokens of one Clerk instance can
/// never be verified with another instance's keys.
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.inner.url)
            .field("secret", &self.inner.secret)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// The public JWKS of the Frontend API named by a publishable key (no secret).
    pub fn frontend_api(key: &PublishableKey, options: RemoteOptions) -> Self {
        RemoteJwks::build(key.jwks_url(), None, options, None)
    }

    /// The Backend API JWKS (`GET {base}/v1/jwks`) authenticated by a secret key;
    /// `base_url` defaults to [`DEFAULT_BACKEND_API_URL`].
    pub fn backend_api(secret: SecretKey, base_url: Option<&str>, options: RemoteOptions) -> Self {
        let base = base_url
            .unwrap_or(DEFAULT_BACKEND_API_URL)
            .trim_end_matches('/');
        RemoteJwks::build(format!("{base}/v1/jwks"), Some(secret), options, None)
    }

    /// Any JWKS URL (e.g. a local issuer on 127.0.0.1).
    pub fn url(url: impl Into<String>, options: RemoteOptions) -> Self {
        RemoteJwks::build(url.into(), None, options, None)
    }

    /// Uses this HTTP client (to share a connection pool); the timeouts of
    /// [`RemoteOptions`] still apply per request.
    pub fn with_client(self, client: reqwest::Client) -> Self {
        let inner = &self.inner;
        RemoteJwks::build(
            inner.url.clone(),
            inner.secret.clone(),
            inner.options.clone(),
            Some(client),
        )
    }

    fn build(
        url: String,
        secret: Option<SecretKey>,
        mut options: RemoteOptions,
        client: Option<reqwest::Client>,
    ) -> Self {
        options.kid_refresh_cooldown = options.kid_refresh_cooldown.max(MIN_REFRESH_INTERVAL);
        let client = client.unwrap_or_else(|| {
            reqwest::Client::builder()
                .connect_timeout(options.connect_timeout)
                .timeout(options.timeout)
                .user_agent(concat!("clerk-jwt/", env!("CARGO_PKG_VERSION")))
                // A redirect would carry the secret key to another host.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        });
        RemoteJwks {
            inner: Arc::new(Inner {
                url,
                secret,
                client,
                options,
                state: RwLock::default(),
                refresh: tokio::sync::Mutex::new(()),
                fetches: AtomicU64::new(0),
                retirements: AtomicU64::new(0),
            }),
        }
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> &str {
        &self.inner.url
    }

    /// The effective options (the cooldown raised to its floor).
    pub fn options(&self) -> &RemoteOptions {
        &self.inner.options
    }

    /// A snapshot of the cache.
    pub fn status(&self) -> CacheStatus {
        let state = self.read();
        CacheStatus {
            url: self.inner.url.clone(),
            kids: state
                .keys
                .as_ref()
                .map(|k| k.kids().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            fetched_at: state.keys.as_ref().map(|_| state.fetched_at),
            last_error: state.last_error.clone(),
            fetches: self.inner.fetches.load(Ordering::Relaxed),
        }
    }

    /// Fetches the keys now (e.g. at start-up or for a readiness probe), sharing a fetch
    /// already under way. Returns how many keys are cached.
    pub async fn refresh(&self, now: i64) -> Result<usize, FetchError> {
        let _flight = self.inner.refresh.lock().await;
        self.fetch_and_store(now).await.map(|set| set.len())
    }

    /// Changes (grows) whenever a fetch stored a key set that dropped or replaced a key
    /// of the set before it.
    pub(crate) fn retirements(&self) -> u64 {
        self.inner.retirements.load(Ordering::Acquire)
    }

    /// Whether the cached key set publishes this very key under its `kid`.
    pub(crate) fn holds(&self, key: &VerifyingKey) -> bool {
        self.read().keys.as_ref().is_some_and(|set| set.holds(key))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn secs(d: Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
    }

    /// The key for `kid` when the cached keys are fresh and hold it: no await, one
    /// uncontended read lock. The verifier's fast path; `resolve` does the rest.
    pub(crate) fn fresh_key(&self, kid: &str, now: i64) -> Option<VerifyingKey> {
        let ttl = Self::secs(self.inner.options.ttl);
        let state = self.read();
        let keys = state.keys.as_ref()?;
        if now < state.fetched_at.saturating_add(ttl) {
            keys.get(kid).cloned()
        } else {
            None
        }
    }

    /// Finds the key for `kid`, fetching when the rules allow.
    pub(crate) async fn resolve(&self, kid: &str, now: i64) -> Result<VerifyingKey, LookupError> {
        let ttl = Self::secs(self.inner.options.ttl);
        if let Some(key) = self.fresh_key(kid, now) {
            return Ok(key);
        }

        // Slow path: one task at a time decides and fetches; the others wait here and
        // then find what it fetched.
        let _flight = self.inner.refresh.lock().await;
        let (cached, have_keys, fresh, within_stale, since_any, since_kid, last_error) = {
            let state = self.read();
            let cached = state.keys.as_ref().and_then(|k| k.get(kid)).cloned();
            let fresh = state.keys.is_some() && now < state.fetched_at.saturating_add(ttl);
            let within_stale = now
                < state
                    .fetched_at
                    .saturating_add(ttl)
                    .saturating_add(Self::secs(self.inner.options.max_stale));
            (
                cached,
                state.keys.is_some(),
                fresh,
                within_stale,
                state.last_attempt.map(|t| now.saturating_sub(t)),
                state.last_kid_attempt.map(|t| now.saturating_sub(t)),
                state.last_error.clone(),
            )
        };
        if fresh && let Some(key) = cached {
            return Ok(key);
        }
        // No fetch sooner than the floor after any other. An unknown kid in a loaded key
        // set (an attacker chooses it) may also fetch only once per cooldown, counted
        // from the last fetch an unknown kid caused: so a flood costs one fetch per
        // cooldown, while a genuine rotation seen after the first fetch, a TTL refresh
        // or a readiness refresh is fetched for after the floor alone.
        let unknown_kid = have_keys && cached.is_none();
        let floor = Self::secs(MIN_REFRESH_INTERVAL);
        let cooldown = Self::secs(self.inner.options.kid_refresh_cooldown);
        let may_fetch = since_any.is_none_or(|elapsed| elapsed >= floor)
            && (!unknown_kid || since_kid.is_none_or(|elapsed| elapsed >= cooldown));
        if !may_fetch {
            return match cached {
                Some(key) if within_stale => Ok(key),
                _ if have_keys && cached.is_none() && last_error.is_none() => {
                    Err(LookupError::KidMismatch)
                }
                _ => Err(LookupError::Unavailable(last_error.unwrap_or_else(|| {
                    FetchError::Expired {
                        url: self.inner.url.clone(),
                    }
                }))),
            };
        }
        if unknown_kid {
            self.inner
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .last_kid_attempt = Some(now);
        }
        match self.fetch_and_store(now).await {
            Ok(set) => set.get(kid).cloned().ok_or(LookupError::KidMismatch),
            Err(error) => match cached {
                Some(key) if within_stale => {
                    tracing::warn!(
                        url = %self.inner.url,
                        error = &error as &dyn std::error::Error,
                        "JWKS refresh failed; serving cached keys"
                    );
                    Ok(key)
                }
                _ => Err(LookupError::Unavailable(error)),
            },
        }
    }

    /// Fetches, then records the outcome. Callers hold the `refresh` lock.
    async fn fetch_and_store(&self, now: i64) -> Result<Arc<KeySet>, FetchError> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .last_attempt = Some(now);
        let result = self.fetch().await;
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(url = %self.inner.url, keys = set.len(), "JWKS fetched");
                let retired = state
                    .keys
                    .as_ref()
                    .is_some_and(|previous| set.retires_some_of(previous));
                state.keys = Some(Arc::clone(&set));
                state.fetched_at = now;
                state.last_error = None;
                if retired {
                    // After the new set is stored (under the lock), so whoever sees the
                    // new count also sees the set without the retired key.
                    self.inner.retirements.fetch_add(1, Ordering::Release);
                    tracing::info!(
                        url = %self.inner.url,
                        kids = ?set.kids(),
                        "JWKS refresh retired a key"
                    );
                }
                Ok(set)
            }
            Err(error) => {
                tracing::warn!(
                    url = %self.inner.url,
                    error = &error as &dyn std::error::Error,
                    "JWKS fetch failed"
                );
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let inner = &self.inner;
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let url = || inner.url.clone();
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout { url: url() }
            } else {
                FetchError::Transport {
                    url: url(),
                    source: Arc::new(e.without_url()),
                }
            }
        };
        let mut request = inner
            .client
            .get(&inner.url)
            .timeout(inner.options.timeout)
            .header(http::header::ACCEPT, "application/json");
        if let Some(secret) = &inner.secret {
            request = request.bearer_auth(secret.expose());
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(FetchError::Unauthorized { url: url(), status });
        }
        if status != 200 {
            return Err(FetchError::Status { url: url(), status });
        }
        let limit = inner.options.max_body_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge { url: url(), limit });
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks_json(&body).map_err(|source| FetchError::Invalid { url: url(), source })
    }
}
