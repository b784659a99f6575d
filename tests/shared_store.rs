//! A vault on PostgreSQL shared by several openers (each its own pools, caches and audit chain,
//! as separate processes have): what one does, the others see at once.
#![cfg(feature = "postgres")]

mod common;

use pdvault::*;

#[test]
fn a_vault_on_postgres_round_trips_and_reopens() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let v = pg.create();
    let alice = SubjectId::new("alice@example.com").unwrap();
    let id = v
        .put(
            &alice,
            RecordMeta::new(Category::Contact).purpose(Purpose::new("contract").unwrap()),
            b"555-0100",
        )
        .unwrap();
    let got = v.get(&alice, id, &Purpose::new("contract").unwrap());
    assert_eq!(got.unwrap().payload, b"555-0100");
    v.close().unwrap();
    let v = pg.open();
    assert_eq!(
        v.get(&alice, id, &Purpose::new("contract").unwrap())
            .unwrap()
            .payload,
        b"555-0100"
    );
    v.erase_subject(&alice).unwrap();
    assert!(
        v.get(&alice, id, &Purpose::new("contract").unwrap())
            .is_err()
    );
    assert!(v.audit_verify().unwrap().is_intact());
}

/// B reads a record (its keys now cached); A erases the subject; B's next read fails as erased.
#[test]
fn an_erasure_by_one_opener_is_seen_by_the_next_read_of_another() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let a = pg.create();
    let b = pg.open();
    let alice = SubjectId::new("alice@example.com").unwrap();
    let contract = Purpose::new("contract").unwrap();
    let id = a
        .put(
            &alice,
            RecordMeta::new(Category::Contact).purpose(Purpose::new("contract").unwrap()),
            b"555-0100",
        )
        .unwrap();
    assert_eq!(b.get(&alice, id, &contract).unwrap().payload, b"555-0100");
    a.erase_subject(&alice).unwrap();
    match b.get(&alice, id, &contract) {
        Err(Error::SubjectNotFound) => {}
        other => panic!("B read an erased record: {other:?}"),
    }
    // And B writing for the identifier again makes a new subject, not one under the erased keys.
    let id2 = b
        .put(
            &alice,
            RecordMeta::new(Category::Contact).purpose(Purpose::new("contract").unwrap()),
            b"new",
        )
        .unwrap();
    assert_eq!(a.get(&alice, id2, &contract).unwrap().payload, b"new");
    assert!(a.get(&alice, id, &contract).is_err());
    assert!(a.audit_verify().unwrap().is_intact());
}

/// A directory vault copied into PostgreSQL and back: the same records, holds and erasures,
/// an audit trail that verifies and holds the source's entries; the source retired afterwards
/// opens nothing.
#[test]
fn migrate_copies_a_directory_vault_into_postgres_and_back() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let secret = || RootSecret::passphrase(common::postgres::PW);
    let src = Vault::builder(tmp.path().join("src"))
        .kdf(KdfParams::insecure_for_tests())
        .create(secret())
        .unwrap();
    let contract = Purpose::new("contract").unwrap();
    let meta = || RecordMeta::new(Category::Contact).purpose(contract.clone());
    let kept = SubjectId::new("kept@example.com").unwrap();
    let gone = SubjectId::new("gone@example.com").unwrap();
    let k = src.put(&kept, meta(), b"kept").unwrap();
    let g = src.put(&gone, meta(), b"gone").unwrap();
    src.place_hold(
        &kept,
        NewHold::new(HoldTarget::Subject, HoldReason::LegalObligation).reference("CASE-7"),
    )
    .unwrap();
    src.erase_subject(&gone).unwrap();
    let trail_before = src.audit_entries(None, None).unwrap().len() as u64;

    let (on_pg, report) = src.migrate(pg.builder(), secret()).unwrap();
    assert!(report.verify.is_whole(), "{report:?}");
    assert_eq!(report.audit_entries, trail_before);
    let check = |v: &Vault| {
        assert_eq!(v.get(&kept, k, &contract).unwrap().payload, b"kept");
        assert!(v.get(&gone, g, &contract).is_err());
        assert_eq!(v.holds(Some(&kept)).unwrap().len(), 1);
        let erasure = v.erase_subject(&kept).unwrap();
        assert!(!erasure.subject_erased, "the hold came along: {erasure:?}");
        assert!(v.audit_verify().unwrap().is_intact());
        assert!(v.audit_entries(None, None).unwrap().len() as u64 > trail_before);
    };
    check(&on_pg);
    // A database that holds a vault is not a destination.
    let again = src.migrate(pg.builder(), secret());
    assert!(
        matches!(again, Err(Error::Open(OpenError::AlreadyExists(_)))),
        "{again:?}"
    );

    let back_dir = tmp.path().join("back");
    let (back, report) = on_pg
        .migrate(
            Vault::builder(&back_dir).kdf(KdfParams::insecure_for_tests()),
            secret(),
        )
        .unwrap();
    assert!(report.verify.is_whole(), "{report:?}");
    check(&back);
    back.close().unwrap();

    // Retired, the source opens nothing: its epoch key is destroyed.
    assert_eq!(src.retire().unwrap(), 1);
    let r = Vault::builder(tmp.path().join("src")).open(secret());
    assert!(
        matches!(r, Err(Error::Open(OpenError::EpochDestroyed(_)))),
        "{r:?}"
    );
}

