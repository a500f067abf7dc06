//! The crate's error type, grouped by what the caller does next.

use std::path::PathBuf;

use http::Method;

/// A failure of a devstack call. Never contains a secret (keys, tokens).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server could not listen: pick another port, or stop what holds it.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Bind {
        /// The port asked for (0 means any free port).
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A record named by id does not exist: fix the id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up (`user`, `session`, `app`, …).
        kind: &'static str,
        /// The id or name given.
        id: String,
    },
    /// The session is not active, so it mints no token: create a new session.
    #[error("session {id} is {status}, not active: it mints no more tokens")]
    SessionNotActive {
        /// The session id.
        id: String,
        /// Its status (`revoked`, `ended`, `removed`, …).
        status: String,
    },
    /// An argument is invalid: fix it.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The signing key file could not be read, parsed or written.
    #[error("signing key file {}: {detail}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A local Clerk Backend API call answered with an error (from [`crate::ClerkBackend`]).
    #[error("{method} {url} answered HTTP {status}: {code}: {message}")]
    Backend {
        /// The HTTP method.
        method: Method,
        /// The URL called (no secret in it).
        url: String,
        /// The HTTP status.
        status: u16,
        /// Clerk's error code, e.g. `resource_not_found`.
        code: String,
        /// Clerk's message.
        message: String,
    },
    /// A program the local stack runs is not installed: install it.
    #[error("{program} is not installed (or not on PATH): install it with `{install}`")]
    MissingProgram {
        /// The program, as given.
        program: String,
        /// The command that installs it.
        install: &'static str,
        /// The error from starting it.
        #[source]
        source: std::io::Error,
    },
    /// A program the local stack runs did not start, or did not answer.
    #[error("{program} on 127.0.0.1:{port} {problem}")]
    Process {
        /// The program, as given.
        program: String,
        /// The port it was to listen on.
        port: u16,
        /// What went wrong.
        problem: String,
        /// The error from starting it, if that is what failed.
        #[source]
        source: Option<std::io::Error>,
    },
    /// A local Clerk Backend API call failed in transport: is the local Clerk running?
    #[error("{method} {url} failed")]
    Transport {
        /// The HTTP method.
        method: Method,
        /// The URL called.
        url: String,
        /// The HTTP client's error (its URL removed: the message names it).
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }

    /// Whether the failure names a record that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. }) || matches!(self, Error::Backend { status: 404, .. })
    }
}
