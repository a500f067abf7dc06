//! Integration tests of clerk-jwt: every verification rule, the key cache against a
//! JWKS server on 127.0.0.1, PEM keys, and a snapshot of the rejection texts.

mod cache;
mod extractor;
mod jwks;
mod pem;
mod rules;
mod support;
mod texts;
