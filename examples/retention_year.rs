//! A year of simulated time under the retention policy of seed 001: usage data goes after 12
//! months, technical logs after 6, transactions stay 7 years, account data stays while the
//! account is open and 2 years after it closes. A monthly sweep does the work.
//!
//! Run: `cargo run --release --example retention_year`

use jiff::ToSpan;
use pdvault::{
    Category, EventKind, KdfParams, LegalBasis, ManualClock, Policy, RecordMeta, RootSecret,
    SubjectId, Vault,
};

fn main() -> pdvault::Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = Policy::from_toml(include_str!("../policies/seed-001-m-exe.toml"))?;
    let start: jiff::Timestamp = "2025-01-01T00:00:00Z"
        .parse()
        .map_err(|_| pdvault::InputError::Time("start".into()))?;
    let clock = ManualClock::new(start);
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(policy)
        .create(RootSecret::passphrase("example only"))?;

    for n in 0..50 {
        let user = SubjectId::new(format!("user-{n}@example.com"))?;
        vault.put(
            &user,
            RecordMeta::new(Category::Account)
                .basis(LegalBasis::Contract)
                .collected_at(start),
            b"account",
        )?;
        vault.put(
            &user,
            // The basis the policy states for the category ([bases]).
            RecordMeta::new(Category::Technical)
                .basis(LegalBasis::LegitimateInterests)
                .collected_at(start),
            b"Firefox 133 / Linux",
        )?;
        vault.put(
            &user,
            RecordMeta::new(Category::Transaction)
                .basis(LegalBasis::Contract)
                .collected_at(start),
            b"order",
        )?;
        vault.put(
            &user,
            RecordMeta::new(Category::Usage)
                .basis(LegalBasis::LegitimateInterests)
                .collected_at(start),
            b"clicks",
        )?;
        if n % 10 == 0 {
            vault.record_event(&user, EventKind::AccountClosed, start)?;
        }
    }
    println!("month | erased | retained | records by category");
    for month in 1..=13 {
        clock.advance(1.month());
        let r = vault.sweep()?;
        let stats = vault.stats()?;
        println!(
            "{month:>5} | {:>6} | {:>8} | {:?}",
            r.erased + r.categories_erased,
            r.retained,
            stats.by_category
        );
    }
    let stats = vault.stats()?;
    assert!(
        !stats.by_category.contains_key("usage"),
        "usage data outlived 12 months"
    );
    assert!(
        !stats.by_category.contains_key("technical"),
        "technical logs outlived 6 months"
    );
    assert_eq!(
        stats.by_category.get("transaction"),
        Some(&50),
        "transactions must stay 7 years"
    );
    assert_eq!(
        stats.by_category.get("account"),
        Some(&50),
        "closed accounts stay 2 years"
    );
    println!("after 13 months: {stats:?}");
    Ok(())
}
