//! The embedded local stack (feature `local-stack`): its settings, the `/dev/token` and
//! `/dev/session/revoke` endpoints and the start-up banner. Development only.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use clerk_webhooks::{Secret, Secrets};
use devstack::clerk::{WebhookEndpoint, WebhookOptions};
use devstack::{DevStack, DevStackConfig, WebhookSecret};
use serde::Deserialize;
use serde_json::json;
use service_config::ServiceArgs;

use crate::body::{ApiJson, Shape};
use crate::config::{Options, Settings};
use crate::error::{ApiError, Code};
use crate::routes::Route;
use crate::state::AppState;
use crate::{Listeners, Running, launch};

/// What the dev endpoints need: the local Clerk's Backend API.
#[derive(Clone, Debug)]
pub struct DevTokens {
    /// Mints tokens at the local Clerk.
    pub clerk: devstack::clerk::ClerkBackend,
    /// Revokes sessions at the local Clerk, as Clerk's dashboard does (the local
    /// Clerk then sends `session.revoked` to this server).
    pub sessions: clerk_backend::BackendClient,
}

/// The settings of the embedded local stack, checked like any other configuration
/// (the same [`ServiceArgs::resolve`] the flags go through).
pub fn dev_settings(stack: &DevStack, options: Options) -> anyhow::Result<Settings> {
    let args = ServiceArgs {
        clerk_publishable_key: Some(stack.clerk.publishable_key().to_string()),
        clerk_secret_key: Some(stack.clerk.secret_key().expose().to_owned()),
        clerk_api_url: Some(stack.clerk.url().to_owned()),
        instant_app_id: Some(stack.app.id.clone()),
        instant_admin_token: Some(stack.app.admin_token.expose().to_owned()),
        instant_api_uri: Some(stack.instant.url().to_owned()),
        instant_client_name: Some(stack.client_name.clone()),
        ..ServiceArgs::default()
    };
    let service = args.resolve().map_err(|problems| {
        anyhow::anyhow!(
            "the local stack's settings were refused: {}",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.setting, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    Ok(Settings { options, service })
}

/// Multiplies Svix's retry schedule in the local Clerk: 5 s becomes 50 ms and the
/// last retry comes after about 17 minutes instead of 28 hours.
pub(crate) const DEV_WEBHOOK_RETRY_SCALE: f64 = 0.01;

/// Starts the local stack, then the server against it (with `/dev/token` when it
/// listens on loopback). The local Clerk delivers its webhooks to the server's own
/// endpoint, signed with the first `CLERK_WEBHOOK_SIGNING_SECRET` or, without one, a
/// generated secret (the banner prints it).
pub(crate) async fn start(mut options: Options) -> anyhow::Result<Running> {
    // Checked at start-up already ([`crate::config::ServerArgs::resolve`]); a `Mode`
    // built by hand is held to the same rule.
    anyhow::ensure!(
        options.listen.ip().is_loopback(),
        "dev mode listens on loopback only, not on {}",
        options.listen
    );
    // Bound first: a busy port fails here, before the local stack starts.
    let listeners = Listeners::bind(&options).await?;
    let generated = options.webhook_secrets.is_none();
    let secrets = options
        .webhook_secrets
        .get_or_insert_with(|| Secrets::from(Secret::generate()));
    let signing = WebhookSecret::new(secrets.first().expose_whsec())
        .context("the local Clerk refused the webhook signing secret")?;
    let mut config = DevStackConfig::default();
    config.clerk = config
        .clerk
        .webhook_options(WebhookOptions::default().retry_scale(DEV_WEBHOOK_RETRY_SCALE));
    let stack = DevStack::start(config)
        .await
        .context("starting the local stack")?;
    let settings = dev_settings(&stack, options)?;
    let sessions = clerk_backend::BackendClient::builder(stack.clerk.secret_key().clone())
        .base_url(stack.clerk.url())
        .build()
        .context("building a client of the local Clerk")?;
    let dev = Some(DevTokens {
        clerk: stack.clerk.backend(),
        sessions,
    });
    let running = launch(&settings, listeners, dev, Some(stack)).await?;
    running
        .state
        .inner
        .webhooks
        .generated_secret
        .store(generated, std::sync::atomic::Ordering::Relaxed);
    let endpoint = own_webhook_url(running.addr);
    if let Some(stack) = &running.dev {
        stack
            .clerk
            .webhooks()
            .add_endpoint(WebhookEndpoint::new(endpoint, signing));
    }
    Ok(running)
}

/// Where the local Clerk reaches this server's webhook endpoint (loopback when the
/// server listens on every address).
fn own_webhook_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}{}", Route::ClerkWebhooks.path())
}

/// `POST /dev/token`: the user, and how the token differs from a default one (the same
/// options as `clerk-instant dev token`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevTokenBody {
    email: String,
    /// The `azp` claim (a browser's origin), to test `CLERK_AUTHORIZED_PARTIES`.
    #[serde(default)]
    azp: Option<String>,
    /// Claims set after the session token template.
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
    /// Leave out `email` and `email_verified`, as Clerk's default session token does.
    #[serde(default)]
    no_email: bool,
    /// `exp` this many seconds from now; zero or negative: an expired token.
    #[serde(default)]
    expires_in: Option<i64>,
}

