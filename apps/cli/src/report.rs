//! What every command prints, through one path: a [`Report`] when it did its work, a
//! [`Failure`] when not, both printed by [`finish`]. Each is text (a failure's on
//! stderr) or, with `--json`, exactly one JSON document on stdout; each carries the
//! outcome for the exit code. Every JSON failure has an `error` object, and only
//! failures have one: a rejected token or a failed doctor check is a report (exit 1)
//! whose JSON says so in its own fields.
//!
//! Messages come from errors that never hold a token or a secret (the library crates'
//! errors are built that way), so they can be shown as they are. A failure's message
//! says what failed and where; the causes follow once, each after a colon.

use std::io;

use serde_json::{Map, Value, json};
use service_config::Problem;

use crate::Outcome;
use crate::output::{eprint, print, print_json};

/// The output of a command that did its work.
#[derive(Debug)]
pub(crate) struct Report {
    /// The `--json` document.
    pub(crate) json: Value,
    /// The text.
    pub(crate) text: String,
    /// Lines for stderr in text mode (the JSON carries the same facts).
    pub(crate) warnings: Vec<String>,
    /// Success, or rejected (the token was rejected, a check failed).
    pub(crate) outcome: Outcome,
    /// The JSON on one line: for a command that keeps running after printing.
    pub(crate) one_line: bool,
}

impl Report {
    /// A successful report.
    pub(crate) fn success(json: Value, text: String) -> Self {
        Report {
            json,
            text,
            warnings: Vec::new(),
            outcome: Outcome::Success,
            one_line: false,
        }
    }

    /// A verdict against the input (exit 1), printed on stdout like a success.
    pub(crate) fn rejected(json: Value, text: String) -> Self {
        Report {
            outcome: Outcome::Rejected,
            ..Report::success(json, text)
        }
    }
}

/// Prints what a command produced and returns its outcome. The error is stdout's
/// (`main` ends quietly when it is a closed pipe).
pub(crate) fn finish(result: Result<Report, Failure>, json: bool) -> io::Result<Outcome> {
    match result {
        Ok(report) if json => {
            print_json(&report.json, report.one_line)?;
            Ok(report.outcome)
        }
        Ok(report) => {
            print(&report.text)?;
            for warning in &report.warnings {
                eprint(&format!("warning: {warning}"));
            }
            Ok(report.outcome)
        }
        Err(failure) => failure.0.report(json),
    }
}

/// `error` and its causes, each after ": ": how the CLI shows a library's error.
///
/// The rule is that a library's message says what failed and its cause travels only
/// as a source, so each cause is printed here once.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `what` failed, then `error` and its causes, each after ": ".
pub(crate) fn because(what: &str, error: &dyn std::error::Error) -> String {
    format!("{what}: {}", describe(error))
}

/// A command's failure, reported once by [`finish`]. Boxed: it travels through `?`.
#[derive(Debug)]
pub(crate) struct Failure(Box<Details>);

/// What kind of failure: decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Exit 2: the arguments cannot be used as given.
    Usage,
    /// Exit 2: the settings must be fixed.
    Config,
    /// Exit 1: a call failed or the input was refused.
    Failed,
    /// Exit 3: the token could not be checked (the keys could not be fetched).
    Unchecked,
}

#[derive(Debug)]
struct Details {
    /// A stable kebab-case code.
    code: &'static str,
    /// What failed and where, then its causes.
    message: String,
    /// What to do about it.
    hint: Option<String>,
    /// Every configuration problem, when the settings are unusable.
    problems: Vec<Problem>,
    /// Extra top-level JSON fields, e.g. how a one-shot session's sign-out went.
    extra: Map<String, Value>,
    /// Extra text lines, printed before the hint.
    notes: Vec<String>,
    class: Class,
    /// Whether the text names the code (`error: <code>: <message>`).
    coded: bool,
}

/// The hint printed under every configuration failure of the session commands.
const CONFIG_HINT: &str = "these commands take the server's settings (flags or the same environment variables); to try them on the local stack, run `clerk-instant dev` and export the environment it prints";

/// The code of every usage error.
const INVALID_INPUT: &str = "invalid-input";
/// The code of every configuration error without a more precise one.
const INVALID_CONFIGURATION: &str = "invalid-configuration";

