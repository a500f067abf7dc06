//! Integration tests of clerk-jwt: every verification rule, the key cache against a
//! JWKS server on 127.0.0.1, and PEM keys.

mod cache;
mod extractor;
mod pem;
mod rules;
mod support;
