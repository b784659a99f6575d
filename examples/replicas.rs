//! Several replicas of a service sharing one vault on PostgreSQL: each opens the vault with its
//! own pools and caches (here: child processes of this example). One writes, another reads, the
//! first erases, and the other's next read finds the record erased; the operator's view verifies
//! the vault and says what erasure guarantees with the key source in use.
//!
//! Run (feature `postgres`, a server you may create a schema in):
//! `PDVAULT_EXAMPLE_POSTGRES=postgres://user@localhost/db cargo run --release --features postgres --example replicas`

use std::process::Command;

use pdvault::{Category, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault};

const PASSPHRASE: &str = "correct horse battery staple";

fn vault(url: &str, schema: &str) -> pdvault::VaultBuilder {
    Vault::builder_postgres(url).postgres_schema(schema)
}

fn replica(url: &str, schema: &str, name: &str) -> pdvault::Result<Vault> {
    vault(url, schema)
        .open(RootSecret::passphrase(PASSPHRASE))?
        .as_actor(name)
}

/// What a replica does when started as a child: `read <record>` or `erase`.
fn child(url: &str, schema: &str, args: &[String]) -> pdvault::Result<()> {
    let alice = SubjectId::new("alice@example.com")?;
    let billing = Purpose::new("billing")?;
    match args {
        [role, record] if role == "read" => {
            let v = replica(url, schema, "replica-b")?;
            let record: RecordId = record.parse().map_err(pdvault::Error::Input)?;
            match v.get(&alice, record, &billing) {
                Ok(r) => println!("replica b reads: {}", String::from_utf8_lossy(&r.payload)),
                Err(e) => println!("replica b reads: nothing ({e})"),
            }
            v.close()
        }
        [role] if role == "erase" => {
            let v = replica(url, schema, "replica-a")?;
            let report = v.erase_subject(&alice)?;
            println!("replica a erased alice: {}", report.subject_erased);
            v.close()
        }
        _ => Ok(()),
    }
}

fn run_replica(url: &str, schema: &str, args: &[&str]) {
    let out = Command::new(std::env::current_exe().expect("this example"))
        .args(args)
        .env("PDVAULT_EXAMPLE_POSTGRES", url)
        .env("PDVAULT_EXAMPLE_SCHEMA", schema)
        .output()
        .expect("the replica runs");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() -> pdvault::Result<()> {
    let Ok(url) =
        std::env::var("PDVAULT_EXAMPLE_POSTGRES").or(std::env::var("PDVAULT_TEST_POSTGRES"))
    else {
        println!("set PDVAULT_EXAMPLE_POSTGRES to a postgres:// URL to run this example");
        return Ok(());
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(schema) = std::env::var("PDVAULT_EXAMPLE_SCHEMA") {
        return child(&url, &schema, &args);
    }
    let schema = format!("pdvault_example_{}", std::process::id());
    let v = vault(&url, &schema).create(RootSecret::passphrase(PASSPHRASE))?;
    let alice = SubjectId::new("alice@example.com")?;
    let billing = Purpose::new("billing")?;
    let id = v.put(
        &alice,
        RecordMeta::new(Category::Contact).purpose(billing),
        b"Alice Example, 1 Main Street",
    )?;
    println!("the service wrote record {id}");
    let id = id.to_string();
    run_replica(&url, &schema, &["read", &id]);
    run_replica(&url, &schema, &["erase"]);
    run_replica(&url, &schema, &["read", &id]);
    let report = v.verify()?;
    println!(
        "verify: whole = {}, {} audit entries from every replica; erasure: {}",
        report.is_whole(),
        report.audit.entries,
        report.key_source.guarantee.describe()
    );
    v.close()?;
    let mut db = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| {
        pdvault::Error::Storage(pdvault::StorageError::Engine {
            context: "cleanup".into(),
            source: Some(Box::new(e)),
        })
    })?;
    let _ = db.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
    Ok(())
}
