//! `stats --anonymous` and `export-analysis`.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use pdvault::{Category, Purpose, Vault};

use crate::args::Cli;
use crate::run::{err, print_json};

/// Prints the anonymous statistics: withheld counts as `suppressed`, never as numbers.
pub fn anonymous_stats(cli: &Cli, v: Vault) -> Result<ExitCode, String> {
    let st = v.anonymous_stats().map_err(err)?;
    v.close().map_err(err)?;
    if cli.json {
        print_json(&st)?;
    } else {
        println!(
            "anonymous statistics: counts below {} withheld (suppressed)",
            st.min_cell
        );
        println!("subjects: {}", st.subjects);
        println!("records: {}", st.records);
        for (what, map) in [
            ("category", &st.by_category),
            ("basis", &st.by_basis),
            ("purpose", &st.by_purpose),
            ("month", &st.by_month),
        ] {
            for (k, n) in map {
                println!("  {what:<10} {k:<24} {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes an analysis export to `out` (a new 0600 file, removed again if the export fails) or
/// stdout; prints the count on stderr.
pub fn export(
    v: Vault,
    categories: &[Category],
    purpose: &Purpose,
    out: Option<&Path>,
    force: bool,
) -> Result<ExitCode, String> {
    let n = match out {
        Some(p) => {
            let f = pdvault::create_private_file(p, force).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    format!("{} already exists: pass --force to replace it", p.display())
                } else {
                    format!("cannot create {}: {e}", p.display())
                }
            })?;
            let mut f = std::io::BufWriter::new(f);
            let written = v
                .export_for_analysis(categories, purpose, &mut f)
                .map_err(err)
                .and_then(|n| f.flush().map(|()| n).map_err(err));
            match written {
                Ok(n) => n,
                Err(e) => {
                    drop(f);
                    let _ = fs::remove_file(p);
                    return Err(e);
                }
            }
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = v
                .export_for_analysis(categories, purpose, &mut out)
                .map_err(err)?;
            out.flush().map_err(err)?;
            n
        }
    };
    v.close().map_err(err)?;
    eprintln!("{n} records exported for analysis, pseudonymised");
    Ok(ExitCode::SUCCESS)
}
