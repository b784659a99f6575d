//! `pdvault`, the operator CLI: a thin layer over the library's public API.
//!
//! Every failure prints one line on stderr (`pdvault: <error>`) and exits non-zero; no command
//! prints a subject identifier or a payload except `get` (the payload, to stdout) and `export`
//! (`export-analysis` prints payloads without the policy's dropped fields, under pseudonyms).

mod analysis;
mod args;
mod credential;
mod progress;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A panic is a bug; still, print one line and no backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("pdvault: internal error: {msg}");
    }));
    let cli = args::Cli::parse();
    match run::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pdvault: {e}");
            ExitCode::FAILURE
        }
    }
}
