//! A PostgreSQL schema of its own per test, on the server `PDVAULT_TEST_POSTGRES` names
//! (`.ci/run` starts a throwaway cluster and sets it). Without the variable a test fails under CI
//! (`CI` set) and is reported as skipped otherwise.

use pdvault::*;

pub const PW: &str = "pw-shared-tests";

/// The server's URL, if there is one to test against.
pub fn url() -> Option<String> {
    match std::env::var("PDVAULT_TEST_POSTGRES") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PDVAULT_TEST_POSTGRES is not set, and CI must run the PostgreSQL tests")
        }
        Err(_) => {
            eprintln!("skipped: PDVAULT_TEST_POSTGRES is not set (a postgres:// URL)");
            None
        }
    }
}

/// A schema dropped when the value is.
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub fn new() -> Option<Schema> {
        Some(Schema {
            url: url()?,
            name: format!("pdv_{:016x}", rand::random::<u64>()),
        })
    }

    /// The same schema by name (a child process's view).
    pub fn named(url: &str, name: &str) -> Schema {
        Schema {
            url: url.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn builder(&self) -> VaultBuilder {
        Vault::builder_postgres(&self.url)
            .postgres_schema(&self.name)
            .kdf(KdfParams::insecure_for_tests())
    }

    pub fn create(&self) -> Vault {
        self.builder().create(RootSecret::passphrase(PW)).unwrap()
    }

    pub fn open(&self) -> Vault {
        self.builder().open(RootSecret::passphrase(PW)).unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if std::env::var_os("PDVAULT_KEEP_SCHEMA").is_some() {
            return;
        }
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}