impl Failure {
    fn new(code: &'static str, message: String, hint: Option<String>, class: Class) -> Self {
        Failure(Box::new(Details {
            code,
            message,
            hint,
            problems: Vec::new(),
            extra: Map::new(),
            notes: Vec::new(),
            class,
            coded: matches!(class, Class::Failed | Class::Unchecked),
        }))
    }

    /// Exit 2: the arguments cannot be used as given.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure::new(INVALID_INPUT, message.into(), None, Class::Usage)
    }

    /// Exit 2: an argument could not be used (`what` failed) because of `error`.
    pub(crate) fn usage_because(what: &str, error: &dyn std::error::Error) -> Self {
        Failure::usage(because(what, error))
    }

    /// Exit 2: clap refused the command line.
    pub(crate) fn from_clap(error: &clap::Error) -> Self {
        use clap::error::ErrorKind;
        if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            // clap renders the whole help here: name what is missing instead.
            return Failure::usage("a subcommand is required")
                .with_hint("run the command with --help to list them");
        }
        let rendered = error.render().to_string();
        let (first, rest) = rendered.split_once("\n\n").unwrap_or((&rendered, ""));
        let first = first.trim();
        let message = first.strip_prefix("error: ").unwrap_or(first);
        let rest = rest.trim();
        let hint = (!rest.is_empty()).then(|| rest.to_owned());
        Failure::new(INVALID_INPUT, message.to_owned(), hint, Class::Usage)
    }

    /// Exit 2: the settings are unusable; every problem is listed.
    pub(crate) fn config(problems: Vec<Problem>) -> Self {
        let mut failure = Failure::setup("the configuration is not usable");
        failure.0.problems = problems;
        failure
    }

    /// Exit 2: a client could not be built from settings that passed the checks.
    pub(crate) fn setup(message: impl Into<String>) -> Self {
        Failure::misconfigured(INVALID_CONFIGURATION, message.into(), CONFIG_HINT)
    }

    /// Exit 2: setting up (`what`) failed because of `error`.
    pub(crate) fn setup_because(what: &str, error: &dyn std::error::Error) -> Self {
        Failure::setup(because(what, error))
    }

    /// Exit 2: the settings must be fixed, as `hint` says.
    pub(crate) fn misconfigured(code: &'static str, message: String, hint: &str) -> Self {
        Failure::new(code, message, Some(hint.to_owned()), Class::Config)
    }

    /// A verifier failure that is not a verdict on the token: exit 3 when the keys could
    /// not be fetched, else 2 (the verifier's configuration must be fixed).
    pub(crate) fn verifier(error: &clerk_jwt::Error) -> Self {
        if error.is_unavailable() {
            return Failure::new(
                error.reason().map_or(INVALID_CONFIGURATION, |r| r.as_str()),
                // The verifier's own message is "<reason>: <cause>": the code and this
                // wording say the first part.
                std::error::Error::source(error).map_or_else(
                    || {
                        "the token could not be checked: the signing keys could not be fetched"
                            .to_owned()
                    },
                    |cause| {
                        because(
                            "the token could not be checked: the signing keys could not be fetched",
                            cause,
                        )
                    },
                ),
                Some(error.hint().to_owned()),
                Class::Unchecked,
            );
        }
        Failure::misconfigured(INVALID_CONFIGURATION, describe(error), error.hint())
    }

    /// Exit 1: a sign-out where at least one half failed (the halves are added with
    /// [`Failure::with`]).
    pub(crate) fn incomplete_sign_out(message: String) -> Self {
        Failure::new("sign-out-incomplete", message, None, Class::Failed)
    }

    /// A broker failure: exit 3 when the token could not be checked, 2 when the
    /// configuration must be fixed, else 1.
    pub(crate) fn broker(error: &auth_core::Error) -> Self {
        use auth_core::{Code, Error, ErrorKind};
        if let Error::Token(token) = error
            && token.is_unavailable()
        {
            return Failure::verifier(token);
        }
        let message = match error {
            Error::Token(clerk_jwt::Error::Rejected { detail, .. }) => detail.clone(),
            other => describe(other),
        };
        let code = error.code();
        let hint = match (error, code) {
            (Error::Token(e), _) => Some(e.hint()),
            (_, Code::EmailUnverified) => Some(
                "the admin strategy signs in only verified emails: add \"email_verified\": \"{{user.email_verified}}\" to the session token (Clerk dashboard, Sessions, Customize session token) and verify the user's email address",
            ),
            (_, Code::SessionNotOwned) => {
                Some("pass the refresh token that `clerk-instant sign-in` printed for this user")
            }
            (_, Code::InstantMisconfigured) => Some(
                "InstantDB refused the app id, the admin token or the Clerk client name; `clerk-instant doctor --token <token>` checks each",
            ),
            (
                _,
                Code::InstantRateLimited
                | Code::InstantUnavailable
                | Code::InstantTimeout
                | Code::InstantFailed,
            ) => Some("retry later; check INSTANT_API_URI (unset: the hosted API) and the network"),
            (_, Code::InstantBadResponse) => Some(
                "check that INSTANT_API_URI points at an InstantDB server (unset: the hosted API)",
            ),
            _ => None,
        };
        let class = if error.kind() == ErrorKind::Config {
            Class::Config
        } else {
            Class::Failed
        };
        let mut failure = Failure::new(code.as_str(), message, hint.map(str::to_owned), class);
        failure.0.coded = true;
        failure
    }

    /// Prints the failure as text on stderr whatever the mode, for a command whose one
    /// JSON document is already out, and returns its outcome.
    #[cfg(feature = "local-stack")]
    pub(crate) fn eprint(self) -> Outcome {
        eprint(&self.0.text());
        self.0.outcome()
    }

    /// The outcome and the `--json` document, as [`finish`] would print it.
    #[cfg(test)]
    pub(crate) fn into_json(self) -> (Outcome, Value) {
        (self.0.outcome(), self.0.json())
    }

    /// Replaces the hint.
    pub(crate) fn with_hint(mut self, hint: &str) -> Self {
        self.0.hint = Some(hint.to_owned());
        self
    }

    /// Adds a top-level JSON field and, when given, a line of text to the report.
    pub(crate) fn with(mut self, key: &str, value: Value, note: Option<String>) -> Self {
        self.0.extra.insert(key.to_owned(), value);
        self.0.notes.extend(note);
        self
    }
}

