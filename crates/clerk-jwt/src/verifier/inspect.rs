//! [`inspect`]: a token decoded without verification, and the setup warnings it gives.

use crate::Result;
use crate::error::Error;
use crate::json::describe;
use crate::token::{CAT_JWT_TEMPLATE, CAT_MACHINE};

/// The claims of an unverified token, for display. Never use them for a decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Inspection {
    /// The JOSE header.
    pub header: serde_json::Map<String, serde_json::Value>,
    /// The payload, as sent.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// Decodes a token without verifying it (for `clerk-instant token inspect`).
pub fn inspect(token: &str) -> Result<Inspection> {
    crate::token::decode_unverified(token.trim())
        .map(|(header, payload)| Inspection { header, payload })
        .map_err(|e| Error::rejected(e.reason, e.detail))
}

impl Inspection {
    /// What a person setting up Clerk with InstantDB should know about this token, as of
    /// `now`: the problems verification would report, and the quieter ones it would not.
    pub fn warnings(&self, now: i64) -> Vec<String> {
        use serde_json::Value;
        let mut out = Vec::new();
        let h = &self.header;
        let p = &self.payload;
        let str_of = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_str).map(str::to_owned)
        };
        if str_of(h, "alg").as_deref() != Some("RS256") {
            out.push(format!(
                "alg is {}, not RS256: not a Clerk session token",
                describe(h.get("alg"))
            ));
        }
        if !h.contains_key("kid") {
            out.push("no kid in the header: only a PEM key can verify it".into());
        }
        let cat = str_of(h, "cat");
        if cat.as_deref() == Some(CAT_JWT_TEMPLATE) {
            out.push("a JWT template token (cat), not a session token: call getToken() without a template".into());
        } else if cat.as_deref() == Some(CAT_MACHINE) {
            out.push("a machine token (cat), not a session token".into());
        }
        if str_of(h, "typ").is_some_and(|t| t.to_ascii_lowercase().contains("at+jwt")) {
            out.push("an OAuth access token (typ at+jwt), not a session token".into());
        }
        if !p.contains_key("sid") {
            out.push("no sid claim: not a session token (JWT templates have none)".into());
        }
        let date = |k: &str| p.get(k).and_then(Value::as_i64);
        match date("exp") {
            None => out.push("no numeric exp claim".into()),
            Some(exp) if exp <= now => out.push(format!("expired {} s ago", now - exp)),
            Some(_) => {}
        }
        if let Some(nbf) = date("nbf").filter(|&nbf| nbf > now) {
            out.push(format!(
                "not valid for another {} s (nbf): is this clock behind?",
                nbf - now
            ));
        }
        if let Some(iat) = date("iat").filter(|&iat| iat > now) {
            out.push(format!(
                "issued {} s in the future (iat): is this clock behind?",
                iat - now
            ));
        }
        if p.get("v").and_then(Value::as_u64) != Some(2) {
            out.push("version 1 claims (no v: 2); Clerk deprecated them on 2025-04-14".into());
        }
        if str_of(p, "sts").as_deref() == Some("pending") {
            out.push(
                "the session is pending (sts): rejected unless pending sessions are allowed".into(),
            );
        }
        match p.get("email") {
            Some(Value::String(e)) if crate::claims::is_email_address(e) => {}
            Some(Value::Null) => out.push(
                "email is null: this user has no primary email address, and InstantDB cannot sign them in by email".into(),
            ),
            Some(_) => out.push("the email claim is not an email address".into()),
            None => out.push(
                "no email claim: add \"email\": \"{{user.primary_email_address}}\" to the session token in the Clerk dashboard (Sessions, Customize session token)".into(),
            ),
        }
        match p.get("email_verified") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => out.push("email_verified is false".into()),
            Some(Value::String(s)) if s == "true" => out.push(
                "email_verified is the string \"true\": InstantDB keeps the email only when it is the JSON boolean true".into(),
            ),
            Some(Value::String(s)) if s == "false" => {
                out.push("email_verified is \"false\"".into());
            }
            None => out.push(
                "no email_verified claim: InstantDB signs the user in without an email unless it is true; add \"email_verified\": \"{{user.email_verified}}\" to the session token".into(),
            ),
            Some(other) => out.push(format!(
                "email_verified is {}, neither a boolean nor \"true\"/\"false\"",
                describe(Some(other))
            )),
        }
        if str_of(p, "sub").is_some_and(|s| s.starts_with("mch_")) {
            out.push("sub is a machine id (mch_…), not a user".into());
        }
        out
    }
}
