//! The core vault, end to end: roundtrips, keys, damage, locking, threads, and no plaintext on disk.

mod common;

use std::path::Path;
use std::sync::Arc;

use pdvault::*;
use serde::{Deserialize, Serialize};

fn create(dir: &Path) -> Vault {
    common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap()
}

fn open(dir: &Path) -> Result<Vault> {
    common::store::builder(dir).open(RootSecret::passphrase("pw-passphrase"))
}

fn sa() -> Purpose {
    Purpose::SUBJECT_ACCESS
}

#[test]
fn every_builtin_category_and_a_custom_one_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let s = SubjectId::new("roundtrip@example.com").unwrap();
    let at: jiff::Timestamp = "2024-02-29T12:00:00Z".parse().unwrap();
    // Every built-in but the credential, which is written only as a hash (tests/credentials.rs).
    let mut cats: Vec<Category> = Category::BUILTIN
        .iter()
        .filter(|c| **c != Category::Credential)
        .cloned()
        .collect();
    cats.push(Category::custom("loyalty-points").unwrap());
    // A custom category is written once the vault's policy declares it.
    v.set_policy(Policy::from_toml("custom_categories = [\"loyalty-points\"]").unwrap())
        .unwrap();
    let mut ids = Vec::new();
    for (i, c) in cats.iter().enumerate() {
        let meta = RecordMeta::new(c.clone())
            .purpose(Purpose::new("service").unwrap())
            .purpose(Purpose::new("billing").unwrap())
            .basis(LegalBasis::ALL[i % LegalBasis::ALL.len()])
            .source("import")
            .collected_at(at);
        let payload = format!("payload of {c}").into_bytes();
        ids.push((v.put(&s, meta.clone(), &payload).unwrap(), meta, payload));
    }
    v.close().unwrap();
    let v = open(tmp.path()).unwrap();
    let listed = v.list(&s).unwrap();
    assert_eq!(listed.len(), cats.len());
    for (id, meta, payload) in &ids {
        let r = v.get(&s, *id, &sa()).unwrap();
        assert_eq!(&r.payload, payload);
        assert_eq!(&r.info.meta, meta);
        assert_eq!(r.info.version, 1);
        assert!(listed.iter().any(|l| l.record == *id && &l.meta == meta));
    }
}

/// One batch interleaving subjects (two of them new) and categories: every record reads back
/// under its own subject and category, and erasing one subject's category takes exactly that
/// group's records (each record was sealed under its own group's key).
#[test]
fn a_batch_interleaving_subjects_and_categories_keeps_each_group_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let subjects: Vec<SubjectId> = ["old@example.com", "new-a@example.com", "new-b@example.com"]
        .iter()
        .map(|s| SubjectId::new(*s).unwrap())
        .collect();
    v.put(&subjects[0], RecordMeta::new(Category::Contact), b"before")
        .unwrap();
    let categories = [Category::Contact, Category::Usage, Category::Account];
    let items: Vec<(usize, Category, Vec<u8>)> = (0..30)
        .map(|i| {
            let c = categories[(i / 3) % 3].clone();
            (i % 3, c.clone(), format!("record {i} of {c}").into_bytes())
        })
        .collect();
    let ids = v
        .put_many(
            items
                .iter()
                .map(|(s, c, p)| (&subjects[*s], RecordMeta::new(c.clone()), &p[..])),
        )
        .unwrap();
    for (id, (s, c, p)) in ids.iter().zip(&items) {
        let r = v.get(&subjects[*s], *id, &sa()).unwrap();
        assert_eq!((&r.payload, &r.info.meta.category), (p, c));
    }
    v.erase_category(&subjects[1], &Category::Usage).unwrap();
    for (id, (s, c, p)) in ids.iter().zip(&items) {
        let r = v.get(&subjects[*s], *id, &sa());
        if *s == 1 && *c == Category::Usage {
            assert!(r.is_err(), "an erased record read back");
        } else {
            assert_eq!(&r.unwrap().payload, p);
        }
    }
    assert_eq!(v.list(&subjects[0]).unwrap().len(), 11);
}

/// Puts `n` contact records for `s` in one batch; their ids and payloads (`{tag}{i}`).
fn put_contacts(v: &Vault, s: &SubjectId, n: usize, tag: &str) -> (Vec<RecordId>, Vec<Vec<u8>>) {
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| format!("{tag}{i}").into_bytes()).collect();
    let ids = v
        .put_many(
            payloads
                .iter()
                .map(|p| (s, RecordMeta::new(Category::Contact), &p[..])),
        )
        .unwrap();
    (ids, payloads)
}

