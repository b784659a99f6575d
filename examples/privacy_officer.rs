//! A privacy officer answers an access request and an erasure request end to end, then shows and
//! verifies the audit trail.
//!
//! Run: `cargo run --release --example privacy_officer`

use pdvault::{
    Category, KdfParams, LegalBasis, ManualClock, Policy, Purpose, RecordMeta, RequestFilter,
    RequestKind, RootSecret, SubjectId, Vault,
};

fn main() -> pdvault::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(
        "2025-06-02T09:00:00Z"
            .parse()
            .map_err(|_| pdvault::InputError::Time("start".into()))?,
    );
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(Policy::from_toml(include_str!(
            "../policies/seed-001-m-exe.toml"
        ))?)
        .create(RootSecret::passphrase("example only"))?;
    let app = vault.as_actor("web-app")?;
    let officer = vault.as_actor("dpo@example.com")?;

    let bob = SubjectId::new("bob@example.com")?;
    app.put(
        &bob,
        RecordMeta::new(Category::Contact).purpose(Purpose::new("billing")?),
        b"Bob, 1 Main St",
    )?;
    app.put(
        &bob,
        RecordMeta::new(Category::Usage)
            .purpose(Purpose::new("analytics")?)
            .basis(LegalBasis::Consent),
        b"search: red shoes",
    )?;
    app.put(
        &bob,
        RecordMeta::new(Category::Transaction).purpose(Purpose::new("billing")?),
        b"order #1001, 49.90 EUR",
    )?;
    app.grant_consent(&bob, &Purpose::new("analytics")?, None)?;

    // 1. Access request: record it, verify the requester's identity (the policy requires it),
    //    answer it with an export (which closes it).
    let req = officer.open_request(&bob, RequestKind::Access, None)?;
    officer.verify_request_identity(req.id, "dpo@example.com", "government-issued ID")?;
    println!(
        "access request {} received, due {}",
        req.id,
        req.due_at.map(|d| d.to_string()).unwrap_or_default()
    );
    let mut export = Vec::new();
    let n = officer.export(&bob, &mut export)?;
    println!(
        "exported {n} records ({} bytes of JSON); open requests left: {}",
        export.len(),
        officer
            .requests(RequestFilter::All)?
            .iter()
            .filter(|r| r.closed_at.is_none())
            .count()
    );

    // 2. Erasure request: the transaction is kept 7 years (legal obligation), the rest goes now.
    clock.advance(jiff::Span::new().days(3));
    let req = officer.open_request(&bob, RequestKind::Erasure, None)?;
    officer.verify_request_identity(req.id, "dpo@example.com", "password confirmation")?;
    let report = officer.erase_subject(&bob)?;
    println!(
        "erasure: {} erased, {} retained:",
        report.erased.len(),
        report.retained.len()
    );
    for r in &report.retained {
        println!(
            "  kept {} ({}) because {:?}",
            r.record, r.category, r.reason
        );
    }

    // 3. The audit trail: who did what, by internal reference only; verified.
    println!("audit trail:");
    for e in officer.audit_entries(None, None)? {
        println!(
            "  #{:<3} {} {:<16} {:<16} subject={} category={}",
            e.seq,
            e.at,
            e.actor,
            format!("{:?}", e.op),
            e.subject
                .map(|s| s.to_string()[..8].to_owned())
                .unwrap_or_else(|| "-".into()),
            e.category.unwrap_or_else(|| "-".into())
        );
    }
    let audit = officer.audit_verify()?;
    println!(
        "audit trail intact: {} ({} entries)",
        audit.is_intact(),
        audit.entries
    );
    assert!(audit.is_intact());
    Ok(())
}
