//! The crate's error type, grouped by what the caller does next: refuse the delivery
//! (answer 4xx, change nothing) or fix the configuration (a bad signing secret).
//!
//! No message contains a secret, a signature, a header value or anything from the
//! body: headers are named, JSON problems give their kind and position.

use std::fmt;
use std::time::Duration;

/// A delivery that was refused, or a signing secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Refuse the delivery: it is not an authentic, current Clerk event.
    /// A required header is absent: refuse the delivery.
    #[error("the delivery has no {header} header")]
    MissingHeader {
        /// The header looked for (`svix-id`, `webhook-signature`, …).
        header: &'static str,
    },
    /// A header is present but unusable: refuse the delivery.
    #[error("the delivery's {header} header {problem}")]
    InvalidHeader {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// The signature header holds no `v1,` entry (only other versions, or nothing):
    /// refuse the delivery.
    #[error("the delivery's {header} header holds no v1 signature")]
    NoV1Signature {
        /// The signature header.
        header: &'static str,
    },
    /// No `v1` signature matches the delivery under any configured secret: it was
    /// forged, tampered with, or signed with another secret. Refuse the delivery.
    #[error(
        "no signature in the delivery's {header} header matches ({v1_entries} v1 entries checked against {secrets} secret(s))"
    )]
    SignatureMismatch {
        /// The signature header.
        header: &'static str,
        /// How many `v1,` entries it held.
        v1_entries: usize,
        /// How many secrets were tried.
        secrets: usize,
    },
    /// The signed timestamp is further in the past than the tolerance (a replay, or a
    /// capture verified too late): refuse the delivery.
    #[error(
        "the delivery was signed {age_secs} s ago, more than the tolerance of {} s", .tolerance.as_secs()
    )]
    TimestampTooOld {
        /// How many seconds before now it was signed.
        age_secs: u64,
        /// The tolerance in force.
        tolerance: Duration,
    },
    /// The signed timestamp is further in the future than the tolerance (a sender's
    /// clock far ahead, or a forged date): refuse the delivery.
    #[error(
        "the delivery is dated {ahead_secs} s in the future, more than the tolerance of {} s", .tolerance.as_secs()
    )]
    TimestampInFuture {
        /// How many seconds after now it is dated.
        ahead_secs: u64,
        /// The tolerance in force.
        tolerance: Duration,
    },
    /// The body is authentic but is not a Clerk event envelope (`{"type", "data", …}`),
    /// or the data of a known event type is not of that type's shape: refuse it.
    #[error("the webhook body is not a clerk event{}: {problem} at line {line} column {column}", EventType(*.event_type))]
    InvalidPayload {
        /// The event type, when the envelope named a known one.
        event_type: Option<&'static str>,
        /// What kind of JSON problem.
        problem: JsonProblem,
        /// The line of the body where it was found (1-based).
        line: usize,
        /// The column of that line (1-based).
        column: usize,
    },

    // Fix the configuration.
    /// No signing secret was given (an empty string, or only separators): fix the
    /// configuration.
    #[error(
        "no webhook signing secret was given: set the signing secret (whsec_…) shown on the webhook endpoint's page in the clerk dashboard"
    )]
    NoSecret,
    /// A signing secret cannot be used: fix the configuration. It never becomes an
    /// empty or short HMAC key.
    #[error(
        "webhook signing secret {position} {problem}: copy the signing secret (whsec_…) again from the webhook endpoint's page in the clerk dashboard"
    )]
    InvalidSecret {
        /// Its position in the list, from 1.
        position: usize,
        /// What is wrong with it.
        problem: SecretProblem,
    },
}

struct EventType(Option<&'static str>);

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, " of type {t}"),
            None => Ok(()),
        }
    }
}

