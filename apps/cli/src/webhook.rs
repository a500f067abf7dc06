//! `clerk-instant webhook verify`: verify a captured Clerk (Svix) delivery offline.
//!
//! The body comes from a file or stdin, the headers from a file (`name: value` lines as
//! the Svix dashboard or `curl -v` shows them, or a JSON object) or from flags, the
//! secret from `CLERK_WEBHOOK_SIGNING_SECRET` or `--secret-file` (never a flag value:
//! it would show in `ps`). `clerk_webhooks::Verifier` decides; this file only reads the
//! inputs and words the verdict. Neither the body nor the secret is ever printed.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use clerk_webhooks::{Delivery, Error, HeaderSet, Secrets, Verifier};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::date;
use crate::output::rows;
use crate::report::{Failure, Report, because, describe};

/// The environment variable the server reads the signing secret(s) from.
const SECRET_ENV: &str = "CLERK_WEBHOOK_SIGNING_SECRET";

/// The fix for a missing or unusable secret.
const SECRET_HINT: &str = "set CLERK_WEBHOOK_SIGNING_SECRET (or pass --secret-file FILE) to the endpoint's signing secret, whsec_… (Clerk dashboard, Webhooks, the endpoint, Signing Secret); during a rotation give the old and the new, separated by a space or a comma";

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Verify a captured Clerk webhook delivery offline and print the verdict, the
    /// message id, the event type and the Clerk ids (never the body or the secret).
    /// The secret comes from CLERK_WEBHOOK_SIGNING_SECRET or --secret-file. Exit 0
    /// verified, 1 refused, 2 usage or configuration error.
    Verify(Box<VerifyArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The raw body, exactly as delivered (not re-formatted), from FILE, or - for stdin.
    #[arg(long, value_name = "FILE")]
    body: PathBuf,
    /// The delivery's headers from FILE (or - for stdin): `name: value` lines as the
    /// Svix dashboard or `curl -v` shows them, or a JSON object. `svix-*` or
    /// `webhook-*` names, in any case; other lines are ignored.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["id", "timestamp", "signature"])]
    headers: Option<PathBuf>,
    /// The svix-id header's value (instead of --headers).
    #[arg(long, value_name = "MSG_ID")]
    id: Option<String>,
    /// The svix-timestamp header's value, Unix seconds (instead of --headers).
    #[arg(long, value_name = "UNIX_SECONDS")]
    timestamp: Option<String>,
    /// The svix-signature header's value: space-separated `v1,<base64>` entries
    /// (instead of --headers).
    #[arg(long, value_name = "SIGNATURES")]
    signature: Option<String>,
    /// Read the signing secret(s) from FILE instead of CLERK_WEBHOOK_SIGNING_SECRET:
    /// whsec_…, several separated by whitespace or commas (a rotation).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Check as of this time instead of now (Unix seconds or RFC 3339, e.g.
    /// 2022-04-07T21:39:13Z): the tolerance applies relative to it, so an old capture
    /// can be checked.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    at: Option<u64>,
    /// How far the signed timestamp may be from the check time, either way, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    tolerance: u64,
}

fn parse_at(text: &str) -> Result<u64, String> {
    date::parse_instant(text).ok_or_else(|| {
        "expected Unix seconds or an RFC 3339 date such as 2022-04-07T21:39:13Z".to_owned()
    })
}

/// Runs `clerk-instant webhook …`.
pub(crate) fn run(command: WebhookCommand) -> Result<Report, Failure> {
    match command {
        WebhookCommand::Verify(args) => verify(&args),
    }
}

fn verify(args: &VerifyArgs) -> Result<Report, Failure> {
    let secrets = read_secrets(args.secret_file.as_deref())?;
    let stdin = Path::new("-");
    if args.headers.as_deref() == Some(stdin) && args.body == stdin {
        return Err(Failure::usage(
            "--body and --headers cannot both be read from stdin",
        ));
    }
    let headers = match &args.headers {
        Some(path) => parse_headers(&read_input(path, "headers")?, &shown(path))?,
        None => flag_headers(args)?,
    };
    let body = read_input(&args.body, "body")?;
    let now = args.at.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let check = Check {
        verifier: Verifier::new(secrets).with_tolerance(Duration::from_secs(args.tolerance)),
        headers,
        body,
        now,
        at_given: args.at.is_some(),
    };
    check.run()
}

