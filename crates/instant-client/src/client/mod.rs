//! The client: [`Client`] and the state its clones share. Each concern has its own
//! file: building (`builder`), the call arguments (`request`), the calls (`calls`),
//! sending with retries (`transport`) and the impersonated view (`impersonated`).

mod builder;
mod calls;
mod impersonated;
mod request;
mod transport;

pub use builder::{ClientBuilder, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use impersonated::Impersonated;
pub use request::{IdTokenSignIn, Impersonation, TokenSubject, TxId, UserRef};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http_retry::SharedClock;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue};
use uuid::Uuid;

use crate::endpoint::Endpoint;
use crate::retry::RetryPolicy;
use crate::secret::AdminToken;

/// What a client's clones share: the configuration and everything prepared from it
/// when the client was built.
struct Inner {
    app_id: Uuid,
    app_id_text: String,
    app_id_header: HeaderValue,
    admin_token: Option<AdminToken>,
    authorization: Option<HeaderValue>,
    /// `@instantdb/core`'s headers, sent on runtime calls.
    runtime_headers: HeaderMap,
    /// `@instantdb/admin`'s headers without impersonation.
    admin_headers: HeaderMap,
    base: Url,
    /// Each endpoint's URL, `?app_id=` included for admin endpoints; by
    /// [`Endpoint::index`].
    urls: [Url; Endpoint::ALL.len()],
    http: reqwest::Client,
    timeout: Duration,
    retry: RetryPolicy,
    clock: SharedClock,
}

/// InstantDB's runtime-auth and admin HTTP API. Cheap to clone: clones share the
/// configuration and the connection pool.
///
/// Runtime calls ([`Client::sign_in_with_id_token`], [`Client::sign_out`],
/// [`Client::verify_refresh_token`]) need no admin token and are sent as
/// `@instantdb/core` sends them; admin calls as `@instantdb/admin` does.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("app_id", &self.inner.app_id)
            .field("base_url", &self.inner.base.as_str())
            .field("admin_token", &self.inner.admin_token)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The app id.
    pub fn app_id(&self) -> Uuid {
        self.inner.app_id
    }

    /// The base URL, with a trailing `/`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Whether an admin token is configured.
    pub fn has_admin_token(&self) -> bool {
        self.inner.admin_token.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConfigError, Error};
    use crate::secret::RefreshToken;

    fn app() -> Uuid {
        Uuid::parse_str("11111111-2222-4333-8444-555555555555").unwrap()
    }

    #[test]
    fn base_urls_keep_their_path_prefix() {
        let client = Client::builder(app())
            .base_url("http://127.0.0.1:8888/instant")
            .build()
            .unwrap();
        assert_eq!(
            client.inner.urls[Endpoint::Query.index()].as_str(),
            "http://127.0.0.1:8888/instant/admin/query?app_id=11111111-2222-4333-8444-555555555555"
        );
        assert_eq!(
            client.inner.urls[Endpoint::SignOut.index()].as_str(),
            "http://127.0.0.1:8888/instant/runtime/signout"
        );
        let default = Client::builder(app()).build().unwrap();
        assert_eq!(default.base_url().as_str(), "https://api.instantdb.com/");
    }

    #[test]
    fn unusable_base_urls_are_refused_without_echoing_them() {
        for url in [
            "api.instantdb.com",
            "ftp://example.com",
            "https://user:hunter2@example.com",
            "https://example.com/?x=1",
            "https://example.com/#f",
        ] {
            let err = Client::builder(app()).base_url(url).build().unwrap_err();
            assert!(err.is_config(), "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn debug_shows_configuration_but_not_the_admin_token() {
        let client = Client::builder(app())
            .admin_token(AdminToken::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee").unwrap())
            .build()
            .unwrap();
        let debug = format!("{client:?}");
        assert!(
            debug.contains("11111111-2222-4333-8444-555555555555"),
            "{debug}"
        );
        assert!(!debug.contains("aaaaaaaa"), "{debug}");
        let who = format!(
            "{:?}",
            client.as_refresh_token(
                RefreshToken::new("ffffffff-0000-4111-8222-333333333333").unwrap()
            )
        );
        assert!(!who.contains("ffffffff"), "{who}");
    }

    #[test]
    fn admin_calls_without_a_token_fail_before_sending() {
        let client = Client::builder(app()).build().unwrap();
        let err = client
            .admin_call::<()>(Endpoint::GetUser, None, None, Vec::new())
            .err()
            .unwrap();
        assert!(matches!(
            err,
            Error::Config(ConfigError::AdminTokenRequired(Endpoint::GetUser))
        ));
        let token = Impersonation::RefreshToken(RefreshToken::new("t0k3n-abc").unwrap());
        assert!(
            client
                .admin_call::<()>(Endpoint::Query, Some(&token), None, Vec::new())
                .is_ok()
        );
        assert!(
            client
                .admin_call::<()>(
                    Endpoint::Query,
                    Some(&Impersonation::Guest),
                    None,
                    Vec::new()
                )
                .is_err()
        );
    }
}
