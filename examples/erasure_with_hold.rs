//! An erasure request where one category is under a legal hold: everything else is destroyed at
//! once; the held category is retained, named in the report, and destroyed by the sweep after
//! the hold is released.
//!
//! Run: `cargo run --release --example erasure_with_hold`

use pdvault::{
    Category, HoldReason, HoldTarget, KdfParams, NewHold, Purpose, RecordMeta, RootSecret,
    SubjectId, Vault,
};

fn main() -> pdvault::Result<()> {
    let dir = tempfile::tempdir()?;
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("example only"))?;
    let officer = vault.as_actor("privacy-officer")?;
    let alice = SubjectId::new("alice@example.com")?;
    let service = Purpose::new("service")?;

    officer.put(
        &alice,
        RecordMeta::new(Category::Account).purpose(service.clone()),
        b"Alice Example, alice@example.com",
    )?;
    officer.put(
        &alice,
        RecordMeta::new(Category::Usage).purpose(service.clone()),
        b"viewed /pricing 14 times",
    )?;
    let ticket = officer.put(
        &alice,
        RecordMeta::new(Category::Complaint).purpose(service.clone()),
        b"refund dispute #4471",
    )?;

    let hold = officer.place_hold(
        &alice,
        NewHold::new(
            HoldTarget::Category(Category::Complaint),
            HoldReason::Dispute,
        )
        .reference("CASE-4471"),
    )?;
    println!("placed hold {hold} on the complaint records (dispute CASE-4471)");

    let report = officer.erase_subject(&alice)?;
    println!("erasure request answered:");
    for e in &report.erased {
        println!(
            "  erased   {} {}",
            e.category,
            e.record
                .map(|r| r.to_string())
                .unwrap_or_else(|| "(every record)".into())
        );
    }
    for r in &report.retained {
        println!(
            "  retained {} {} because {:?}",
            r.category, r.record, r.reason
        );
    }
    println!("subject fully erased: {}", report.subject_erased);
    println!(
        "the held ticket still reads: {}",
        officer.get(&alice, ticket, &Purpose::LEGAL_CLAIMS).is_ok()
    );

    officer.release_hold(hold)?;
    let sweep = officer.sweep()?;
    println!(
        "hold released; sweep: {} categories erased, {} subjects completed",
        sweep.categories_erased, sweep.subjects_erased
    );
    println!(
        "the subject is gone: {}",
        matches!(officer.list(&alice), Err(pdvault::Error::SubjectNotFound))
    );
    println!(
        "erasure ledger: {} entries, no personal data",
        officer.ledger()?.len()
    );
    assert!(officer.verify()?.is_whole());
    Ok(())
}
