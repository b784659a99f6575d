//! Runs one command against the library.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;
use pdvault::keysource::{Pin, Pkcs11Source};
use pdvault::rights::export::ExportPayload;
use pdvault::{
    AgeStatus, Category, EventKind, HoldId, HoldReason, HoldTarget, InputError, KdfParams,
    LedgerChoice, LegalBasis, Policy, Purpose, RecordId, RecordMeta, RequestId, RequestKind,
    RootSecret, ScopedVault, SubjectId, Vault,
};
use serde_json::json;

use crate::args::{
    AuditCmd, Cli, Command, ConsentCmd, CredentialCmd, HoldCmd, LedgerCmd, PolicyCmd, RequestCmd,
};
use crate::progress::spinning;

type Res<T> = Result<T, String>;

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn vault_dir(cli: &Cli) -> Res<PathBuf> {
    if cli.store.is_some() {
        return Err("this command needs a vault directory (--vault DIR), not --store".into());
    }
    cli.vault.clone().ok_or_else(|| {
        "no vault: pass --vault DIR (or set PDVAULT_DIR), or --store postgres://... (or set \
         PDVAULT_STORE)"
            .into()
    })
}

/// Where the vault is: its directory, or its PostgreSQL database.
fn location(cli: &Cli) -> Res<pdvault::VaultBuilder> {
    match &cli.store {
        Some(url) => {
            let b = Vault::builder_postgres(url);
            Ok(match &cli.store_schema {
                Some(s) => b.postgres_schema(s),
                None => b,
            })
        }
        None => Ok(Vault::builder(vault_dir(cli)?)),
    }
}

fn read_secret_file(path: &Path) -> Res<String> {
    let mut s =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

/// Whether a passphrase read at a prompt is asked for twice: a new one is, so that a typo does
/// not lock the vault.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prompt {
    Once,
    Confirmed,
}

/// The passphrase: from a file, the environment, or a no-echo prompt on a terminal (asked twice
/// for a new passphrase).
fn secret(file: Option<&Path>, env: &str, prompt: &str, mode: Prompt) -> Res<RootSecret> {
    if let Some(f) = file {
        return Ok(RootSecret::passphrase(read_secret_file(f)?));
    }
    if let Ok(p) = std::env::var(env) {
        return Ok(RootSecret::passphrase(p));
    }
    if std::io::stdin().is_terminal() {
        let read = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(zeroize::Zeroizing::new)
                .map_err(|e| format!("cannot read the passphrase: {e}"))
        };
        let p = read(prompt)?;
        if mode == Prompt::Confirmed && *read("Repeat the passphrase: ")? != *p {
            return Err("the passphrases do not match; nothing was changed".into());
        }
        return Ok(RootSecret::passphrase(p.as_str()));
    }
    Err(format!(
        "no passphrase: set {env}, pass a passphrase file, or run on a terminal to be prompted"
    ))
}

/// A builder for the vault, with the key source the options name.
fn builder(cli: &Cli) -> Res<pdvault::VaultBuilder> {
    with_key_source(cli, location(cli)?)
}

/// `b` with the key source the options name.
fn with_key_source(cli: &Cli, b: pdvault::VaultBuilder) -> Res<pdvault::VaultBuilder> {
    let Some(module) = cli.pkcs11_module.clone() else {
        return Ok(b);
    };
    let token = cli
        .pkcs11_token
        .clone()
        .ok_or("--pkcs11-module needs --pkcs11-token (or PDVAULT_PKCS11_TOKEN)")?;
    let pin_file = cli.pkcs11_pin_file.clone();
    Ok(b.key_source(move |namespace| {
        let pin = match &pin_file {
            Some(f) => Pin::from_file(f)?,
            None => Pin::from_env("PDVAULT_PKCS11_PIN")?,
        };
        Ok(std::sync::Arc::new(Pkcs11Source::open(
            &module, &token, pin, namespace,
        )?))
    }))
}

/// The vault's passphrase, asked with `prompt` on a terminal.
fn vault_secret(cli: &Cli, prompt: &str) -> Res<RootSecret> {
    secret(
        cli.passphrase_file.as_deref(),
        "PDVAULT_PASSPHRASE",
        prompt,
        Prompt::Once,
    )
}

/// Opens the vault for an administrative command: refused under `--role`.
fn open(cli: &Cli) -> Res<Vault> {
    if let Some(role) = &cli.role {
        return Err(format!(
            "this is an administrative command: not available in a role (--role {role})"
        ));
    }
    open_admin(cli)
}

fn open_admin(cli: &Cli) -> Res<Vault> {
    let secret = vault_secret(cli, "Vault passphrase: ")?;
    let v = builder(cli)?.open(secret).map_err(err)?;
    v.as_actor(&cli.actor).map_err(err)
}

