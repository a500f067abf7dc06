//! Clerk publishable keys (`pk_test_…`, `pk_live_…`) and what they derive.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Which kind of Clerk instance a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceKind {
    /// `pk_test_`: a development instance.
    Development,
    /// `pk_live_`: a production instance.
    Production,
}

impl InstanceKind {
    /// `development` or `production`.
    pub const fn as_str(self) -> &'static str {
        match self {
            InstanceKind::Development => "development",
            InstanceKind::Production => "production",
        }
    }
}

impl fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule a publishable key broke. Each names one check, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishableKeyError {
    /// The key is a documentation placeholder (`pk_test_…`, `pk_test_xxx`,
    /// `pk_live_...`, `<your key>`), pasted in place of a real key.
    #[error(
        "publishable key is a placeholder from an example (such as pk_test_… or <your key>), not a real key"
    )]
    Placeholder,
    /// The key does not start with `pk_test_` or `pk_live_`.
    #[error(
        "publishable key must start with pk_test_ or pk_live_ (a secret key sk_… or a frontend API URL is not a publishable key)"
    )]
    Prefix,
    /// Splitting on `_` does not give exactly three parts with a non-empty third.
    #[error(
        "publishable key must be pk_<test|live>_<base64> with exactly two underscores and a non-empty base64 part"
    )]
    Parts,
    /// The third part is not standard base64.
    #[error("publishable key's base64 part does not decode")]
    Base64(#[source] base64::DecodeError),
    /// The decoded bytes are not text.
    #[error("publishable key decodes to bytes that are not UTF-8 text")]
    NotText,
    /// The decoded text does not end with exactly one `$`, or holds another `$`.
    #[error("publishable key must decode to '<frontend-api-host>$' with a single trailing '$'")]
    Dollar,
    /// The host holds no `.`.
    #[error("publishable key's frontend API host {0:?} has no '.'")]
    NoDot(String),
    /// The host holds characters a host name cannot have.
    #[error("publishable key's frontend API host {0:?} is not a valid host[:port]")]
    InvalidHost(String),
}

/// A validated Clerk publishable key and the Frontend API it names.
///
/// ```
/// use clerk_jwt::{InstanceKind, PublishableKey};
///
/// let pk: PublishableKey = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".parse()?;
/// assert_eq!(pk.frontend_api(), "clerk.example.com");
/// assert_eq!(pk.kind(), InstanceKind::Production);
/// assert_eq!(pk.issuer(), "https://clerk.example.com");
/// assert_eq!(pk.jwks_url(), "https://clerk.example.com/.well-known/jwks.json");
/// # Ok::<(), clerk_jwt::PublishableKeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublishableKey {
    key: String,
    kind: InstanceKind,
    host: String,
    loopback: bool,
}

impl PublishableKey {
    /// Parses and validates a publishable key, naming the rule it breaks if any.
    pub fn parse(key: &str) -> Result<Self, PublishableKeyError> {
        let key = key.trim();
        // Only a key that breaks a rule is called a placeholder: a real key never is.
        Self::parse_trimmed(key).map_err(|error| {
            if is_placeholder(key) {
                PublishableKeyError::Placeholder
            } else {
                error
            }
        })
    }

    fn parse_trimmed(key: &str) -> Result<Self, PublishableKeyError> {
        let kind = if key.starts_with("pk_test_") {
            InstanceKind::Development
        } else if key.starts_with("pk_live_") {
            InstanceKind::Production
        } else {
            return Err(PublishableKeyError::Prefix);
        };
        let parts: Vec<&str> = key.split('_').collect();
        if parts.len() != 3 || parts[2].is_empty() {
            return Err(PublishableKeyError::Parts);
        }
        let encoded = parts[2];
        let decoded = if encoded.ends_with('=') {
            STANDARD.decode(encoded)
        } else {
            STANDARD_NO_PAD.decode(encoded)
        }
        .map_err(PublishableKeyError::Base64)?;
        let text = String::from_utf8(decoded).map_err(|_| PublishableKeyError::NotText)?;
        let Some(host) = text.strip_suffix('$') else {
            return Err(PublishableKeyError::Dollar);
        };
        if host.contains('$') {
            return Err(PublishableKeyError::Dollar);
        }
        if !host.contains('.') {
            return Err(PublishableKeyError::NoDot(host.to_owned()));
        }
        if !is_valid_host(host) {
            return Err(PublishableKeyError::InvalidHost(host.to_owned()));
        }
        Ok(PublishableKey {
            key: key.to_owned(),
            kind,
            loopback: is_loopback(host),
            host: host.to_owned(),
        })
    }

