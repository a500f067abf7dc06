//! Redis down, slow, restarted: calls fail with `Unavailable` within the timeouts, the
//! same store works again when Redis is back, and no error text carries a password.

use std::time::Duration;

use auth_core::{SessionStore, StoreError};
use redis_store::{Outage, RedisStore, Sealing};

use crate::support::{config, keys, now, redis, session, store};

/// Runs a store call, failing the test if it hangs past the store's bound (plus a
/// margin): the store must give up on its own.
async fn bounded<T>(call: impl Future<Output = T>) -> T {
    let bound = crate::support::timeouts().bound() + Duration::from_secs(5);
    tokio::time::timeout(bound, call)
        .await
        .expect("the store gives up within its timeouts")
}

fn outage(err: &StoreError) -> &Outage {
    let StoreError::Unavailable { source } = err else {
        panic!("not unavailable: {err:?}");
    };
    source
        .downcast_ref::<Outage>()
        .expect("the source is an Outage")
}

/// The whole error chain, as a log line would show it.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn redis_killed_then_restarted_the_same_store_recovers() {
    let mut redis = redis().await;
    let store = store(&redis);
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 600), t)
        .await
        .unwrap();

    redis.kill();
    for _ in 0..3 {
        let err = bounded(store.get("sess_a", t)).await.unwrap_err();
        let outage = outage(&err);
        assert!(!outage.is_timeout(), "refused, not timed out: {outage:?}");
        assert!(
            chain(&err).starts_with(&format!(
                "the session store is unavailable: redis at 127.0.0.1:{} failed get",
                redis.port()
            )),
            "{}",
            chain(&err)
        );
    }
    assert!(bounded(store.ping()).await.is_err());

    redis.restart_empty().await.unwrap();
    // The same store, not rebuilt, serves the first call after the restart.
    let got = bounded(store.get("sess_a", t)).await.unwrap();
    assert!(got.is_none(), "Redis came back empty");
    store
        .insert("sess_a", session(1, 2, t, 600), t)
        .await
        .unwrap();
    assert!(store.get("sess_a", t).await.unwrap().is_some());
}

