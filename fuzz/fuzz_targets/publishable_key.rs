//! Feeds arbitrary text to `PublishableKey::parse`. It may not panic, and a key it
//! accepts must derive well-formed URLs: the issuer, JWKS and discovery URLs parse as
//! absolute `http(s)` URIs whose authority is the Frontend API host (`http` only for an
//! IPv4 loopback host), the key re-parses to itself and `for_host` rebuilds the same
//! host, and the cookie suffix is 8 URL-safe characters.
#![no_main]

use clerk_jwt::{InstanceKind, PublishableKey};
use http::Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(pk) = PublishableKey::parse(text) else {
        return;
    };
    let host = pk.frontend_api();
    let scheme = if pk.is_loopback() { "http" } else { "https" };
    for url in [pk.issuer(), pk.jwks_url(), pk.discovery_url()] {
        assert!(url.starts_with(&format!("{scheme}://{host}")), "{url}");
        let uri: Uri = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(uri.scheme_str(), Some(scheme), "{url}");
        assert_eq!(uri.authority().map(|a| a.as_str()), Some(host), "{url}");
    }
    assert_eq!(pk.issuer(), format!("{scheme}://{host}"));

    let expected = if text.trim().starts_with("pk_live_") {
        InstanceKind::Production
    } else {
        InstanceKind::Development
    };
    assert_eq!(pk.kind(), expected);
    assert_eq!(PublishableKey::parse(pk.as_str()).as_ref(), Ok(&pk));
    let rebuilt = PublishableKey::for_host(pk.kind(), host).expect("for_host of a valid host");
    assert_eq!(rebuilt.frontend_api(), host);
    assert_eq!(rebuilt.kind(), pk.kind());

    let suffix = pk.cookie_suffix();
    assert_eq!(suffix.len(), 8);
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
});
