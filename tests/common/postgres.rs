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

/// The rows of a schema's table as a snapshot taken now keeps them: the database's history of
/// it, as `pg_dump` or a base backup would keep it. `then` runs while the snapshot is held;
/// returns the rows it held from before.
pub fn rows_kept_by_a_snapshot(
    url: &str,
    schema: &str,
    then: impl FnOnce(),
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut history = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut old = history
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    let kv = format!("\"{schema}\".pdvault_kv");
    let read = |tx: &mut postgres::Transaction<'_>| -> Vec<(Vec<u8>, Vec<u8>)> {
        tx.query(&format!("SELECT key, value FROM {kv} ORDER BY key"), &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = read(&mut old);
    then();
    // Read again after `then`: what the snapshot still shows is really kept by the server.
    assert_eq!(read(&mut old), before, "the snapshot changed");
    old.rollback().unwrap();
    before
}

/// A new schema holding exactly `rows` (as a vault's table), for an attacker's copy.
pub fn schema_with_rows(
    url: &str,
    rows: &[(Vec<u8>, Vec<u8>)],
    make_tables: impl FnOnce(&Schema),
) -> Schema {
    let copy = Schema::new().expect("a server");
    make_tables(&copy);
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let kv = format!("\"{}\".pdvault_kv", copy.name);
    c.execute(&format!("DELETE FROM {kv}"), &[]).unwrap();
    for (k, v) in rows {
        c.execute(
            &format!("INSERT INTO {kv} (key, value) VALUES ($1, $2)"),
            &[k, v],
        )
        .unwrap();
    }
    copy
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