/// What `verify` calls "logical only", shown: without a key source of its own, a PostgreSQL
/// vault's epoch keys are rows, and the database's history (a snapshot from before an erasure,
/// as a base backup keeps it) still opens with the passphrase and reads what was erased. With a
/// token it does not (`tests/pkcs11.rs`).
#[test]
fn without_a_key_source_the_database_s_history_still_reads_what_was_erased() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let v = pg.create();
    let contract = Purpose::new("contract").unwrap();
    let alice = SubjectId::new("alice@example.com").unwrap();
    let meta = RecordMeta::new(Category::Contact).purpose(contract.clone());
    let id = v.put(&alice, meta, b"erased-but-logically").unwrap();
    let before = common::postgres::rows_kept_by_a_snapshot(&pg.url, &pg.name, || {
        v.erase_subject(&alice).unwrap();
    });
    let report = v.verify().unwrap();
    assert_eq!(report.key_source.guarantee, ErasureGuarantee::LogicalOnly);
    assert!(
        report
            .key_source
            .guarantee
            .describe()
            .contains("logical only")
    );
    let copy = common::postgres::schema_with_rows(&pg.url, &before, |s| drop(s.create()));
    let old = copy.open();
    assert_eq!(
        old.get(&alice, id, &contract).unwrap().payload,
        b"erased-but-logically"
    );
}

/// A root rotation by one opener stops the others (their next call needs the new secret) rather
/// than letting them seal the next ring under the old root.
#[test]
fn a_root_rotation_by_one_opener_stops_the_others_until_they_reopen() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let a = pg.create();
    let b = pg.open();
    let contract = Purpose::new("contract").unwrap();
    let alice = SubjectId::new("alice@example.com").unwrap();
    let meta = || RecordMeta::new(Category::Contact).purpose(contract.clone());
    let id = a.put(&alice, meta(), b"before").unwrap();
    a.rotate_root(
        RootSecret::passphrase("the new passphrase"),
        Some(KdfParams::insecure_for_tests()),
    )
    .unwrap();
    assert_eq!(a.get(&alice, id, &contract).unwrap().payload, b"before");
    for r in [
        b.put(&alice, meta(), b"after").map(drop),
        b.get(&alice, id, &contract).map(drop),
    ] {
        assert!(
            matches!(r, Err(Error::Open(OpenError::RootRotated))),
            "{r:?}"
        );
    }
    drop(b);
    assert!(
        pg.builder()
            .open(RootSecret::passphrase(common::postgres::PW))
            .is_err()
    );
    let b = pg
        .builder()
        .open(RootSecret::passphrase("the new passphrase"))
        .unwrap();
    assert_eq!(b.get(&alice, id, &contract).unwrap().payload, b"before");
    assert!(b.verify().unwrap().is_whole());
}

