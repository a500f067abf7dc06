//! `clerk-instant completions <shell>` and `clerk-instant man`: the shell completion
//! scripts (clap_complete) and the man page (clap_mangen), generated from the command
//! line's own definition so that they never drift from it.

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;
use serde_json::json;

use crate::Cli;
use crate::report::{Failure, Report};

/// The binary's name, as the scripts and the page call it.
const NAME: &str = "clerk-instant";

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: Shell,
}

/// The completion script for `args.shell`; with --json, `{"shell", "script"}`.
pub(crate) fn completions(args: &CompletionsArgs) -> Result<Report, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), NAME, &mut script);
    let script = text(script, "the completion script")?;
    let json = json!({"shell": args.shell.to_string(), "script": script});
    Ok(Report::success(json, script))
}

/// The man page in roff; with --json, `{"man": "<roff>"}`.
pub(crate) fn man() -> Result<Report, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Failure::setup_because("rendering the man page failed", &e))?;
    let page = text(page, "the man page")?;
    Ok(Report::success(json!({"man": page}), page))
}

fn text(bytes: Vec<u8>, what: &str) -> Result<String, Failure> {
    String::from_utf8(bytes)
        .map_err(|e| Failure::setup_because(&format!("{what} is not UTF-8"), &e))
}