    /// Builds the publishable key that names `host` (e.g. `127.0.0.1:3000` for a local
    /// issuer), as Clerk encodes it: `pk_<kind>_` + base64(`host$`) without padding.
    pub fn for_host(kind: InstanceKind, host: &str) -> Result<Self, PublishableKeyError> {
        let prefix = match kind {
            InstanceKind::Development => "pk_test_",
            InstanceKind::Production => "pk_live_",
        };
        PublishableKey::parse(&format!(
            "{prefix}{}",
            STANDARD_NO_PAD.encode(format!("{host}$"))
        ))
    }

    /// The key as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Development or production.
    pub fn kind(&self) -> InstanceKind {
        self.kind
    }

    /// The Frontend API host, e.g. `pumped-maggot-29.clerk.accounts.dev`.
    pub fn frontend_api(&self) -> &str {
        &self.host
    }

    /// Whether the host is an IPv4 loopback address (the project's local stack), which
    /// gets `http://` URLs. Every other host is `https://` only.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    fn scheme(&self) -> &'static str {
        if self.loopback { "http" } else { "https" }
    }

    /// The Frontend API URL, which is also the `iss` of its session tokens.
    pub fn issuer(&self) -> String {
        format!("{}://{}", self.scheme(), self.host)
    }

    /// The public JWKS URL of the Frontend API.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer())
    }

    /// The OIDC discovery URL (what InstantDB stores for a Clerk client).
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// The suffix Clerk appends to cookie names (`__session_<suffix>`) when several apps
    /// share a domain: the first 8 characters of the URL-safe base64 of SHA-1 of the key.
    pub fn cookie_suffix(&self) -> String {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            self.key.as_bytes(),
        );
        let mut encoded = URL_SAFE_NO_PAD.encode(digest.as_ref());
        encoded.truncate(8);
        encoded
    }
}

impl FromStr for PublishableKey {
    type Err = PublishableKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublishableKey::parse(s)
    }
}

impl fmt::Debug for PublishableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A publishable key is public; show it, it is what users compare.
        f.debug_struct("PublishableKey")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("frontend_api", &self.host)
            .finish()
    }
}

