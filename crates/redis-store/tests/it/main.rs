//! Integration tests of the Redis store, against a real `redis-server` started by
//! `devstack::RedisServer` (one per test, on a free port, persistence off). Without
//! the `redis-server` binary they fail and say how to install it.

mod contract;
mod memory;
mod outage;
mod races;
mod sealing;
mod support;
