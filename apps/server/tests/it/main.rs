//! The server over real HTTP on 127.0.0.1, against the local stack.

mod config;
mod connections;
mod failures;
mod flow;
mod ratelimit;
mod support;
mod webhooks;