/// Two openers sweeping at once do the work once: the lease makes the second wait, and it finds
/// nothing left that the first destroyed.
#[test]
fn two_sweeps_at_once_do_the_work_once() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let start: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let policy = Policy::from_toml("[retention.access-log]\nmax = \"1 day\"\n").unwrap();
    let a = pg
        .builder()
        .clock(clock.clone())
        .policy(policy)
        .create(RootSecret::passphrase(common::postgres::PW))
        .unwrap();
    let b = pg
        .builder()
        .clock(clock.clone())
        .open(RootSecret::passphrase(common::postgres::PW))
        .unwrap();
    let subjects = 40;
    for i in 0..subjects {
        let s = SubjectId::new(format!("s{i}@example.com")).unwrap();
        let meta = RecordMeta::new(Category::AccessLog).purpose(Purpose::new("security").unwrap());
        a.put(&s, meta, b"log line").unwrap();
    }
    clock.set(start + jiff::Span::new().hours(48));
    let (ra, rb) = std::thread::scope(|t| {
        let ta = t.spawn(|| a.sweep().unwrap());
        let tb = t.spawn(|| b.sweep().unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let destroyed = |r: &SweepReport| r.categories_erased + r.erased;
    assert_eq!(destroyed(&ra) + destroyed(&rb), subjects, "{ra:?} {rb:?}");
    assert!(
        destroyed(&ra) == 0 || destroyed(&rb) == 0,
        "both sweeps destroyed: {ra:?} {rb:?}"
    );
    assert!(a.audit_verify().unwrap().is_intact());
}

/// The rows of the vault's key ring and epoch keys (`meta` rows named `vault-file…` and
/// `epoch-key…`), by key.
fn ring_rows(pg: &common::postgres::Schema) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let sql = format!(
        "SELECT key, value FROM \"{}\".pdvault_kv WHERE key >= $1 AND key < $2 ORDER BY key",
        pg.name
    );
    let mut out = std::collections::BTreeMap::new();
    for (from, to) in [
        (&b"\0vault-file"[..], &b"\0vault-filf"[..]),
        (b"\0\x09epoch-key", b"\0\x09epoch-kez"),
    ] {
        for r in c.query(&sql, &[&from, &to]).unwrap() {
            out.insert(r.get(0), r.get(1));
        }
    }
    out
}

/// An erasure on PostgreSQL writes the key ring's row (master secret and chunk keys, a few KiB)
/// and the chunks of the shards it re-keyed, not the whole ring (4,096 shard keys, 160 KiB, that
/// the database then keeps a copy of per erasure); the epoch key it seals under replaces the
/// old one in the same transaction, so exactly one epoch-key row is left, a new one.
#[test]
fn an_erasure_writes_the_ring_chunks_it_touched_and_one_epoch_key() {
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let v = pg.create();
    let alice = SubjectId::new("alice@example.com").unwrap();
    let meta = || RecordMeta::new(Category::Contact).purpose(Purpose::new("contract").unwrap());
    let id = v.put(&alice, meta(), b"555-0100").unwrap();
    let epoch_rows = |rows: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<Vec<u8>> {
        rows.keys()
            .filter(|k| k.starts_with(b"\0\x09epoch-key"))
            .cloned()
            .collect()
    };
    let before = ring_rows(&pg);
    let file = b"\0vault-file".to_vec();
    assert!(
        before[&file].len() < 8192,
        "ring row {} bytes",
        before[&file].len()
    );
    assert_eq!(
        before.len(),
        1 + 64 + 1,
        "{:?}",
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(epoch_rows(&before).len(), 1);

    assert!(v.erase_subject(&alice).unwrap().subject_erased);
    let after = ring_rows(&pg);
    assert_eq!(after.len(), before.len());
    let changed: Vec<&Vec<u8>> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v) && k.starts_with(b"\0vault-file/chunk/"))
        .map(|(k, _)| k)
        .collect();
    // The subject's own key, its identity key and its category's key: at most three shards.
    assert!((1..=3).contains(&changed.len()), "{changed:?}");
    assert_ne!(before[&file], after[&file]);
    let (old, new) = (epoch_rows(&before), epoch_rows(&after));
    assert_eq!(new.len(), 1);
    assert_ne!(old, new);

    // Another opener reads the ring from its rows.
    v.close().unwrap();
    let v = pg.open();
    assert!(
        v.get(&alice, id, &Purpose::new("contract").unwrap())
            .is_err()
    );
    assert!(v.verify().unwrap().is_whole());
}