/// The vault as the command's principal reaches it: the host's administrative handle, or with
/// `--role` a handle scoped to `--actor` in that role.
enum Handle {
    Admin(Vault),
    Scoped { scoped: ScopedVault, vault: Vault },
}

impl Handle {
    fn close(self) -> pdvault::Result<()> {
        match self {
            Handle::Admin(v) | Handle::Scoped { vault: v, .. } => v.close(),
        }
    }
}

/// Calls a method that both handles have, on the one the command holds.
macro_rules! call {
    ($h:expr, $method:ident($($arg:expr),* $(,)?)) => {
        match &$h {
            Handle::Admin(v) => v.$method($($arg),*),
            Handle::Scoped { scoped, .. } => scoped.$method($($arg),*),
        }
    };
}

/// Opens the vault for a command a role can be granted.
fn open_as(cli: &Cli) -> Res<Handle> {
    let vault = open_admin(cli)?;
    match &cli.role {
        None => Ok(Handle::Admin(vault)),
        Some(role) => {
            let scoped = vault.scoped(&cli.actor, role);
            match scoped {
                Ok(scoped) => Ok(Handle::Scoped { scoped, vault }),
                Err(e) => {
                    // The refusal is audited: write it before reporting it.
                    vault.close().map_err(err)?;
                    Err(err(e))
                }
            }
        }
    }
}

fn subject(s: &str) -> Res<SubjectId> {
    SubjectId::new(s).map_err(err)
}

fn record(s: &str) -> Res<RecordId> {
    s.parse().map_err(err)
}

fn category(s: &str) -> Res<Category> {
    s.parse().map_err(err)
}

fn purpose(s: &str) -> Res<Purpose> {
    Purpose::new(s).map_err(err)
}

fn time(s: &str) -> Res<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| err(InputError::Time(s.chars().take(40).collect())))
}

fn payload(file: Option<&Path>) -> Res<Vec<u8>> {
    match file {
        Some(f) => fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            Ok(buf)
        }
    }
}