impl fmt::Display for PublishableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// `host` or `host:port`, with the characters of a DNS name or an IPv4 address.
fn is_valid_host(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || port.parse::<u16>().is_err())
    {
        return false;
    }
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.ends_with('-')
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn is_loopback(text: &str) -> bool {
    let host = text.rsplit_once(':').map_or(text, |(host, _)| host);
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `key`, which is not a valid key, is one of the stand-ins documentation and
/// templates show for a key: an ellipsis, angle or curly brackets, "your", or a run of
/// one filler character (`xxx`, `***`, `...`) after the prefix.
fn is_placeholder(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if key.contains(['…', '<', '>', '{', '}', ' ']) || key.contains("...") || lower.contains("your")
    {
        return true;
    }
    let rest = lower
        .strip_prefix("pk_test_")
        .or_else(|| lower.strip_prefix("pk_live_"))
        .unwrap_or("");
    let mut chars = rest.chars();
    chars
        .next()
        .is_some_and(|first| matches!(first, 'x' | '*' | '.') && chars.all(|c| c == first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_placeholder_is_named_as_one() {
        for placeholder in [
            "pk_test_…",
            "pk_test_xxx",
            "pk_live_...",
            "pk_live_XXXXXXXX",
            "pk_test_****",
            "<your key>",
            "<CLERK_PUBLISHABLE_KEY>",
            "pk_test_your_key_here",
            "{{CLERK_PUBLISHABLE_KEY}}",
        ] {
            let error = PublishableKey::parse(placeholder).unwrap_err();
            assert_eq!(error, PublishableKeyError::Placeholder, "{placeholder}");
            assert!(error.to_string().contains("placeholder"), "{error}");
        }
        // Real keys, even short ones, are not placeholders.
        assert!(PublishableKey::parse("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").is_ok());
        assert!(!is_placeholder("pk_test_xx1"));
    }

    #[test]
    fn decodes_the_spec_examples() {
        let pk = PublishableKey::parse("pk_test_cHVtcGVkLW1hZ2dvdC0yOS5jbGVyay5hY2NvdW50cy5kZXYk")
            .unwrap();
        assert_eq!(pk.frontend_api(), "pumped-maggot-29.clerk.accounts.dev");
        assert_eq!(pk.kind(), InstanceKind::Development);
        assert_eq!(pk.issuer(), "https://pumped-maggot-29.clerk.accounts.dev");
        assert_eq!(
            pk.discovery_url(),
            "https://pumped-maggot-29.clerk.accounts.dev/.well-known/openid-configuration"
        );
        let live = PublishableKey::parse("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap();
        assert_eq!(live.frontend_api(), "clerk.example.com");
        assert_eq!(live.kind(), InstanceKind::Production);
        assert!(!live.is_loopback());
    }

    #[test]
    fn accepts_padding_and_surrounding_whitespace() {
        // "a.b$" is 4 bytes: base64 needs padding.
        let padded = format!("pk_test_{}", STANDARD.encode("a.bc$"));
        assert!(padded.ends_with('='));
        assert_eq!(
            PublishableKey::parse(&padded).unwrap().frontend_api(),
            "a.bc"
        );
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            PublishableKey::parse(&format!("  {unpadded}\n"))
                .unwrap()
                .frontend_api(),
            "a.bc"
        );
    }

    #[test]
    fn each_rule_is_named() {
        let enc = |s: &str| STANDARD_NO_PAD.encode(s);
        let cases: Vec<(String, PublishableKeyError)> = vec![
            ("sk_test_abc".into(), PublishableKeyError::Prefix),
            ("pk_prod_abc".into(), PublishableKeyError::Prefix),
            ("pk_test_".into(), PublishableKeyError::Parts),
            (
                format!("pk_test_{}_x", enc("a.b$")),
                PublishableKeyError::Parts,
            ),
            (
                "pk_test_!!!!".into(),
                PublishableKeyError::Base64(base64::DecodeError::InvalidPadding),
            ),
            (
                format!("pk_test_{}", STANDARD_NO_PAD.encode([0xff, 0xfe, b'$'])),
                PublishableKeyError::NotText,
            ),
            (
                format!("pk_test_{}", enc("a.b")),
                PublishableKeyError::Dollar,
            ),
            (
                format!("pk_test_{}", enc("a.b$$")),
                PublishableKeyError::Dollar,
            ),
            (
                format!("pk_test_{}", enc("a$.b$")),
                PublishableKeyError::Dollar,
            ),
            (
                format!("pk_test_{}", enc("localhost$")),
                PublishableKeyError::NoDot(String::new()),
            ),
            (
                format!("pk_test_{}", enc("evil.com/path$")),
                PublishableKeyError::InvalidHost(String::new()),
            ),
            (
                format!("pk_test_{}", enc("a.b:99999$")),
                PublishableKeyError::InvalidHost(String::new()),
            ),
            (
                format!("pk_test_{}", enc("a.b c$")),
                PublishableKeyError::InvalidHost(String::new()),
            ),
        ];
        for (key, want) in cases {
            let got = PublishableKey::parse(&key).expect_err(&key);
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{key}: got {got}"
            );
        }
    }

    #[test]
    fn loopback_hosts_get_http_and_others_https() {
        let local = PublishableKey::for_host(InstanceKind::Development, "127.0.0.1:4567").unwrap();
        assert!(local.is_loopback());
        assert_eq!(local.issuer(), "http://127.0.0.1:4567");
        assert_eq!(
            local.jwks_url(),
            "http://127.0.0.1:4567/.well-known/jwks.json"
        );
        let roundtrip = PublishableKey::parse(local.as_str()).unwrap();
        assert_eq!(roundtrip, local);
        // A public IP is not loopback, and a name that looks like one is not either.
        for host in [
            "10.0.0.1:80",
            "127.0.0.1.evil.com",
            "clerk.127.0.0.1.nip.io",
        ] {
            let pk = PublishableKey::for_host(InstanceKind::Development, host).unwrap();
            assert!(!pk.is_loopback(), "{host}");
            assert!(pk.issuer().starts_with("https://"), "{host}");
        }
    }

    #[test]
    fn cookie_suffix_is_eight_url_safe_chars_of_sha1() {
        let pk = PublishableKey::parse("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap();
        let suffix = pk.cookie_suffix();
        assert_eq!(suffix.len(), 8);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        // sha1("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"), computed independently with
        // `printf %s "$pk" | openssl sha1 -binary | base64 | tr '+/' '-_' | cut -c1-8`.
        assert_eq!(suffix, "naoXFJnI");
    }
}
