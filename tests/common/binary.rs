//! Runs the real `pdvault` binary for the CLI tests: in a vault directory, with a test
//! passphrase and the fast test KDF, feeding `stdin`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `pdvault args` on the vault in `dir`.
pub fn pdvault(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pdvault"));
    cmd.args(args)
        .env("PDVAULT_DIR", dir)
        .env("PDVAULT_PASSPHRASE", "correct horse")
        .env("PDVAULT_TEST_FAST_KDF", "1")
        .env_remove("PDVAULT_NEW_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary runs");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(b) = stdin {
            input.write_all(b).expect("write stdin");
        }
    }
    child.wait_with_output().expect("the binary finishes")
}

/// Runs `pdvault args`, which must succeed; returns its standard output.
pub fn ok(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = pdvault(dir, args, stdin);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}
