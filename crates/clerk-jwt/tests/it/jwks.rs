//! JWKS documents whose RSA components cannot be a key: refused with a typed error that
//! names the kid and the field, never a panic or a nonsense bit count.

use std::error::Error as _;

use clerk_jwt::{KeyError, KeySet, VerifyingKey};

use crate::support::key;

/// A JWKS with one RSA signing key `k1` whose `n` and `e` are the given base64url texts.
fn jwks(n: &str, e: &str) -> Vec<u8> {
    format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"{n}","e":"{e}"}}]}}"#
    )
    .into_bytes()
}

fn refused(n: &str, e: &str) -> KeyError {
    match KeySet::from_jwks_json(&jwks(n, e)) {
        Ok(set) => panic!("accepted {set:?} for n={n:?} e={e:?}"),
        Err(error) => error,
    }
}

#[test]
fn an_empty_or_zero_modulus_is_refused_naming_kid_and_field() {
    // "" is no bytes, "AA" one zero byte, "AAAA" three, all of which strip to nothing.
    for n in ["", "AA", "AAAA", "AAAAAAAAAAAAAAAAAAAA"] {
        let error = refused(n, "AQAB");
        let KeyError::EmptyComponent { kid, field } = &error else {
            panic!("n={n:?}: {error:?}");
        };
        assert_eq!((kid.as_deref(), *field), (Some("k1"), "n"));
        let text = error.to_string();
        assert_eq!(text, "rsa key \"k1\" has an empty or all-zero n");
        assert!(error.source().is_none());
    }
}

#[test]
fn an_empty_or_zero_exponent_is_refused_naming_kid_and_field() {
    let n = key().jwk()["n"].as_str().unwrap().to_owned();
    for e in ["", "AA", "AAAA"] {
        let error = refused(&n, e);
        assert!(
            matches!(&error, KeyError::EmptyComponent { kid: Some(kid), field: "e" } if kid == "k1"),
            "e={e:?}: {error:?}"
        );
        // The message names the field, never the value.
        assert!(!error.to_string().contains(&n[..16]));
    }
    // The real key still parses.
    assert_eq!(KeySet::from_jwks_json(&jwks(&n, "AQAB")).unwrap().len(), 1);
}

#[test]
fn components_without_a_kid_are_refused_too() {
    for (n, e, field) in [
        (&[][..], &[1u8, 0, 1][..], "n"),
        (&[0, 0][..], &[1, 0, 1][..], "n"),
        (&[0xc5; 256][..], &[][..], "e"),
        (&[0xc5; 256][..], &[0][..], "e"),
    ] {
        let error = VerifyingKey::from_components(None, n, e).unwrap_err();
        assert!(
            matches!(&error, KeyError::EmptyComponent { kid: None, field: f } if *f == field),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("rsa key without a kid has an empty or all-zero {field}")
        );
    }
}

#[test]
fn a_leading_zero_byte_does_not_count_towards_the_size() {
    // 2048 bits of modulus behind a zero byte is 2048 bits, not 2056; 2040 bits behind
    // one is still too small.
    let mut small = vec![0u8];
    small.extend([0xc5; 255]);
    assert!(matches!(
        VerifyingKey::from_components(None, &small, &[1, 0, 1]),
        Err(KeyError::Size(2040))
    ));
    let mut one_bit = vec![0u8; 300];
    one_bit.push(1);
    assert!(matches!(
        VerifyingKey::from_components(None, &one_bit, &[1, 0, 1]),
        Err(KeyError::Size(1))
    ));
}
