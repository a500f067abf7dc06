//! What a session costs in Redis memory.

use auth_core::SessionStore;
use tokio::task::JoinSet;

use crate::support::{now, raw, redis, session, store};

async fn used_memory(con: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

/// 10,000 sessions of 10,000 users, with realistic ids and user records: the hash,
/// the expiry set's entry and the user's set together stay under 2 KiB a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_costs_under_two_kibibytes_of_redis_memory() {
    const SESSIONS: u32 = 10_000;
    let redis = redis().await;
    let store = store(&redis);
    let mut con = raw(&redis).await;
    let t = now();
    store.ping().await.unwrap();
    let before = used_memory(&mut con).await;
    let mut tasks = JoinSet::new();
    for worker in 0..32u32 {
        let store = store.clone();
        tasks.spawn(async move {
            for n in (worker..SESSIONS).step_by(32) {
                // Clerk ids: a prefix, `_2` and 25 more base62 characters.
                let sid = format!("sess_2{n:0>25}");
                store
                    .insert(&sid, session(n, n, t, 7 * 86_400), t)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(store.len().await.unwrap(), SESSIONS as usize);
    let after = used_memory(&mut con).await;
    let per_session = (after - before) / i64::from(SESSIONS);
    // Measured on Redis 7.0 (jemalloc): about 1,300 bytes, of which the hash holds
    // ~720 (its sealed value ~350), the user's set ~250 (a hashtable before Redis
    // 7.2's listpack sets) and the expiry set's entry ~150.
    assert!(per_session < 2048, "{per_session} bytes a session");
}
