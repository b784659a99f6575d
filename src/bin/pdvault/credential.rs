//! The secret of `credential set` and `credential verify`: from a file or stdin, never argv.

use std::io::{IsTerminal, Read};
use std::path::Path;

use zeroize::Zeroizing;

use crate::run::err;

/// Reads a secret from `file`, or stdin: a no-echo prompt on a terminal (asked twice when
/// `confirm`, for a new secret), else everything stdin holds. One trailing newline (`\n` or
/// `\r\n`) is ignored. The buffer is allocated once, at its largest, and wiped on drop; a secret
/// longer than `pdvault::MAX_SECRET_LEN` is refused.
pub fn read_secret(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<Vec<u8>>, String> {
    let secret = match file {
        Some(f) => {
            let mut r =
                std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            bounded(&mut r).map_err(|e| format!("cannot read {}: {e}", f.display()))?
        }
        None if std::io::stdin().is_terminal() => {
            let read = |prompt: &str| {
                rpassword::prompt_password(prompt)
                    .map(Zeroizing::new)
                    .map_err(|e| format!("cannot read the secret: {e}"))
            };
            let s = read("Secret: ")?;
            if confirm && *read("Repeat the secret: ")? != *s {
                return Err("the secrets do not match; nothing was changed".into());
            }
            if s.len() > pdvault::MAX_SECRET_LEN {
                return Err(too_long());
            }
            Zeroizing::new(s.as_bytes().to_vec())
        }
        None => bounded(&mut std::io::stdin().lock())
            .map_err(|e| format!("cannot read the secret from stdin: {e}"))?,
    };
    if secret.is_empty() {
        return Err(err(pdvault::InputError::Field {
            field: "secret",
            why: "empty",
        }));
    }
    Ok(secret)
}

fn too_long() -> String {
    format!(
        "the secret is longer than {} bytes",
        pdvault::MAX_SECRET_LEN
    )
}

/// Reads at most `MAX_SECRET_LEN` bytes (and a trailing newline) into one buffer that never
/// grows, so that no copy of the secret is left in freed memory.
fn bounded(r: &mut dyn Read) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(vec![0u8; pdvault::MAX_SECRET_LEN + 2]);
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Err(too_long());
        }
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if buf[..n].ends_with(b"\n") {
        n -= 1;
        if buf[..n].ends_with(b"\r") {
            n -= 1;
        }
    }
    if n > pdvault::MAX_SECRET_LEN {
        return Err(too_long());
    }
    buf.truncate(n);
    Ok(buf)
}
