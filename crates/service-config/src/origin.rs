//! The origins a token's `azp` claim may name (`CLERK_AUTHORIZED_PARTIES`), read the
//! same way by the server and the CLI.

/// What `CLERK_AUTHORIZED_PARTIES` says about a token's `azp` claim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthorizedParties {
    /// Not set: `azp` is not checked. The server warns at start-up, and a live
    /// (`pk_live_…`) key refuses it.
    #[default]
    Unset,
    /// `*`: `azp` is deliberately not checked (any origin, or none, is accepted).
    Any,
    /// `azp` must be one of these origins, normalised by [`normalize_origin`].
    Only(Vec<String>),
}

/// The value of `CLERK_AUTHORIZED_PARTIES` that accepts any `azp`.
pub const ANY_AUTHORIZED_PARTY: &str = "*";

impl AuthorizedParties {
    /// Reads the values given (each a comma-separated part of the setting, or one
    /// repeated flag). No value at all is [`AuthorizedParties::Unset`]; `*` alone is
    /// [`AuthorizedParties::Any`]; anything else must be origins. Every refused value
    /// is reported, each as a message naming it and the fix.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<AuthorizedParties, Vec<String>> {
        if values.is_empty() {
            return Ok(AuthorizedParties::Unset);
        }
        let values: Vec<&str> = values.iter().map(|v| v.as_ref().trim()).collect();
        if values.iter().all(|v| v.is_empty()) {
            return Err(vec![format!(
                "is set but empty; list the origins of your app, e.g. https://app.example.com, or {ANY_AUTHORIZED_PARTY} to accept any, or unset it"
            )]);
        }
        let values: Vec<&str> = values.into_iter().filter(|v| !v.is_empty()).collect();
        if values.contains(&ANY_AUTHORIZED_PARTY) {
            return if values.len() == 1 {
                Ok(AuthorizedParties::Any)
            } else {
                Err(vec![format!(
                    "{ANY_AUTHORIZED_PARTY} (any origin) cannot be listed with origins; give either {ANY_AUTHORIZED_PARTY} alone or only origins"
                )])
            };
        }
        let mut origins = Vec::new();
        let mut problems = Vec::new();
        for value in values {
            match normalize_origin(value) {
                Ok(origin) => {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
                Err(error) => problems.push(format!(
                    "{value:?} {error}; list origins like https://app.example.com (scheme, host and port only)"
                )),
            }
        }
        if problems.is_empty() {
            Ok(AuthorizedParties::Only(origins))
        } else {
            Err(problems)
        }
    }

    /// The origins `azp` must be one of; empty when `azp` is not checked.
    pub fn origins(&self) -> &[String] {
        match self {
            AuthorizedParties::Only(origins) => origins,
            AuthorizedParties::Unset | AuthorizedParties::Any => &[],
        }
    }

    /// Whether `azp` is checked.
    pub fn is_checked(&self) -> bool {
        matches!(self, AuthorizedParties::Only(_))
    }
}

/// Why a value is not an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// Not `http://` or `https://`.
    #[error("is not an http(s) origin")]
    NotHttp,
    /// No host after the scheme.
    #[error("has no host")]
    NoHost,
    /// A path, query or fragment after the host: a browser's `Origin` (and so Clerk's
    /// `azp`) never has one, so it could never match.
    #[error("has a path, query or fragment, so it can never match an origin")]
    NotAnOrigin,
    /// User information (`user@`) or whitespace.
    #[error("has user information or whitespace, which an origin never has")]
    Malformed,
}

/// An origin as a browser sends it and Clerk writes it into `azp`: `http(s)://host[:port]`
/// with the scheme and host in lower case and no trailing `/`. A path, query or
/// fragment is refused: it can never match.
///
/// ```
/// use service_config::normalize_origin;
///
/// assert_eq!(normalize_origin(" https://App.Example.com/ ").unwrap(), "https://app.example.com");
/// assert!(normalize_origin("https://app.example.com/dashboard").is_err());
/// ```
pub fn normalize_origin(text: &str) -> Result<String, OriginError> {
    let text = text.trim();
    let (scheme, rest) = text
        .split_once("://")
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")
        })
        .ok_or(OriginError::NotHttp)?;
    // One trailing slash is how origins are often pasted; anything more is a path.
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() {
        return Err(OriginError::NoHost);
    }
    if host.contains(['/', '?', '#']) {
        return Err(OriginError::NotAnOrigin);
    }
    if host.contains('@') || host.contains(char::is_whitespace) {
        return Err(OriginError::Malformed);
    }
    if host.starts_with(':') {
        return Err(OriginError::NoHost);
    }
    Ok(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_paths_refused() {
        let ok = [
            ("https://app.example.com", "https://app.example.com"),
            ("https://app.example.com/", "https://app.example.com"),
            (
                "  HTTPS://App.Example.COM:8443/ ",
                "https://app.example.com:8443",
            ),
            ("http://localhost:3000", "http://localhost:3000"),
        ];
        for (given, origin) in ok {
            assert_eq!(normalize_origin(given).as_deref(), Ok(origin), "{given}");
        }
        let refused = [
            ("app.example.com", OriginError::NotHttp),
            ("ftp://app.example.com", OriginError::NotHttp),
            ("https://", OriginError::NoHost),
            ("https:///", OriginError::NoHost),
            ("https://:443", OriginError::NoHost),
            (
                "https://app.example.com/dashboard",
                OriginError::NotAnOrigin,
            ),
            ("https://app.example.com//", OriginError::NotAnOrigin),
            ("https://app.example.com?x=1", OriginError::NotAnOrigin),
            ("https://app.example.com/#top", OriginError::NotAnOrigin),
            ("https://me@app.example.com", OriginError::Malformed),
            ("https://app .example.com", OriginError::Malformed),
        ];
        for (given, error) in refused {
            assert_eq!(normalize_origin(given), Err(error), "{given}");
        }
    }

    #[test]
    fn the_setting_is_unset_any_or_origins() {
        let none: [&str; 0] = [];
        assert_eq!(
            AuthorizedParties::parse(&none),
            Ok(AuthorizedParties::Unset)
        );
        assert_eq!(
            AuthorizedParties::parse(&[" * "]),
            Ok(AuthorizedParties::Any)
        );
        assert_eq!(
            AuthorizedParties::parse(&["https://a.example.com/", "", "https://A.example.com"]),
            Ok(AuthorizedParties::Only(vec![
                "https://a.example.com".into()
            ]))
        );
        let empty = AuthorizedParties::parse(&[""]).unwrap_err();
        assert!(empty[0].starts_with("is set but empty"), "{empty:?}");
        let mixed = AuthorizedParties::parse(&["*", "https://a.example.com"]).unwrap_err();
        assert_eq!(mixed.len(), 1, "{mixed:?}");
        let paths =
            AuthorizedParties::parse(&["https://a.example.com/x", "b.example.com"]).unwrap_err();
        assert_eq!(paths.len(), 2, "every bad value is named: {paths:?}");
        assert!(paths[0].contains("can never match"), "{paths:?}");
    }
}