impl Shape for DevTokenBody {
    const SHAPE: &'static str = r#"{"email": "alice@example.com", "azp": "http://localhost:3000", "claims": {"org_id": "org_1"}, "no_email": false, "expires_in": 60} (all but email optional)"#;
}

impl DevTokenBody {
    /// The minting options this body asks for.
    fn mint_options(&self) -> devstack::MintOptions {
        let mut options = devstack::MintOptions::new();
        if let Some(azp) = &self.azp {
            options = options.azp(azp.clone());
        }
        if self.no_email {
            options = options.without_email();
        }
        for (name, value) in &self.claims {
            options = options.claim(name.clone(), value.clone());
        }
        if let Some(seconds) = self.expires_in {
            options = options.expires_in(seconds);
        }
        options
    }
}

/// Whether a request's `Host` names this machine by a loopback name (`localhost`,
/// `127.0.0.1` or `[::1]`, with any port). A page on another site that rebinds its DNS
/// name to 127.0.0.1 still sends its own name, so it cannot reach `/dev/token`.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]` or `[::1]:8787`.
        Some(rest) => match rest.split_once(']') {
            Some((ip, rest)) if rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port) => {
                return ip == "::1";
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1"
}

/// `8787`.
fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The guard of every dev endpoint: dev mode (else 404), a loopback client and a
/// request addressed to a loopback name (else 403 `dev-loopback-only`).
pub(crate) fn loopback_only<'a>(
    state: &'a AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<&'a DevTokens, ApiError> {
    let Some(dev) = &state.inner.dev else {
        return Err(ApiError::not_found());
    };
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(
            Code::DevLoopbackOnly,
            "the dev endpoints answer loopback clients only",
        ));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(loopback_host) {
        return Err(ApiError::new(
            Code::DevLoopbackOnly,
            "the dev endpoints answer requests addressed to localhost, 127.0.0.1 or [::1] only",
        ));
    }
    Ok(dev)
}

