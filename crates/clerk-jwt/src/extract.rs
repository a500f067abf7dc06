//! Finding the session token in a request's headers, the way Clerk sends it.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::publishable_key::PublishableKey;

/// Where a token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// `Authorization: Bearer <token>`.
    AuthorizationHeader,
    /// A cookie: `__session` or `__session_<suffix>`.
    Cookie(String),
}

/// A token found in a request, borrowed from its headers.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtractedToken<'a> {
    /// The token text (not verified).
    pub token: &'a str,
    /// Where it came from.
    pub location: TokenLocation,
}

impl std::fmt::Debug for ExtractedToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractedToken")
            .field("token", &"[redacted]")
            .field("location", &self.location)
            .finish()
    }
}

/// Finds Clerk session tokens in request headers.
///
/// `Authorization: Bearer` wins, and then cookies are ignored; an `Authorization`
/// header with another scheme carries no Clerk token, and the cookies are read instead.
/// Of the cookies, `__session_<suffix>` (the suffix derived from the publishable key,
/// used when several Clerk apps share a domain) wins over `__session`.
///
/// ```
/// use clerk_jwt::{TokenExtractor, TokenLocation};
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cookie", HeaderValue::from_static("theme=dark; __session=eyJ.a.b"));
/// let found = TokenExtractor::new(None).extract(&headers).unwrap();
/// assert_eq!(found.token, "eyJ.a.b");
/// assert_eq!(found.location, TokenLocation::Cookie("__session".into()));
/// ```
#[derive(Debug, Clone)]
pub struct TokenExtractor {
    suffixed_cookie: Option<String>,
}

/// The session cookie's base name.
pub const SESSION_COOKIE: &str = "__session";

impl TokenExtractor {
    /// An extractor; with a publishable key it also reads the suffixed cookie.
    pub fn new(publishable_key: Option<&PublishableKey>) -> Self {
        TokenExtractor {
            suffixed_cookie: publishable_key
                .map(|pk| format!("{SESSION_COOKIE}_{}", pk.cookie_suffix())),
        }
    }

    /// Finds the token, if the request carries one.
    pub fn extract<'a>(&self, headers: &'a HeaderMap) -> Option<ExtractedToken<'a>> {
        if let Some(token) = headers
            .get_all(AUTHORIZATION)
            .iter()
            .find_map(|v| bearer(v.to_str().ok()?))
        {
            return Some(ExtractedToken {
                token,
                location: TokenLocation::AuthorizationHeader,
            });
        }
        let mut plain = None;
        for header in headers.get_all(COOKIE).iter() {
            let Ok(text) = header.to_str() else { continue };
            for pair in text.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                if value.is_empty() {
                    continue;
                }
                let name = name.trim();
                if self.suffixed_cookie.as_deref() == Some(name) {
                    return Some(ExtractedToken {
                        token: value,
                        location: TokenLocation::Cookie(name.to_owned()),
                    });
                }
                if name == SESSION_COOKIE && plain.is_none() {
                    plain = Some(value);
                }
            }
        }
        plain.map(|token| ExtractedToken {
            token,
            location: TokenLocation::Cookie(SESSION_COOKIE.to_owned()),
        })
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_wins_over_cookies() {
        let h = headers(&[
            ("cookie", "__session=cookie.token.x"),
            ("authorization", "Bearer header.token.x"),
        ]);
        let found = TokenExtractor::new(None).extract(&h).unwrap();
        assert_eq!(found.token, "header.token.x");
        assert_eq!(found.location, TokenLocation::AuthorizationHeader);
        let lower = headers(&[("authorization", "bearer  a.b.c ")]);
        assert_eq!(
            TokenExtractor::new(None).extract(&lower).unwrap().token,
            "a.b.c"
        );
    }

    #[test]
    fn other_schemes_are_not_tokens_and_cookies_are_read() {
        let h = headers(&[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("cookie", "a=1; __session=from.cookie.x"),
        ]);
        let found = TokenExtractor::new(None).extract(&h).unwrap();
        assert_eq!(found.token, "from.cookie.x");
        for value in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "a.b.c",
            "Token a.b.c",
        ] {
            let h = headers(&[("authorization", value)]);
            assert!(TokenExtractor::new(None).extract(&h).is_none(), "{value}");
        }
    }

    #[test]
    fn suffixed_cookie_wins_for_its_key_only() {
        let pk: PublishableKey = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k".parse().unwrap();
        let h = headers(&[
            ("cookie", "__session=plain.x.y"),
            (
                "cookie",
                "__session_naoXFJnI=suffixed.x.y; __session_other123=other.x.y",
            ),
        ]);
        let found = TokenExtractor::new(Some(&pk)).extract(&h).unwrap();
        assert_eq!(found.token, "suffixed.x.y");
        assert_eq!(
            found.location,
            TokenLocation::Cookie("__session_naoXFJnI".into())
        );
        // Without the key, the suffixed cookies are not ours to read.
        assert_eq!(
            TokenExtractor::new(None).extract(&h).unwrap().token,
            "plain.x.y"
        );
        let none = headers(&[("cookie", "__session=; other=1")]);
        assert!(TokenExtractor::new(Some(&pk)).extract(&none).is_none());
    }

    #[test]
    fn debug_hides_the_token() {
        let h = headers(&[("authorization", "Bearer secret.token.value")]);
        let found = TokenExtractor::new(None).extract(&h).unwrap();
        assert!(!format!("{found:?}").contains("secret"));
    }
}