/// Where a path's contents came from, for messages.
fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The bytes of `path`, or of stdin when it is `-`.
fn read_input(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::read(path).map(|b| bytes = b)
    };
    read.map_err(|e| {
        Failure::usage_because(
            &format!("reading the {what} from {} failed", shown(path)),
            &e,
        )
    })?;
    Ok(bytes)
}

/// The secrets from `--secret-file` or else `CLERK_WEBHOOK_SIGNING_SECRET`; a missing
/// or unusable one is a configuration error (exit 2) whose fix names the variable.
fn read_secrets(file: Option<&Path>) -> Result<Secrets, Failure> {
    let (text, source) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::misconfigured(
                    Error::NoSecret.code(),
                    because(
                        &format!("reading the secret file {} failed", path.display()),
                        &e,
                    ),
                    SECRET_HINT,
                )
            })?;
            (text, format!("the secret file {}", path.display()))
        }
        None => match std::env::var_os(SECRET_ENV) {
            // Not UTF-8: the lossy text fails as a secret that is not base64.
            Some(value) => (value.to_string_lossy().into_owned(), SECRET_ENV.to_owned()),
            None => (String::new(), SECRET_ENV.to_owned()),
        },
    };
    Secrets::parse(&text).map_err(|error| {
        let message = if matches!(error, Error::NoSecret) && file.is_none() {
            format!("no webhook signing secret was given: {SECRET_ENV} is unset or empty")
        } else {
            because(&format!("{source} is not usable"), &error)
        };
        Failure::misconfigured(error.code(), message, SECRET_HINT)
    })
}

/// Whether a header is one a delivery is verified by.
fn is_delivery_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("svix-") || name.starts_with("webhook-")
}

/// The `svix-*` and `webhook-*` headers of a headers file: a JSON object, or
/// `name: value` lines (a `< ` or `> ` in front, as `curl -v` prints, is dropped;
/// lines that are not headers are skipped). Names are case-insensitive.
fn parse_headers(bytes: &[u8], shown: &str) -> Result<HeaderMap, Failure> {
    let text = String::from_utf8_lossy(bytes);
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &str, place: &dyn Fn() -> String| {
        let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
            return Ok(());
        };
        if !is_delivery_header(&name) {
            return Ok(());
        }
        let value = HeaderValue::from_bytes(value.trim().as_bytes()).map_err(|_| {
            Failure::usage(format!(
                "{}: the value of {name} holds characters a header cannot hold",
                place()
            ))
        })?;
        headers.append(name, value);
        Ok(())
    };
    if text.trim_start().starts_with('{') {
        let object: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
            Failure::usage(format!(
                "the headers file {shown} is not a JSON object of header names and values (line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        for (name, value) in &object {
            let place = || format!("the headers file {shown}");
            match value {
                Value::String(value) => add(name, value, &place)?,
                Value::Array(values) => {
                    for value in values {
                        match value {
                            Value::String(value) => add(name, value, &place)?,
                            _ => return Err(not_text(shown, name)),
                        }
                    }
                }
                _ => return Err(not_text(shown, name)),
            }
        }
    } else {
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            let line = line
                .strip_prefix("< ")
                .or_else(|| line.strip_prefix("> "))
                .unwrap_or(line);
            if let Some((name, value)) = line.split_once(':') {
                let place = || format!("line {} of the headers file {shown}", index + 1);
                add(name, value, &place)?;
            }
        }
    }
    Ok(headers)
}

fn not_text(shown: &str, name: &str) -> Failure {
    Failure::usage(format!(
        "the headers file {shown}: the value of {} is not a string",
        name.to_ascii_lowercase()
    ))
}

