//! The settings as flags and environment names, their checks, and the checked result.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use auth_core::Strategy;
use clerk_jwt::{PublishableKey, SecretKey, VerifyingKey};
use instant_client::{AdminToken, Uuid};

use crate::AuthorizedParties;

/// The default InstantDB API.
pub const DEFAULT_INSTANT_API: &str = "https://api.instantdb.com";

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting, as its environment name and flag.
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The Clerk and InstantDB settings as given (flags or environment): strings, not yet
/// checked. Both apps flatten it into their arguments; `Debug` redacts the secrets.
#[derive(Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ServiceArgs {
    /// Clerk publishable key (pk_test_… / pk_live_…): gives the issuer and JWKS URL.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY")]
    pub clerk_publishable_key: Option<String>,
    /// Clerk secret key (sk_…): revokes Clerk sessions on sign-out. Prefer the
    /// environment variable: a flag's value is visible in `ps`.
    #[arg(long, env = "CLERK_SECRET_KEY", hide_env_values = true)]
    pub clerk_secret_key: Option<String>,
    /// Clerk's PEM public key ("JWT public key"): verify without fetching the JWKS.
    #[arg(long, env = "CLERK_JWT_KEY", hide_env_values = true)]
    pub clerk_jwt_key: Option<String>,
    /// Origins allowed in the token's azp claim (comma-separated; a trailing / is
    /// dropped, a path refused), or * to accept any. Required with a pk_live_ key;
    /// without it azp is not checked.
    #[arg(
        long = "clerk-authorized-parties",
        alias = "clerk-authorized-party",
        env = "CLERK_AUTHORIZED_PARTIES",
        value_delimiter = ','
    )]
    pub clerk_authorized_parties: Vec<String>,
    /// Extra accepted issuers: satellite domains or proxy URLs (comma-separated).
    #[arg(
        long = "clerk-issuers",
        alias = "clerk-issuer",
        env = "CLERK_ISSUERS",
        value_delimiter = ','
    )]
    pub clerk_issuers: Vec<String>,
    /// The Clerk Backend API base URL.
    #[arg(long, env = "CLERK_API_URL")]
    pub clerk_api_url: Option<String>,
    /// InstantDB app id.
    #[arg(long, env = "INSTANT_APP_ID")]
    pub instant_app_id: Option<String>,
    /// InstantDB admin token (needed by the admin strategy). Prefer the environment
    /// variable: a flag's value is visible in `ps`.
    #[arg(
        long = "instant-app-admin-token",
        alias = "instant-admin-token",
        env = "INSTANT_APP_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub instant_admin_token: Option<String>,
    /// InstantDB API base URL, for self-hosted servers (default: the hosted api.instantdb.com).
    #[arg(long, env = "INSTANT_API_URI")]
    pub instant_api_uri: Option<String>,
    /// The Clerk client's name in the Instant dashboard.
    #[arg(
        long = "instant-clerk-client-name",
        alias = "instant-client-name",
        env = "INSTANT_CLERK_CLIENT_NAME",
        value_name = "NAME"
    )]
    pub instant_client_name: Option<String>,
    /// How InstantDB sessions are obtained: id-token (default) or admin.
    #[arg(
        long = "sign-in-strategy",
        alias = "strategy",
        env = "SIGN_IN_STRATEGY"
    )]
    pub strategy: Option<String>,
    /// The token verifier's own rules.
    #[command(flatten)]
    pub verifier: VerifierArgs,
}

/// `Some("[redacted]")` for a set secret, so `Debug` shows whether it is set.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "[redacted]")
}

impl fmt::Debug for ServiceArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceArgs")
            .field("clerk_publishable_key", &self.clerk_publishable_key)
            .field("clerk_secret_key", &redacted(&self.clerk_secret_key))
            .field("clerk_jwt_key", &self.clerk_jwt_key)
            .field("clerk_authorized_parties", &self.clerk_authorized_parties)
            .field("clerk_issuers", &self.clerk_issuers)
            .field("clerk_api_url", &self.clerk_api_url)
            .field("instant_app_id", &self.instant_app_id)
            .field("instant_admin_token", &redacted(&self.instant_admin_token))
            .field("instant_api_uri", &self.instant_api_uri)
            .field("instant_client_name", &self.instant_client_name)
            .field("strategy", &self.strategy)
            .field("verifier", &self.verifier)
            .finish()
    }
}

/// Checked settings for real (or self-hosted, or local) services. `Debug` redacts the
/// secret key and the admin token (their types do).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The Clerk instance.
    pub publishable_key: PublishableKey,
    /// Revokes Clerk sessions when set.
    pub secret_key: Option<SecretKey>,
    /// Networkless verification key.
    pub jwt_key: Option<VerifyingKey>,
    /// Whether and against which origins `azp` is checked.
    pub authorized_parties: AuthorizedParties,
    /// Extra issuers.
    pub issuers: Vec<String>,
    /// Clerk Backend API base URL (default `https://api.clerk.com`).
    pub clerk_api_url: Option<String>,
    /// InstantDB app.
    pub instant_app_id: Uuid,
    /// InstantDB admin token.
    pub instant_admin_token: Option<AdminToken>,
    /// InstantDB base URL.
    pub instant_api_uri: String,
    /// Sign-in strategy.
    pub strategy: Strategy,
    /// The token verifier's own rules.
    pub verifier: VerifierSettings,
}

