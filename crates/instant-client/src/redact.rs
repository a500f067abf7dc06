//! Scrubbing of server-supplied text before it is kept in an error.
//!
//! InstantDB's error bodies can echo the id token, refresh tokens and the admin token
//! (in `hint`, and sometimes in `message`). Only a few fields are kept, and those go
//! through [`scrub`] first: every secret sent with the request is removed, and so is
//! anything shaped like a credential.

/// What replaces a removed value.
pub(crate) const REDACTED: &str = "[redacted]";

/// The longest text kept from a server message.
const MAX_CHARS: usize = 300;

/// Known secrets shorter than this are not searched for (they would match ordinary
/// words); the shape rules below still apply.
const MIN_KNOWN_SECRET: usize = 6;

/// Removes `secrets` and anything token-shaped from `text`, drops control characters
/// and caps the length.
///
/// Token-shaped: a run of `[A-Za-z0-9._~+/=@%-]` that holds a UUID, starts with `eyJ`
/// (base64 JSON, as every JWT does), holds an `@` (an email address), or is at least
/// 20 characters long with both letters and digits.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if secret.len() >= MIN_KNOWN_SECRET && text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    let mut out = String::with_capacity(text.len().min(MAX_CHARS + 8));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            if token_shaped(run) {
                out.push_str(REDACTED);
            } else {
                out.push_str(run);
            }
            run.clear();
        }
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            if c.is_control() {
                out.push(' ');
            } else {
                out.push(c);
            }
        }
    }
    flush(&mut run, &mut out);
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect();
        out.push('…');
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '/' | '=' | '@' | '%' | '-')
}

fn token_shaped(run: &str) -> bool {
    if run.contains('@') || run.starts_with("eyJ") || contains_uuid(run) {
        return true;
    }
    run.len() >= 20
        && run.bytes().any(|b| b.is_ascii_digit())
        && run.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Whether `s` holds 8-4-4-4-12 hex digits.
fn contains_uuid(s: &str) -> bool {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let b = s.as_bytes();
    if b.len() < 36 {
        return false;
    }
    (0..=b.len() - 36).any(|start| {
        let mut i = start;
        SHAPE.iter().enumerate().all(|(n, &len)| {
            let group = &b[i..i + len];
            i += len;
            let ok = group.iter().all(u8::is_ascii_hexdigit);
            if n < 4 {
                let dash = b[i] == b'-';
                i += 1;
                ok && dash
            } else {
                ok
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ordinary_messages() {
        for msg in [
            "Record not found: app-admin-token",
            "Validation failed for id_token: Token is expired.",
            "Error validating JWT. Could not find signing key.",
            "Malformed parameter: [\"body\" \"refresh-token\"]",
            "Permission denied: not perms-pass?",
        ] {
            assert_eq!(scrub(msg, &[]), msg);
        }
    }

    #[test]
    fn removes_known_secrets_and_token_shapes() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2lnbmF0dXJl";
        let cases = [
            (format!("Invalid token {jwt}"), "Invalid token [redacted]"),
            (
                "Malformed: ffffffff-0000-4111-8222-333333333333.".to_owned(),
                "Malformed: [redacted]",
            ),
            (
                "for alice@example.com only".to_owned(),
                "for [redacted] only",
            ),
            (
                "opaque sk_live_8f7d6c5b4a39281706 here".to_owned(),
                "opaque [redacted] here",
            ),
            ("line\nbreak\u{7}".to_owned(), "line break "),
        ];
        for (input, want) in cases {
            assert_eq!(scrub(&input, &[]), want, "{input}");
        }
        assert_eq!(
            scrub("token is x.y.zzzzzz!", &["x.y.zzzzzz"]),
            "token is [redacted]!"
        );
        // Too short to search for safely: left to the shape rules.
        assert_eq!(scrub("x.y.z", &["x.y.z"]), "x.y.z");
    }

    #[test]
    fn caps_the_length() {
        let long = "word ".repeat(200);
        let out = scrub(&long, &[]);
        assert_eq!(out.chars().count(), MAX_CHARS + 1);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn finds_uuids_anywhere_in_a_run() {
        assert!(contains_uuid("rt=ffffffff-0000-4111-8222-333333333333&x"));
        assert!(!contains_uuid("ffffffff-0000-4111-8222-33333333333"));
        assert!(!contains_uuid("short"));
    }
}
