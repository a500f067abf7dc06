//! Verifying a delivery: its three headers, the `v1` signatures over
//! `<id>.<timestamp>.<raw body>`, the timestamp's distance from now, then the envelope.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

use crate::error::{Error, HeaderProblem};
use crate::event::{Envelope, Event};
use crate::secret::Secrets;

/// The longest message id accepted, in bytes (Svix's are about 30).
const MAX_ID_BYTES: usize = 256;
/// The longest timestamp accepted, in digits: twelve reach the year 33658, and keep
/// every accepted value representable as a `SystemTime`.
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// Which names a delivery's headers use. Clerk (through Svix) sends `svix-*`; other
/// Standard Webhooks senders send `webhook-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderSet {
    /// `svix-id`, `svix-timestamp`, `svix-signature`.
    Svix,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
}

impl HeaderSet {
    /// The message id header.
    pub const fn id(self) -> &'static str {
        match self {
            HeaderSet::Svix => "svix-id",
            HeaderSet::StandardWebhooks => "webhook-id",
        }
    }

    /// The timestamp header (Unix seconds).
    pub const fn timestamp(self) -> &'static str {
        match self {
            HeaderSet::Svix => "svix-timestamp",
            HeaderSet::StandardWebhooks => "webhook-timestamp",
        }
    }

    /// The signature header (space-separated `v1,<base64>` entries).
    pub const fn signature(self) -> &'static str {
        match self {
            HeaderSet::Svix => "svix-signature",
            HeaderSet::StandardWebhooks => "webhook-signature",
        }
    }

    /// The set a request uses: `svix-*` if any of its three headers is present, else
    /// `webhook-*` if any of those is, else `svix-*` (so a bare request is told it
    /// lacks `svix-id`).
    pub fn of(headers: &HeaderMap) -> HeaderSet {
        let present = |set: HeaderSet| {
            [set.id(), set.timestamp(), set.signature()]
                .iter()
                .any(|name| headers.contains_key(*name))
        };
        if !present(HeaderSet::Svix) && present(HeaderSet::StandardWebhooks) {
            HeaderSet::StandardWebhooks
        } else {
            HeaderSet::Svix
        }
    }
}

/// A verified delivery: who sent it when, and the Clerk event it carries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Delivery {
    /// The message id (`svix-id`): stable across retries, so deduplicate on it.
    pub id: String,
    /// When it was signed, in Unix seconds (`svix-timestamp`).
    pub timestamp: u64,
    /// The header names it came with.
    pub header_set: HeaderSet,
    /// Which of the configured secrets matched (from 0), to tell when a rotation's
    /// old secret is no longer in use.
    pub secret_index: usize,
    /// The Clerk event.
    pub event: Event,
    /// The Clerk instance it came from (`instance_id`, `ins_…`), when sent.
    pub instance_id: Option<String>,
    /// When Clerk recorded the event, in Unix milliseconds (the envelope's
    /// `timestamp`), when sent.
    pub occurred_at_ms: Option<u64>,
}

impl Delivery {
    /// [`Delivery::timestamp`] as a time.
    pub fn signed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.timestamp)
    }
}

/// Verifies deliveries against one or several secrets, with a tolerance on the
/// signed timestamp (by default [`Verifier::DEFAULT_TOLERANCE`], in both directions).
///
/// The time is an argument, so tests and offline checks choose it;
/// [`Verifier::verify_now`] reads the system clock.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Secrets,
    tolerance: Duration,
}

impl Verifier {
    /// How far a delivery's timestamp may be from now, either way: five minutes, as
    /// Svix and Standard Webhooks define it.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `secrets`, with the default tolerance.
    pub fn new(secrets: impl Into<Secrets>) -> Verifier {
        Verifier {
            secrets: secrets.into(),
            tolerance: Verifier::DEFAULT_TOLERANCE,
        }
    }

