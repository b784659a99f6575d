//! The main example: a vault in a temporary directory, records for a subject in several
//! categories, a purpose-bound read, a listing, statistics, an erasure, a verification.
//!
//! Run: `cargo run --release --example quickstart`

use pdvault::{Category, LegalBasis, Purpose, RecordMeta, RootSecret, SubjectId, Vault};

fn main() -> pdvault::Result<()> {
    let dir = tempfile::tempdir()?;
    // Default Argon2id costs (19 MiB, 2 passes): about 15 ms in a release build.
    let vault = Vault::builder(dir.path())
        .create(RootSecret::passphrase("correct horse battery staple"))?;
    println!("created a vault in {}", dir.path().display());

    let alice = SubjectId::new("alice@example.com")?;
    let billing = Purpose::new("billing")?;
    let marketing = Purpose::new("marketing")?;

    let contact = vault.put(
        &alice,
        RecordMeta::new(Category::Contact)
            .purpose(billing.clone())
            .basis(LegalBasis::Contract)
            .source("signup-form"),
        b"Alice Example, 1 Main Street",
    )?;
    vault.put(
        &alice,
        RecordMeta::new(Category::Payment).purpose(billing.clone()),
        b"IBAN DE89 3704 0044 0532 0130 00",
    )?;
    let prefs = vault.put(
        &alice,
        RecordMeta::new(Category::Preference)
            .purpose(marketing.clone())
            .basis(LegalBasis::Consent),
        b"newsletter: weekly",
    )?;

    let record = vault.get(&alice, contact, &billing)?;
    println!(
        "read for billing: {}",
        String::from_utf8_lossy(&record.payload)
    );
    match vault.get(&alice, prefs, &marketing) {
        Err(e) => println!("read for marketing before consent: refused ({e})"),
        Ok(_) => println!("read for marketing: allowed"),
    }
    vault.grant_consent(&alice, &marketing, Some("2025-01"))?;
    println!(
        "after consent: {}",
        String::from_utf8_lossy(&vault.get(&alice, prefs, &marketing)?.payload)
    );

    // Everything billing may read, streamed record by record (read_all collects the same).
    let read = vault.read_each(&alice, &billing, |r| {
        println!(
            "  billing reads {}: {} bytes",
            r.info.meta.category,
            r.payload.len()
        );
        std::ops::ControlFlow::Continue(())
    })?;
    println!("billing may read {read} of alice's records");

    println!("alice's records (metadata only, nothing decrypted):");
    for r in vault.list(&alice)? {
        let purposes: Vec<&str> = r.meta.purposes.iter().map(|p| p.as_str()).collect();
        println!(
            "  {}  {:<11} {:<9} {}",
            r.record,
            r.meta.category,
            r.meta.basis,
            purposes.join(",")
        );
    }
    let stats = vault.stats()?;
    println!(
        "stats: {} subject(s), {} records, by category {:?}",
        stats.subjects, stats.records, stats.by_category
    );

    let report = vault.erase_subject(&alice)?;
    println!(
        "erasure: {} categories destroyed, subject erased: {}",
        report.erased.len(),
        report.subject_erased
    );
    println!(
        "reading after erasure: {}",
        vault
            .get(&alice, contact, &billing)
            .map(|_| "readable")
            .unwrap_or("gone")
    );

    let check = vault.verify()?;
    println!(
        "verify: {} entries, whole: {}; audit trail intact: {}",
        check.entries,
        check.is_whole(),
        check.audit.is_intact()
    );
    vault.close()?;
    Ok(())
}
