//! Signing secrets: `whsec_<base64>`, one or several (a rotation), never shown.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

use crate::error::{Error, SecretProblem};

/// The prefix of a Svix / Standard Webhooks secret (optional on input).
const PREFIX: &str = "whsec_";

/// One webhook signing secret: the HMAC-SHA256 key, decoded from `whsec_<base64>`.
///
/// It is never empty or short: parsing refuses anything that decodes to fewer than
/// [`Secret::MIN_BYTES`]. `Debug` and `Display` show `whsec_…`, never the key.
///
/// ```
/// use clerk_webhooks::Secret;
///
/// let secret: Secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse()?;
/// assert_eq!(format!("{secret:?} {secret}"), "Secret(whsec_…) whsec_…");
/// assert!("whsec_".parse::<Secret>().is_err());
/// # Ok::<(), clerk_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
    key: hmac::Key,
}

impl Secret {
    /// The fewest decoded bytes accepted: Svix's secrets (and so Clerk's) are 24.
    pub const MIN_BYTES: usize = 24;

    /// Reads one secret, `whsec_<base64>` or the bare base64 (surrounding whitespace
    /// is trimmed). Errors name the problem as secret 1.
    pub fn parse(text: &str) -> Result<Secret, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::NoSecret);
        }
        Secret::parse_at(text, 1)
    }

    fn parse_at(text: &str, position: usize) -> Result<Secret, Error> {
        let invalid = |problem| Error::InvalidSecret { position, problem };
        let encoded = match text.strip_prefix(PREFIX) {
            Some("") => return Err(invalid(SecretProblem::NothingAfterPrefix)),
            Some(rest) => rest,
            None => text,
        };
        let bytes = STANDARD_PAD_INDIFFERENT
            .decode(encoded)
            .map_err(|_| invalid(SecretProblem::NotBase64))?;
        Secret::from_bytes(bytes).map_err(invalid)
    }

    /// A secret from raw key bytes (at least [`Secret::MIN_BYTES`]).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Secret, SecretProblem> {
        let bytes = bytes.into().into_boxed_slice();
        if bytes.len() < Secret::MIN_BYTES {
            return Err(SecretProblem::TooShort(bytes.len()));
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
        Ok(Secret { bytes, key })
    }

    /// A new random secret of 24 bytes, as Svix makes them (for a local sender).
    ///
    /// # Panics
    ///
    /// If the system's random generator fails, which aws-lc treats as fatal anyway.
    pub fn generate() -> Secret {
        let mut bytes = vec![0u8; Secret::MIN_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
        Secret::from_bytes(bytes).expect("24 bytes is long enough")
    }

    /// The secret as `whsec_<base64>`, to hand to a sender or print once in a dev
    /// banner. Do not log it.
    pub fn expose_whsec(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.bytes))
    }

    /// The `v1,<base64>` signature of a delivery: HMAC-SHA256 over
    /// `<id>.<timestamp>.<body>`, as a sender puts it in `svix-signature`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.tag(id, timestamp, body).as_ref())
        )
    }

    /// The raw HMAC tag of a delivery's signed content.
    pub(crate) fn tag(&self, id: &str, timestamp: u64, body: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        context.sign()
    }
}

impl FromStr for Secret {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secret::parse(s)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.bytes, &other.bytes).is_ok()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_…")
    }
}

/// The secrets a delivery may be signed with: one, or several during a rotation (the
/// old and the new, so a deploy can carry both). Never empty.
///
/// Parsed from one string, the way `CLERK_WEBHOOK_SIGNING_SECRET` holds it: secrets
/// separated by whitespace or commas, each `whsec_<base64>` or bare base64.
///
/// ```
/// use clerk_webhooks::Secrets;
///
/// let both: Secrets = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD, \
///                      whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// assert_eq!(both.len(), 2);
/// assert_eq!(format!("{both:?}"), "Secrets([whsec_…, whsec_…])");
/// assert!(Secrets::parse(" , ").is_err());
/// # Ok::<(), clerk_webhooks::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    /// Reads one or several secrets separated by whitespace or commas. An empty list,
    /// or any unusable secret, is an error naming its position (from 1).
    pub fn parse(text: &str) -> Result<Secrets, Error> {
        let secrets = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .enumerate()
            .map(|(i, part)| Secret::parse_at(part, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(Error::NoSecret);
        }
        Ok(Secrets(secrets))
    }

    /// How many secrets there are (at least one).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The secrets, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    /// The first secret, the one a sender signs with when it signs with one.
    pub fn first(&self) -> &Secret {
        &self.0[0]
    }

    /// Every secret's `v1,` signature, space-separated, as Svix sends them during a
    /// rotation.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|s| s.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl From<Secret> for Secrets {
    fn from(secret: Secret) -> Self {
        Secrets(vec![secret])
    }
}

impl FromStr for Secrets {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secrets::parse(s)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(")?;
        f.debug_list()
            .entries(self.0.iter().map(|_| Redacted))
            .finish()?;
        f.write_str(")")
    }
}

impl fmt::Display for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} webhook signing secret(s)", self.0.len())
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_optional_and_whitespace_is_trimmed() {
        let with = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let without = Secret::parse(" C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap();
        assert_eq!(with, without);
        assert_eq!(
            with.expose_whsec(),
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
        );
    }

    #[test]
    fn padding_is_optional() {
        // 32 bytes: 43 characters unpadded, 44 with one `=`.
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 32]));
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(
            Secret::parse(&padded).unwrap(),
            Secret::parse(unpadded).unwrap()
        );
    }

    #[test]
    fn generated_secrets_are_long_enough_and_differ() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_ne!(a, b);
        assert_eq!(Secret::parse(&a.expose_whsec()).unwrap(), a);
    }

    #[test]
    fn separators_are_commas_and_any_whitespace() {
        let one = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let two = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        for text in [
            format!("{one},{two}"),
            format!("{one} {two}"),
            format!(" {one},\n\t{two} ,"),
        ] {
            assert_eq!(Secrets::parse(&text).unwrap().len(), 2, "{text:?}");
        }
    }
}
