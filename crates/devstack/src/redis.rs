//! [`RedisServer`]: a throwaway `redis-server` on `127.0.0.1`, for tests of the Redis
//! session store. Persistence is off, so every start is empty.

use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, Result};

/// The command that installs `redis-server` (Debian and Ubuntu).
pub const REDIS_INSTALL: &str = "apt-get install redis-server";

/// How long a starting server may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A `redis-server` process on a free `127.0.0.1` port, with persistence off
/// (`--save "" --appendonly no`). Stopped when dropped.
///
/// ```no_run
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut redis = devstack::RedisServer::start().await?;
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// redis.pause(); // connections hang
/// redis.resume();
/// redis.kill(); // connections are now refused
/// redis.restart_empty().await?; // the same port, no data
/// # Ok::<(), devstack::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct RedisServer {
    program: OsString,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` from `PATH`. When it is not installed, the error says how
    /// to install it ([`REDIS_INSTALL`]).
    pub async fn start() -> Result<RedisServer> {
        RedisServer::start_program("redis-server").await
    }

    /// Starts this `redis-server` binary.
    pub async fn start_program(program: impl Into<OsString>) -> Result<RedisServer> {
        let program = program.into();
        let mut last = None;
        // A free port can be taken between the probe and the server's bind: try again.
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = RedisServer {
                program: program.clone(),
                port,
                child: None,
            };
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e @ Error::MissingProgram { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server (SIGKILL, like a crash) and waits until it is gone; connections
    /// to its port are refused from then on. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server without ending it (SIGSTOP): connections are accepted and
    /// commands sent, but nothing is answered until [`RedisServer::resume`], like a
    /// Redis that hangs or a network that drops packets. Its data is kept.
    ///
    /// # Panics
    ///
    /// When the signal cannot be sent (no `kill` program): a test could not go on.
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT): it answers what it was sent.
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, signal: &str) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        // `kill` the program, since this crate forbids the unsafe call to libc's.
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            sent.as_ref().is_ok_and(|status| status.success()),
            "kill {signal} {} failed: {sent:?}",
            child.id()
        );
    }

    /// Redis's `used_memory` (bytes), from `INFO memory`.
    pub async fn used_memory(&self) -> Result<u64> {
        let process = |problem: String| Error::Process {
            program: self.program.to_string_lossy().into_owned(),
            port: self.port,
            problem,
            source: None,
        };
        let attempt = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(b"INFO memory\r\n").await?;
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            // A bulk string: `$<len>\r\n<len bytes>\r\n`; read until the line is in.
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&text).contains("used_memory:")
                    && text.ends_with(b"\r\n")
                {
                    let s = String::from_utf8_lossy(&text);
                    let header_len = s.find("\r\n").map_or(0, |i| i + 2);
                    let declared: usize = s[1..header_len.saturating_sub(2).max(1)]
                        .parse()
                        .unwrap_or(0);
                    if text.len() >= header_len + declared + 2 {
                        break;
                    }
                }
            }
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&text).into_owned())
        };
        let text = tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .map_err(|_| process("did not answer INFO memory within 5 s".into()))?
            .map_err(|e| process(format!("INFO memory failed: {e}")))?;
        text.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| process("INFO memory has no used_memory line".into()))
    }

    /// Kills the server if it runs, then starts a new one on the same port, empty.
    pub async fn restart_empty(&mut self) -> Result<()> {
        self.kill();
        self.launch().await
    }

    async fn launch(&mut self) -> Result<()> {
        let program = self.program.to_string_lossy().into_owned();
        let child = Command::new(&self.program)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                "",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::MissingProgram {
                        program: program.clone(),
                        install: REDIS_INSTALL,
                        source,
                    }
                } else {
                    Error::Process {
                        program: program.clone(),
                        port: self.port,
                        problem: "could not be started".into(),
                        source: Some(source),
                    }
                }
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Process {
                    program,
                    port: self.port,
                    problem: format!("exited at start ({status}): is the port taken?"),
                    source: None,
                });
            }
            if ping(self.port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(Error::Process {
                    program,
                    port: self.port,
                    problem: format!("did not answer PING within {} s", READY_WITHIN.as_secs()),
                    source: None,
                });
            }
            // Polling a process that is starting: there is no event to await.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|source| Error::Bind { port: 0, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Bind { port: 0, source })?
        .port();
    Ok(port)
}

/// Whether a Redis server answers `PING` on this port (the inline protocol, so no
/// Redis client is needed).
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(&answer == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}
