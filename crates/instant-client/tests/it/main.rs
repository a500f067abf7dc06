//! Integration tests of instant-client against servers on 127.0.0.1: wire conformance
//! with the official SDKs' recorded requests, answers and errors, retries and
//! timeouts, redaction, transaction bodies, and transactions parsed from JSON.

mod chains;
mod parsing;
mod redaction;
mod responses;
mod retries;
mod support;
mod transactions;
mod wire;
