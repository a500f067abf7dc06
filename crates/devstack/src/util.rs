//! Small helpers: random ids, hashes, dates.

/// `n` random bytes from the system generator.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("system random generator");
    bytes
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` random base62 characters.
pub(crate) fn random_base62(n: usize) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| char::from(BASE62[usize::from(b) % BASE62.len()]))
        .collect()
}

/// A Clerk-style id: `<prefix>_2` and 26 base62 characters (27 after the underscore).
pub(crate) fn clerk_id(prefix: &str) -> String {
    format!("{prefix}_2{}", random_base62(26))
}

/// A random UUID v4, lowercase.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The canonical lowercase form of a UUID, if `text` is one.
pub(crate) fn parse_uuid(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text.trim())
        .ok()
        .map(|u| u.to_string())
}

/// Lowercase hex of SHA-256.
pub(crate) fn sha256_hex(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (how InstantDB's JSON encoder writes dates).
pub(crate) fn iso8601(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// InstantDB's email coercion: trimmed, lowercased, and shaped like an address.
pub(crate) fn coerce_email(text: &str) -> Option<String> {
    let email = text.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c))
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    (local_ok && domain_ok).then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_ids_and_emails() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_649_367_553), "2022-04-07T21:39:13Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        let id = clerk_id("user");
        assert!(id.starts_with("user_2") && id.len() == 32, "{id}");
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            coerce_email(" Alice@Example.COM ").as_deref(),
            Some("alice@example.com")
        );
        for bad in ["", "alice", "@example.com", "a@b", "a@-b.com", "a b@c.com"] {
            assert_eq!(coerce_email(bad), None, "{bad}");
        }
        assert_eq!(
            parse_uuid("AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE").as_deref(),
            Some("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
        );
        assert_eq!(parse_uuid("x"), None);
    }
}
