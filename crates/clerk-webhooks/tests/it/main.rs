//! Integration tests of clerk-webhooks: the published signature vectors and the
//! Standard Webhooks test-suite cases, Clerk's event payloads (fixtures under
//! `tests/fixtures`), secrets, and every error's message.

mod errors;
mod events;
mod secrets;
mod support;
mod verification;