/// A batch lists its records in one member row per key group and 256 records, not one row per
/// record: 1,000 records of one group add 1,000 record rows and a few others.
#[test]
fn a_batched_put_lists_its_records_per_group_not_per_record() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let s = SubjectId::new("batch@example.com").unwrap();
    v.put(&s, RecordMeta::new(Category::Contact), b"first")
        .unwrap();
    let before = v.verify().unwrap().entries;
    let (ids, _) = put_contacts(&v, &s, 1000, "r");
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "{:?}", report.problems);
    let added = report.entries - before;
    // 1,000 records, 4 member chunks, the audit trail's blocks and head, the manifest's rows.
    assert!(
        (1000..1100).contains(&added),
        "{added} rows for 1,000 records of one group"
    );
    assert_eq!(v.list(&s).unwrap().len(), 1001);
    assert_eq!(v.get(&s, ids[999], &sa()).unwrap().payload, b"r999");
}

/// Membership stays exact through moves between groups, re-keys and reclamation: a record
/// rectified into another category and back, records erased one at a time out of a group
/// (the rest re-keyed), a category erased and its rows reclaimed — the vault verifies whole at
/// every step, and every record not erased reads back.
#[test]
fn key_group_membership_stays_exact_through_moves_rekeys_and_reclamation() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let s = SubjectId::new("moves@example.com").unwrap();
    let whole = |v: &Vault, step: &str| {
        let r = v.verify().unwrap();
        assert!(r.is_whole(), "after {step}: {:?}", r.problems);
    };
    let (ids, payloads) = put_contacts(&v, &s, 600, "m");
    whole(&v, "the put");
    let move_to = |id: RecordId, category: Category| {
        v.rectify(&s, id, Some(RecordMeta::new(category)), None, "moved")
            .unwrap();
    };
    // Out of its group's second chunk and back: the chunk it left keeps its other records.
    let mover = ids[300];
    move_to(mover, Category::Usage);
    whole(&v, "a move out");
    move_to(mover, Category::Contact);
    whole(&v, "a move back");
    let moved_away = ids[10];
    move_to(moved_away, Category::Usage);
    // Two records erased out of the group one at a time: the rest move to a new generation.
    v.erase_record(&s, ids[0]).unwrap();
    whole(&v, "an erasure by record");
    v.erase_record(&s, ids[599]).unwrap();
    whole(&v, "a second erasure by record");
    let reclaimed = v.sweep().unwrap().reclaimed;
    assert!(reclaimed >= 2, "{reclaimed} rows reclaimed");
    whole(&v, "reclamation of the old generations");
    for (i, id) in ids.iter().enumerate() {
        let r = v.get(&s, *id, &sa());
        if i == 0 || i == 599 {
            assert!(r.is_err(), "erased record {i} read back");
        } else {
            assert_eq!(r.unwrap().payload, payloads[i], "record {i}");
        }
    }
    // The category erased whole and reclaimed: the record that left it stays.
    v.erase_category(&s, &Category::Contact).unwrap();
    v.sweep().unwrap();
    whole(&v, "a category's erasure and reclamation");
    assert_eq!(v.get(&s, moved_away, &sa()).unwrap().payload, payloads[10]);
    assert_eq!(v.list(&s).unwrap().len(), 1);
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Address {
    street: String,
    city: String,
    postcode: Option<String>,
    lines: Vec<u16>,
}

#[test]
fn typed_payloads_update_keeps_the_id_delete_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let s = SubjectId::new("typed").unwrap();
    let addr = Address {
        street: "1 Main St".into(),
        city: "Zürich".into(),
        postcode: None,
        lines: vec![1, 2],
    };
    let id = v
        .put_value(&s, RecordMeta::new(Category::Contact), &addr)
        .unwrap();
    assert_eq!(v.get_value::<Address>(&s, id, &sa()).unwrap(), addr);
    v.update(&s, id, b"replaced").unwrap();
    let r = v.get(&s, id, &sa()).unwrap();
    assert_eq!(
        (r.payload.as_slice(), r.info.record, r.info.version),
        (&b"replaced"[..], id, 2)
    );
    assert_eq!(v.list(&s).unwrap().len(), 1);
    v.delete(&s, id).unwrap();
    assert!(matches!(v.get(&s, id, &sa()), Err(Error::RecordNotFound(x)) if x == id));
    assert!(v.list(&s).unwrap().is_empty());
    assert!(matches!(
        v.update(&s, id, b"x"),
        Err(Error::RecordNotFound(_))
    ));
}

