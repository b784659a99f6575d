//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod binary;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod store;

/// Copies a vault directory's tree (the `LOCK` file left out) to `to`, as a copy of its files
/// taken at one moment.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

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
