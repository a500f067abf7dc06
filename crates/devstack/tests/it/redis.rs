//! `RedisServer`: a real `redis-server`, started, killed, restarted empty and stopped.
//! Needs the `redis-server` binary; without it the tests fail and say how to install
//! it (they are never skipped).

use std::time::Duration;

use devstack::{Error, REDIS_INSTALL, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn redis() -> RedisServer {
    RedisServer::start()
        .await
        .unwrap_or_else(|e| panic!("redis-server is needed for these tests: {e}"))
}

/// Sends one inline command and returns the first line of the answer.
async fn command(port: u16, line: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(format!("{line}\r\n").as_bytes()).await?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("redis answers within 5 s")?;
        if n == 0 {
            break;
        }
        answer.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&answer).trim_end().to_owned())
}

#[tokio::test]
async fn it_answers_on_its_url_with_persistence_off() {
    let mut redis = redis().await;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert!(redis.is_running());
    assert_eq!(command(redis.port(), "PING").await.unwrap(), "+PONG");
    assert_eq!(
        command(redis.port(), "CONFIG GET save").await.unwrap(),
        "*2",
        "an array of two: the name and an empty value"
    );
    assert_eq!(
        command(redis.port(), "CONFIG GET appendonly")
            .await
            .unwrap(),
        "*2"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .unwrap();
    stream
        .write_all(b"CONFIG GET appendonly\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).ends_with("$2\r\nno\r\n"));
}

#[tokio::test]
async fn killed_it_refuses_connections_and_restarts_empty_on_the_same_port() {
    let mut redis = redis().await;
    let port = redis.port();
    assert_eq!(command(port, "SET greeting hello").await.unwrap(), "+OK");
    assert_eq!(command(port, "EXISTS greeting").await.unwrap(), ":1");

    redis.kill();
    assert!(!redis.is_running());
    let refused = command(port, "PING").await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    redis.restart_empty().await.unwrap();
    assert_eq!(redis.port(), port);
    assert_eq!(command(port, "EXISTS greeting").await.unwrap(), ":0");
    // Restarting a running server also empties it.
    assert_eq!(command(port, "SET greeting again").await.unwrap(), "+OK");
    redis.restart_empty().await.unwrap();
    assert_eq!(command(port, "EXISTS greeting").await.unwrap(), ":0");
}

#[tokio::test]
async fn dropped_it_stops() {
    let redis = redis().await;
    let port = redis.port();
    drop(redis);
    let refused = command(port, "PING").await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_missing_binary_fails_with_the_install_command() {
    let err = RedisServer::start_program("redis-server-not-installed-here")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingProgram { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "redis-server-not-installed-here is not installed (or not on PATH): install it with `{REDIS_INSTALL}`"
        )
    );
    assert_eq!(REDIS_INSTALL, "apt-get install redis-server");
}

#[tokio::test]
async fn paused_it_answers_nothing_until_resumed_and_keeps_its_data() {
    let mut redis = redis().await;
    let port = redis.port();
    assert_eq!(command(port, "SET greeting hello").await.unwrap(), "+OK");
    redis.pause();
    assert!(redis.is_running(), "stopped, not ended");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"EXISTS greeting\r\n").await.unwrap();
    let mut answer = [0u8; 4];
    let silent = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut answer)).await;
    assert!(silent.is_err(), "a paused server answered: {silent:?}");
    redis.resume();
    // The command sent while paused is answered now.
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered once resumed")
        .unwrap();
    assert_eq!(&answer[..n], b":1\r\n");
    // A paused server is killed like a running one.
    redis.pause();
    redis.kill();
    let refused = command(port, "PING").await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