/// The `svix-*` headers given as flags; an absent one is left for the verifier to
/// name.
fn flag_headers(args: &VerifyArgs) -> Result<HeaderMap, Failure> {
    let mut headers = HeaderMap::new();
    for (flag, set_name, value) in [
        ("--id", HeaderSet::Svix.id(), &args.id),
        ("--timestamp", HeaderSet::Svix.timestamp(), &args.timestamp),
        ("--signature", HeaderSet::Svix.signature(), &args.signature),
    ] {
        if let Some(value) = value {
            let value = HeaderValue::from_str(value.trim()).map_err(|_| {
                Failure::usage(format!("{flag} holds characters a header cannot hold"))
            })?;
            headers.insert(set_name, value);
        }
    }
    Ok(headers)
}

/// One delivery to check, and what it is checked with.
struct Check {
    verifier: Verifier,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The check time, Unix seconds.
    now: u64,
    /// Whether it came from `--at`.
    at_given: bool,
}

/// What is known of the signature.
enum Signature {
    /// A secret (this index, from 0) signed the delivery.
    Valid(usize),
    /// No `v1` signature matches under any secret.
    Invalid,
    /// The headers did not allow a check.
    Unchecked,
}

impl Check {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.now)
    }

    fn run(&self) -> Result<Report, Failure> {
        match self.verifier.verify(&self.headers, &self.body, self.now()) {
            Ok(delivery) => Ok(self.verified(&delivery)),
            Err(error) if error.is_config() => Err(Failure::misconfigured(
                error.code(),
                describe(&error),
                SECRET_HINT,
            )),
            Err(error) => Ok(self.refused(&error)),
        }
    }

    /// The verifier, with no limit on the timestamp's distance.
    fn lenient(&self, secrets: impl Into<Secrets>) -> Verifier {
        Verifier::new(secrets).with_tolerance(Duration::from_secs(u64::MAX))
    }

    fn verified(&self, delivery: &Delivery) -> Report {
        let mut json = Map::new();
        json.insert("verified".into(), json!(true));
        json.insert("signature".into(), json!("valid"));
        let mut text = String::from("verified: an authentic Clerk webhook delivery\n");
        let mut facts = Vec::new();
        self.delivery_facts(delivery, &mut json, &mut facts);
        text.push_str(&rows(&facts));
        Report::success(Value::Object(json), text)
    }

    fn refused(&self, error: &Error) -> Report {
        let mut json = Map::new();
        json.insert("verified".into(), json!(false));
        json.insert("code".into(), json!(error.code()));
        json.insert("message".into(), json!(describe(error)));
        json.insert("hint".into(), json!(hint(error)));
        let mut text = format!("refused: {}\n  {}\n", error.code(), describe(error));
        let mut facts = Vec::new();
        let authentic =
            error.is_out_of_tolerance() || matches!(error, Error::InvalidPayload { .. });
        let signature = if error.is_bad_signature() {
            Signature::Invalid
        } else if !authentic {
            Signature::Unchecked
        } else {
            // The library checks the signature before the time and the envelope: this
            // delivery is authentic. Say what it carries, and which secret signed it.
            match self.lenient(self.verifier.secrets().clone()).verify(
                &self.headers,
                &self.body,
                self.now(),
            ) {
                Ok(delivery) => {
                    text.push_str("  the signature is valid: the delivery is authentic\n");
                    json.insert("signature".into(), json!("valid"));
                    self.delivery_facts(&delivery, &mut json, &mut facts);
                    text.push_str(&rows(&facts));
                    text.push_str(&format!("  fix: {}\n", hint(error)));
                    return Report::rejected(Value::Object(json), text);
                }
                Err(_) => match self.secret_index() {
                    Some(index) => Signature::Valid(index),
                    None => Signature::Unchecked,
                },
            }
        };
        match signature {
            Signature::Valid(index) => {
                text.push_str(
                    "  the signature is valid, but the body is not a Clerk event envelope\n",
                );
                json.insert("signature".into(), json!("valid"));
                json.insert("envelope".into(), json!("unreadable"));
                self.header_facts(index, &mut json, &mut facts);
            }
            Signature::Invalid => {
                json.insert("signature".into(), json!("invalid"));
            }
            Signature::Unchecked => {
                json.insert("signature".into(), json!("unchecked"));
            }
        }
        text.push_str(&rows(&facts));
        text.push_str(&format!("  fix: {}\n", hint(error)));
        Report::rejected(Value::Object(json), text)
    }

    /// Which secret signed an authentic delivery whose body cannot be read: each
    /// secret on its own, with no limit on the time.
    fn secret_index(&self) -> Option<usize> {
        self.verifier.secrets().iter().position(|secret| {
            match self
                .lenient(secret.clone())
                .verify(&self.headers, &self.body, self.now())
            {
                Ok(_) => true,
                Err(error) => matches!(error, Error::InvalidPayload { .. }),
            }
        })
    }

    /// The facts of a delivery whose envelope was read.
    fn delivery_facts(
        &self,
        delivery: &Delivery,
        json: &mut Map<String, Value>,
        facts: &mut Vec<(&'static str, String)>,
    ) {
        let event = &delivery.event;
        json.insert("envelope".into(), json!("clerk-event"));
        json.insert("id".into(), json!(delivery.id));
        json.insert("type".into(), json!(event.event_type()));
        json.insert("known_type".into(), json!(!event.is_unknown()));
        json.insert("user_id".into(), json!(event.user_id()));
        json.insert("session_id".into(), json!(event.session_id()));
        json.insert("instance_id".into(), json!(delivery.instance_id));
        facts.push(("  message", delivery.id.clone()));
        let kind = if event.is_unknown() {
            format!("{} (a type this version does not know)", event.event_type())
        } else {
            event.event_type().to_owned()
        };
        facts.push(("  type", kind));
        facts.push((
            "  user",
            event.user_id().unwrap_or("(none in the event)").to_owned(),
        ));
        if let Some(session) = event.session_id() {
            facts.push(("  session", session.to_owned()));
        }
        if let Some(instance) = &delivery.instance_id {
            facts.push(("  instance", instance.clone()));
        }
        self.common_facts(
            delivery.secret_index,
            delivery.timestamp,
            delivery.header_set,
            json,
            facts,
        );
    }

    /// The facts of an authentic delivery whose envelope cannot be read, from its
    /// headers.
    fn header_facts(
        &self,
        secret_index: usize,
        json: &mut Map<String, Value>,
        facts: &mut Vec<(&'static str, String)>,
    ) {
        let set = HeaderSet::of(&self.headers);
        let value = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let id = value(set.id());
        json.insert("id".into(), json!(id));
        facts.push(("  message", id));
        let timestamp = value(set.timestamp()).parse().unwrap_or_default();
        self.common_facts(secret_index, timestamp, set, json, facts);
    }

    fn common_facts(
        &self,
        secret_index: usize,
        timestamp: u64,
        set: HeaderSet,
        json: &mut Map<String, Value>,
        facts: &mut Vec<(&'static str, String)>,
    ) {
        let secrets = self.verifier.secrets().len();
        json.insert("secret_index".into(), json!(secret_index));
        json.insert("secrets".into(), json!(secrets));
        json.insert("timestamp".into(), json!(timestamp));
        json.insert("signed_at".into(), json!(date::rfc3339(timestamp)));
        json.insert(
            "age_secs".into(),
            json!(i128::from(self.now) - i128::from(timestamp)),
        );
        json.insert("checked_at".into(), json!(date::rfc3339(self.now)));
        json.insert(
            "tolerance_secs".into(),
            json!(self.verifier.tolerance().as_secs()),
        );
        json.insert(
            "header_set".into(),
            json!(match set {
                HeaderSet::Svix => "svix",
                HeaderSet::StandardWebhooks => "webhook",
            }),
        );
        facts.push((
            "  secret",
            format!(
                "{} of {secrets} (index {secret_index})",
                secret_index.saturating_add(1)
            ),
        ));
        facts.push((
            "  signed",
            format!(
                "{} ({})",
                date::rfc3339(timestamp),
                date::relative(timestamp, self.now)
            ),
        ));
        facts.push((
            "  checked",
            format!(
                "{} ({}), tolerance {} s",
                date::rfc3339(self.now),
                if self.at_given { "--at" } else { "now" },
                self.verifier.tolerance().as_secs()
            ),
        ));
    }
}

/// What to do about a refusal, chosen by its kind.
fn hint(error: &Error) -> &'static str {
    if error.is_bad_signature() {
        "verify the exact bytes delivered (not re-formatted JSON) with the signing secret of the endpoint that received them (Clerk dashboard, Webhooks, the endpoint, Signing Secret); during a rotation give the old and the new"
    } else if matches!(error, Error::TimestampTooOld { .. }) {
        "the delivery is authentic but was signed outside the tolerance (a replay, or an old capture): check a capture as of its time with --at, or widen --tolerance"
    } else if matches!(error, Error::TimestampInFuture { .. }) {
        "the delivery is authentic but dated ahead of the check time beyond the tolerance: check the sender's clock, or check as of its time with --at"
    } else if matches!(error, Error::InvalidPayload { .. }) {
        "the signature is valid but the body is not a Clerk event ({\"type\", \"data\", …}): it came from another sender, or the body was captured incompletely"
    } else if error.header().is_some() {
        "give the delivery's svix-id, svix-timestamp and svix-signature (or webhook-*) headers: --headers FILE with `name: value` lines as the Svix dashboard or `curl -v` shows them, or --id, --timestamp and --signature"
    } else {
        "check the capture: the body and the headers must be those of one delivery"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers, sorted by name (a `HeaderMap` keeps no order).
    fn values(headers: &HeaderMap) -> Vec<(String, String)> {
        let mut values: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        values.sort();
        values
    }

    #[test]
    fn header_files_are_read_as_the_dashboard_and_curl_show_them() {
        let text = "\
* Connected to localhost (127.0.0.1) port 3000
> POST /v1/webhooks/clerk HTTP/1.1
> Host: localhost:3000
> Content-Type: application/json
> Svix-Id: msg_1
> SVIX-TIMESTAMP:  1649367553\r
> svix-signature: v1,abc= v1,def=
";
        let headers = parse_headers(text.as_bytes(), "h").unwrap();
        assert_eq!(
            values(&headers),
            [
                ("svix-id".to_owned(), "msg_1".to_owned()),
                ("svix-signature".to_owned(), "v1,abc= v1,def=".to_owned()),
                ("svix-timestamp".to_owned(), "1649367553".to_owned()),
            ]
        );
        let json = r#"{"webhook-id": "msg_2", "Webhook-Timestamp": "1", "accept": "x"}"#;
        let headers = parse_headers(json.as_bytes(), "h").unwrap();
        assert_eq!(
            values(&headers),
            [
                ("webhook-id".to_owned(), "msg_2".to_owned()),
                ("webhook-timestamp".to_owned(), "1".to_owned()),
            ]
        );
    }

    #[test]
    fn a_repeated_header_is_kept_twice_for_the_verifier_to_refuse() {
        let headers = parse_headers(b"svix-id: a\nsvix-id: b\n", "h").unwrap();
        assert_eq!(headers.get_all("svix-id").iter().count(), 2);
    }

    #[test]
    fn unusable_header_files_are_usage_errors() {
        for bad in [&b"{\"svix-id\": 1}"[..], b"{not json", b"svix-id: a\x01b"] {
            let (outcome, json) = parse_headers(bad, "h").unwrap_err().into_json();
            assert_eq!(outcome, crate::Outcome::Invalid);
            assert_eq!(json["error"]["code"], "invalid-input");
        }
    }
}
