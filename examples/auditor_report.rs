//! The auditor's report of a year of activity under seed policy 000 (cmcendpoint.com), in
//! simulated time: sign-ups every month, access logs expiring after 3 months and accounts
//! erased when they close (a monthly sweep), erasure requests (one retained in part by a legal
//! hold, five answered late), access requests (one left overdue), consent withdrawn with
//! erasure, and disclosures to the declared payment processor. Writes the report as one HTML
//! page and prints its path.
//!
//! Run: `cargo run --release --example auditor_report [-- OUT.html]` (default: the system's
//! temporary directory).

use std::path::PathBuf;

use jiff::{Timestamp, ToSpan};
use pdvault::{
    Category, EventKind, HoldReason, HoldTarget, KdfParams, LegalBasis, ManualClock, NewHold,
    Policy, Purpose, RecordMeta, RequestKind, RootSecret, SubjectId, Vault, Withdrawal,
};

/// Subjects who sign up, ten a month.
pub const SUBJECTS: usize = 120;

/// The identifier of subject `n`.
pub fn user(n: usize) -> pdvault::Result<SubjectId> {
    Ok(SubjectId::new(format!("user-{n}@example.com"))?)
}

/// The first day of the simulated year.
pub fn start() -> Timestamp {
    Timestamp::from_second(1_735_689_600).unwrap_or(Timestamp::UNIX_EPOCH) // 2025-01-01
}

/// Creates a vault in `dir` and runs a year of activity in it; returns the vault and its clock
/// (at the end of the year).
pub fn year_of_activity(dir: &std::path::Path) -> pdvault::Result<(Vault, ManualClock)> {
    // The seed keeps audit entries 3 months; kept 2 years here, the report covers the year.
    let policy = Policy::from_toml(
        &include_str!("../policies/seed-000-cmcendpoint.toml")
            .replace("retain = \"3 months\"", "retain = \"2 years\""),
    )?;
    let clock = ManualClock::new(start());
    let vault = Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(policy)
        .create(RootSecret::passphrase("example only"))?;
    let newsletter = Purpose::new("newsletter")?;
    let settlement = Purpose::new("settlement")?;
    for month in 0..12 {
        // Sign-ups: account, contact and payment on the contract, an access log kept for
        // security, and a newsletter profile on consent.
        for n in month * 10..month * 10 + 10 {
            let s = user(n)?;
            let put = |c: Category, b: LegalBasis, payload: &[u8]| {
                vault.put(&s, RecordMeta::new(c).basis(b), payload)
            };
            put(Category::Account, LegalBasis::Contract, b"account")?;
            put(Category::Contact, LegalBasis::Contract, b"+82 10 0000 0000")?;
            put(Category::Payment, LegalBasis::Contract, b"card ending 4242")?;
            put(
                Category::AccessLog,
                LegalBasis::LegitimateInterests,
                b"203.0.113.7",
            )?;
            vault.grant_consent(&s, &newsletter, Some("seed-000"))?;
            vault.put(
                &s,
                RecordMeta::new(Category::Profile)
                    .basis(LegalBasis::Consent)
                    .purpose(newsletter.clone()),
                b"prefers weekly mail",
            )?;
        }
        match month {
            // Accounts closed: account, profile and contact go at the next sweep.
            2 => {
                for n in 0..8 {
                    vault.record_event(&user(n)?, EventKind::AccountClosed, vault.now())?;
                }
            }
            // Erasure requests, answered at once; the first is retained in part by a hold on the
            // subject's payment records (and by their 5-year minimum).
            4 => {
                let held = user(10)?;
                vault.place_hold(
                    &held,
                    NewHold::new(HoldTarget::Category(Category::Payment), HoldReason::Dispute)
                        .reference("dispute 2025-17"),
                )?;
                for n in 10..16 {
                    let s = user(n)?;
                    vault.open_request(&s, RequestKind::Erasure, None)?;
                    vault.erase_subject(&s)?;
                }
            }
            // Access requests answered by an export, within the deadline.
            6 => {
                for n in 20..26 {
                    let s = user(n)?;
                    vault.open_request(&s, RequestKind::Access, None)?;
                    clock.advance(2.days());
                    vault.export(&s, &mut Vec::new())?;
                }
            }
            // Consent withdrawn with erasure: the newsletter profiles go.
            7 => {
                for n in 30..36 {
                    vault.withdraw_consent(&user(n)?, &newsletter, Withdrawal::EraseRecords)?;
                }
            }
            // Disclosures of payment records to the declared processor, on the contract.
            8 => {
                for n in 40..52 {
                    vault.disclose(
                        &user(n)?,
                        "payment-processor",
                        &settlement,
                        &[Category::Payment],
                        Some("contract"),
                    )?;
                }
            }
            // Erasure requests answered late (the deadline is 10 days).
            9 => {
                for n in 60..65 {
                    vault.open_request(&user(n)?, RequestKind::Erasure, None)?;
                }
                clock.advance(14.days());
                for n in 60..65 {
                    vault.erase_subject(&user(n)?)?;
                }
            }
            // An access request left unanswered, past its deadline at the end of the year.
            11 => {
                vault.open_request(&user(70)?, RequestKind::Access, None)?;
            }
            _ => {}
        }
        clock.advance(1.month());
        vault.sweep()?;
    }
    clock.advance(5.days());
    Ok((vault, clock))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pdvault-auditor-report.html"));
    let dir = tempfile::tempdir()?;
    let (vault, _clock) = year_of_activity(dir.path())?;
    let report = vault.report(&pdvault::ReportOptions::new())?;
    std::fs::write(&out, report.to_html())?;
    vault.close()?;
    println!(
        "{} records held, {} active holds, the vault {}",
        report.holdings.records,
        report.holds.len(),
        if report.integrity.vault_whole {
            "verifies"
        } else {
            "is DAMAGED"
        }
    );
    println!("report written to {}", out.display());
    Ok(())
}