/// A set, non-blank setting, trimmed.
fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The message for a setting given with no value (`CLERK_PUBLISHABLE_KEY=`, as a
/// compose file's `${X}` with `X` unset gives): a mistake, not "not set".
const EMPTY: &str = "is set but empty; give it a value, or unset it";

/// The name a setting is read from, and its label in problems.
struct Name {
    env: &'static str,
    label: &'static str,
}

const PUBLISHABLE_KEY: Name = Name {
    env: "CLERK_PUBLISHABLE_KEY",
    label: "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
};
const APP_ID: Name = Name {
    env: "INSTANT_APP_ID",
    label: "INSTANT_APP_ID (--instant-app-id)",
};
const ADMIN_TOKEN: Name = Name {
    env: "INSTANT_APP_ADMIN_TOKEN",
    label: "INSTANT_APP_ADMIN_TOKEN (--instant-app-admin-token)",
};
const SECRET_KEY: Name = Name {
    env: "CLERK_SECRET_KEY",
    label: "CLERK_SECRET_KEY (--clerk-secret-key)",
};
const AUTHORIZED_PARTIES: &str = "CLERK_AUTHORIZED_PARTIES (--clerk-authorized-parties)";

/// Prefixes front-end tool chains put on the variables they expose to the browser
/// (Next.js, Vite, Create React App, Expo, SvelteKit/Astro, Nuxt). A server reads none
/// of them; finding one while the real name is unset is a misnamed setting.
const BROWSER_PREFIXES: [&str; 6] = [
    "NEXT_PUBLIC_",
    "VITE_",
    "REACT_APP_",
    "EXPO_PUBLIC_",
    "PUBLIC_",
    "NUXT_PUBLIC_",
];

/// The settings whose misnamings are looked for: (the name found, the setting meant).
fn misnamings() -> Vec<(String, &'static Name)> {
    let mut names = Vec::new();
    for setting in [&PUBLISHABLE_KEY, &APP_ID] {
        for prefix in BROWSER_PREFIXES {
            names.push((format!("{prefix}{}", setting.env), setting));
        }
    }
    names.push(("INSTANT_ADMIN_TOKEN".to_owned(), &ADMIN_TOKEN));
    names.push(("CLERK_API_KEY".to_owned(), &SECRET_KEY));
    names
}

/// An `http://` or `https://` URL with something after the scheme and no whitespace.
fn is_http_url(text: &str) -> bool {
    text.strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

impl ServiceArgs {
    /// Each setting's label and whether it is given (a blank value counts as given:
    /// it is a mistake [`ServiceArgs::resolve`] reports).
    fn given_settings(&self) -> [(&'static str, bool); 14] {
        [
            (PUBLISHABLE_KEY.label, self.clerk_publishable_key.is_some()),
            (SECRET_KEY.label, self.clerk_secret_key.is_some()),
            (
                "CLERK_JWT_KEY (--clerk-jwt-key)",
                self.clerk_jwt_key.is_some(),
            ),
            (
                AUTHORIZED_PARTIES,
                !self.clerk_authorized_parties.is_empty(),
            ),
            (
                "CLERK_ISSUERS (--clerk-issuers)",
                !self.clerk_issuers.is_empty(),
            ),
            (
                "CLERK_API_URL (--clerk-api-url)",
                self.clerk_api_url.is_some(),
            ),
            (APP_ID.label, self.instant_app_id.is_some()),
            (ADMIN_TOKEN.label, self.instant_admin_token.is_some()),
            (
                "INSTANT_API_URI (--instant-api-uri)",
                self.instant_api_uri.is_some(),
            ),
            (
                "INSTANT_CLERK_CLIENT_NAME (--instant-clerk-client-name)",
                self.instant_client_name.is_some(),
            ),
            (
                "SIGN_IN_STRATEGY (--sign-in-strategy)",
                self.strategy.is_some(),
            ),
            (
                MAX_TOKEN_LIFETIME_LABEL,
                self.verifier.clerk_max_token_lifetime_secs.is_some(),
            ),
            (
                REJECT_IMPERSONATION_LABEL,
                self.verifier.clerk_reject_impersonation.is_some(),
            ),
            (
                VERIFIED_TOKEN_CACHE_LABEL,
                self.verifier.clerk_verified_token_cache.is_some(),
            ),
        ]
    }

    /// The settings given, as their labels (`CLERK_PUBLISHABLE_KEY
    /// (--clerk-publishable-key)`); a setting given with an empty value counts.
    pub fn given(&self) -> Vec<&'static str> {
        self.given_settings()
            .into_iter()
            .filter(|(_, given)| *given)
            .map(|(label, _)| label)
            .collect()
    }

    /// Whether no Clerk or InstantDB setting is given at all (a setting given with an
    /// empty value counts as given).
    pub fn is_empty(&self) -> bool {
        self.given().is_empty()
    }

    /// Settings that are not given while a well-known wrong name for them is set in
    /// the environment `lookup` reads (`NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY`, `VITE_…`,
    /// `NEXT_PUBLIC_INSTANT_APP_ID`, `INSTANT_ADMIN_TOKEN`, …): one problem each,
    /// naming both. The apps pass a lookup of their process environment.
    pub fn misnamed(&self, lookup: impl Fn(&str) -> Option<OsString>) -> Vec<Problem> {
        let given = self.given();
        let mut problems: Vec<Problem> = Vec::new();
        for (found, meant) in misnamings() {
            let set = lookup(&found).is_some_and(|value| !value.is_empty());
            let reported = problems.iter().any(|p| p.setting == meant.label);
            if set && !reported && !given.contains(&meant.label) {
                problems.push(Problem {
                    setting: meant.label,
                    message: format!(
                        "is not set, but {found} is: that name is not read here; set {} to the same value",
                        meant.env
                    ),
                });
            }
        }
        problems
    }

    /// [`ServiceArgs::resolve`], with [`ServiceArgs::misnamed`] settings reported in
    /// place of their "is not set" problems.
    pub fn resolve_in(
        &self,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<ServiceConfig, Vec<Problem>> {
        self.resolve().map_err(|mut problems| {
            let misnamed = self.misnamed(lookup);
            problems.retain(|p| !misnamed.iter().any(|m| m.setting == p.setting));
            problems.extend(misnamed);
            problems
        })
    }

    /// Checks every setting; returns every problem found.
    pub fn resolve(&self) -> Result<ServiceConfig, Vec<Problem>> {
        let mut problems = Vec::new();
        // A setting given with an empty value is a mistake (an unset variable in a
        // compose file, a typo), never the same as not giving it.
        let blank = |value: &Option<String>| value.as_deref().is_some_and(|v| v.trim().is_empty());
        let strings = [
            (PUBLISHABLE_KEY.label, &self.clerk_publishable_key),
            (SECRET_KEY.label, &self.clerk_secret_key),
            ("CLERK_JWT_KEY (--clerk-jwt-key)", &self.clerk_jwt_key),
            ("CLERK_API_URL (--clerk-api-url)", &self.clerk_api_url),
            (APP_ID.label, &self.instant_app_id),
            (ADMIN_TOKEN.label, &self.instant_admin_token),
            ("INSTANT_API_URI (--instant-api-uri)", &self.instant_api_uri),
            (
                "INSTANT_CLERK_CLIENT_NAME (--instant-clerk-client-name)",
                &self.instant_client_name,
            ),
            ("SIGN_IN_STRATEGY (--sign-in-strategy)", &self.strategy),
        ];
        for (setting, value) in strings {
            if blank(value) {
                problems.push(Problem {
                    setting,
                    message: EMPTY.to_owned(),
                });
            }
        }
        if !self.clerk_issuers.is_empty() && self.clerk_issuers.iter().all(|i| i.trim().is_empty())
        {
            problems.push(Problem {
                setting: "CLERK_ISSUERS (--clerk-issuers)",
                message: EMPTY.to_owned(),
            });
        }
        let mut problem = |setting: &'static str, message: String| {
            problems.push(Problem { setting, message });
        };

        let publishable_key = match text(&self.clerk_publishable_key) {
            None if blank(&self.clerk_publishable_key) => None,
            None => {
                problem(
                    "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
                    "is not set; copy the publishable key (pk_test_… or pk_live_…) from the Clerk dashboard, API keys".to_owned(),
                );
                None
            }
            Some(pk) => match PublishableKey::parse(pk) {
                Ok(pk) => Some(pk),
                Err(e) => {
                    problem(
                        "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
                        format!("{e}; copy it again from the Clerk dashboard, API keys"),
                    );
                    None
                }
            },
        };
        let secret_key = match text(&self.clerk_secret_key) {
            None => None,
            Some(sk) => match SecretKey::new(sk) {
                Ok(sk) => Some(sk),
                Err(e) => {
                    problem("CLERK_SECRET_KEY (--clerk-secret-key)", e.to_string());
                    None
                }
            },
        };
        if let (Some(pk), Some(sk)) = (&publishable_key, &secret_key) {
            let live_pk = pk.kind() == clerk_jwt::InstanceKind::Production;
            let live_sk = sk.prefix() == "sk_live_";
            if live_pk != live_sk {
                problem(
                    "CLERK_SECRET_KEY (--clerk-secret-key)",
                    format!(
                        "is a {} key but the publishable key is {}; use both keys of the same instance",
                        if live_sk { "live" } else { "test" },
                        if live_pk { "live" } else { "test" }
                    ),
                );
            }
        }
        let jwt_key = match text(&self.clerk_jwt_key) {
            None => None,
            Some(pem) => match VerifyingKey::from_pem(pem) {
                Ok(key) => Some(key),
                Err(e) => {
                    problem(
                        "CLERK_JWT_KEY (--clerk-jwt-key)",
                        format!(
                            "{e}; copy the PEM public key from the Clerk dashboard (API keys, JWT public key), or unset it to use the JWKS"
                        ),
                    );
                    None
                }
            },
        };
        let authorized_parties = match AuthorizedParties::parse(&self.clerk_authorized_parties) {
            Ok(parties) => parties,
            Err(messages) => {
                for message in messages {
                    problem(AUTHORIZED_PARTIES, message);
                }
                AuthorizedParties::Any
            }
        };
        // A live instance can have several apps (and Clerk's own account portal) whose
        // tokens this server would otherwise accept: it says which origins are its own,
        // or opts out explicitly.
        if authorized_parties == AuthorizedParties::Unset
            && publishable_key
                .as_ref()
                .is_some_and(|pk| pk.kind() == clerk_jwt::InstanceKind::Production)
        {
            problem(
                AUTHORIZED_PARTIES,
                format!(
                    "is required with a live publishable key (pk_live_…): list your app's origins, e.g. https://app.example.com, so that a token Clerk issued to another origin is refused; or set it to {} to accept any (azp not checked)",
                    crate::ANY_AUTHORIZED_PARTY
                ),
            );
        }
        let issuers: Vec<String> = self
            .clerk_issuers
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        for issuer in &issuers {
            if !is_http_url(issuer) {
                problem(
                    "CLERK_ISSUERS (--clerk-issuers)",
                    format!(
                        "{issuer:?} is not a URL; give the issuer as https://clerk.example.com"
                    ),
                );
            }
        }
        let clerk_api_url = text(&self.clerk_api_url).map(str::to_owned);
        if let Some(url) = &clerk_api_url
            && !is_http_url(url)
        {
            problem(
                "CLERK_API_URL (--clerk-api-url)",
                format!("{url:?} is not an http(s) URL"),
            );
        }

        let instant_app_id = match text(&self.instant_app_id) {
            None if blank(&self.instant_app_id) => None,
            None => {
                problem(
                    "INSTANT_APP_ID (--instant-app-id)",
                    "is not set; copy the app id from the Instant dashboard".to_owned(),
                );
                None
            }
            Some(id) => match Uuid::parse_str(id) {
                Ok(id) => Some(id),
                Err(_) => {
                    problem(
                        "INSTANT_APP_ID (--instant-app-id)",
                        format!("{id:?} is not a UUID; copy the app id from the Instant dashboard"),
                    );
                    None
                }
            },
        };
        let instant_admin_token = match text(&self.instant_admin_token) {
            None => None,
            Some(token) => match AdminToken::new(token) {
                Ok(token) => Some(token),
                Err(e) => {
                    problem(
                        "INSTANT_APP_ADMIN_TOKEN (--instant-app-admin-token)",
                        format!("{e}; copy the admin token from the Instant dashboard"),
                    );
                    None
                }
            },
        };
        let instant_api_uri = text(&self.instant_api_uri)
            .unwrap_or(DEFAULT_INSTANT_API)
            .trim_end_matches('/')
            .to_owned();
        if !is_http_url(&instant_api_uri) {
            problem(
                "INSTANT_API_URI (--instant-api-uri)",
                format!(
                    "{instant_api_uri:?} is not an http(s) URL; unset it for {DEFAULT_INSTANT_API}"
                ),
            );
        }
        let client_name = text(&self.instant_client_name)
            .unwrap_or("clerk")
            .to_owned();
        let strategy = match text(&self.strategy).unwrap_or("id-token") {
            "id-token" => Some(Strategy::IdToken { client_name }),
            "admin" => {
                if text(&self.instant_admin_token).is_none() {
                    problem(
                        "INSTANT_APP_ADMIN_TOKEN (--instant-app-admin-token)",
                        "is required by SIGN_IN_STRATEGY=admin; copy it from the Instant dashboard, or use the id-token strategy".to_owned(),
                    );
                }
                Some(Strategy::Admin)
            }
            other => {
                problem(
                    "SIGN_IN_STRATEGY (--sign-in-strategy)",
                    format!("must be id-token or admin, not {other:?}"),
                );
                None
            }
        };

        let verifier = self.verifier.resolve(&mut problems);
        match (publishable_key, instant_app_id, strategy) {
            (Some(publishable_key), Some(instant_app_id), Some(strategy))
                if problems.is_empty() =>
            {
                Ok(ServiceConfig {
                    publishable_key,
                    secret_key,
                    jwt_key,
                    authorized_parties,
                    issuers,
                    clerk_api_url,
                    instant_app_id,
                    instant_admin_token,
                    instant_api_uri,
                    strategy,
                    verifier,
                })
            }
            _ => Err(problems),
        }
    }
}

// The token verifier's own settings (issue 11: token lifetime, impersonation), kept
// together: their flags, their checks, and what they set on the verifier.

/// The verifier settings' labels, as problems and `given` name them.
const MAX_TOKEN_LIFETIME_LABEL: &str =
    "CLERK_MAX_TOKEN_LIFETIME_SECS (--clerk-max-token-lifetime-secs)";
const REJECT_IMPERSONATION_LABEL: &str =
    "CLERK_REJECT_IMPERSONATION (--clerk-reject-impersonation)";
const VERIFIED_TOKEN_CACHE_LABEL: &str =
    "CLERK_VERIFIED_TOKEN_CACHE (--clerk-verified-token-cache)";

/// The token verifier's own settings, as given; flattened into [`ServiceArgs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct VerifierArgs {
    /// Longest accepted token lifetime in seconds (exp - iat), 60 to 86400 [default: 3600].
    /// Clerk's session tokens live 60 s; longer ones are minted through the Backend API.
    /// It also bounds how long a signed-out session must be remembered.
    #[arg(long, env = "CLERK_MAX_TOKEN_LIFETIME_SECS", value_name = "SECS")]
    pub clerk_max_token_lifetime_secs: Option<String>,
    /// Refuse impersonated sessions (tokens with an act claim, from "Impersonate user" in
    /// the Clerk dashboard): true or false [default: false].
    #[arg(
        long,
        env = "CLERK_REJECT_IMPERSONATION",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub clerk_reject_impersonation: Option<String>,
    /// How many verified tokens to remember, 0 to 10000000 [default: 10000]: a token
    /// presented again within its minute skips the signature check. About 1.5 KiB each;
    /// set it above your users active within a minute, or 0 to check every request.
    #[arg(long, env = "CLERK_VERIFIED_TOKEN_CACHE", value_name = "TOKENS")]
    pub clerk_verified_token_cache: Option<String>,
}

/// The token verifier's own settings, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierSettings {
    /// The longest accepted token lifetime
    /// (`clerk_jwt::VerifierBuilder::max_token_lifetime`).
    pub max_token_lifetime: Duration,
    /// Whether impersonated sessions are refused
    /// (`clerk_jwt::VerifierBuilder::reject_impersonation`).
    pub reject_impersonation: bool,
    /// How many verified tokens the verifier remembers
    /// (`clerk_jwt::VerifierBuilder::verified_token_cache`).
    pub verified_tokens: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            max_token_lifetime: clerk_jwt::DEFAULT_MAX_TOKEN_LIFETIME,
            reject_impersonation: false,
            verified_tokens: crate::VERIFIED_TOKENS,
        }
    }
}

