//! The store the vault-level suites run against: a directory (sled) by default, PostgreSQL when
//! `PDVAULT_TEST_STORE=postgres` (on the server `PDVAULT_TEST_POSTGRES` names). `.ci/run` runs
//! the suites that use this once per store: one suite, two stores.

use std::path::Path;

use pdvault::{Vault, VaultBuilder};

/// Whether this run's vaults are on PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var("PDVAULT_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sled") | Err(_) => false,
        Ok(other) => panic!("PDVAULT_TEST_STORE={other}: expected sled or postgres"),
    }
}

/// A builder for the vault "in" `dir`: the directory itself, or on PostgreSQL a schema named
/// after it (so that reopening the same directory reopens the same vault).
pub fn builder(dir: &Path) -> VaultBuilder {
    if !on_postgres() {
        return Vault::builder(dir);
    }
    postgres_builder(dir)
}

#[cfg(feature = "postgres")]
fn postgres_builder(dir: &Path) -> VaultBuilder {
    let url =
        super::postgres::url().expect("PDVAULT_TEST_STORE=postgres needs PDVAULT_TEST_POSTGRES");
    let hash = blake3::hash(dir.as_os_str().as_encoded_bytes());
    let schema = format!("pdv_dir_{}", &hash.to_hex()[..16]);
    Vault::builder_postgres(&url).postgres_schema(&schema)
}

#[cfg(not(feature = "postgres"))]
fn postgres_builder(_: &Path) -> VaultBuilder {
    panic!("PDVAULT_TEST_STORE=postgres needs the postgres feature")
}

/// For a test of what a vault directory holds (its files, its lock): whether it applies to this
/// run's store. On PostgreSQL it says so and the test ends; `tests/shared_store.rs` and the
/// forensic test cover what the database holds.
pub fn directory_test(what: &str) -> bool {
    if on_postgres() {
        eprintln!("not run on PostgreSQL (a test of the vault directory): {what}");
        return false;
    }
    true
}