/// A time to the minute, in UTC (`2025-03-03T09:00Z`): deadlines count hours, not seconds.
fn to_minute(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

/// The whole hours left until `due` (`in 47h`), or past it, rounded up (`overdue by 1h`).
fn time_left(due: Timestamp, now: Timestamp) -> String {
    const HOUR: u128 = 3_600_000_000_000;
    let left = due.duration_since(now).as_nanos();
    if left >= 0 {
        format!("in {}h", left.unsigned_abs() / HOUR)
    } else {
        format!("overdue by {}h", left.unsigned_abs().div_ceil(HOUR))
    }
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Res<()> {
    println!("{}", serde_json::to_string_pretty(v).map_err(err)?);
    Ok(())
}

fn read_policy(path: &Path) -> Res<Policy> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Policy::from_toml(&text).map_err(err)
}

fn kdf(mem: Option<u32>, it: Option<u32>, par: Option<u32>) -> KdfParams {
    // For tests only: a cheap KDF when PDVAULT_TEST_FAST_KDF=1 and no cost is given.
    let base = if std::env::var("PDVAULT_TEST_FAST_KDF").as_deref() == Ok("1") {
        KdfParams::insecure_for_tests()
    } else {
        KdfParams::default()
    };
    KdfParams {
        memory_kib: mem.unwrap_or(base.memory_kib),
        iterations: it.unwrap_or(base.iterations),
        parallelism: par.unwrap_or(base.parallelism),
    }
}

fn ok_line(cli: &Cli, text: &str, value: serde_json::Value) -> Res<ExitCode> {
    if cli.json {
        print_json(&value)?;
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the command.
pub fn run(cli: Cli) -> Res<ExitCode> {
    match &cli.command {
        Command::Init {
            kdf_memory_kib,
            kdf_iterations,
            kdf_parallelism,
            policy,
            min_passphrase_len,
        } => {
            let mut b = builder(&cli)?
                .kdf(kdf(*kdf_memory_kib, *kdf_iterations, *kdf_parallelism))
                .min_passphrase_len(*min_passphrase_len);
            if let Some(p) = policy {
                b = b.policy(read_policy(p)?);
            }
            let secret = secret(
                cli.passphrase_file.as_deref(),
                "PDVAULT_PASSPHRASE",
                "New vault passphrase: ",
                Prompt::Confirmed,
            )?;
            b.create(secret).map_err(err)?.close().map_err(err)?;
            let place = match &cli.store {
                Some(_) => format!(
                    "PostgreSQL (schema {})",
                    cli.store_schema.as_deref().unwrap_or("from search_path")
                ),
                None => vault_dir(&cli)?.display().to_string(),
            };
            ok_line(
                &cli,
                &format!("created a vault in {place}"),
                json!({ "created": place }),
            )
        }
        Command::Put {
            subject: s,
            category: c,
            purposes,
            basis,
            source,
            collected_at,
            file,
        } => {
            let collected_at = collected_at.as_deref().map(time).transpose()?;
            let v = open_as(&cli)?;
            let mut meta = RecordMeta::new(category(c)?);
            for p in purposes {
                meta = meta.purpose(purpose(p)?);
            }
            if let Some(b) = basis {
                meta = meta.basis(b.parse::<LegalBasis>().map_err(err)?);
            }
            if let Some(src) = source {
                meta = meta.source(src.clone());
            }
            if let Some(at) = collected_at {
                meta = meta.collected_at(at);
            }
            let data = payload(file.as_deref())?;
            let id = call!(v, put(&subject(&s.subject)?, meta, &data)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(
                &cli,
                &id.to_string(),
                json!({"record": id.to_string(), "bytes": data.len()}),
            )
        }
        Command::Get {
            subject: s,
            record: r,
            purpose: p,
        } => {
            let v = open_as(&cli)?;
            let rec =
                call!(v, get(&subject(&s.subject)?, record(r)?, &purpose(p)?)).map_err(err)?;
            v.close().map_err(err)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&rec.payload)
                .and_then(|_| out.flush())
                .map_err(err)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Read {
            subject: s,
            purpose: p,
        } => {
            let v = open_as(&cli)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            let read = call!(
                v,
                read_each(&subject(&s.subject)?, &purpose(p)?, |r| {
                    let line = json!({
                        "record": r.info,
                        "payload": ExportPayload::from_bytes(r.payload),
                    });
                    match serde_json::to_writer(&mut out, &line)
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                    {
                        Ok(()) => std::ops::ControlFlow::Continue(()),
                        Err(e) => {
                            failed = Some(e);
                            std::ops::ControlFlow::Break(())
                        }
                    }
                })
            );
            let closed = v.close();
            read.map_err(err)?;
            closed.map_err(err)?;
            match failed {
                Some(e) => Err(err(e)),
                None => out.flush().map_err(err).map(|()| ExitCode::SUCCESS),
            }
        }
        Command::Update {
            subject: s,
            record: r,
            file,
        } => {
            let v = open_as(&cli)?;
            let data = payload(file.as_deref())?;
            call!(v, update(&subject(&s.subject)?, record(r)?, &data)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "updated", json!({"record": r, "updated": true}))
        }
        Command::Rectify {
            subject: s,
            record: r,
            file,
            reason,
        } => {
            let v = open_as(&cli)?;
            let data = payload(file.as_deref())?;
            call!(
                v,
                rectify(&subject(&s.subject)?, record(r)?, None, Some(&data), reason)
            )
            .map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "rectified", json!({"record": r, "rectified": true}))
        }
        Command::Delete {
            subject: s,
            record: r,
        } => {
            let v = open_as(&cli)?;
            call!(v, delete(&subject(&s.subject)?, record(r)?)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "deleted", json!({"record": r, "deleted": true}))
        }
        Command::List { subject: s } => {
            let v = open_as(&cli)?;
            let list = call!(v, list(&subject(&s.subject)?)).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&list)?;
            } else {
                println!(
                    "{:<32}  {:<14}  {:<20}  {:<22}  purposes",
                    "record", "category", "basis", "collected_at"
                );
                for r in &list {
                    let purposes: Vec<&str> = r.meta.purposes.iter().map(|p| p.as_str()).collect();
                    println!(
                        "{:<32}  {:<14}  {:<20}  {:<22}  {}",
                        r.record,
                        r.meta.category,
                        r.meta.basis,
                        r.meta.collected_at.to_string(),
                        purposes.join(",")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { anonymous: true } => crate::analysis::anonymous_stats(&cli, open(&cli)?),
        Command::ExportAnalysis {
            categories,
            purpose: p,
            out,
            force,
        } => {
            let cats = categories
                .iter()
                .map(|c| category(c))
                .collect::<Res<Vec<_>>>()?;
            let p = purpose(p)?;
            crate::analysis::export(open(&cli)?, &cats, &p, out.as_deref(), *force)
        }
        Command::Credential(CredentialCmd::Set {
            subject: s,
            purposes,
            basis,
            source,
            secret_file,
        }) => {
            let mut meta = RecordMeta::new(Category::Credential);
            for p in purposes {
                meta = meta.purpose(purpose(p)?);
            }
            if let Some(b) = basis {
                meta = meta.basis(b.parse::<LegalBasis>().map_err(err)?);
            }
            if let Some(src) = source {
                meta = meta.source(src.clone());
            }
            let sid = subject(&s.subject)?;
            let v = open_as(&cli)?;
            let secret = crate::credential::read_secret(secret_file.as_deref(), true)?;
            let id = call!(v, set_credential(&sid, meta, &secret)).map_err(err)?;
            drop(secret);
            v.close().map_err(err)?;
            ok_line(&cli, &id.to_string(), json!({"record": id.to_string()}))
        }
        Command::Credential(CredentialCmd::Verify {
            subject: s,
            record: r,
            secret_file,
        }) => {
            let (sid, rid) = (subject(&s.subject)?, record(r)?);
            let v = open_as(&cli)?;
            let secret = crate::credential::read_secret(secret_file.as_deref(), false)?;
            let matched = call!(v, verify_credential(&sid, rid, &secret)).map_err(err)?;
            drop(secret);
            v.close().map_err(err)?;
            if cli.json {
                print_json(&json!({"record": r, "match": matched}))?;
            } else {
                println!("{}", if matched { "match" } else { "no match" });
            }
            if matched {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("pdvault: the secret does not match the credential");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Stats { anonymous: false } => {
            let v = open_as(&cli)?;
            let st = call!(v, stats()).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&st)?;
            } else {
                println!(
                    "subjects: {} ({} pending erasure)",
                    st.subjects, st.subjects_pending_erasure
                );
                println!(
                    "records: {} ({} destroyed, awaiting reclaim)",
                    st.records, st.awaiting_reclaim
                );
                for (what, map) in [
                    ("category", &st.by_category),
                    ("basis", &st.by_basis),
                    ("purpose", &st.by_purpose),
                    ("retention", &st.by_retention),
                ] {
                    for (k, n) in map {
                        println!("  {what:<10} {k:<24} {n}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { out, since, until } => {
            if out.is_none() && !cli.json {
                return Err("report needs --out FILE.html (the page) or --json (stdout)".into());
            }
            let options = pdvault::ReportOptions {
                since: since.as_deref().map(time).transpose()?,
                until: until.as_deref().map(time).transpose()?,
            };
            let v = open(&cli)?;
            let report = spinning("gathering the report and verifying the vault", || {
                v.report(&options)
            })
            .map_err(err)?;
            v.close().map_err(err)?;
            if let Some(path) = out {
                fs::write(path, report.to_html())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            if cli.json {
                print_json(&report)?;
            } else if let Some(path) = out {
                println!("report written to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let v = open_as(&cli)?;
            let rep = spinning("verifying every entry, key and record", || {
                call!(v, verify())
            })
            .map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&rep)?;
            } else {
                println!(
                    "{} entries, {} keys, {} records checked",
                    rep.entries, rep.keys, rep.records
                );
                println!(
                    "epoch keys: {} source ({}), {} live; erasure: {}",
                    rep.key_source.kind,
                    rep.key_source.location,
                    rep.live_epochs,
                    rep.key_source.guarantee.describe()
                );
                for p in &rep.problems {
                    println!("problem: {p}");
                }
                if let Some((seq, why)) = &rep.audit.first_bad {
                    println!("audit entry {seq}: {why}");
                }
                println!(
                    "{}",
                    if rep.is_whole() {
                        "the vault is whole"
                    } else {
                        "the vault is DAMAGED"
                    }
                );
            }
            if rep.is_whole() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("pdvault: the vault is damaged");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Erase {
            subject: s,
            category: c,
            record: r,
        } => {
            let v = open_as(&cli)?;
            let sid = subject(&s.subject)?;
            let report = match (c, r) {
                (Some(c), _) => call!(v, erase_category(&sid, &category(c)?)),
                (None, Some(r)) => call!(v, erase_record(&sid, record(r)?)),
                (None, None) => call!(v, erase_subject(&sid)),
            }
            .map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&report)?;
            } else {
                for e in &report.erased {
                    println!(
                        "erased    {:<14} {}",
                        e.category,
                        e.record
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "(every record)".into())
                    );
                }
                for k in &report.retained {
                    println!(
                        "retained  {:<14} {}  {}",
                        k.category,
                        k.record,
                        serde_json::to_string(&k.reason).map_err(err)?
                    );
                }
                if report.subject_erased {
                    println!("the subject is erased: nothing links its identifier to anything");
                } else if !report.retained.is_empty() {
                    println!(
                        "retained records stay pending: the sweep erases them once nothing protects them"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCmd::Check { file }) => {
            let p = read_policy(file)?;
            ok_line(
                &cli,
                &format!(
                    "policy is valid: {} categories with retention, {} with bases, {} not collected, {} roles, {} recipients",
                    p.retention.len(),
                    p.bases.len(),
                    p.not_collected.len(),
                    p.roles.len(),
                    p.recipients.len()
                ),
                json!({
                    "valid": true,
                    "categories": p.retention.keys().collect::<Vec<_>>(),
                    "bases": p.bases.keys().collect::<Vec<_>>(),
                    "not_collected": p.not_collected,
                    "roles": p.roles.keys().collect::<Vec<_>>(),
                    "recipients": p.recipients.keys().collect::<Vec<_>>(),
                }),
            )
        }
        Command::Object {
            subject: s,
            purpose: p,
            lift,
        } => {
            let v = open_as(&cli)?;
            let (s, p2) = (subject(&s.subject)?, purpose(p)?);
            if *lift {
                call!(v, lift_objection(&s, &p2))
            } else {
                call!(v, object(&s, &p2))
            }
            .map_err(err)?;
            v.close().map_err(err)?;
            let what = if *lift {
                "objection lifted"
            } else {
                "objection recorded"
            };
            ok_line(&cli, what, json!({"purpose": p, "objected": !*lift}))
        }
        Command::Age { subject: s, status } => {
            let status: AgeStatus = status.parse().map_err(err)?;
            let v = open_as(&cli)?;
            let report = call!(v, set_age_status(&subject(&s.subject)?, status)).map_err(err)?;
            v.close().map_err(err)?;
            let line = match &report {
                Some(r) => format!(
                    "age status {}: erased ({} categories or records, {} retained)",
                    status.name(),
                    r.erased.len(),
                    r.retained.len()
                ),
                None => format!("age status {}", status.name()),
            };
            ok_line(&cli, &line, json!({"age": status, "erasure": report}))
        }
        Command::Policy(PolicyCmd::Show) => {
            let v = open(&cli)?;
            let p = v.policy();
            v.close().map_err(err)?;
            match p {
                Some(p) if cli.json => print_json(&json!({"policy": p.source()}))?,
                Some(p) => print!("{}", p.source()),
                None if cli.json => print_json(&json!({"policy": null}))?,
                None => println!(
                    "no policy: nothing is kept by obligation, nothing deleted by schedule"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCmd::Set { file }) => {
            let p = read_policy(file)?;
            let v = open(&cli)?;
            v.set_policy(p).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "policy set", json!({"policy_set": true}))
        }
        Command::Hold(HoldCmd::Place {
            subject: s,
            category: c,
            record: r,
            reason,
            reference,
            until,
        }) => {
            let v = open_as(&cli)?;
            let target = match (c, r) {
                (Some(c), _) => HoldTarget::Category(category(c)?),
                (None, Some(r)) => HoldTarget::Record(record(r)?),
                (None, None) => HoldTarget::Subject,
            };
            let until = until.as_deref().map(time).transpose()?;
            let reason: HoldReason = reason.parse().map_err(err)?;
            let mut hold = pdvault::NewHold::new(target, reason);
            if let Some(r) = reference {
                hold = hold.reference(r.as_str());
            }
            if let Some(u) = until {
                hold = hold.until(u);
            }
            let id = call!(v, place_hold(&subject(&s.subject)?, hold)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, &id.to_string(), json!({"hold": id.to_string()}))
        }
        Command::Hold(HoldCmd::Release { hold }) => {
            let v = open_as(&cli)?;
            let id: HoldId = hold.parse().map_err(err)?;
            call!(v, release_hold(id)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "released", json!({"hold": hold, "released": true}))
        }
        Command::Hold(HoldCmd::List { subject: s }) => {
            let v = open_as(&cli)?;
            let sid = s.as_deref().map(subject).transpose()?;
            let holds = call!(v, holds(sid.as_ref())).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&holds)?;
            } else {
                for h in holds {
                    let state = if h.released.is_some() {
                        "released"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<8}  {:<22}  {:<16}  {}",
                        h.id,
                        state,
                        h.reason,
                        h.reference.as_deref().unwrap_or("-"),
                        serde_json::to_string(&h.scope).map_err(err)?
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Event {
            subject: s,
            kind,
            at,
        } => {
            let v = open_as(&cli)?;
            let kind: EventKind = kind.parse().map_err(err)?;
            let at = match at {
                Some(a) => time(a)?,
                None => call!(v, now()),
            };
            call!(v, record_event(&subject(&s.subject)?, kind, at)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(
                &cli,
                "event recorded",
                json!({"event": kind.name(), "at": at}),
            )
        }
        Command::Sweep { dry_run, at } => {
            let at = at.as_deref().map(time).transpose()?;
            let v = open_as(&cli)?;
            let bar = crate::progress::bar("{bar:40} {pos}/{len} due");
            let mut progress = |done, total| {
                if let Some(b) = &bar {
                    b.set_length(total);
                    b.set_position(done);
                }
            };
            let options = match (at, *dry_run) {
                (Some(at), _) => pdvault::SweepOptions::dry_run_at(at),
                (None, true) => pdvault::SweepOptions::dry_run(),
                (None, false) => pdvault::SweepOptions::now(),
            };
            let report = call!(v, sweep_with(options.progress(&mut progress)));
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let report = report.map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&report)?;
            } else {
                let dry = match (report.dry_run, at) {
                    (true, Some(at)) => format!("(dry run at {at}) "),
                    (true, None) => "(dry run) ".to_owned(),
                    (false, _) => String::new(),
                };
                println!(
                    "{dry}erased {} records and {} categories, retained {}, completed {} subject erasures, reclaimed {} rows, pruned {} audit entries",
                    report.erased,
                    report.categories_erased,
                    report.retained,
                    report.subjects_erased,
                    report.reclaimed,
                    report.audit_pruned
                );
                for (name, c) in &report.by_category {
                    println!(
                        "  {name:<14} erased {} ({} past maximum retention, {} pending erasure), retained {} ({} held, {} minimum retention)",
                        c.expired + c.erasure_completed,
                        c.expired,
                        c.erasure_completed,
                        c.held + c.minimum_retention,
                        c.held,
                        c.minimum_retention
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::RotateKey {
            new_passphrase_file,
            min_passphrase_len,
        } => {
            let v = open(&cli)?;
            let new = secret(
                new_passphrase_file.as_deref(),
                "PDVAULT_NEW_PASSPHRASE",
                "New passphrase: ",
                Prompt::Confirmed,
            )?;
            spinning("re-sealing the vault under the new root key", || {
                v.rotate_root_with_min_len(new, None, *min_passphrase_len)
            })
            .map_err(err)?;
            v.close().map_err(err)?;
            ok_line(
                &cli,
                "root key rotated: the old passphrase opens nothing now",
                json!({"rotated": true}),
            )
        }
        Command::Migrate {
            to_dir,
            to_store,
            to_schema,
            retire_source,
        } => {
            let v = open(&cli)?;
            let to = match (to_dir, to_store) {
                (Some(dir), _) => Vault::builder(dir),
                (None, Some(url)) => {
                    let b = Vault::builder_postgres(url);
                    match to_schema {
                        Some(s) => b.postgres_schema(s),
                        None => b,
                    }
                }
                (None, None) => return Err("migrate needs --to-dir or --to-store".into()),
            };
            let to = with_key_source(&cli, to)?;
            let secret = vault_secret(&cli, "Vault passphrase (again, to open the copy): ")?;
            let migrated = spinning("copying the vault", || v.migrate(to, secret));
            let (copy, report) = migrated.map_err(err)?;
            copy.close().map_err(err)?;
            if !report.verify.is_whole() {
                v.close().map_err(err)?;
                return Err(format!(
                    "the copy does not verify ({:?}); the source is unchanged",
                    report.verify.problems
                ));
            }
            let retired = if *retire_source {
                Some(v.retire().map_err(err)?)
            } else {
                v.close().map_err(err)?;
                None
            };
            let text = format!(
                "copied {} rows and {} audit entries; the copy verifies{}",
                report.rows,
                report.audit_entries,
                match retired {
                    Some(n) => format!("; the source's {n} epoch key(s) destroyed"),
                    None => "; the source still holds everything: remove it, or migrate with --retire-source".into(),
                }
            );
            ok_line(
                &cli,
                &text,
                json!({"rows": report.rows, "audit_entries": report.audit_entries, "verify": report.verify, "source_retired": retired}),
            )
        }
        Command::Backup { out, expires } => {
            let v = open(&cli)?;
            match expires {
                Some(span) => {
                    let span: jiff::Span = span
                        .parse()
                        .map_err(|e| format!("--expires {span:?} is not a span ({e})"))?;
                    let at = v
                        .now()
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .checked_add(span)
                        .map_err(|e| format!("--expires: {e}"))?
                        .timestamp();
                    spinning("writing the backup", || v.backup_expiring(out, at)).map_err(err)?;
                }
                None => spinning("writing the backup", || v.backup(out)).map_err(err)?,
            }
            v.close().map_err(err)?;
            ok_line(
                &cli,
                &format!("backup written to {}", out.display()),
                json!({"backup": out}),
            )
        }
        Command::Ledger(LedgerCmd::Export { out }) => {
            let v = open(&cli)?;
            let mut f = pdvault::create_private_file(out, true)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            v.export_ledger(&mut f).map_err(err)?;
            let n = v.ledger().map_err(err)?.len();
            v.close().map_err(err)?;
            ok_line(
                &cli,
                &format!("{n} ledger entries written to {}", out.display()),
                json!({"entries": n}),
            )
        }
        Command::Restore {
            from,
            to,
            ledger,
            without_ledger_bring_erased_data_back,
        } => {
            let ledger = match (ledger, without_ledger_bring_erased_data_back) {
                (Some(p), _) => {
                    let mut f = fs::File::open(p)
                        .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                    Some(Vault::parse_ledger(&mut f).map_err(err)?)
                }
                (None, true) => None,
                (None, false) => {
                    return Err(
                        "no erasure ledger: pass --ledger FILE (from `ledger export` on \
                         the live vault); restoring without one brings erased data back and \
                         needs --without-ledger-bring-erased-data-back"
                            .into(),
                    );
                }
            };
            let secret = secret(
                cli.passphrase_file.as_deref(),
                "PDVAULT_PASSPHRASE",
                "Backup passphrase: ",
                Prompt::Once,
            )?;
            let choice = match &ledger {
                Some(doc) => LedgerChoice::Apply(doc),
                None => LedgerChoice::BringErasedDataBack,
            };
            let builder = with_key_source(&cli, Vault::builder(to))?;
            let v = spinning("restoring the backup", || {
                builder.restore(from, secret, choice)
            })
            .map_err(err)?;
            v.close().map_err(err)?;
            if ledger.is_none() {
                eprintln!(
                    "pdvault: warning: restored without an erasure ledger: everything erased \
                     after the backup was taken is readable again in {}",
                    to.display()
                );
            }
            let entries = ledger.as_ref().map_or(0, |l| l.len());
            ok_line(
                &cli,
                &format!(
                    "restored into {} (erasure ledger of {entries} entries checked and re-applied)",
                    to.display()
                ),
                json!({"restored": to, "ledger_entries": entries, "ledger": ledger.is_some()}),
            )
        }
        Command::Export {
            subject: s,
            out,
            force,
        } => {
            let v = open_as(&cli)?;
            let sid = subject(&s.subject)?;
            let n = match out {
                Some(p) => {
                    let f = pdvault::create_private_file(p, *force).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            format!("{} already exists: pass --force to replace it", p.display())
                        } else {
                            format!("cannot create {}: {e}", p.display())
                        }
                    })?;
                    let mut f = std::io::BufWriter::new(f);
                    let written = spinning("exporting", || call!(v, export(&sid, &mut f)))
                        .map_err(err)
                        .and_then(|n| f.flush().map(|()| n).map_err(err));
                    let n = match written {
                        Ok(n) => n,
                        Err(e) => {
                            // A part of an export is personal data nobody asked for: the file
                            // was created here and is removed.
                            drop(f);
                            let _ = fs::remove_file(p);
                            return Err(e);
                        }
                    };
                    eprintln!("{n} records exported to {}", p.display());
                    n
                }
                None => spinning("exporting", || {
                    call!(v, export(&sid, &mut std::io::stdout().lock()))
                })
                .map_err(err)?,
            };
            v.close().map_err(err)?;
            let _ = n;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { file } => {
            let v = open(&cli)?;
            let mut f = std::io::BufReader::new(
                fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?,
            );
            let r = spinning("importing", || v.import(&mut f)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(
                &cli,
                &format!("{} records imported", r.records),
                json!({"records": r.records}),
            )
        }
        Command::Restrict {
            subject: s,
            category: c,
        }
        | Command::Unrestrict {
            subject: s,
            category: c,
        } => {
            let on = matches!(cli.command, Command::Restrict { .. });
            let v = open_as(&cli)?;
            let cat = c.as_deref().map(category).transpose()?;
            let sid = subject(&s.subject)?;
            if on {
                call!(v, restrict(&sid, cat.as_ref()))
            } else {
                call!(v, unrestrict(&sid, cat.as_ref()))
            }
            .map_err(err)?;
            v.close().map_err(err)?;
            ok_line(
                &cli,
                if on {
                    "restricted"
                } else {
                    "restriction lifted"
                },
                json!({"restricted": on}),
            )
        }
        Command::Consent(ConsentCmd::Grant {
            subject: s,
            purpose: p,
            policy_version,
            guardian,
        }) => {
            let v = open_as(&cli)?;
            let (s, p2, version) = (subject(&s.subject)?, purpose(p)?, policy_version.as_deref());
            if *guardian {
                call!(v, grant_guardian_consent(&s, &p2, version))
            } else {
                call!(v, grant_consent(&s, &p2, version))
            }
            .map_err(err)?;
            v.close().map_err(err)?;
            ok_line(
                &cli,
                "consent granted",
                json!({"purpose": p, "granted": true}),
            )
        }
        Command::Consent(ConsentCmd::Withdraw {
            subject: s,
            purpose: p,
            erase,
            guardian,
        }) => {
            let v = open_as(&cli)?;
            let (s, p2) = (subject(&s.subject)?, purpose(p)?);
            let report = if *guardian {
                call!(v, withdraw_guardian_consent(&s, &p2)).map(|()| None)
            } else {
                let then = if *erase {
                    pdvault::Withdrawal::EraseRecords
                } else {
                    pdvault::Withdrawal::KeepRecords
                };
                call!(v, withdraw_consent(&s, &p2, then))
            }
            .map_err(err)?;
            v.close().map_err(err)?;
            let erased = report.as_ref().map(|r| r.erased.len()).unwrap_or(0);
            ok_line(
                &cli,
                &format!("consent withdrawn ({erased} erased)"),
                json!({"purpose": p, "granted": false, "erasure": report}),
            )
        }
        Command::Disclose {
            subject: s,
            recipient,
            purpose: p,
            categories,
            ground,
        } => {
            let v = open_as(&cli)?;
            let cats = categories
                .iter()
                .map(|c| category(c))
                .collect::<Res<Vec<_>>>()?;
            call!(
                v,
                disclose(
                    &subject(&s.subject)?,
                    recipient,
                    &purpose(p)?,
                    &cats,
                    ground.as_deref(),
                )
            )
            .map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "disclosure recorded", json!({"disclosed": true}))
        }
        Command::Audit(AuditCmd::Verify) => {
            let v = open_as(&cli)?;
            let rep = call!(v, audit_verify()).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&rep)?;
            } else if rep.is_intact() {
                println!("the audit trail is intact ({} entries)", rep.entries);
            }
            match &rep.first_bad {
                None => Ok(ExitCode::SUCCESS),
                Some((seq, why)) => {
                    eprintln!("pdvault: audit entry {seq} is bad: {why}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit(AuditCmd::Show { subject: s, since }) => {
            let v = open_as(&cli)?;
            let sid = s.as_deref().map(subject).transpose()?;
            let since = since.as_deref().map(time).transpose()?;
            let entries = call!(v, audit_entries(sid.as_ref(), since)).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&entries)?;
            } else {
                for e in entries {
                    println!(
                        "{:>6}  {}  {:<16}  {:<18}  {}  {}  {}  {}",
                        e.seq,
                        e.at,
                        e.actor,
                        serde_json::to_string(&e.op).map_err(err)?.trim_matches('"'),
                        e.subject
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        e.category.as_deref().unwrap_or("-"),
                        e.record
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "-".into()),
                        e.note.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Request(RequestCmd::Open { subject: s, kind }) => {
            let v = open_as(&cli)?;
            let kind: RequestKind = kind.parse().map_err(err)?;
            let req = call!(v, open_request(&subject(&s.subject)?, kind, None)).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&req)?;
            } else {
                println!(
                    "{} due {}",
                    req.id,
                    req.due_at
                        .map(to_minute)
                        .unwrap_or_else(|| "(no deadline in the policy)".into())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Request(RequestCmd::List { overdue }) => {
            let v = open_as(&cli)?;
            let filter = if *overdue {
                pdvault::RequestFilter::Overdue
            } else {
                pdvault::RequestFilter::All
            };
            let reqs = call!(v, requests(filter)).map_err(err)?;
            let now = call!(v, now());
            v.close().map_err(err)?;
            if cli.json {
                print_json(&reqs)?;
            } else {
                for r in reqs {
                    let state = if r.closed_at.is_some() {
                        "closed"
                    } else if r.is_overdue(now) {
                        "OVERDUE"
                    } else {
                        "open"
                    };
                    let due = match r.due_at {
                        None => "-".to_owned(),
                        Some(d) if r.closed_at.is_some() => to_minute(d),
                        Some(d) => format!("{} ({})", to_minute(d), time_left(d, now)),
                    };
                    let identity = match &r.identity_verified {
                        None => "identity not verified".to_owned(),
                        Some(v) => format!(
                            "identity verified by {} ({}) at {}",
                            v.by,
                            v.method,
                            to_minute(v.at)
                        ),
                    };
                    println!(
                        "{}  {:<14}  {:<8}  received {}  due {}  {}",
                        r.id,
                        r.kind.name(),
                        state,
                        to_minute(r.received_at),
                        due,
                        identity
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Request(RequestCmd::Verify { id, by, method }) => {
            let v = open(&cli)?;
            let rid: RequestId = id.parse().map_err(err)?;
            let req = v.verify_request_identity(rid, by, method).map_err(err)?;
            v.close().map_err(err)?;
            if cli.json {
                print_json(&req)?;
            } else {
                println!("{} identity verified by {by}", req.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Request(RequestCmd::Close { id }) => {
            let v = open_as(&cli)?;
            let rid: RequestId = id.parse().map_err(err)?;
            call!(v, close_request(rid)).map_err(err)?;
            v.close().map_err(err)?;
            ok_line(&cli, "closed", json!({"request": id, "closed": true}))
        }
    }
}