/// What is wrong with a header's value (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// It is empty or only whitespace.
    Empty,
    /// It holds something other than visible ASCII, or whitespace inside an id.
    NotVisibleAscii,
    /// It is longer than this crate accepts (the limit in bytes).
    TooLong(usize),
    /// It appears more than once.
    Repeated,
    /// A timestamp that is not a whole number of Unix seconds.
    NotUnixSeconds,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::Empty => f.write_str("is empty"),
            HeaderProblem::NotVisibleAscii => {
                f.write_str("holds characters other than visible ascii")
            }
            HeaderProblem::TooLong(limit) => write!(f, "is longer than {limit} bytes"),
            HeaderProblem::Repeated => f.write_str("appears more than once"),
            HeaderProblem::NotUnixSeconds => f.write_str("is not a whole number of unix seconds"),
        }
    }
}

/// What is wrong with a signing secret (never the secret itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretProblem {
    /// `whsec_` with nothing after it.
    NothingAfterPrefix,
    /// The part after the optional `whsec_` is not standard base64.
    NotBase64,
    /// It decodes to fewer bytes than [`crate::Secret::MIN_BYTES`] (the decoded length).
    TooShort(usize),
}

impl fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretProblem::NothingAfterPrefix => f.write_str("has nothing after whsec_"),
            SecretProblem::NotBase64 => {
                f.write_str("is not standard base64 after the optional whsec_ prefix")
            }
            SecretProblem::TooShort(n) => write!(
                f,
                "decodes to {n} bytes, fewer than the {} of a clerk secret",
                crate::Secret::MIN_BYTES
            ),
        }
    }
}

/// The kind of a JSON problem in a body (never the offending value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonProblem {
    /// Not JSON at all.
    Syntax,
    /// The JSON ends early.
    Eof,
    /// JSON, but not of the expected shape (a missing field, a wrong type).
    Shape,
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonProblem::Syntax => "the json is malformed",
            JsonProblem::Eof => "the json ends early",
            JsonProblem::Shape => "the json is not of the expected shape",
        })
    }
}

impl Error {
    /// Whether the delivery must be refused (answer 4xx, change nothing): a missing or
    /// invalid header, no matching signature, a timestamp out of tolerance, a body
    /// that is not a Clerk event.
    pub fn is_refused(&self) -> bool {
        !self.is_config()
    }

    /// Whether the configured signing secret must be fixed.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::NoSecret | Error::InvalidSecret { .. })
    }

    /// Whether the delivery is not authentic: no `v1` signature, or none that matches.
    pub fn is_bad_signature(&self) -> bool {
        matches!(
            self,
            Error::NoV1Signature { .. } | Error::SignatureMismatch { .. }
        )
    }

    /// Whether the signature matched but the timestamp is outside the tolerance.
    pub fn is_out_of_tolerance(&self) -> bool {
        matches!(
            self,
            Error::TimestampTooOld { .. } | Error::TimestampInFuture { .. }
        )
    }

    /// The header at fault, when one is.
    pub fn header(&self) -> Option<&'static str> {
        match self {
            Error::MissingHeader { header }
            | Error::InvalidHeader { header, .. }
            | Error::NoV1Signature { header }
            | Error::SignatureMismatch { header, .. } => Some(header),
            _ => None,
        }
    }

    /// A stable code, for logs, metrics and machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingHeader { .. } => "webhook-missing-header",
            Error::InvalidHeader { .. } => "webhook-invalid-header",
            Error::NoV1Signature { .. } => "webhook-no-v1-signature",
            Error::SignatureMismatch { .. } => "webhook-signature-mismatch",
            Error::TimestampTooOld { .. } => "webhook-timestamp-too-old",
            Error::TimestampInFuture { .. } => "webhook-timestamp-in-future",
            Error::InvalidPayload { .. } => "webhook-invalid-payload",
            Error::NoSecret => "webhook-no-secret",
            Error::InvalidSecret { .. } => "webhook-invalid-secret",
        }
    }

    /// A body that could not be read, by its position and kind only.
    pub(crate) fn payload(event_type: Option<&'static str>, err: &serde_json::Error) -> Self {
        let problem = match err.classify() {
            serde_json::error::Category::Eof => JsonProblem::Eof,
            serde_json::error::Category::Data => JsonProblem::Shape,
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                JsonProblem::Syntax
            }
        };
        Error::InvalidPayload {
            event_type,
            problem,
            line: err.line(),
            column: err.column(),
        }
    }
}