#[test]
fn wrong_secrets_are_refused_with_their_own_errors() {
    let tmp = tempfile::tempdir().unwrap();
    create(tmp.path()).close().unwrap();
    assert!(matches!(
        common::store::builder(tmp.path()).open(RootSecret::passphrase("nope-passphrase")),
        Err(Error::Open(OpenError::WrongKey))
    ));
    assert!(matches!(
        common::store::builder(tmp.path()).open(RootSecret::raw_key([1; 32])),
        Err(Error::Open(OpenError::SecretKindMismatch { .. }))
    ));
    let raw = tempfile::tempdir().unwrap();
    let v = common::store::builder(raw.path())
        .create(RootSecret::raw_key([42; 32]))
        .unwrap();
    let s = SubjectId::new("k").unwrap();
    let id = v
        .put(&s, RecordMeta::new(Category::Account), b"via kms")
        .unwrap();
    v.close().unwrap();
    assert!(matches!(
        common::store::builder(raw.path()).open(RootSecret::raw_key([43; 32])),
        Err(Error::Open(OpenError::WrongKey))
    ));
    let v = common::store::builder(raw.path())
        .open(RootSecret::raw_key([42; 32]))
        .unwrap();
    assert_eq!(v.get(&s, id, &sa()).unwrap().payload, b"via kms");
}

#[test]
fn default_kdf_parameters_work() {
    let tmp = tempfile::tempdir().unwrap();
    let v = common::store::builder(tmp.path())
        .create(RootSecret::passphrase("default costs"))
        .unwrap();
    v.close().unwrap();
    common::store::builder(tmp.path())
        .open(RootSecret::passphrase("default costs"))
        .unwrap();
}

#[test]
fn a_damaged_vault_file_is_reported_never_served() {
    if !common::store::directory_test("the vault file's damage") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    create(tmp.path()).close().unwrap();
    let file = tmp.path().join("vault.pdv");
    let good = std::fs::read(&file).unwrap();
    for len in [0usize, 5, 13, 20, good.len() / 2, good.len() - 1] {
        std::fs::write(&file, &good[..len]).unwrap();
        match open(tmp.path()) {
            Err(Error::Open(OpenError::HeaderTruncated { found })) => assert_eq!(found, len),
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
    let mut garbled = good.clone();
    garbled[good.len() / 2] ^= 0x40;
    std::fs::write(&file, &garbled).unwrap();
    assert!(matches!(
        open(tmp.path()),
        Err(Error::Open(OpenError::HeaderDamaged(_)))
    ));
    // A newer format version, with a valid checksum, in both of the file's copies (each a record
    // padded with zeros, after a 4 KiB header block that gives their length at bytes 8..12).
    let copy_len = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
    let mut newer = good.clone();
    for start in [4096, 4096 + copy_len] {
        let body_len = u32::from_le_bytes(good[start + 10..start + 14].try_into().unwrap());
        let body_end = start + 14 + body_len as usize;
        newer[start + 8..start + 10].copy_from_slice(&u16::MAX.to_le_bytes());
        let sum = blake3_of(&newer[start..body_end]);
        newer[body_end..body_end + 32].copy_from_slice(&sum);
    }
    std::fs::write(&file, &newer).unwrap();
    assert!(matches!(
        open(tmp.path()),
        Err(Error::Open(OpenError::NewerFormat {
            found: u16::MAX,
            ..
        }))
    ));
    std::fs::write(&file, &good).unwrap();
    open(tmp.path()).unwrap();
}

fn blake3_of(b: &[u8]) -> [u8; 32] {
    // The vault file's checksum is BLAKE3; recompute it as an attacker forging a version would.
    *blake3::hash(b).as_bytes()
}

#[test]
fn creating_over_a_vault_and_opening_nothing_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        open(tmp.path()),
        Err(Error::Open(OpenError::NotFound(_)))
    ));
    create(tmp.path()).close().unwrap();
    assert!(matches!(
        common::store::builder(tmp.path())
            .kdf(KdfParams::insecure_for_tests())
            .create(RootSecret::passphrase("pw-passphrase")),
        Err(Error::Open(OpenError::AlreadyExists(_)))
    ));
}

#[test]
fn a_second_opener_gets_already_open() {
    if !common::store::directory_test("the directory's lock (a PostgreSQL vault is opened by many)")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    assert!(matches!(
        open(tmp.path()),
        Err(Error::Open(OpenError::AlreadyOpen(_)))
    ));
    // Another process too: this test binary, re-run as a child.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "second_process_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PDVAULT_SECOND_OPENER", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CHILD-RESULT: already-open"), "{stdout}");
    drop(v);
    open(tmp.path()).unwrap();
}

#[test]
fn second_process_child() {
    let Some(dir) = std::env::var_os("PDVAULT_SECOND_OPENER") else {
        return;
    };
    match open(Path::new(&dir)) {
        Err(Error::Open(OpenError::AlreadyOpen(_))) => println!("CHILD-RESULT: already-open"),
        other => println!("CHILD-RESULT: {:?}", other.map(|_| "opened")),
    }
}

