//! The one place that writes to stdout (and, for the reports of failed commands,
//! stderr).

use std::io::Write as _;

use serde::Serialize;

/// Writes `text` (and a newline if it lacks one) to stdout.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Writes `text` (and a newline if it lacks one) to stderr.
pub(crate) fn eprint(text: &str) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    err.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        err.write_all(b"\n")?;
    }
    err.flush()?;
    Ok(())
}

/// Writes one JSON document, pretty-printed, to stdout.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    print(&serde_json::to_string_pretty(value)?)
}

/// Formats label/value rows with the values aligned.
pub(crate) fn rows(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, value)| format!("{label:<width$}  {value}\n"))
        .collect()
}
