//! Integration tests of the devstack crate: the services over real HTTP on loopback.

mod clerk_api;
mod faults;
mod flow;
mod instant_errors;
mod node;
mod redis;
mod support;
mod webhooks;