impl VerifierArgs {
    /// Checks the settings, adding a problem for each bad one (its default is used
    /// then, and the problem stops start-up).
    fn resolve(&self, problems: &mut Vec<Problem>) -> VerifierSettings {
        let mut settings = VerifierSettings::default();
        for (setting, value) in [
            (
                MAX_TOKEN_LIFETIME_LABEL,
                &self.clerk_max_token_lifetime_secs,
            ),
            (REJECT_IMPERSONATION_LABEL, &self.clerk_reject_impersonation),
            (VERIFIED_TOKEN_CACHE_LABEL, &self.clerk_verified_token_cache),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push(Problem {
                    setting,
                    message: EMPTY.to_owned(),
                });
            }
        }
        if let Some(value) = text(&self.clerk_max_token_lifetime_secs) {
            let range = clerk_jwt::MAX_TOKEN_LIFETIME_RANGE;
            let (min, max) = (range.start().as_secs(), range.end().as_secs());
            match value.parse::<u64>().map(Duration::from_secs) {
                Ok(lifetime) if range.contains(&lifetime) => {
                    settings.max_token_lifetime = lifetime;
                }
                _ => problems.push(Problem {
                    setting: MAX_TOKEN_LIFETIME_LABEL,
                    message: format!(
                        "must be a whole number of seconds from {min} to {max}, not {value:?}; Clerk's session tokens live 60 s, so unset it for {} s unless you mint longer tokens",
                        clerk_jwt::DEFAULT_MAX_TOKEN_LIFETIME.as_secs()
                    ),
                }),
            }
        }
        if let Some(value) = text(&self.clerk_verified_token_cache) {
            match value.parse::<usize>() {
                Ok(tokens) if tokens <= MAX_VERIFIED_TOKENS => settings.verified_tokens = tokens,
                _ => problems.push(Problem {
                    setting: VERIFIED_TOKEN_CACHE_LABEL,
                    message: format!(
                        "must be a whole number of tokens from 0 to {MAX_VERIFIED_TOKENS}, not {value:?}; unset it for {}",
                        crate::VERIFIED_TOKENS
                    ),
                }),
            }
        }
        if let Some(value) = text(&self.clerk_reject_impersonation) {
            match value.to_ascii_lowercase().as_str() {
                "true" => settings.reject_impersonation = true,
                "false" => settings.reject_impersonation = false,
                _ => problems.push(Problem {
                    setting: REJECT_IMPERSONATION_LABEL,
                    message: format!("must be true or false, not {value:?}"),
                }),
            }
        }
        settings
    }
}

