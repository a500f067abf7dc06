//! The server over real HTTP on 127.0.0.1, against the local stack.

mod browser;
mod config;
mod connections;
mod cors;
mod dev;
mod failures;
mod flow;
mod openapi;
mod operators;
mod ratelimit;
mod ready;
mod replicas;
mod support;
mod webhooks;