    /// Sets the tolerance (counted in whole seconds). A delivery dated exactly the
    /// tolerance away passes; one second more does not.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Verifier {
        self.tolerance = tolerance;
        self
    }

    /// The tolerance in force.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// The secrets accepted.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Verifies a delivery as received: its headers (`svix-*`, or `webhook-*`; see
    /// [`HeaderSet::of`]) and its raw body bytes, exactly as they arrived, at time
    /// `now`. Returns the delivery with its typed event.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Delivery, Error> {
        let set = HeaderSet::of(headers);
        let id = header(headers, set.id())?;
        let timestamp = header(headers, set.timestamp())?;
        let signature = header(headers, set.signature())?;
        self.check(set, id, timestamp, signature, body, now)
    }

    /// [`Verifier::verify`] at the system clock's time.
    pub fn verify_now(&self, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, Error> {
        self.verify(headers, body, SystemTime::now())
    }

    /// Verifies a delivery given the values of its three headers as text (say, read
    /// from a captured delivery); errors name them with the `svix-*` names.
    /// Surrounding whitespace is trimmed.
    pub fn verify_parts(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Delivery, Error> {
        let set = HeaderSet::Svix;
        let visible = |name: &'static str, value: &str| {
            if value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                Ok(())
            } else {
                Err(invalid(name, HeaderProblem::NotVisibleAscii))
            }
        };
        let (id, timestamp, signature) = (id.trim(), timestamp.trim(), signature.trim());
        visible(set.id(), id)?;
        visible(set.timestamp(), timestamp)?;
        visible(set.signature(), signature)?;
        self.check(set, id, timestamp, signature, body, now)
    }

    fn check(
        &self,
        set: HeaderSet,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Delivery, Error> {
        check_id(set.id(), id)?;
        let timestamp = parse_timestamp(set.timestamp(), timestamp)?;
        if signature.is_empty() {
            return Err(invalid(set.signature(), HeaderProblem::Empty));
        }
        // The signature first: a stale or future date is then known to be authentic,
        // which is what someone checking a captured delivery wants to know.
        let secret_index = self.matching_secret(set.signature(), id, timestamp, signature, body)?;
        self.check_time(timestamp, now)?;
        let Envelope {
            event,
            instance_id,
            occurred_at_ms,
        } = Envelope::from_json(body)?;
        Ok(Delivery {
            id: id.to_owned(),
            timestamp,
            header_set: set,
            secret_index,
            event,
            instance_id,
            occurred_at_ms,
        })
    }

    /// The index of the first secret whose tag equals one of the `v1` entries. The
    /// tag is computed once per secret; each comparison is constant-time.
    fn matching_secret(
        &self,
        header: &'static str,
        id: &str,
        timestamp: u64,
        signature: &str,
        body: &[u8],
    ) -> Result<usize, Error> {
        let candidates: Vec<Option<Vec<u8>>> = signature
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            // An entry that is not base64 cannot match; it does not spoil the others.
            .map(|encoded| STANDARD.decode(encoded).ok())
            .collect();
        if candidates.is_empty() {
            return Err(Error::NoV1Signature { header });
        }
        for (index, secret) in self.secrets.iter().enumerate() {
            let tag = secret.tag(id, timestamp, body);
            let matched = candidates
                .iter()
                .flatten()
                .any(|candidate| verify_slices_are_equal(tag.as_ref(), candidate).is_ok());
            if matched {
                return Ok(index);
            }
        }
        Err(Error::SignatureMismatch {
            header,
            v1_entries: candidates.len(),
            secrets: self.secrets.len(),
        })
    }

    fn check_time(&self, timestamp: u64, now: SystemTime) -> Result<(), Error> {
        // Whole seconds, as the reference libraries count.
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let tolerance = self.tolerance.as_secs();
        if let Some(age) = now.checked_sub(timestamp) {
            if age > tolerance {
                return Err(Error::TimestampTooOld {
                    age_secs: age,
                    tolerance: self.tolerance,
                });
            }
        } else {
            let ahead = timestamp - now;
            if ahead > tolerance {
                return Err(Error::TimestampInFuture {
                    ahead_secs: ahead,
                    tolerance: self.tolerance,
                });
            }
        }
        Ok(())
    }
}

fn invalid(header: &'static str, problem: HeaderProblem) -> Error {
    Error::InvalidHeader { header, problem }
}

/// The one value of a header, as visible ASCII, trimmed.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Error> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(Error::MissingHeader { header: name })?;
    if values.next().is_some() {
        return Err(invalid(name, HeaderProblem::Repeated));
    }
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| invalid(name, HeaderProblem::NotVisibleAscii))
}

/// A message id goes into logs and deduplication keys: visible ASCII, no spaces,
/// bounded.
fn check_id(header: &'static str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(invalid(header, HeaderProblem::Empty));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(invalid(header, HeaderProblem::TooLong(MAX_ID_BYTES)));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(header, HeaderProblem::NotVisibleAscii));
    }
    Ok(())
}

/// Unix seconds, digits only (no sign, no fraction).
fn parse_timestamp(header: &'static str, text: &str) -> Result<u64, Error> {
    if text.is_empty() {
        return Err(invalid(header, HeaderProblem::Empty));
    }
    if text.len() > MAX_TIMESTAMP_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(header, HeaderProblem::NotUnixSeconds));
    }
    text.parse()
        .map_err(|_| invalid(header, HeaderProblem::NotUnixSeconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_timestamp("t", "1649367553"), Ok(1_649_367_553));
        assert_eq!(parse_timestamp("t", "999999999999"), Ok(999_999_999_999));
        for bad in [
            "+1",
            "-1",
            "1.5",
            "1e9",
            " 1",
            "1000000000000",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_timestamp("t", bad),
                Err(invalid("t", HeaderProblem::NotUnixSeconds)),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_header_set_follows_what_is_present() {
        let mut headers = HeaderMap::new();
        assert_eq!(HeaderSet::of(&headers), HeaderSet::Svix);
        headers.insert("webhook-signature", "v1,x".parse().unwrap());
        assert_eq!(HeaderSet::of(&headers), HeaderSet::StandardWebhooks);
        headers.insert("svix-id", "msg_1".parse().unwrap());
        assert_eq!(HeaderSet::of(&headers), HeaderSet::Svix);
    }
}