/// The most verified tokens `CLERK_VERIFIED_TOKEN_CACHE` may ask for (about 15 GiB).
const MAX_VERIFIED_TOKENS: usize = 10_000_000;

impl VerifierSettings {
    /// Sets these rules, and the verified-token cache, on a verifier under
    /// construction.
    pub fn apply(&self, builder: clerk_jwt::VerifierBuilder) -> clerk_jwt::VerifierBuilder {
        builder
            .max_token_lifetime(self.max_token_lifetime)
            .reject_impersonation(self.reject_impersonation)
            .verified_token_cache(self.verified_tokens)
    }
}

#[cfg(test)]
mod verifier_settings_tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
        /// A positional after the flags, as the CLI's commands have.
        rest: Option<String>,
    }

    fn parse(flags: &[&str]) -> (Result<VerifierSettings, Vec<Problem>>, Cli) {
        let mut args = vec![
            "x",
            "--clerk-publishable-key",
            "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k",
            "--instant-app-id",
            "11111111-2222-4333-8444-555555555555",
        ];
        args.extend_from_slice(flags);
        let cli = Cli::try_parse_from(args).unwrap();
        (cli.service.resolve().map(|c| c.verifier), cli)
    }

    #[test]
    fn defaults_are_an_hour_and_impersonation_allowed() {
        let (settings, _) = parse(&[]);
        assert_eq!(settings.unwrap(), VerifierSettings::default());
        assert_eq!(
            VerifierSettings::default().max_token_lifetime,
            Duration::from_secs(3600)
        );
        assert!(!VerifierSettings::default().reject_impersonation);
        assert_eq!(VerifierSettings::default().verified_tokens, 10_000);
    }

    #[test]
    fn the_verified_token_cache_is_a_setting() {
        let verifier = |flags: &[&str]| {
            let (settings, _) = parse(flags);
            settings
                .unwrap()
                .apply(
                    clerk_jwt::Verifier::builder()
                        .issuer("https://clerk.example.com")
                        .keys(clerk_jwt::KeySet::default()),
                )
                .build()
                .unwrap()
        };
        assert_eq!(verifier(&[]).verified_token_cache(), 10_000);
        let flag = ["--clerk-verified-token-cache", "250000"];
        assert_eq!(verifier(&flag).verified_token_cache(), 250_000);
        let off = ["--clerk-verified-token-cache", "0"];
        assert_eq!(verifier(&off).verified_token_cache(), 0);
        for value in ["1e6", "10000001", "lots", "-5"] {
            let flag = format!("--clerk-verified-token-cache={value}");
            let (result, _) = parse(&[flag.as_str()]);
            let problems = result.unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(
                problems[0].setting,
                "CLERK_VERIFIED_TOKEN_CACHE (--clerk-verified-token-cache)"
            );
            assert!(
                problems[0].message.contains("from 0 to 10000000"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn flags_set_the_rules_and_reach_the_verifier() {
        let (settings, cli) = parse(&[
            "--clerk-max-token-lifetime-secs",
            "60",
            "--clerk-reject-impersonation",
            "token",
        ]);
        assert_eq!(
            cli.rest.as_deref(),
            Some("token"),
            "the flag takes no value"
        );
        let settings = settings.unwrap();
        assert_eq!(settings.max_token_lifetime, Duration::from_secs(60));
        assert!(settings.reject_impersonation);
        let (settings, _) = parse(&["--clerk-reject-impersonation=false"]);
        assert!(!settings.unwrap().reject_impersonation);

        let (config, _) = parse(&["--clerk-max-token-lifetime-secs", "120"]);
        let config = config.unwrap();
        let verifier = config
            .apply(
                clerk_jwt::Verifier::builder()
                    .issuer("https://clerk.example.com")
                    .keys(clerk_jwt::KeySet::default()),
            )
            .build()
            .unwrap();
        assert_eq!(verifier.max_token_lifetime(), Duration::from_secs(120));
    }

    #[test]
    fn bad_values_are_problems_naming_the_setting() {
        for value in ["59", "86401", "1h", "0", "3600.5"] {
            let (result, _) = parse(&["--clerk-max-token-lifetime-secs", value]);
            let problems = result.unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(
                problems[0].setting,
                "CLERK_MAX_TOKEN_LIFETIME_SECS (--clerk-max-token-lifetime-secs)"
            );
            assert!(problems[0].message.contains("60 to 86400"), "{problems:?}");
        }
        let (result, _) = parse(&["--clerk-reject-impersonation=yes"]);
        let problems = result.unwrap_err();
        assert_eq!(
            problems[0].setting,
            "CLERK_REJECT_IMPERSONATION (--clerk-reject-impersonation)"
        );
        assert_eq!(problems[0].message, "must be true or false, not \"yes\"");
    }

    #[test]
    fn they_count_as_settings_given() {
        let lifetime = ServiceArgs {
            verifier: VerifierArgs {
                clerk_max_token_lifetime_secs: Some("60".into()),
                ..VerifierArgs::default()
            },
            ..ServiceArgs::default()
        };
        assert!(!lifetime.is_empty());
        let blank = ServiceArgs {
            verifier: VerifierArgs {
                clerk_reject_impersonation: Some(" ".into()),
                ..VerifierArgs::default()
            },
            ..ServiceArgs::default()
        };
        // Given, but empty: a problem, as for every other setting.
        assert!(!blank.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    const PK_TEST: &str = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k";
    const APP: &str = "11111111-2222-4333-8444-555555555555";
    const SECRET_KEY: &str = "sk_test_hunter2hunter2hunter2";
    const ADMIN_TOKEN: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn with_secrets() -> ServiceArgs {
        ServiceArgs {
            clerk_publishable_key: Some(PK_TEST.into()),
            clerk_secret_key: Some(SECRET_KEY.into()),
            instant_app_id: Some(APP.into()),
            instant_admin_token: Some(ADMIN_TOKEN.into()),
            strategy: Some("admin".into()),
            ..ServiceArgs::default()
        }
    }

    #[test]
    fn flags_fill_the_settings() {
        let cli = Cli::try_parse_from([
            "x",
            "--clerk-publishable-key",
            PK_TEST,
            "--clerk-authorized-party",
            "https://a.example.com,https://b.example.com",
            "--clerk-issuer",
            "https://clerk.example.com",
            "--instant-app-id",
            APP,
            "--instant-client-name",
            "my-clerk",
            "--strategy",
            "id-token",
        ])
        .unwrap();
        assert_eq!(
            cli.service.clerk_authorized_parties,
            ["https://a.example.com", "https://b.example.com"]
        );
        let config = cli.service.resolve().unwrap();
        assert_eq!(
            config.strategy,
            Strategy::IdToken {
                client_name: "my-clerk".into()
            }
        );
        assert_eq!(config.issuers, ["https://clerk.example.com"]);
        assert_eq!(config.instant_api_uri, DEFAULT_INSTANT_API);
    }

    #[test]
    fn every_flag_is_its_environment_name_and_the_old_names_still_work() {
        let command = <Cli as clap::CommandFactory>::command();
        let store = <crate::StoreArgs as clap::Args>::augment_args(clap::Command::new("s"));
        for arg in command.get_arguments().chain(store.get_arguments()) {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let env = env.to_string_lossy().to_ascii_lowercase().replace('_', "-");
            assert_eq!(long, env, "--{long}");
        }
        let parse = |flags: [&str; 5]| {
            let mut args = vec!["x"];
            for (flag, value) in flags.into_iter().zip([
                "https://a.example.com",
                "https://clerk.example.com",
                "admin-token",
                "my-clerk",
                "id-token",
            ]) {
                args.extend([flag, value]);
            }
            Cli::try_parse_from(args).unwrap().service
        };
        assert_eq!(
            parse([
                "--clerk-authorized-parties",
                "--clerk-issuers",
                "--instant-app-admin-token",
                "--instant-clerk-client-name",
                "--sign-in-strategy",
            ]),
            parse([
                "--clerk-authorized-party",
                "--clerk-issuer",
                "--instant-admin-token",
                "--instant-client-name",
                "--strategy",
            ])
        );
    }

    #[test]
    fn a_setting_given_empty_is_a_problem_not_an_absence() {
        assert!(ServiceArgs::default().is_empty());
        let blank = ServiceArgs {
            clerk_publishable_key: Some("  ".into()),
            clerk_issuers: vec![String::new()],
            clerk_authorized_parties: vec![String::new()],
            ..ServiceArgs::default()
        };
        assert!(!blank.is_empty(), "an empty value is given");
        assert_eq!(
            blank.given(),
            [
                "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)",
                "CLERK_AUTHORIZED_PARTIES (--clerk-authorized-parties)",
                "CLERK_ISSUERS (--clerk-issuers)",
            ]
        );
        let problems = blank.resolve().unwrap_err();
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.setting, p.message.starts_with("is set but empty")))
            .collect();
        assert_eq!(
            found,
            [
                ("CLERK_PUBLISHABLE_KEY (--clerk-publishable-key)", true),
                ("CLERK_ISSUERS (--clerk-issuers)", true),
                (
                    "CLERK_AUTHORIZED_PARTIES (--clerk-authorized-parties)",
                    true
                ),
                ("INSTANT_APP_ID (--instant-app-id)", false),
            ],
            "{problems:#?}"
        );
        assert!(!with_secrets().is_empty());
    }

    #[test]
    fn an_empty_value_arrives_as_given_and_empty() {
        // clap hands an empty flag value (and an empty environment variable: the
        // server's binary test sets real ones) over as `Some("")`, which resolve
        // refuses; this process's environment is left alone.
        let cli =
            Cli::try_parse_from(["x", "--clerk-publishable-key=", "--clerk-issuer="]).unwrap();
        assert_eq!(cli.service.clerk_publishable_key.as_deref(), Some(""));
        assert_eq!(cli.service.clerk_issuers, [""]);
    }

    #[test]
    fn a_browser_name_for_a_setting_is_named_in_its_place() {
        let env = |name: &str| {
            matches!(
                name,
                "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY"
                    | "VITE_INSTANT_APP_ID"
                    | "VITE_CLERK_PUBLISHABLE_KEY"
            )
            .then(|| OsString::from("value"))
        };
        let problems = ServiceArgs::default().resolve_in(env).unwrap_err();
        let text: Vec<_> = problems
            .iter()
            .map(|p| format!("{}: {}", p.setting, p.message))
            .collect();
        assert_eq!(
            text,
            [
                "CLERK_PUBLISHABLE_KEY (--clerk-publishable-key): is not set, but NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY is: that name is not read here; set CLERK_PUBLISHABLE_KEY to the same value",
                "INSTANT_APP_ID (--instant-app-id): is not set, but VITE_INSTANT_APP_ID is: that name is not read here; set INSTANT_APP_ID to the same value",
            ]
        );
        // The real name given: the other one does not matter.
        let given = ServiceArgs {
            clerk_publishable_key: Some(PK_TEST.into()),
            instant_app_id: Some(APP.into()),
            ..ServiceArgs::default()
        };
        assert!(given.misnamed(env).is_empty());
        // An empty wrong name is no hint.
        let empty = |name: &str| (name == "INSTANT_ADMIN_TOKEN").then(OsString::new);
        assert!(ServiceArgs::default().misnamed(empty).is_empty());
    }

    #[test]
    fn a_live_key_needs_its_authorized_parties_or_an_explicit_opt_out() {
        let live = |parties: &[&str]| ServiceArgs {
            clerk_publishable_key: Some("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".into()),
            instant_app_id: Some(APP.into()),
            clerk_authorized_parties: parties.iter().map(|p| (*p).to_owned()).collect(),
            ..ServiceArgs::default()
        };
        let problems = live(&[]).resolve().unwrap_err();
        assert_eq!(
            problems[0].setting,
            "CLERK_AUTHORIZED_PARTIES (--clerk-authorized-parties)"
        );
        assert!(problems[0].message.contains("pk_live_"), "{problems:?}");
        assert_eq!(
            live(&["*"]).resolve().unwrap().authorized_parties,
            AuthorizedParties::Any
        );
        assert_eq!(
            live(&["https://App.example.com/"])
                .resolve()
                .unwrap()
                .authorized_parties
                .origins(),
            ["https://app.example.com"]
        );
        let path = live(&["https://app.example.com/dashboard"])
            .resolve()
            .unwrap_err();
        assert!(path[0].message.contains("can never match"), "{path:?}");
        // A test key may leave it unset (the server warns).
        assert_eq!(
            with_secrets().resolve().unwrap().authorized_parties,
            AuthorizedParties::Unset
        );
    }

    #[test]
    fn debug_redacts_the_secrets_of_every_settings_struct() {
        let args = with_secrets();
        let config = args.resolve().unwrap();
        let clients = config.build_clients().unwrap();
        for (what, text) in [
            ("args", format!("{args:?}")),
            ("args, pretty", format!("{args:#?}")),
            ("config", format!("{config:?}")),
            ("clients", format!("{clients:?}")),
        ] {
            assert!(!text.contains("hunter2"), "{what}: {text}");
            assert!(!text.contains(ADMIN_TOKEN), "{what}: {text}");
        }
        let args = format!("{args:?}");
        assert!(
            args.contains("clerk_secret_key: Some(\"[redacted]\")"),
            "{args}"
        );
        assert!(
            args.contains(PK_TEST),
            "the publishable key is public: {args}"
        );
        let unset = format!("{:?}", ServiceArgs::default());
        assert!(unset.contains("instant_admin_token: None"), "{unset}");
    }

    #[test]
    fn a_build_error_names_the_client_and_keeps_the_cause_as_source() {
        let config = ServiceArgs {
            instant_api_uri: Some("http://[not-a-host".into()),
            ..with_secrets()
        }
        .resolve()
        .unwrap();
        let error = config.build_clients().unwrap_err();
        assert!(matches!(error, crate::BuildError::Instant(_)), "{error:?}");
        let source = std::error::Error::source(&error).expect("the cause is the source");
        assert_eq!(error.to_string(), "could not build the InstantDB client");
        assert!(!error.to_string().contains(&source.to_string()));
    }
}
