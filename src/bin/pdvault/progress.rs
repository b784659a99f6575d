//! Progress on stderr, only on a terminal: a bar where the library reports progress (the sweep),
//! a spinner for the other commands that can take long on a large vault (verify, export,
//! import, migrate, rotate-key, backup, restore, report), whose library calls report none.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar with `template` (indicatif's syntax), or nothing when stderr is not a terminal.
pub(crate) fn bar(template: &str) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    })
}

/// Runs `f` with a spinner saying `message` on stderr (on a terminal), cleared when it ends.
pub(crate) fn spinning<T>(message: &'static str, f: impl FnOnce() -> T) -> T {
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = ProgressBar::new_spinner();
        s.set_message(message);
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let out = f();
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    out
}
