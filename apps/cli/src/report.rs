//! What the commands that talk to Clerk and InstantDB print: a [`Report`] when they
//! did their work, a [`Failure`] when not. Each is text (a failure's on stderr) or,
//! with `--json`, one object on stdout; each carries the outcome for the exit code.
//! Every JSON failure has an `error` object, and only failures have one.
//!
//! Messages come from errors that never hold a token or a secret (the library crates'
//! errors are built that way), so they can be shown as they are.

use serde_json::{Map, Value, json};
use service_config::Problem;

use crate::Outcome;
use crate::output::{eprint, print, print_json};

/// The output of a command that did its work.
#[derive(Debug)]
pub(crate) struct Report {
    /// The `--json` object.
    pub(crate) json: Value,
    /// The text.
    pub(crate) text: String,
    /// Lines for stderr in text mode (the JSON carries the same facts).
    pub(crate) warnings: Vec<String>,
    /// Success, or rejected (a check failed).
    pub(crate) outcome: Outcome,
}

impl Report {
    /// A successful report.
    pub(crate) fn success(json: Value, text: String) -> Self {
        Report {
            json,
            text,
            warnings: Vec::new(),
            outcome: Outcome::Success,
        }
    }
}

/// Prints what a command produced and returns its outcome.
pub(crate) fn finish(result: Result<Report, Failure>, json: bool) -> anyhow::Result<Outcome> {
    match result {
        Ok(report) if json => {
            print_json(&report.json)?;
            Ok(report.outcome)
        }
        Ok(report) => {
            print(&report.text)?;
            for warning in &report.warnings {
                eprint(&format!("warning: {warning}"))?;
            }
            Ok(report.outcome)
        }
        Err(failure) => failure.report(json),
    }
}

/// A command's failure, reported once by [`finish`]. Boxed: it travels through `?`.
#[derive(Debug)]
pub(crate) struct Failure(Box<Details>);

#[derive(Debug)]
struct Details {
    /// A stable kebab-case code.
    code: &'static str,
    /// What happened.
    message: String,
    /// What to do about it.
    hint: Option<String>,
    /// Every configuration problem, when the settings are unusable.
    problems: Vec<Problem>,
    /// Extra top-level JSON fields, e.g. how a one-shot session's sign-out went.
    extra: Map<String, Value>,
    /// Extra text lines, printed before the hint.
    notes: Vec<String>,
    /// Exit 1 (rejected or failed) or 2 (usage or configuration).
    outcome: Outcome,
}

/// The hint printed under every configuration failure.
const CONFIG_HINT: &str = "these commands take the server's settings (flags or the same environment variables); to try them on the local stack, run `clerk-instant dev` and export the environment it prints";

impl Failure {
    fn new(code: &'static str, message: String, hint: Option<String>, outcome: Outcome) -> Self {
        Failure(Box::new(Details {
            code,
            message,
            hint,
            problems: Vec::new(),
            extra: Map::new(),
            notes: Vec::new(),
            outcome,
        }))
    }

    /// Exit 2: the arguments cannot be used as given.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure::new("invalid-input", message.into(), None, Outcome::Invalid)
    }

    /// Exit 2: the settings are unusable; every problem is listed.
    pub(crate) fn config(problems: Vec<Problem>) -> Self {
        let mut failure = Failure::setup("the configuration is not usable");
        failure.0.problems = problems;
        failure
    }

    /// Exit 2: a client could not be built from settings that passed the checks.
    pub(crate) fn setup(message: impl Into<String>) -> Self {
        Failure::new(
            "invalid-configuration",
            message.into(),
            Some(CONFIG_HINT.to_owned()),
            Outcome::Invalid,
        )
    }

    /// Exit 1: a sign-out where at least one half failed (the halves are added with
    /// [`Failure::with`]).
    pub(crate) fn incomplete_sign_out(message: String) -> Self {
        Failure::new("sign-out-incomplete", message, None, Outcome::Rejected)
    }

    /// A broker failure: exit 2 when the configuration must be fixed, else 1.
    pub(crate) fn broker(error: &auth_core::Error) -> Self {
        use auth_core::{Error, ErrorKind};
        let message = match error {
            Error::Token(clerk_jwt::Error::Rejected { detail, .. }) => detail.clone(),
            other => other.to_string(),
        };
        let code = error.code().as_str();
        let hint = match error {
            Error::Token(e) => Some(e.hint().to_owned()),
            Error::EmailNotVerified => Some(
                "the admin strategy signs in only verified emails: add \"email_verified\": \"{{user.email_verified}}\" to the session token (Clerk dashboard, Sessions, Customize session token) and verify the user's email address".to_owned(),
            ),
            Error::NotYourSession => Some(
                "pass the refresh token that `clerk-instant sign-in` printed for this user".to_owned(),
            ),
            _ => match code {
                "instant-misconfigured" => Some(
                    "InstantDB refused the app id, the admin token or the Clerk client name; `clerk-instant doctor --token <token>` checks each".to_owned(),
                ),
                "instant-rate-limited" | "instant-unavailable" | "instant-timeout"
                | "instant-failed" => Some(
                    "retry later; check INSTANT_API_URI (unset: the hosted API) and the network".to_owned(),
                ),
                "instant-bad-response" => Some(
                    "check that INSTANT_API_URI points at an InstantDB server (unset: the hosted API)".to_owned(),
                ),
                _ => None,
            },
        };
        let outcome = if error.kind() == ErrorKind::Config {
            Outcome::Invalid
        } else {
            Outcome::Rejected
        };
        Failure::new(code, message, hint, outcome)
    }

    /// Adds a top-level JSON field and, when given, a line of text to the report.
    pub(crate) fn with(mut self, key: &str, value: Value, note: Option<String>) -> Self {
        self.0.extra.insert(key.to_owned(), value);
        self.0.notes.extend(note);
        self
    }

    /// Prints the failure and returns the outcome for the exit code.
    fn report(self, json: bool) -> anyhow::Result<Outcome> {
        self.0.report(json)
    }
}

impl Details {
    fn report(self, json: bool) -> anyhow::Result<Outcome> {
        if json {
            let mut error = Map::new();
            error.insert("code".into(), json!(self.code));
            error.insert("message".into(), json!(self.message));
            if let Some(hint) = &self.hint {
                error.insert("hint".into(), json!(hint));
            }
            if !self.problems.is_empty() {
                let problems = self
                    .problems
                    .iter()
                    .map(|p| json!({"setting": p.setting, "message": p.message}))
                    .collect();
                error.insert("problems".into(), Value::Array(problems));
            }
            let mut body = Map::new();
            body.insert("error".into(), Value::Object(error));
            body.extend(self.extra);
            print_json(&Value::Object(body))?;
        } else {
            eprint(&self.text())?;
        }
        Ok(self.outcome)
    }

    fn text(&self) -> String {
        let mut text = match self.code {
            "invalid-input" => format!("error: {}\n", self.message),
            "invalid-configuration" if !self.problems.is_empty() => {
                let mut text = format!("error: {}:\n", self.message);
                for problem in &self.problems {
                    text.push_str(&format!("  - {}: {}\n", problem.setting, problem.message));
                }
                text
            }
            code => format!("error: {code}: {}\n", self.message),
        };
        for note in &self.notes {
            text.push_str(note);
            text.push('\n');
        }
        if let Some(hint) = &self.hint {
            text.push_str(&format!("hint: {hint}\n"));
        }
        text
    }
}
