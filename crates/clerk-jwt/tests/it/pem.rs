//! PEM public keys as users paste them (`CLERK_JWT_KEY`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clerk_jwt::testing::pem_encode;
use clerk_jwt::{KeyError, VerifyingKey};

use crate::support::{key, session};

fn verifies(pem: &str) -> bool {
    let verifying = VerifyingKey::from_pem(pem).unwrap_or_else(|e| panic!("{e}: {pem}"));
    let token = session().sign();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    verifying.verify_rs256(input.as_bytes(), &signature)
}

#[test]
fn accepts_the_forms_users_paste() {
    let spki = key().public_pem();
    assert!(verifies(&spki));
    // A .env file with literal \n sequences on one line.
    assert!(verifies(&spki.replace('\n', "\\n")));
    // Just the base64 body, as some dashboards copy it.
    let body: String = spki.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(verifies(&body));
    // Windows line endings and indentation.
    assert!(verifies(&spki.replace('\n', "\r\n    ")));
    // PKCS#1 "RSA PUBLIC KEY".
    let der = STANDARD.decode(body).unwrap();
    let pkcs1 = aws_lc_rs::rsa::PublicKey::from_der(&der).unwrap();
    assert!(verifies(&pem_encode("RSA PUBLIC KEY", pkcs1.as_ref())));
    assert_eq!(VerifyingKey::from_pem(&spki).unwrap().bits(), 2048);
}

#[test]
fn refuses_private_keys_and_garbage_with_a_reason() {
    let private = key().private_pem();
    assert!(matches!(
        VerifyingKey::from_pem(&private),
        Err(KeyError::Pem(_))
    ));
    assert!(!format!("{:?}", VerifyingKey::from_pem(&private)).contains("MII"));
    assert!(matches!(VerifyingKey::from_pem(""), Err(KeyError::Pem(_))));
    assert!(matches!(
        VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----"),
        Err(KeyError::PemBase64(_))
    ));
}