#[test]
fn eight_threads_putting_and_reading_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let shared = Arc::new(SubjectId::new("shared").unwrap());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let v = v.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                let own = SubjectId::new(format!("thread-{t}")).unwrap();
                let mut mine = Vec::new();
                for i in 0..100 {
                    let s = if i % 2 == 0 { &own } else { &*shared };
                    let payload = format!("t{t}-{i}").into_bytes();
                    let id = v
                        .put(s, RecordMeta::new(Category::Usage), &payload)
                        .unwrap();
                    assert_eq!(v.get(s, id, &sa()).unwrap().payload, payload);
                    mine.push((s.clone(), id, payload));
                }
                mine
            })
        })
        .collect();
    let all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(all.len(), 800);
    for (s, id, p) in &all {
        assert_eq!(&v.get(s, *id, &sa()).unwrap().payload, p);
    }
    assert_eq!(v.list(&shared).unwrap().len(), 400);
    drop(v);
    let v = open(tmp.path()).unwrap();
    for (s, id, p) in &all {
        assert_eq!(&v.get(s, *id, &sa()).unwrap().payload, p);
    }
    assert!(v.verify().unwrap().is_whole());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn no_payload_or_subject_identifier_reaches_the_disk() {
    if !common::store::directory_test("the directory's files") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let tag: u64 = rand_tag();
    let mut markers = Vec::new();
    for i in 0..20 {
        let subject = format!("marker-subject-{tag:x}-{i}@example.com");
        let payload = format!("MARKER-PAYLOAD-{tag:x}-{i}");
        let s = SubjectId::new(subject.clone()).unwrap();
        let id = v
            .put(
                &s,
                RecordMeta::new(Category::Contact).purpose(Purpose::new("service").unwrap()),
                payload.as_bytes(),
            )
            .unwrap();
        v.update(&s, id, format!("{payload}-v2").as_bytes())
            .unwrap();
        v.get(&s, id, &sa()).unwrap();
        if i % 3 == 0 {
            v.erase_subject(&s).unwrap();
        }
        markers.push(subject);
        markers.push(payload);
    }
    v.close().unwrap();
    let mut files = Vec::new();
    all_files(tmp.path(), &mut files);
    assert!(files.len() >= 3);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for m in &markers {
            assert!(
                !contains(&bytes, m.as_bytes()),
                "{m} found in {}",
                f.display()
            );
        }
        assert!(
            !contains(&bytes, format!("{tag:x}").as_bytes()),
            "marker tag found in {}",
            f.display()
        );
    }
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ 0x5eed_1234_abcd
}

#[test]
fn bad_input_is_refused_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let s = SubjectId::new("keeper").unwrap();
    let id = v
        .put(&s, RecordMeta::new(Category::Contact), b"kept")
        .unwrap();
    assert!(matches!(SubjectId::new(""), Err(InputError::SubjectId(_))));
    assert!(matches!(
        SubjectId::new("x".repeat(MAX_SUBJECT_ID_LEN + 1)),
        Err(InputError::SubjectId(_))
    ));
    assert!(matches!(
        SubjectId::from_bytes(&[0x66, 0xff, 0xfe]),
        Err(InputError::SubjectId(_))
    ));
    let huge = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        v.put(&s, RecordMeta::new(Category::Contact), &huge),
        Err(Error::Input(InputError::PayloadTooLarge { .. }))
    ));
    assert!(matches!(
        v.update(&s, id, &huge),
        Err(Error::Input(InputError::PayloadTooLarge { .. }))
    ));
    assert!(matches!(
        v.put(
            &s,
            RecordMeta::new(Category::Contact).source("bad\nsource"),
            b"x"
        ),
        Err(Error::Input(_))
    ));
    assert!("Not-Kebab".parse::<Category>().is_err());
    assert!("zz".parse::<RecordId>().is_err());
    assert!(Purpose::new("").is_err());
    assert!("nonsense".parse::<LegalBasis>().is_err());
    assert!(v.as_actor("").is_err());
    let long = SubjectId::new("y".repeat(MAX_SUBJECT_ID_LEN)).unwrap();
    let lid = v
        .put(&long, RecordMeta::new(Category::Profile), b"")
        .unwrap();
    assert_eq!(v.get(&long, lid, &sa()).unwrap().payload, b"");
    assert_eq!(v.get(&s, id, &sa()).unwrap().payload, b"kept");
    assert_eq!(v.list(&s).unwrap().len(), 1);
    assert!(v.verify().unwrap().is_whole());
}
