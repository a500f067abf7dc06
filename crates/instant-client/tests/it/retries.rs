//! Retries and timeouts against loopback servers that fail, rate limit, hang or drop
//! the connection: the number of requests that reached the server is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_retry::TestClock;

use instant_client::{
    Error, IdToken, IdTokenSignIn, Outage, Query, RetryPolicy, Transaction, UserRef,
};
use serde_json::json;

use crate::support::{
    Misbehave, RawServer, Reply, Server, builder, client, fast_retries, refresh_token, refused_url,
    user_id,
};

fn goals() -> Query {
    Query::new(json!({"goals": {}}))
}

fn unavailable() -> Reply {
    Reply::Json(503, json!({"type": "unknown", "message": "down"}))
}

fn tx() -> Transaction {
    Transaction::new().update("goals", user_id(), json!({"title": "t"}))
}

#[tokio::test]
async fn reads_retry_through_transient_failures() {
    let server = Server::scripted([
        unavailable(),
        Reply::Raw(502, "text/html", "<html>Bad Gateway</html>"),
    ])
    .await;
    let client = client(&server.url());
    let tree = client.query(&goals()).await.unwrap();
    assert_eq!(tree["goals"][0]["title"], "x");
    assert_eq!(server.hits(), 3);

    // Every read endpoint retries.
    server.push(Reply::Raw(504, "text/plain", "gateway timeout"));
    client.get_user(&UserRef::Id(user_id())).await.unwrap();
    server.push(Reply::Raw(504, "text/plain", "gateway timeout"));
    client.verify_refresh_token(&refresh_token()).await.unwrap();
    assert_eq!(server.hits(), 7);
}

#[tokio::test]
async fn reads_give_up_after_max_attempts() {
    let server = Server::always(unavailable()).await;
    let client = builder(&server.url())
        .retry(fast_retries().max_attempts(4))
        .build()
        .unwrap();
    let err = client.query(&goals()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                attempts: 4,
                cause: Outage::Status { status: 503, .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.hits(), 4);
    assert!(err.to_string().contains("after 4 attempt(s)"), "{err}");
}

#[tokio::test]
async fn answers_that_will_not_change_are_not_retried() {
    for reply in [
        Reply::Json(500, json!({"type": "unknown", "message": "bug"})),
        Reply::Json(
            400,
            json!({"type": "param-missing", "message": "Missing parameter"}),
        ),
        Reply::Raw(200, "text/html", "<html/>"),
    ] {
        let server = Server::always(reply.clone()).await;
        let err = client(&server.url()).query(&goals()).await.unwrap_err();
        assert_eq!(server.hits(), 1, "{reply:?}: {err}");
    }
}

#[tokio::test]
async fn writes_and_sign_ins_are_retried_only_when_opted_in() {
    let server = Server::always(unavailable()).await;
    let client = client(&server.url());
    let sign_in = IdTokenSignIn::new(IdToken::new("eyJhbGciOi.eyJzdWIi.sig").unwrap(), "clerk");
    let _ = client.transact(&tx()).await.unwrap_err();
    let _ = client.sign_in_with_id_token(&sign_in).await.unwrap_err();
    let _ = client.sign_out(&refresh_token()).await.unwrap_err();
    let _ = client
        .delete_user(&UserRef::Id(user_id()))
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 4, "one request each");

    let opted_in = builder(&server.url())
        .retry(fast_retries().retry_writes(true))
        .build()
        .unwrap();
    let err = opted_in.transact(&tx()).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { attempts: 3, .. }),
        "{err:?}"
    );
    let _ = opted_in.sign_in_with_id_token(&sign_in).await.unwrap_err();
    assert_eq!(server.hits(), 4 + 3 + 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = Server::scripted([Reply::TooManyRequests("1")]).await;
    let clock = Arc::new(TestClock::new());
    let client = builder(&server.url())
        .retry(fast_retries().max_delay(Duration::from_secs(2)))
        .clock(clock.clone())
        .build()
        .unwrap();
    client.query(&goals()).await.unwrap();
    // The backoff (at most 20 ms here) is raised to what `Retry-After` asked.
    assert_eq!(clock.sleeps(), [Duration::from_secs(1)]);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_allowed_is_returned_not_slept() {
    let server = Server::always(Reply::TooManyRequests("120")).await;
    let clock = Arc::new(TestClock::new());
    let client = builder(&server.url()).clock(clock.clone()).build().unwrap();
    let err = client.query(&goals()).await.unwrap_err();
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
    assert!(
        matches!(err, Error::RateLimited { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn rate_limits_are_retried_then_reported() {
    let server = Server::always(Reply::TooManyRequests("0")).await;
    let err = client(&server.url()).query(&goals()).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn a_hanging_server_times_out_every_attempt() {
    let server = Server::always(Reply::Hang).await;
    let client = builder(&server.url())
        .timeout(Duration::from_millis(100))
        .retry(fast_retries().max_attempts(2))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = client.query(&goals()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                cause: Outage::Timeout,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.hits(), 2);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let err = client.transact(&tx()).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Unavailable {
            cause: Outage::Timeout,
            attempts: 1,
            ..
        }
    ));
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn a_dropped_connection_is_retried_for_reads_only() {
    let server = RawServer::start(Misbehave::Drop).await;
    let client = client(&server.url());
    let err = client.query(&goals()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                cause: Outage::ConnectionLost,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.hits(), 3);
    let _ = client.transact(&tx()).await.unwrap_err();
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn a_refused_connection_is_retried_for_reads() {
    let client = client(&refused_url().await);
    let err = client.get_user(&UserRef::Id(user_id())).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unavailable {
                cause: Outage::Connect,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the transport error is chained"
    );
}

#[tokio::test]
async fn retries_stop_when_the_time_budget_is_spent() {
    let server = Server::always(unavailable()).await;
    let policy = RetryPolicy::default()
        .max_attempts(1000)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(5))
        .max_elapsed(Duration::from_millis(300));
    let clock = Arc::new(TestClock::new());
    let client = builder(&server.url())
        .retry(policy)
        .clock(clock.clone())
        .build()
        .unwrap();
    let start = Instant::now();
    let err = client.query(&goals()).await.unwrap_err();
    let Error::Unavailable { attempts, .. } = err else {
        panic!("{err:?}")
    };
    assert!((2..1000).contains(&attempts), "{attempts}");
    assert_eq!(server.hits(), attempts as usize);
    // Waits of 2.5 to 5 ms (jittered), none starting past the 300 ms budget.
    assert_eq!(clock.sleeps().len(), attempts as usize - 1);
    assert!(
        clock.slept() < Duration::from_millis(300),
        "{:?}",
        clock.slept()
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
