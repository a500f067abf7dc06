//! The local stack, and the binary run against it with the server's settings in its
//! environment, as a user runs it; transcripts redacted for snapshots.

use std::io::Write as _;
use std::process::{Command, Stdio};

use devstack::{DevStack, DevStackConfig, MintOptions};

/// A setting for the binary's environment: a name and a value, or `None` to leave the
/// setting out.
pub(crate) type Setting = (&'static str, Option<String>);

/// A local Clerk and InstantDB emulator, and the settings that point at them.
pub(crate) struct Stack {
    pub(crate) stack: DevStack,
}

/// What one run of the binary did.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The transcript, as the other CLI snapshots show it.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// stdout as JSON (it must be exactly one JSON document).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}",
                self.transcript()
            )
        })
    }
}

/// Runs the binary with every CLERK_*, INSTANT_* and SIGN_IN_STRATEGY variable of the
/// test's environment removed and `settings` set instead.
pub(crate) fn run(args: &[&str], settings: &[Setting], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clerk-instant"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CLERK_") || name.starts_with("INSTANT_") || name == "SIGN_IN_STRATEGY"
        {
            cmd.env_remove(name);
        }
    }
    for (name, value) in settings {
        if let Some(value) = value {
            cmd.env(name, value);
        }
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    // With a stack, it answers on the runtime's other threads while this one waits.
    let out = match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(|| child.wait_with_output()),
        Err(_) => child.wait_with_output(),
    }
    .unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Replaces the given setting (or adds it); `None` removes it.
pub(crate) fn with(
    mut settings: Vec<Setting>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<Setting> {
    settings.retain(|(n, _)| *n != name);
    settings.push((name, value.map(str::to_owned)));
    settings
}

impl Stack {
    pub(crate) async fn start() -> Stack {
        Stack {
            stack: DevStack::start(DevStackConfig::default()).await.unwrap(),
        }
    }

    /// Every setting the server would be given for this stack.
    pub(crate) fn settings(&self) -> Vec<Setting> {
        let s = &self.stack;
        vec![
            (
                "CLERK_PUBLISHABLE_KEY",
                Some(s.clerk.publishable_key().as_str().to_owned()),
            ),
            (
                "CLERK_SECRET_KEY",
                Some(s.clerk.secret_key().expose().to_owned()),
            ),
            ("CLERK_API_URL", Some(s.clerk.url().to_owned())),
            ("INSTANT_API_URI", Some(s.instant.url().to_owned())),
            ("INSTANT_APP_ID", Some(s.app.id.clone())),
            (
                "INSTANT_APP_ADMIN_TOKEN",
                Some(s.app.admin_token.expose().to_owned()),
            ),
            ("INSTANT_CLERK_CLIENT_NAME", Some(s.client_name.clone())),
        ]
    }

    /// Signs `email` in at the local Clerk: a new session and its first token.
    pub(crate) fn sign_in(&self, email: &str) -> (String, String) {
        let signed_in = self.stack.clerk.sign_in(email).unwrap();
        let token = self.stack.clerk.mint(&signed_in.session.id).unwrap();
        (signed_in.session.id, token)
    }

    /// A token of a new session of `email` whose claims lack `claim`.
    pub(crate) fn token_without(&self, email: &str, claim: &str) -> String {
        let signed_in = self.stack.clerk.sign_in(email).unwrap();
        self.stack
            .clerk
            .token_builder(&signed_in.session.id, &MintOptions::default())
            .unwrap()
            .without_claim(claim)
            .sign()
    }

    /// Refresh tokens the emulator holds for the app.
    pub(crate) fn refresh_tokens(&self) -> usize {
        self.stack
            .instant
            .refresh_tokens_total(&self.stack.app.id)
            .unwrap()
    }

    /// The status of a Clerk session at the local Clerk.
    pub(crate) fn clerk_session_status(&self, session_id: &str) -> String {
        let session = self.stack.clerk.session(session_id).unwrap();
        session.status.as_str().to_owned()
    }

    /// The transcript with this stack's URLs, keys and ids replaced by names, after
    /// checking that no secret of the stack is in it. `token` is the Clerk token of
    /// the run, which only `sign-in` may not print either.
    pub(crate) fn redact(&self, run: &Run, token: Option<&str>) -> String {
        let s = &self.stack;
        let text = run.transcript();
        for secret in [s.clerk.secret_key().expose(), s.app.admin_token.expose()] {
            assert!(!text.contains(secret), "a secret was printed:\n{text}");
        }
        if let Some(token) = token {
            assert!(!text.contains(token), "the token was printed:\n{text}");
        }
        let clerk_host = s.clerk.url().trim_start_matches("http://").to_owned();
        text.replace(s.clerk.publishable_key().as_str(), "[publishable key]")
            .replace(s.clerk.url(), "[clerk]")
            .replace(&clerk_host, "[clerk host]")
            .replace(s.instant.url(), "[instant]")
            .replace(&s.app.id, "[app id]")
    }

    pub(crate) async fn shutdown(self) {
        self.stack.shutdown().await;
    }
}

/// Snapshots `text` with the random values of a run (Clerk ids, InstantDB ids and
/// refresh tokens, times) replaced by names.
#[macro_export]
macro_rules! assert_redacted_snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({filters => vec![
            (r"user_[A-Za-z0-9]{20,}", "[clerk user]"),
            (r"sess_[A-Za-z0-9]{20,}", "[clerk session]"),
            (r#"("refresh_token": "|refresh token\s+)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"#, "$1[refresh token]"),
            (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]"),
            (r#""created_at": "[^"]*""#, r#""created_at": "[time]""#),
            (r#""created_at": \d+"#, r#""created_at": "[time]""#),
        ]}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}