#[tokio::test]
async fn a_store_builds_while_redis_is_down_and_connects_when_it_is_up() {
    let mut redis = redis().await;
    redis.kill();
    let store = RedisStore::new(config(&redis.url(), Sealing::Keys(keys(&[1])))).unwrap();
    let err = bounded(store.ping()).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }));
    redis.restart_empty().await.unwrap();
    bounded(store.ping()).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_restart_while_idle_costs_no_failed_read() {
    let mut redis = redis().await;
    let store = store(&redis);
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 600), t)
        .await
        .unwrap();
    // Redis restarts between two calls: the store's connection is dead, unknown to it.
    redis.restart_empty().await.unwrap();
    assert!(bounded(store.get("sess_a", t)).await.unwrap().is_none());
    redis.restart_empty().await.unwrap();
    let who = [auth_core::Refused::Session("sess_a".into())];
    assert!(!bounded(store.is_refused(&who, t)).await.unwrap());
    // A write that must not run twice reports the dropped connection instead.
    redis.restart_empty().await.unwrap();
    let err = bounded(store.remove("sess_a")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(bounded(store.remove("sess_a")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_redis_that_does_not_answer_times_out() {
    // Accepts connections and never answers a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = RedisStore::new(config(
        &format!("redis://127.0.0.1:{port}"),
        Sealing::Keys(keys(&[1])),
    ))
    .unwrap();
    let t = now();
    let err = bounded(store.get("sess_a", t)).await.unwrap_err();
    assert!(outage(&err).is_timeout(), "{err:?}");
    assert!(chain(&err).contains(&format!(
        "redis at 127.0.0.1:{port} did not answer get within"
    )));
    let err = bounded(store.insert("sess_a", session(1, 1, t, 60), t))
        .await
        .unwrap_err();
    assert!(outage(&err).is_timeout(), "{err:?}");
    silent.abort();
}

#[tokio::test]
async fn no_password_in_debug_or_in_errors() {
    let redis = redis().await;
    let password = "hunter2-Secret-Pw";
    // The server has no password, so AUTH fails: an error about the credentials.
    let url = format!("redis://app:{password}@127.0.0.1:{}/0", redis.port());
    let config = config(&url, Sealing::Keys(keys(&[1])));
    let shown = format!("{config:?}");
    assert!(!shown.contains(password), "{shown}");
    assert!(shown.contains("redis://app:***@127.0.0.1"), "{shown}");
    let store = RedisStore::new(config).unwrap();
    assert!(!format!("{store:?}").contains(password));
    let err = bounded(store.ping()).await.unwrap_err();
    let text = format!("{} {err:?}", chain(&err));
    assert!(!text.contains(password), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    // The key bytes (seed 1) never show either.
    assert!(!shown.contains("AQEBAQEB"), "{shown}");
}

#[tokio::test]
async fn rediss_against_a_plain_redis_fails_as_unavailable() {
    // TLS is compiled in (rustls with aws-lc-rs): a handshake with a server that
    // speaks plain RESP fails, as an outage, not a panic.
    let redis = redis().await;
    let url = format!("rediss://127.0.0.1:{}", redis.port());
    let store = RedisStore::new(config(&url, Sealing::Keys(keys(&[1])))).unwrap();
    let err = bounded(store.ping()).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_full_redis_sheds_new_sessions_changes_nothing_and_still_frees_and_refuses() {
    let redis = redis().await;
    let store = store(&redis);
    let con = crate::support::raw(&redis).await;
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 600), t)
        .await
        .unwrap();
    store
        .insert("sess_b", session(1, 2, t - 100, 10), t)
        .await
        .unwrap();
    let config = |name: &'static str, value: &'static str| {
        let mut con = con.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query_async(&mut con)
                .await
                .unwrap();
        }
    };
    // Full: the policy the docs recommend, and less memory than Redis uses.
    config("maxmemory-policy", "noeviction").await;
    config("maxmemory", "1").await;

    let full = store.insert("sess_c", session(1, 3, t, 600), t).await;
    assert!(matches!(full, Err(StoreError::Full)), "{full:?}");
    let full = store.insert("sess_a", session(1, 4, t, 600), t).await;
    assert!(matches!(full, Err(StoreError::Full)), "{full:?}");
    let full = store
        .insert_if_absent("sess_c", session(1, 3, t, 600), t)
        .await;
    assert!(matches!(full, Err(StoreError::Full)), "{full:?}");
    let full = store.try_lock("sess_c", "me", t, t + 10).await;
    assert!(matches!(full, Err(StoreError::Full)), "{full:?}");
    // Nothing changed, nothing was evicted.
    assert_eq!(
        store
            .get("sess_a", t)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        crate::support::token(1)
    );
    assert!(store.get("sess_c", t).await.unwrap().is_none());
    // Sign-outs are still recorded, and removals and sweeps free memory.
    let who = auth_core::Refused::Session("sess_a".into());
    store.refuse(&who, t, t + 600).await.unwrap();
    assert!(store.is_refused(&[who], t).await.unwrap());
    assert!(store.remove("sess_a").await.unwrap().is_some());
    assert_eq!(store.sweep(t).await.unwrap().len(), 1);
    assert_eq!(store.len().await.unwrap(), 0);

    config("maxmemory", "0").await;
    store
        .insert("sess_c", session(1, 3, t, 600), t)
        .await
        .unwrap();
}

/// A TCP proxy to Redis whose connections can be frozen: a frozen connection stays
/// open and passes nothing more (like a peer gone without a reset, or a fail-over to
/// another address); connections made after the freeze pass.
struct Proxy {
    port: u16,
    freeze: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (freeze, frozen) = tokio::sync::watch::channel(0u64);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut frozen = frozen.clone();
                frozen.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = frozen.changed() => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Proxy { port, freeze, task }
    }

    fn freeze(&self) {
        self.freeze.send_modify(|epoch| *epoch += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_connection_that_stops_answering_is_replaced() {
    let redis = redis().await;
    let proxy = Proxy::start(redis.port()).await;
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let store = RedisStore::new(config(&url, Sealing::Keys(keys(&[1])))).unwrap();
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 600), t)
        .await
        .unwrap();

    proxy.freeze();
    let err = bounded(store.get("sess_a", t)).await.unwrap_err();
    assert!(outage(&err).is_timeout(), "{err:?}");
    // The manager would wait on the silent connection for ever; the store drops it
    // after a timeout, and the next call connects anew.
    let again = bounded(store.get("sess_a", t)).await.unwrap().unwrap();
    assert_eq!(again.refresh_token.expose(), crate::support::token(1));
}
