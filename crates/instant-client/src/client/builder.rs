//! Building a [`Client`]: the configuration, checked once, and everything prepared
//! from it (each endpoint's URL, the header sets, the HTTP client).

use std::sync::Arc;
use std::time::Duration;

use http_retry::SharedClock;
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use uuid::Uuid;

use crate::Result;
use crate::endpoint::{Endpoint, Flavor};
use crate::error::ConfigError;
use crate::retry::RetryPolicy;
use crate::secret::{AdminToken, CredentialError};

use super::transport::{ANY, JSON};
use super::{Client, Inner};

/// InstantDB's hosted API (closing 2027-08-31: self-hosted servers take a base URL).
pub const DEFAULT_BASE_URL: &str = "https://api.instantdb.com";
/// The default timeout of one request, connection to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default connect timeout (only for the HTTP client this crate builds).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    app_id: Uuid,
    admin_token: Option<AdminToken>,
    base_url: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    clock: SharedClock,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Sets the admin token, needed by every admin call except query and transact
    /// impersonating a refresh token.
    pub fn admin_token(mut self, token: AdminToken) -> Self {
        self.admin_token = Some(token);
        self
    }

    /// Sets the base URL: an absolute `http://` or `https://` URL, possibly with a path
    /// prefix (a self-hosted server, the local emulator). Default [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the timeout of each request (each attempt), connection to last body byte.
    /// Default [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout of the HTTP client this crate builds (ignored with
    /// [`ClientBuilder::http_client`]). Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the retry policy. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sets the clock retries wait through. Default [`http_retry::TokioClock`]; tests
    /// pass `http_retry::TestClock` (feature `testing`) so that no retry waits for real.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Shares an existing `reqwest` client (its connection pool, proxy and TLS
    /// settings). Configure it not to follow redirects: a redirect to another host
    /// would carry the impersonation headers, which `reqwest` does not strip. The
    /// client built by default follows none.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Checks the configuration and builds the client.
    pub fn build(self) -> Result<Client> {
        let base = parse_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let app_id_text = self.app_id.hyphenated().to_string();
        let urls = Endpoint::ALL.map(|endpoint| {
            let mut url = base
                .join(endpoint.path().trim_start_matches('/'))
                .unwrap_or_else(|_| base.clone());
            if endpoint.flavor() == Flavor::Admin {
                url.query_pairs_mut().append_pair("app_id", &app_id_text);
            }
            url
        });
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| ConfigError::HttpClient(Arc::new(e)))?,
        };
        let app_id_header =
            HeaderValue::from_str(&app_id_text).expect("a hyphenated uuid is a valid header value");
        let authorization = match &self.admin_token {
            Some(token) => {
                // Checked header-safe when the token was made.
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| CredentialError::NotHeaderSafe("admin token"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut runtime_headers = HeaderMap::with_capacity(2);
        runtime_headers.insert(CONTENT_TYPE, JSON);
        runtime_headers.insert(ACCEPT, ANY);
        let mut inner = Inner {
            app_id: self.app_id,
            app_id_text,
            app_id_header,
            admin_token: self.admin_token,
            authorization,
            base,
            urls,
            http,
            timeout: self.timeout,
            retry: self.retry,
            clock: self.clock,
            runtime_headers,
            admin_headers: HeaderMap::new(),
        };
        inner.admin_headers = inner.admin_headers_as(None);
        Ok(Client {
            inner: Arc::new(inner),
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(raw.trim())
        .map_err(|_| ConfigError::BaseUrl("must be an absolute http:// or https:// url"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::BaseUrl(
            "must be an absolute http:// or https:// url",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::BaseUrl(
            "must not hold credentials (set the admin token instead)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::BaseUrl("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl Client {
    /// A builder for the app `app_id`.
    pub fn builder(app_id: Uuid) -> ClientBuilder {
        ClientBuilder {
            app_id,
            admin_token: None,
            base_url: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            clock: http_retry::default_clock(),
            http: None,
        }
    }
}
