//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod binary;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod store;

/// A record's metadata with a legal basis that the shipped seed policies allow for its category
/// (their `[bases]`): what a service writing under those policies would state. Suites that test
/// something else than the bases (retention, rights) write through this.
pub fn seed_meta(category: pdvault::Category) -> pdvault::RecordMeta {
    use pdvault::{Category, LegalBasis};
    let basis = match category {
        Category::Usage
        | Category::Technical
        | Category::AccessLog
        | Category::Preference
        | Category::Cookie => LegalBasis::LegitimateInterests,
        Category::Complaint => LegalBasis::LegalObligation,
        _ => LegalBasis::Contract,
    };
    pdvault::RecordMeta::new(category).basis(basis)
}