impl Details {
    fn outcome(&self) -> Outcome {
        match self.class {
            Class::Usage | Class::Config => Outcome::Invalid,
            Class::Failed => Outcome::Rejected,
            Class::Unchecked => Outcome::Unchecked,
        }
    }

    fn report(self, json: bool) -> io::Result<Outcome> {
        let outcome = self.outcome();
        if json {
            print_json(&self.json(), false)?;
        } else {
            eprint(&self.text());
        }
        Ok(outcome)
    }

    fn json(self) -> Value {
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
        Value::Object(body)
    }

    fn text(&self) -> String {
        let mut text = match self.class {
            Class::Config if !self.problems.is_empty() => {
                let mut text = format!("error: {}:\n", self.message);
                for problem in &self.problems {
                    text.push_str(&format!("  - {}: {}\n", problem.setting, problem.message));
                }
                text
            }
            _ if self.coded => format!("error: {}: {}\n", self.code, self.message),
            _ => format!("error: {}\n", self.message),
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

#[cfg(test)]
mod tests {
    use super::*;

    use std::fmt;

    #[derive(Debug)]
    struct Root;

    impl fmt::Display for Root {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk on fire")
        }
    }

    impl std::error::Error for Root {}

    /// A message with the cause as a source only, as the libraries write them.
    #[derive(Debug)]
    struct Context {
        source: Root,
    }

    impl fmt::Display for Context {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading the key file /k failed")
        }
    }

    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    fn context() -> Context {
        Context { source: Root }
    }

    #[test]
    fn each_cause_follows_the_message_once() {
        assert_eq!(
            describe(&context()),
            "reading the key file /k failed: disk on fire"
        );
        assert_eq!(
            because("starting failed", &context()),
            "starting failed: reading the key file /k failed: disk on fire"
        );
    }

    #[test]
    fn each_class_has_its_exit_code_and_text() {
        let usage = Failure::usage("no token given").with_hint("pass one");
        assert_eq!(usage.0.outcome(), Outcome::Invalid);
        assert_eq!(usage.0.text(), "error: no token given\nhint: pass one\n");
        let sign_out =
            Failure::incomplete_sign_out("the Clerk session could not be revoked; retry".into());
        assert_eq!(sign_out.0.outcome(), Outcome::Rejected);
        assert_eq!(
            sign_out.0.text(),
            "error: sign-out-incomplete: the Clerk session could not be revoked; retry\n"
        );
        let (outcome, json) = Failure::setup("x").into_json();
        assert_eq!(outcome, Outcome::Invalid);
        assert_eq!(json["error"]["code"], "invalid-configuration");
    }
}