/// Development only, loopback only: a Clerk session token from the local Clerk.
pub(crate) async fn dev_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DevTokenBody>,
) -> Result<Response, ApiError> {
    let dev = loopback_only(&state, peer, &headers)?;
    let email = body.email.trim();
    let plausible = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if !plausible {
        return Err(ApiError::new(
            Code::InvalidEmail,
            "email must be an address like alice@example.com",
        ));
    }
    let options = body.mint_options();
    let token = dev
        .clerk
        .session_token_with(email, &options)
        .await
        .map_err(|e| {
            ApiError::new(
                Code::DevClerkFailed,
                format!(
                    "the local Clerk could not mint a token: {:#}",
                    anyhow::Error::new(e)
                ),
            )
        })?;
    Ok(Json(json!({"token": token})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeSessionBody {
    session_id: String,
}

impl Shape for RevokeSessionBody {
    const SHAPE: &'static str = r#"{"session_id": "sess_…"}"#;
}

/// Development only, loopback only: revokes a session in the local Clerk, as Clerk's
/// dashboard does. The local Clerk then delivers `session.revoked` to this server's
/// webhook endpoint, which signs the InstantDB session out.
pub(crate) async fn dev_revoke_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RevokeSessionBody>,
) -> Result<Response, ApiError> {
    let dev = loopback_only(&state, peer, &headers)?;
    let session = dev
        .sessions
        .revoke_session(body.session_id.trim())
        .await
        .map_err(|e| match e {
            // The caller's mistakes, not the local Clerk's failure.
            clerk_backend::Error::NotFound { id, .. } => ApiError::new(
                Code::NotFound,
                format!("the local Clerk has no session {id}"),
            ),
            clerk_backend::Error::InvalidId(_) => ApiError::new(
                Code::InvalidBody,
                "session_id must be a Clerk session id (sess_…)",
            ),
            e => ApiError::new(
                Code::DevClerkFailed,
                format!(
                    "the local Clerk could not revoke the session: {:#}",
                    anyhow::Error::new(e)
                ),
            ),
        })?;
    Ok(Json(json!({"session_id": session.id, "status": session.status.as_str()})).into_response())
}

/// What the server prints at start-up in dev mode: what it started and a copy-paste
/// sequence that signs a test user in.
pub fn dev_banner(running: &Running) -> String {
    let Some(stack) = &running.dev else {
        return String::new();
    };
    let url = running.url();
    let mut text = format!(
        "clerk-instant-server --dev: it runs on the embedded local stack
  (development only; InstantDB permissions are NOT evaluated by the emulator)

  local Clerk      {clerk}  (publishable key {pk})
  local InstantDB  {instant}  (app id {app})
  server           {url}
  dev console      {url}/dev/console
",
        clerk = stack.clerk.url(),
        pk = stack.clerk.publishable_key(),
        instant = stack.instant.url(),
        app = stack.app.id,
    );
    let webhooks = &running.state.inner.webhooks;
    let secret = if webhooks
        .generated_secret
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        webhooks
            .secrets()
            .map_or_else(String::new, |s| s.first().expose_whsec())
    } else {
        "from CLERK_WEBHOOK_SIGNING_SECRET".to_owned()
    };
    text.push_str(&format!(
        "
  local Clerk's webhooks go to {endpoint}
    signing secret          {secret}
  local Clerk secret key    {sk}
  InstantDB admin token     {admin}
  (for Clerk's and InstantDB's own SDKs pointed at the local stack; dev secrets only)
",
        endpoint = own_webhook_url(running.addr),
        sk = stack.clerk.secret_key().expose(),
        admin = stack.app.admin_token.expose(),
    ));
    text.push_str(&format!(
        r#"
Sign a test user in:
  TOKEN=$(curl -s -X POST {url}/dev/token -H 'content-type: application/json' -d '{{"email":"alice@example.com"}}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  curl -s -X POST {url}/v1/session -H "authorization: Bearer $TOKEN"
  curl -s -X POST {url}/v1/transact -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"steps":[["update","goals","9f5d3a0e-7f6b-4c61-9d46-2f1b0c3e8a11",{{"title":"Get fit"}}]]}}'
  curl -s -X POST {url}/v1/query -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"query":{{"goals":{{}}}}}}'
  curl -s -X DELETE {url}/v1/session -H "authorization: Bearer $TOKEN"
(tokens live 60 s: mint a new one when a call answers token-expired)
"#
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in [
            "localhost",
            "LocalHost:8787",
            "127.0.0.1",
            "127.0.0.1:8787",
            "[::1]",
            "[::1]:8787",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example.com",
            "evil.example.com:8787",
            "localhost.evil.example.com",
            "127.0.0.1.nip.io",
            "127.0.0.2:8787",
            "0.0.0.0:8787",
            "[::1]x",
            "[::2]:8787",
            "localhost:",
            "localhost:87a",
            "[::1]:",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }
}
