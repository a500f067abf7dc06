//! The one place that writes to stdout and stderr.
//!
//! Writing to stdout returns its error, so that a closed stdout (`| head -1`, EPIPE)
//! reaches `main`, which ends quietly. Writing to stderr ignores errors: a diagnostic
//! that cannot be shown changes no outcome.

use std::io::{self, Write as _};

use serde::Serialize;

/// Writes `text` (and a newline if it lacks one) to stdout.
pub(crate) fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes `text` (and a newline if it lacks one) to stderr.
pub(crate) fn eprint(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
    let _ = err.flush();
}

/// Writes one JSON document to stdout: pretty-printed, or on one line for a command
/// that keeps running after printing (its reader takes the first line).
pub(crate) fn print_json(value: &impl Serialize, one_line: bool) -> io::Result<()> {
    let text = if one_line {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    }
    .map_err(io::Error::from)?;
    print(&text)
}

/// Formats label/value rows with the values aligned.
pub(crate) fn rows(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, value)| format!("{label:<width$}  {value}\n"))
        .collect()
}
