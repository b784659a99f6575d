//! In-crate tests of the vault that reach the stored bytes through the storage layer.
//!
//! - Tampering with a stored record (its sealed payload, or its metadata) or moving a payload
//!   to another record or subject is an integrity error on read, never a wrong payload.
//! - Every on-disk structure round-trips through its codec, and decoding arbitrary or damaged
//!   bytes is an error or a value, never a panic.
//! - Erasing a subject drops its unwrapped keys from the cache.
//! - The audit trail verifies after real operations, and an altered, removed, reordered or
//!   inserted entry is named by its position.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::subject_text::StoredVerification;
use super::*;
use crate::NewHold;
use crate::audit::{Anchor, AuditEntry, AuditOp, ChainPoint};
use crate::crypto::KdfParams;
use crate::erasure::LedgerEntry;
use crate::ids::{HoldId, RecordId, RequestId, SubjectRef};
use crate::model::{Category, LegalBasis, Purpose, RecordMeta};
use crate::policy::RequestKind;
use crate::policy::holds::{Hold, HoldReason, HoldScope, HoldTarget, Release};
use crate::rights::{Disclosure, IdentityVerification, Request};
use crate::storage::codec;
use crate::storage::entries::{
    AgeStatus, ConsentState, DueKind, IndexEntry, JournalEntry, Manifest, RecordEntry,
    SubjectState, WrappedKey,
};
use crate::storage::vault_file::{self, KdfSpec, VaultFileBody};
use crate::{Error, RootSecret};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn new_vault() -> (tempfile::TempDir, Vault) {
    let tmp = tempfile::tempdir().unwrap();
    let v = Vault::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    (tmp, v)
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn sref_of(v: &Vault, s: &SubjectId) -> SubjectRef {
    v.find(s).unwrap().subject
}

fn read_entry(v: &Vault, sref: &SubjectRef, rid: &RecordId) -> RecordEntry {
    v.store()
        .get::<RecordEntry>(&layout::record(sref, rid), "record")
        .unwrap()
        .expect("the record is stored")
}

fn write_entry(v: &Vault, sref: &SubjectRef, rid: &RecordId, entry: &RecordEntry) {
    let mut t = Txn::new();
    t.put(layout::record(sref, rid), entry);
    v.store().commit(t).unwrap();
}

#[track_caller]
fn assert_integrity(r: Result<crate::Record>, what: &str) {
    match r {
        Err(Error::Integrity(_)) => {}
        Err(e) => panic!("{what}: expected an integrity error, got {e:?}"),
        Ok(rec) => panic!(
            "{what}: expected an integrity error, read {} bytes",
            rec.payload.len()
        ),
    }
}

/// A vault with two subjects: `alice` has two contact records and a payment record, `bob` one
/// contact record; all readable for `p`.
struct Two {
    _tmp: tempfile::TempDir,
    v: Vault,
    alice: SubjectId,
    bob: SubjectId,
    a1: RecordId,
    a2: RecordId,
    a_pay: RecordId,
    b1: RecordId,
    p: Purpose,
}

fn two_subjects() -> Two {
    let (tmp, v) = new_vault();
    let alice = sid("alice@example.com");
    let bob = sid("bob@example.com");
    let p = purpose("p");
    let meta = |c: Category| {
        RecordMeta::new(c)
            .purpose(p.clone())
            .source("form")
            .collected_at("2024-01-02T03:04:05Z".parse().unwrap())
    };
    let a1 = v
        .put(&alice, meta(Category::Contact), b"alice one")
        .unwrap();
    let a2 = v
        .put(&alice, meta(Category::Contact), b"alice two")
        .unwrap();
    let a_pay = v
        .put(&alice, meta(Category::Payment), b"alice pay")
        .unwrap();
    let b1 = v.put(&bob, meta(Category::Contact), b"bob one").unwrap();
    Two {
        _tmp: tmp,
        v,
        alice,
        bob,
        a1,
        a2,
        a_pay,
        b1,
        p,
    }
}

// ---------------------------------------------------------------------------------------------
// Tampering with stored records
// ---------------------------------------------------------------------------------------------

#[test]
fn a_flipped_bit_anywhere_in_a_sealed_payload_is_an_integrity_error() {
    let t = two_subjects();
    let sref = sref_of(&t.v, &t.alice);
    let original = read_entry(&t.v, &sref, &t.a1);
    let n = original.sealed.len();
    assert_eq!(n, 24 + b"alice one".len() + 16, "nonce ‖ ciphertext ‖ tag");
    // Nonce, ciphertext and tag; low and high bits.
    for at in [0, 12, 23, 24, 28, n - 17, n - 16, n - 1] {
        for bit in [0, 7] {
            let mut e = original.clone();
            e.sealed[at] ^= 1 << bit;
            write_entry(&t.v, &sref, &t.a1, &e);
            assert_integrity(
                t.v.get(&t.alice, t.a1, &t.p),
                &format!("bit {bit} of byte {at}"),
            );
        }
    }
    // Truncated, extended and emptied.
    for sealed in [
        original.sealed[..n - 1].to_vec(),
        [original.sealed.clone(), vec![0]].concat(),
        original.sealed[..39].to_vec(),
        Vec::new(),
    ] {
        let mut e = original.clone();
        let len = sealed.len();
        e.sealed = sealed;
        write_entry(&t.v, &sref, &t.a1, &e);
        assert_integrity(
            t.v.get(&t.alice, t.a1, &t.p),
            &format!("sealed of {len} bytes"),
        );
    }
    // verify names the damage; the neighbours are unaffected.
    let rep = t.v.verify().unwrap();
    assert!(!rep.is_whole());
    assert!(
        rep.problems
            .iter()
            .any(|p| p.contains(&t.a1.to_string()) && p.contains("integrity")),
        "{:?}",
        rep.problems
    );
    assert_eq!(t.v.get(&t.alice, t.a2, &t.p).unwrap().payload, b"alice two");
    // Restored, it reads again and the vault is whole.
    write_entry(&t.v, &sref, &t.a1, &original);
    assert_eq!(t.v.get(&t.alice, t.a1, &t.p).unwrap().payload, b"alice one");
    assert!(t.v.verify().unwrap().is_whole());
}

#[test]
fn a_payload_moved_to_another_record_of_the_same_subject_is_an_integrity_error() {
    let t = two_subjects();
    let sref = sref_of(&t.v, &t.alice);
    let e1 = read_entry(&t.v, &sref, &t.a1);
    let e2 = read_entry(&t.v, &sref, &t.a2);
    assert_eq!((e1.key_gen, e1.version), (e2.key_gen, e2.version));
    // Only the ciphertext copied over.
    let mut moved = e1.clone();
    moved.sealed = e2.sealed.clone();
    write_entry(&t.v, &sref, &t.a1, &moved);
    assert_integrity(t.v.get(&t.alice, t.a1, &t.p), "ciphertext of a2 over a1");
    // The whole entry copied over.
    write_entry(&t.v, &sref, &t.a1, &e2);
    assert_integrity(t.v.get(&t.alice, t.a1, &t.p), "entry of a2 over a1");
    // Copied under a new record id of the same subject.
    let fresh = RecordId::random();
    write_entry(&t.v, &sref, &fresh, &e2);
    assert_integrity(t.v.get(&t.alice, fresh, &t.p), "entry of a2 under a new id");
    // A payload of another category of the same subject (other key), ciphertext only.
    let pay = read_entry(&t.v, &sref, &t.a_pay);
    let mut moved = e1.clone();
    moved.sealed = pay.sealed.clone();
    write_entry(&t.v, &sref, &t.a1, &moved);
    assert_integrity(t.v.get(&t.alice, t.a1, &t.p), "payment ciphertext over a1");
    // a2 itself is untouched.
    assert_eq!(t.v.get(&t.alice, t.a2, &t.p).unwrap().payload, b"alice two");
    assert!(!t.v.verify().unwrap().is_whole());
}

#[test]
fn a_payload_moved_to_another_subject_is_an_integrity_error() {
    let t = two_subjects();
    let alice = sref_of(&t.v, &t.alice);
    let bob = sref_of(&t.v, &t.bob);
    assert_ne!(alice, bob);
    let ea = read_entry(&t.v, &alice, &t.a1);
    let eb = read_entry(&t.v, &bob, &t.b1);
    // Bob's ciphertext over Alice's record.
    let mut moved = ea.clone();
    moved.sealed = eb.sealed.clone();
    write_entry(&t.v, &alice, &t.a1, &moved);
    assert_integrity(t.v.get(&t.alice, t.a1, &t.p), "bob's ciphertext over a1");
    // Bob's whole entry over Alice's record.
    write_entry(&t.v, &alice, &t.a1, &eb);
    assert_integrity(t.v.get(&t.alice, t.a1, &t.p), "bob's entry over a1");
    // Bob's entry under Alice with Bob's own record id (moved, not copied: id kept).
    write_entry(&t.v, &alice, &t.b1, &eb);
    assert_integrity(t.v.get(&t.alice, t.b1, &t.p), "bob's record under alice");
    // And Alice's original entry over Bob's record.
    write_entry(&t.v, &bob, &t.b1, &ea);
    assert_integrity(t.v.get(&t.bob, t.b1, &t.p), "alice's entry over b1");
    let rep = t.v.verify().unwrap();
    assert!(!rep.is_whole(), "{rep:?}");
}

#[test]
fn altered_metadata_is_an_integrity_error() {
    let t = two_subjects();
    let sref = sref_of(&t.v, &t.alice);
    let original = read_entry(&t.v, &sref, &t.a1);
    let evil = purpose("evil");
    // (what, the altered entry, the purpose to read with)
    let mut cases: Vec<(&str, RecordEntry, Purpose)> = Vec::new();
    let mut e = original.clone();
    e.meta.purposes.push(evil.clone());
    cases.push(("a purpose added", e, evil.clone()));
    let mut e = original.clone();
    e.meta.purposes = vec![evil.clone()];
    cases.push(("the purpose replaced", e, evil.clone()));
    let mut e = original.clone();
    e.meta.purposes.insert(0, purpose("other"));
    cases.push(("a purpose added in front", e, t.p.clone()));
    let mut e = original.clone();
    e.meta.basis = LegalBasis::LegitimateInterests;
    cases.push(("the legal basis", e, t.p.clone()));
    let mut e = original.clone();
    e.meta.source = None;
    cases.push(("the source removed", e, t.p.clone()));
    let mut e = original.clone();
    e.meta.source = Some("forged".into());
    cases.push(("the source changed", e, t.p.clone()));
    let mut e = original.clone();
    e.meta.collected_at = "2099-01-01T00:00:00Z".parse().unwrap();
    cases.push(("the collection time", e, t.p.clone()));
    let mut e = original.clone();
    e.meta.category = Category::Payment; // Alice has a payment key of the same generation.
    cases.push(("the category (to one with a key)", e, t.p.clone()));
    let mut e = original.clone();
    e.version += 1;
    cases.push(("the version", e, t.p.clone()));
    for (what, e, p) in cases {
        write_entry(&t.v, &sref, &t.a1, &e);
        assert_integrity(t.v.get(&t.alice, t.a1, &p), what);
        let rep = t.v.verify().unwrap();
        assert!(!rep.is_whole(), "{what}: verify says whole");
        write_entry(&t.v, &sref, &t.a1, &original);
        assert_eq!(t.v.get(&t.alice, t.a1, &t.p).unwrap().payload, b"alice one");
    }
    assert!(t.v.verify().unwrap().is_whole());
}

/// The associated data binds the metadata's stored bytes, not the metadata they decode to:
/// the same metadata written with a longer (valid) varint for its category's length decodes
/// to an equal entry, and its payload does not open.
#[test]
fn metadata_rewritten_in_other_bytes_of_the_same_value_is_an_integrity_error() {
    let t = two_subjects();
    let sref = sref_of(&t.v, &t.alice);
    let key = layout::record(&sref, &t.a1);
    let original = t.v.store().get_many_raw(&[&key]).unwrap()[0]
        .clone()
        .expect("stored");
    // The format byte, then the category's length (one byte below 251): as 251 and a u16.
    let len = original[1];
    assert!(len < 251);
    let mut longer = vec![original[0], 251, len, 0];
    longer.extend_from_slice(&original[2..]);
    assert_eq!(
        codec::decode::<RecordEntry>(&longer, "record").unwrap(),
        codec::decode::<RecordEntry>(&original, "record").unwrap(),
        "both decode to the same entry"
    );
    let mut txn = Txn::new();
    txn.put_raw(key.clone(), longer);
    t.v.store().commit(txn).unwrap();
    assert_integrity(t.v.get(&t.alice, t.a1, &t.p), "a longer varint");
    assert!(!t.v.verify().unwrap().is_whole());
    let mut txn = Txn::new();
    txn.put_raw(key, original);
    t.v.store().commit(txn).unwrap();
    assert_eq!(t.v.get(&t.alice, t.a1, &t.p).unwrap().payload, b"alice one");
}

/// A record whose stored category or key generation is altered to one with no key is not
/// "not found" (which is what an erased record is): it is damage.
#[test]
fn a_record_pointed_at_a_missing_key_is_an_integrity_error_not_a_missing_record() {
    let t = two_subjects();
    let sref = sref_of(&t.v, &t.alice);
    let original = read_entry(&t.v, &sref, &t.a1);
    let mut cases: Vec<(&str, RecordEntry)> = Vec::new();
    let mut e = original.clone();
    e.meta.category = Category::Usage; // Alice has no usage key.
    cases.push(("the category changed to one without a key", e));
    let mut e = original.clone();
    e.key_gen += 1;
    cases.push(("the key generation changed", e));
    let mut failures = Vec::new();
    for (what, e) in cases {
        write_entry(&t.v, &sref, &t.a1, &e);
        match t.v.get(&t.alice, t.a1, &t.p) {
            Err(Error::Integrity(_)) => {}
            other => failures.push(format!("{what}: get gave {other:?}")),
        }
        // verify does report it.
        assert!(!t.v.verify().unwrap().is_whole(), "{what}");
        write_entry(&t.v, &sref, &t.a1, &original);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The key cache
// ---------------------------------------------------------------------------------------------

#[test]
fn erasing_a_subject_drops_its_unwrapped_keys_from_the_cache() {
    let (_tmp, v) = new_vault();
    let s = sid("carol@example.com");
    let other = sid("dan@example.com");
    let p = purpose("p");
    let mut ids = Vec::new();
    for c in [Category::Contact, Category::Usage, Category::Payment] {
        ids.push(
            v.put(&s, RecordMeta::new(c.clone()).purpose(p.clone()), b"x")
                .unwrap(),
        );
        v.put(&other, RecordMeta::new(c).purpose(p.clone()), b"y")
            .unwrap();
    }
    for id in &ids {
        v.get(&s, *id, &p).unwrap();
    }
    let sref = sref_of(&v, &s);
    let oref = sref_of(&v, &other);
    assert!(
        v.keys().cached_keys_of(&sref) >= 3,
        "nothing cached to purge"
    );
    // A category erasure drops that group's key.
    let before = v.keys().cached_keys_of(&sref);
    v.erase_category(&s, &Category::Usage).unwrap();
    assert!(v.keys().cached_keys_of(&sref) < before);
    // The whole subject: nothing left.
    let report = v.erase_subject(&s).unwrap();
    assert!(report.subject_erased);
    assert_eq!(v.keys().cached_keys_of(&sref), 0);
    // Reading does not bring them back.
    for id in &ids {
        assert!(matches!(v.get(&s, *id, &p), Err(Error::SubjectNotFound)));
    }
    assert_eq!(v.keys().cached_keys_of(&sref), 0);
    // The other subject is unaffected.
    for r in v.list(&other).unwrap() {
        v.get(&other, r.record, &p).unwrap();
    }
    assert!(v.keys().cached_keys_of(&oref) > 0);
    assert_eq!(v.list(&other).unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// The audit trail
// ---------------------------------------------------------------------------------------------

/// A vault after a mix of operations, flushed: the audit trail has entries of every kind.
fn busy_vault() -> (tempfile::TempDir, Vault) {
    let (tmp, v) = new_vault();
    let p = purpose("p");
    let a = sid("a@example.com");
    let b = sid("b@example.com");
    let r1 = v
        .put(
            &a,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"1",
        )
        .unwrap();
    let r2 = v
        .put(
            &a,
            RecordMeta::new(Category::Usage).purpose(p.clone()),
            b"2",
        )
        .unwrap();
    v.put(
        &b,
        RecordMeta::new(Category::Contact).purpose(p.clone()),
        b"3",
    )
    .unwrap();
    v.get(&a, r1, &p).unwrap();
    v.update(&a, r1, b"1b").unwrap();
    v.get(&a, r1, &p).unwrap();
    let h = v
        .place_hold(
            &b,
            NewHold::new(HoldTarget::Subject, HoldReason::Dispute).reference("case-1"),
        )
        .unwrap();
    v.release_hold(h).unwrap();
    v.restrict(&a, None).unwrap();
    v.unrestrict(&a, None).unwrap();
    v.delete(&a, r2).unwrap();
    v.as_actor("auditor").unwrap().erase_subject(&b).unwrap();
    v.flush().unwrap();
    (tmp, v)
}

/// The trail as stored: every entry, oldest first, read through its blocks.
fn audit_entries(v: &Vault) -> Vec<AuditEntry> {
    v.store()
        .scan_raw(&layout::table(layout::Table::Audit))
        .flat_map(|r| crate::audit::decode_block(&r.unwrap().1).unwrap())
        .collect()
}

/// The number of stored audit blocks.
fn audit_rows(v: &Vault) -> usize {
    v.store()
        .scan_keys(&layout::table(layout::Table::Audit))
        .count()
}

/// Replaces the stored trail with `entries` in blocks of `block`, the n-th entry at position
/// `1 + n` whatever its own `seq` says (as someone rewriting the rows would).
fn store_trail(v: &Vault, entries: &[AuditEntry], block: usize) {
    let mut t = Txn::new();
    for k in v.store().scan_keys(&layout::table(layout::Table::Audit)) {
        t.delete(k.unwrap());
    }
    for (i, chunk) in entries.chunks(block).enumerate() {
        t.put(layout::audit(1 + (i * block) as u64), &chunk.to_vec());
    }
    v.store().commit(t).unwrap();
}

/// The position under which the block holding entry `seq` is stored.
fn block_start(seq: u64, block: usize) -> u64 {
    1 + (seq - 1) / block as u64 * block as u64
}

fn first_bad(v: &Vault) -> Option<u64> {
    v.inner
        .trail
        .verify(v.store())
        .unwrap()
        .first_bad
        .map(|(s, _)| s)
}

/// Stores `tampered` in blocks of `block`, checks that verification names `seq` first, then
/// restores `intact`.
fn assert_named(
    v: &Vault,
    tampered: &[AuditEntry],
    intact: &[AuditEntry],
    block: usize,
    seq: u64,
    what: &str,
) {
    store_trail(v, tampered, block);
    assert_eq!(first_bad(v), Some(seq), "{what}, blocks of {block}");
    assert!(!v.verify().unwrap().is_whole(), "{what}, blocks of {block}");
    store_trail(v, intact, block);
    assert_eq!(first_bad(v), None, "{what} restored");
}

/// Block layouts the tamper tests run under: one entry per row, and several.
const LAYOUTS: [usize; 3] = [1, 4, crate::audit::BLOCK_ENTRIES];

#[test]
fn the_audit_trail_verifies_after_a_sequence_of_operations() {
    let (tmp, v) = busy_vault();
    let rep = v.verify().unwrap();
    assert!(rep.audit.is_intact(), "{:?}", rep.audit);
    assert!(rep.is_whole(), "{rep:?}");
    let entries = audit_entries(&v);
    assert!(entries.len() >= 12, "{} entries", entries.len());
    assert_eq!(rep.audit.entries, entries.len() as u64);
    // Buffered reads share a block with the next commit's entries.
    assert!(audit_rows(&v) < entries.len(), "no block holds two entries");
    // Positions are 1..=n without gaps, in order.
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    let ops: BTreeSet<String> = entries.iter().map(|e| format!("{:?}", e.op)).collect();
    for op in ["Put", "Read", "Update", "HoldPlace", "HoldRelease", "Erase"] {
        assert!(ops.contains(op), "{op} missing from {ops:?}");
    }
    // Any block layout of the same entries verifies.
    for block in LAYOUTS {
        store_trail(&v, &entries, block);
        assert_eq!(first_bad(&v), None, "blocks of {block}");
    }
    // It still verifies after closing and reopening.
    let dir = tmp.path().to_path_buf();
    v.close().unwrap();
    let v = reopen(&dir);
    let rep = v.verify().unwrap();
    assert!(rep.audit.is_intact(), "{:?}", rep.audit);
}

fn reopen(dir: &std::path::Path) -> Vault {
    for _ in 0..100 {
        match Vault::builder(dir).open(RootSecret::passphrase("pw-passphrase")) {
            Err(Error::Storage(crate::StorageError::Io(e)))
                if e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("the store stayed locked after close");
}

#[test]
fn an_altered_audit_entry_is_named_by_its_position() {
    let (_tmp, v) = busy_vault();
    let entries = audit_entries(&v);
    let n = entries.len() as u64;
    for block in LAYOUTS {
        for seq in [1, 2, n / 2, n - 1, n] {
            let original = entries[(seq - 1) as usize].clone();
            let alterations: Vec<(&str, AuditEntry)> = vec![
                (
                    "actor",
                    AuditEntry {
                        actor: "mallory".into(),
                        ..original.clone()
                    },
                ),
                (
                    "op",
                    AuditEntry {
                        op: if original.op == AuditOp::Read {
                            AuditOp::Put
                        } else {
                            AuditOp::Read
                        },
                        ..original.clone()
                    },
                ),
                (
                    "time",
                    AuditEntry {
                        at: original
                            .at
                            .checked_add(jiff::Span::new().seconds(1))
                            .unwrap(),
                        ..original.clone()
                    },
                ),
                (
                    "subject",
                    AuditEntry {
                        subject: Some(SubjectRef([7; 16])),
                        ..original.clone()
                    },
                ),
                (
                    "note",
                    AuditEntry {
                        note: Some("nothing happened".into()),
                        ..original.clone()
                    },
                ),
                (
                    "mac",
                    AuditEntry {
                        mac: {
                            let mut m = original.mac;
                            m[0] ^= 1;
                            m
                        },
                        ..original.clone()
                    },
                ),
            ];
            for (what, altered) in alterations {
                let mut trail = entries.clone();
                trail[(seq - 1) as usize] = altered;
                assert_named(
                    &v,
                    &trail,
                    &entries,
                    block,
                    seq,
                    &format!("{what} of {seq}"),
                );
            }
            // Undecodable bytes in place of its block: the block is named.
            let mut t = Txn::new();
            t.put(layout::audit(block_start(seq, block)), &vec![0xffu8; 5]);
            v.store().commit(t).unwrap();
            assert_eq!(
                first_bad(&v),
                Some(block_start(seq, block)),
                "garbage at entry {seq}, blocks of {block}"
            );
            store_trail(&v, &entries, block);
        }
    }
    assert!(v.verify().unwrap().is_whole());
}

#[test]
fn a_removed_audit_entry_is_named_by_its_position() {
    let (_tmp, v) = busy_vault();
    let entries = audit_entries(&v);
    let n = entries.len() as u64;
    for block in LAYOUTS {
        for seq in [1, 2, n / 2, n - 1, n] {
            let mut trail = entries.clone();
            trail.remove((seq - 1) as usize);
            assert_named(&v, &trail, &entries, block, seq, &format!("{seq} removed"));
        }
        // A whole block removed: its first entry is named.
        for seq in [1, n / 2, n] {
            let start = block_start(seq, block);
            let mut t = Txn::new();
            t.delete(layout::audit(start));
            v.store().commit(t).unwrap();
            assert_eq!(
                first_bad(&v),
                Some(start),
                "block at {start} removed, blocks of {block}"
            );
            store_trail(&v, &entries, block);
        }
        // Two removed: the first is named.
        let mut trail = entries.clone();
        trail.remove((n - 2) as usize);
        trail.remove(2);
        store_trail(&v, &trail, block);
        assert_eq!(first_bad(&v), Some(3));
        store_trail(&v, &entries, block);
    }
}

#[test]
fn reordered_audit_entries_are_named_by_the_first_position() {
    let (_tmp, v) = busy_vault();
    let entries = audit_entries(&v);
    let n = entries.len() as u64;
    for block in LAYOUTS {
        for seq in [1, 2, n / 2, n - 1] {
            let i = (seq - 1) as usize;
            // Swapped as stored.
            let mut trail = entries.clone();
            trail.swap(i, i + 1);
            store_trail(&v, &trail, block);
            assert_eq!(
                first_bad(&v),
                Some(seq),
                "entries {seq} and {} swapped, blocks of {block}",
                seq + 1
            );
            // Swapped with their positions rewritten to fit.
            trail[i].seq = seq;
            trail[i + 1].seq = seq + 1;
            store_trail(&v, &trail, block);
            assert_eq!(
                first_bad(&v),
                Some(seq),
                "entries {seq} and {} swapped, positions rewritten, blocks of {block}",
                seq + 1
            );
            store_trail(&v, &entries, block);
            assert_eq!(first_bad(&v), None);
        }
        // An entry forged after the last one.
        let mut trail = entries.clone();
        trail.push(AuditEntry {
            seq: n + 1,
            ..entries[(n - 1) as usize].clone()
        });
        store_trail(&v, &trail, block);
        assert_eq!(
            first_bad(&v),
            Some(n + 1),
            "a forged entry after the last, blocks of {block}"
        );
        // A copy of an entry stored at the end.
        let mut trail = entries.clone();
        trail.push(AuditEntry {
            seq: n + 1,
            ..entries[0].clone()
        });
        store_trail(&v, &trail, block);
        assert_eq!(
            first_bad(&v),
            Some(n + 1),
            "a replayed entry at the end, blocks of {block}"
        );
        store_trail(&v, &entries, block);
    }
}

// ---------------------------------------------------------------------------------------------
// On-disk structures: round trips, and arbitrary bytes never panic
// ---------------------------------------------------------------------------------------------

fn ts() -> impl Strategy<Value = Timestamp> {
    (
        -377_705_116_800i64..=253_402_207_199i64,
        0i32..1_000_000_000,
        any::<bool>(),
    )
        .prop_filter_map("timestamp in range", |(s, n, whole)| {
            let n = if whole { 0 } else { n };
            Timestamp::new(s, if s < 0 { -n } else { n }).ok()
        })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ._-]{0,24}",
        "\\PC{0,12}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

fn category() -> impl Strategy<Value = Category> {
    prop_oneof![
        select(Category::BUILTIN.to_vec()),
        "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,6}){0,2}".prop_map(|s| Category::custom(&s).unwrap()),
    ]
}

fn a_purpose() -> impl Strategy<Value = Purpose> {
    prop_oneof!["[a-z][a-z0-9-]{0,20}", "\\PC{1,12}"]
        .prop_filter_map("valid", |s| Purpose::new(s).ok())
}

fn meta() -> impl Strategy<Value = RecordMeta> {
    (
        category(),
        vec(a_purpose(), 0..4),
        select(LegalBasis::ALL.to_vec()),
        proptest::option::of(text()),
        ts(),
    )
        .prop_map(
            |(category, purposes, basis, source, collected_at)| RecordMeta {
                category,
                purposes,
                basis,
                source,
                collected_at,
                collected_at_unset: false,
            },
        )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn record_entry() -> impl Strategy<Value = RecordEntry> {
    (meta(), any::<u32>(), any::<u32>(), ts(), bytes(120)).prop_map(
        |(meta, version, key_gen, updated_at, sealed)| RecordEntry {
            meta,
            version,
            key_gen,
            updated_at,
            sealed,
        },
    )
}

fn wrapped_key() -> impl Strategy<Value = WrappedKey> {
    (any::<u64>(), bytes(80)).prop_map(|(shard_gen, sealed)| WrappedKey { shard_gen, sealed })
}

fn index_entry() -> impl Strategy<Value = IndexEntry> {
    (bytes(80), wrapped_key()).prop_map(|(sealed_ref, wrapped_blind)| IndexEntry {
        sealed_ref,
        wrapped_blind,
    })
}

fn journal_entry() -> impl Strategy<Value = JournalEntry> {
    (any::<u64>(), bytes(80)).prop_map(|(next_gen, sealed_next)| JournalEntry {
        next_gen,
        sealed_next,
    })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(seq, entries, acc)| Manifest {
        seq,
        entries,
        acc,
    })
}

fn due_kind() -> impl Strategy<Value = DueKind> {
    select(vec![DueKind::Expiry, DueKind::PendingErasure])
}

fn consent_states(
    raw: BTreeMap<String, (bool, Timestamp, String)>,
) -> BTreeMap<String, ConsentState> {
    raw.into_iter()
        .map(|(k, (granted, at, policy_version))| {
            (
                k,
                ConsentState {
                    granted,
                    at,
                    policy_version,
                },
            )
        })
        .collect()
}

fn subject_state() -> impl Strategy<Value = SubjectState> {
    (
        proptest::option::of(ts()),
        bytes(80),
        proptest::option::of(ts()),
        btree_map(text(), ts(), 0..3),
        any::<bool>(),
        btree_set(text(), 0..3),
        btree_map(text(), (any::<bool>(), ts(), text()), 0..3),
        btree_map(text(), any::<u32>(), 0..3),
        (
            btree_set(text(), 0..3),
            select(vec![AgeStatus::Unknown, AgeStatus::Minor, AgeStatus::Adult]),
            btree_map(text(), (any::<bool>(), ts(), text()), 0..3),
        ),
    )
        .prop_map(
            |(
                created_at,
                sealed_blind,
                pending_erasure,
                events,
                restricted,
                restricted_categories,
                consents,
                next_generation,
                (objections, age, guardian_consents),
            )| SubjectState {
                created_at,
                sealed_blind,
                pending_erasure,
                events,
                restricted,
                restricted_categories,
                consents: consent_states(consents),
                next_generation,
                objections,
                age,
                guardian_consents: consent_states(guardian_consents),
            },
        )
}

fn hold() -> impl Strategy<Value = Hold> {
    let scope = prop_oneof![
        Just(HoldScope::Subject),
        category().prop_map(HoldScope::Category),
        any::<[u8; 16]>().prop_map(|b| HoldScope::Record(RecordId(b))),
    ];
    (
        any::<[u8; 8]>(),
        any::<[u8; 16]>(),
        scope,
        select(HoldReason::ALL.to_vec()),
        proptest::option::of(text()),
        text(),
        ts(),
        proptest::option::of(ts()),
        proptest::option::of((ts(), text())),
    )
        .prop_map(
            |(id, subject, scope, reason, reference, placed_by, placed_at, until, released)| Hold {
                id: HoldId(id),
                subject: SubjectRef(subject),
                scope,
                reason,
                reference,
                placed_by,
                placed_at,
                until,
                released: released.map(|(at, by)| Release { at, by }),
            },
        )
}

fn ledger_entry() -> impl Strategy<Value = LedgerEntry> {
    (
        any::<u64>(),
        ts(),
        any::<[u8; 16]>(),
        vec((text(), any::<u32>()), 0..4),
        vec(any::<[u8; 16]>(), 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(seq, at, subject, categories, records, subject_erased)| LedgerEntry {
                seq,
                at,
                subject: SubjectRef(subject),
                categories,
                records: records.into_iter().map(RecordId).collect(),
                subject_erased,
            },
        )
}

const AUDIT_OPS: [AuditOp; 32] = [
    AuditOp::Put,
    AuditOp::Read,
    AuditOp::Update,
    AuditOp::Rectify,
    AuditOp::Delete,
    AuditOp::Erase,
    AuditOp::KeyDestruction,
    AuditOp::HoldPlace,
    AuditOp::HoldRelease,
    AuditOp::Restrict,
    AuditOp::Unrestrict,
    AuditOp::ConsentGrant,
    AuditOp::ConsentWithdraw,
    AuditOp::Export,
    AuditOp::Import,
    AuditOp::Disclosure,
    AuditOp::Sweep,
    AuditOp::KeyRotation,
    AuditOp::Event,
    AuditOp::PolicySet,
    AuditOp::RequestOpen,
    AuditOp::RequestClose,
    AuditOp::RequestVerify,
    AuditOp::Backup,
    AuditOp::LedgerApply,
    AuditOp::Prune,
    AuditOp::Refused,
    AuditOp::List,
    AuditOp::Object,
    AuditOp::LiftObjection,
    AuditOp::AgeStatus,
    AuditOp::Query,
];

fn audit_entry() -> impl Strategy<Value = AuditEntry> {
    (
        any::<u64>(),
        ts(),
        text(),
        select(AUDIT_OPS.to_vec()),
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of(text()),
        proptest::option::of(any::<[u8; 16]>()),
        proptest::option::of(text()),
        (proptest::option::of(text()), any::<[u8; 32]>()),
    )
        .prop_map(
            |(seq, at, actor, op, subject, category, record, note, (role, mac))| AuditEntry {
                seq,
                at,
                actor,
                role,
                op,
                subject: subject.map(SubjectRef),
                category,
                record: record.map(RecordId),
                note,
                mac,
            },
        )
}

fn chain_point() -> impl Strategy<Value = ChainPoint> {
    (any::<u64>(), any::<[u8; 32]>()).prop_map(|(seq, mac)| ChainPoint { seq, mac })
}

fn anchor() -> impl Strategy<Value = Anchor> {
    (chain_point(), any::<[u8; 32]>()).prop_map(|(point, tag)| Anchor { point, tag })
}

fn request() -> impl Strategy<Value = Request> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 16]>(),
        prop_oneof![
            select(RequestKind::BUILTIN.to_vec()),
            // A built-in name parses as the built-in kind, as it decodes.
            "[a-z][a-z0-9]{0,8}".prop_map(|n| n.parse::<RequestKind>().unwrap()),
        ],
        ts(),
        proptest::option::of(ts()),
        proptest::option::of(ts()),
        proptest::option::of((text(), text(), ts())),
    )
        .prop_map(
            |(id, subject, kind, received_at, due_at, closed_at, verified)| Request {
                id: RequestId(id),
                subject: SubjectRef(subject),
                kind,
                received_at,
                due_at,
                closed_at,
                identity_verified: verified.map(|(by, method, at)| IdentityVerification {
                    by,
                    method,
                    at,
                }),
            },
        )
}

fn stored_request() -> impl Strategy<Value = StoredRequest> {
    (request(), proptest::option::of((text(), ts(), bytes(80)))).prop_map(
        |(mut request, verification)| {
            request.identity_verified = None;
            StoredRequest {
                request,
                verification: verification.map(|(by, at, sealed_method)| StoredVerification {
                    by,
                    at,
                    sealed_method,
                }),
            }
        },
    )
}

fn disclosure() -> impl Strategy<Value = Disclosure> {
    (
        text(),
        a_purpose(),
        vec(category(), 0..4),
        proptest::option::of(text()),
        proptest::option::of(text()),
        ts(),
    )
        .prop_map(
            |(recipient, purpose, categories, ground, retention, at)| Disclosure {
                recipient,
                purpose,
                categories,
                ground,
                retention,
                at,
            },
        )
}

fn kdf_spec() -> impl Strategy<Value = KdfSpec> {
    prop_oneof![
        Just(KdfSpec::RawKey),
        (any::<[u8; 16]>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(salt, memory_kib, iterations, parallelism)| KdfSpec::Passphrase {
                salt,
                params: KdfParams {
                    memory_kib,
                    iterations,
                    parallelism,
                },
            }
        ),
    ]
}

fn vault_body() -> impl Strategy<Value = VaultFileBody> {
    (
        any::<[u8; 16]>(),
        kdf_spec(),
        any::<[u8; 32]>(),
        any::<u64>(),
        manifest(),
        bytes(300),
    )
        .prop_map(
            |(vault_id, kdf, key_check, generation, checkpoint, sealed_ring)| VaultFileBody {
                vault_id,
                kdf,
                key_check,
                generation,
                checkpoint,
                source_kind: "slot".into(),
                key_namespace: key_check[..16].try_into().unwrap(),
                epoch: vault_id,
                sealed_ring_key: sealed_ring.iter().rev().copied().collect(),
                sealed_ring,
            },
        )
}

/// For each stored type: `decode(encode(x)) == x`; the encoding cut short or with a byte
/// appended is an error; arbitrary bytes, with or without the format byte, and the encoding
/// with bytes overwritten decode to an error or a value, never a panic.
macro_rules! codec_properties {
    ($($name:ident: $ty:ty = $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $name(
                    x in $strategy,
                    junk in bytes(300),
                    edits in vec((any::<Index>(), any::<u8>()), 1..6),
                    cut in any::<Index>(),
                ) {
                    let encoded = codec::encode(&x);
                    prop_assert!(!encoded.is_empty());
                    let back: $ty = codec::decode(&encoded, "x").unwrap();
                    prop_assert_eq!(&back, &x);
                    let short = &encoded[..cut.index(encoded.len())];
                    prop_assert!(codec::decode::<$ty>(short, "x").is_err());
                    let mut long = encoded.clone();
                    long.push(0);
                    prop_assert!(codec::decode::<$ty>(&long, "x").is_err());
                    let _ = codec::decode::<$ty>(&junk, "x");
                    let mut framed = vec![codec::ENTRY_FORMAT];
                    framed.extend_from_slice(&junk);
                    let _ = codec::decode::<$ty>(&framed, "x");
                    let mut edited = encoded.clone();
                    for (at, b) in &edits {
                        let i = at.index(edited.len());
                        edited[i] = *b;
                    }
                    let _ = codec::decode::<$ty>(&edited, "x");
                }
            )*
        }
    };
}

codec_properties! {
    codec_record_entry: RecordEntry = record_entry();
    codec_wrapped_key: WrappedKey = wrapped_key();
    codec_index_entry: IndexEntry = index_entry();
    codec_subject_state: SubjectState = subject_state();
    codec_journal_entry: JournalEntry = journal_entry();
    codec_manifest: Manifest = manifest();
    codec_due_kind: DueKind = due_kind();
    codec_hold: Hold = hold();
    codec_ledger_entry: LedgerEntry = ledger_entry();
    codec_audit_entry: AuditEntry = audit_entry();
    codec_chain_point: ChainPoint = chain_point();
    codec_anchor: Anchor = anchor();
    codec_request: Request = request();
    codec_stored_request: StoredRequest = stored_request();
    codec_disclosure: Disclosure = disclosure();
    codec_record_meta: RecordMeta = meta();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The vault file: round trip; any single changed byte, a cut or an appended byte is an
    /// error; arbitrary bytes never panic.
    #[test]
    fn vault_file_roundtrips_and_refuses_any_damage(
        body in vault_body(),
        at in any::<Index>(),
        mask in 1u8..,
        cut in any::<Index>(),
        junk in bytes(400),
    ) {
        let file = vault_file::encode(&body);
        prop_assert_eq!(vault_file::decode(&file).unwrap(), body);
        let mut bad = file.clone();
        let i = at.index(bad.len());
        bad[i] ^= mask;
        prop_assert!(vault_file::decode(&bad).is_err(), "byte {} ^ {:#x} accepted", i, mask);
        prop_assert!(vault_file::decode(&file[..cut.index(file.len())]).is_err());
        let mut long = file.clone();
        long.push(0);
        prop_assert!(vault_file::decode(&long).is_err());
        let _ = vault_file::decode(&junk);
        let mut framed = file[..14].to_vec();
        framed.extend_from_slice(&junk);
        let _ = vault_file::decode(&framed);
        let _ = vault_file::decode_ring(&junk);
    }

    /// The key ring's plaintext encoding round-trips.
    #[test]
    fn key_ring_plaintext_roundtrips(
        master in any::<[u8; 32]>(),
        shards in vec((any::<u64>(), any::<[u8; 32]>()), 0..20),
    ) {
        let ring = vault_file::RingPlain { master, shards: shards.clone() };
        let back = vault_file::decode_ring(&vault_file::encode_ring(&ring)).unwrap();
        prop_assert_eq!(back.master, master);
        prop_assert_eq!(&back.shards, &shards);
    }
}

/// The tests committed to this file in 1f97973 (written concurrently with the ones above), kept
/// as they were: an exhaustive bit-flip sweep, the audit chain on a small vault, and round trips.
mod first_pass {

    use proptest::prelude::*;

    use crate::audit::{AuditEntry, AuditOp};
    use crate::erasure::LedgerEntry;
    use crate::policy::holds::{Hold, HoldReason, HoldScope};
    use crate::storage::entries::{
        ConsentState, DueKind, IndexEntry, JournalEntry, Manifest, RecordEntry, SubjectState,
        WrappedKey,
    };
    use crate::storage::{Txn, codec, layout};
    use crate::{
        Category, Error, KdfParams, LegalBasis, Purpose, RecordId, RecordMeta, RootSecret,
        SubjectId, SubjectRef, Vault,
    };

    fn vault(dir: &std::path::Path) -> Vault {
        Vault::builder(dir)
            .kdf(KdfParams::insecure_for_tests())
            .create(RootSecret::passphrase("pw-passphrase"))
            .unwrap()
    }

    fn sa() -> Purpose {
        Purpose::SUBJECT_ACCESS
    }

    fn entry(v: &Vault, s: &SubjectRef, id: &RecordId) -> RecordEntry {
        v.store()
            .get(&layout::record(s, id), "record")
            .unwrap()
            .unwrap()
    }

    fn write(v: &Vault, s: &SubjectRef, id: &RecordId, e: &RecordEntry) {
        let mut t = Txn::new();
        t.put(layout::record(s, id), e);
        v.store().commit(t).unwrap();
    }

    #[test]
    fn flipped_bits_moved_and_swapped_ciphertexts_fail_integrity() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(tmp.path());
        let alice = SubjectId::new("alice").unwrap();
        let bob = SubjectId::new("bob").unwrap();
        let a1 = v
            .put(&alice, RecordMeta::new(Category::Contact), b"alice one")
            .unwrap();
        let a2 = v
            .put(&alice, RecordMeta::new(Category::Contact), b"alice two")
            .unwrap();
        let b1 = v
            .put(&bob, RecordMeta::new(Category::Contact), b"bob one")
            .unwrap();
        let sa_ref = v.find(&alice).unwrap().subject;
        let sb_ref = v.find(&bob).unwrap().subject;
        let original = entry(&v, &sa_ref, &a1);
        // Every single bit of the sealed payload.
        for bit in 0..original.sealed.len() * 8 {
            let mut e = original.clone();
            e.sealed[bit / 8] ^= 1 << (bit % 8);
            write(&v, &sa_ref, &a1, &e);
            assert!(
                matches!(v.get(&alice, a1, &sa()), Err(Error::Integrity(_))),
                "bit {bit}"
            );
        }
        write(&v, &sa_ref, &a1, &original);
        assert_eq!(v.get(&alice, a1, &sa()).unwrap().payload, b"alice one");
        // Copied over another record of the same subject, and of another subject.
        let mut moved = entry(&v, &sa_ref, &a2);
        moved.sealed = original.sealed.clone();
        write(&v, &sa_ref, &a2, &moved);
        assert!(matches!(v.get(&alice, a2, &sa()), Err(Error::Integrity(_))));
        let mut swapped = entry(&v, &sb_ref, &b1);
        swapped.sealed = original.sealed.clone();
        write(&v, &sb_ref, &b1, &swapped);
        assert!(matches!(v.get(&bob, b1, &sa()), Err(Error::Integrity(_))));
        // Metadata altered: purposes, basis, category, version, key generation, time of the
        // last write (every field is bound by the payload's tag, all the store's manifest
        // hashes of a record).
        let alterations: [fn(&mut RecordEntry); 6] = [
            |e| e.meta.purposes.push(Purpose::new("marketing").unwrap()),
            |e| e.meta.basis = LegalBasis::VitalInterests,
            |e| e.meta.category = Category::Usage,
            |e| e.version += 1,
            |e| e.key_gen += 1,
            |e| {
                e.updated_at = e
                    .updated_at
                    .checked_add(jiff::Span::new().nanoseconds(1))
                    .unwrap()
            },
        ];
        for alter in alterations {
            let mut e = original.clone();
            alter(&mut e);
            write(&v, &sa_ref, &a1, &e);
            assert!(v.get(&alice, a1, &sa()).is_err());
        }
        write(&v, &sa_ref, &a1, &original);
        assert_eq!(v.get(&alice, a1, &sa()).unwrap().payload, b"alice one");
        // verify names the damage.
        let report = v.verify().unwrap();
        assert!(
            !report.is_whole(),
            "tampering through the storage layer must be reported"
        );
    }

    #[test]
    fn audit_verify_names_the_first_altered_removed_inserted_or_reordered_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(tmp.path());
        let s = SubjectId::new("s").unwrap();
        for i in 0..6 {
            v.put(
                &s,
                RecordMeta::new(Category::Contact),
                format!("{i}").as_bytes(),
            )
            .unwrap();
        }
        let trail = &v.inner.trail;
        let store = v.store();
        assert!(trail.verify(store).unwrap().is_intact());
        // One put per commit: one entry per block.
        let get = |seq: u64| -> AuditEntry {
            let block: Vec<AuditEntry> = store.get(&layout::audit(seq), "audit").unwrap().unwrap();
            block[0].clone()
        };
        let put = |seq: u64, e: &AuditEntry| {
            let mut t = Txn::new();
            t.put(layout::audit(seq), &vec![e.clone()]);
            store.commit(t).unwrap();
        };
        let del = |seq: u64| {
            let mut t = Txn::new();
            t.delete(layout::audit(seq));
            store.commit(t).unwrap();
        };
        let e3 = get(3);
        let e4 = get(4);
        // altered
        let mut altered = e3.clone();
        altered.actor = "someone else".into();
        put(3, &altered);
        assert_eq!(trail.verify(store).unwrap().first_bad.map(|b| b.0), Some(3));
        put(3, &e3);
        // removed
        del(3);
        assert_eq!(trail.verify(store).unwrap().first_bad.map(|b| b.0), Some(3));
        put(3, &e3);
        // reordered
        let mut a = e4.clone();
        a.seq = 3;
        let mut b = e3.clone();
        b.seq = 4;
        put(3, &a);
        put(4, &b);
        assert_eq!(trail.verify(store).unwrap().first_bad.map(|b| b.0), Some(3));
        put(3, &e3);
        put(4, &e4);
        // inserted (a forged entry with the next position, chain value guessed)
        let mut forged = get(6);
        forged.seq = 7;
        forged.op = AuditOp::Read;
        put(7, &forged);
        assert_eq!(trail.verify(store).unwrap().first_bad.map(|b| b.0), Some(7));
        del(7);
        // the tail removed
        let e6 = get(6);
        del(6);
        assert!(!trail.verify(store).unwrap().is_intact());
        put(6, &e6);
        assert!(trail.verify(store).unwrap().is_intact());
    }

    fn ts() -> impl Strategy<Value = jiff::Timestamp> {
        (-2_000_000_000i64..4_000_000_000).prop_map(|s| jiff::Timestamp::from_second(s).unwrap())
    }

    fn meta() -> impl Strategy<Value = RecordMeta> {
        (
            0..Category::BUILTIN.len(),
            proptest::collection::vec("[a-z]{1,10}", 0..4),
            0..6usize,
            proptest::option::of("[a-z ]{1,20}"),
            ts(),
        )
            .prop_map(|(c, ps, b, src, at)| RecordMeta {
                category: Category::BUILTIN[c].clone(),
                purposes: ps.into_iter().map(|p| Purpose::new(p).unwrap()).collect(),
                basis: LegalBasis::ALL[b],
                source: src,
                collected_at: at,
                collected_at_unset: false,
            })
    }

    fn roundtrip<
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    >(
        x: &T,
    ) -> Result<(), TestCaseError> {
        let back: T = codec::decode(&codec::encode(x), "x").unwrap();
        prop_assert_eq!(&back, x);
        Ok(())
    }

    proptest! {
        #[test]
        fn every_stored_structure_roundtrips(
            m in meta(), v in any::<u32>(), g in any::<u32>(), at in ts(), bytes in proptest::collection::vec(any::<u8>(), 0..200),
            r in any::<[u8; 16]>(), n in any::<u64>(), acc in any::<[u8; 32]>(), flag in any::<bool>(),
        ) {
            roundtrip(&RecordEntry { meta: m, version: v, key_gen: g, updated_at: at, sealed: bytes.clone() })?;
            roundtrip(&WrappedKey { shard_gen: n, sealed: bytes.clone() })?;
            roundtrip(&IndexEntry { sealed_ref: bytes.clone(), wrapped_blind: WrappedKey { shard_gen: n, sealed: bytes.clone() } })?;
            roundtrip(&JournalEntry { next_gen: n, sealed_next: bytes.clone() })?;
            roundtrip(&Manifest { seq: n, entries: u64::from(v), acc })?;
            roundtrip(&DueKind::Expiry)?;
            roundtrip(&DueKind::PendingErasure)?;
            let mut st = SubjectState { created_at: Some(at), sealed_blind: bytes.clone(), restricted: flag, ..Default::default() };
            st.events.insert("account-closed".into(), at);
            st.consents.insert("ads".into(), ConsentState { granted: flag, at, policy_version: "v1".into() });
            st.restricted_categories.insert("usage".into());
            st.next_generation.insert("contact".into(), g);
            roundtrip(&st)?;
            roundtrip(&Hold { id: crate::HoldId(n.to_be_bytes()), subject: SubjectRef(r), scope: HoldScope::Record(RecordId(r)), reason: HoldReason::Dispute, reference: Some("C".into()), placed_by: "x".into(), placed_at: at, until: None, released: None })?;
            roundtrip(&LedgerEntry { seq: n, at, subject: SubjectRef(r), categories: vec![("usage".into(), g)], records: vec![RecordId(r)], subject_erased: flag })?;
            roundtrip(&AuditEntry { seq: n, at, actor: "a".into(), role: None, op: AuditOp::Erase, subject: Some(SubjectRef(r)), category: None, record: Some(RecordId(r)), note: None, mac: acc })?;
        }

        /// The stored record a get or a scan reads by hand is the entry serde decodes, for
        /// every record encoded and for the same bytes altered or cut short: both accept the
        /// same bytes, and read the same entry from them.
        #[test]
        fn a_record_read_by_hand_is_the_record_serde_decodes(
            m in meta(), v in any::<u32>(), g in any::<u32>(), at in ts(),
            sealed in proptest::collection::vec(any::<u8>(), 0..64),
            flips in proptest::collection::vec((any::<usize>(), 1..=255u8), 1..4), cut in any::<usize>(),
        ) {
            let entry = RecordEntry { meta: m, version: v, key_gen: g, updated_at: at, sealed };
            let agree = |bytes: &[u8]| -> Result<Option<RecordEntry>, TestCaseError> {
                let whole = codec::decode::<RecordEntry>(bytes, "record").ok();
                let by_hand = crate::storage::entries::StoredRecord::decode(bytes.to_vec()).ok().map(crate::storage::entries::StoredRecord::into_entry);
                prop_assert_eq!(&by_hand, &whole);
                Ok(by_hand)
            };
            let bytes = codec::encode(&entry);
            prop_assert_eq!(agree(&bytes)?, Some(entry));
            let mut altered = bytes.clone();
            for (at, x) in flips {
                let i = at % altered.len();
                altered[i] ^= x;
            }
            agree(&altered)?;
            agree(&bytes[..cut % bytes.len()])?;
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = codec::decode::<RecordEntry>(&bytes, "x");
            let _ = codec::decode::<WrappedKey>(&bytes, "x");
            let _ = codec::decode::<IndexEntry>(&bytes, "x");
            let _ = codec::decode::<JournalEntry>(&bytes, "x");
            let _ = codec::decode::<Manifest>(&bytes, "x");
            let _ = codec::decode::<DueKind>(&bytes, "x");
            let _ = codec::decode::<SubjectState>(&bytes, "x");
            let _ = codec::decode::<Hold>(&bytes, "x");
            let _ = codec::decode::<LedgerEntry>(&bytes, "x");
            let _ = codec::decode::<AuditEntry>(&bytes, "x");
            let _ = crate::storage::vault_file::decode(&bytes);
            let _ = crate::storage::vault_file::decode_ring(&bytes);
        }
    }
}

/// A record's associated data is its fixed fields in order, then its metadata's bytes, whatever
/// the metadata's length (inline or beyond).
#[test]
fn record_ad_is_the_fixed_fields_then_the_metadata() {
    let (vault_id, subject, id) = ([3u8; 16], SubjectRef::random(), RecordId::random());
    let at = Timestamp::new(1_800_000_000, 123_456_789).unwrap();
    for meta_len in [0, 50, 160, 161, 400] {
        let meta = vec![7u8; meta_len];
        let expected = [
            &b"pdvault/record/"[..],
            &vault_id,
            subject.as_bytes(),
            id.as_bytes(),
            &9u32.to_be_bytes(),
            &4u32.to_be_bytes(),
            &at.as_second().to_be_bytes(),
            &at.subsec_nanosecond().to_be_bytes(),
            &meta,
        ]
        .concat();
        let ad = record_ad(&vault_id, &subject, &id, 9, 4, at, &meta);
        assert_eq!(ad.as_bytes(), &expected[..], "{meta_len} bytes of metadata");
    }
}

/// The shards whose ratchet journal rows the store holds.
fn journal_shards(v: &Vault) -> BTreeSet<u16> {
    v.store()
        .scan_keys(&crate::storage::layout::journal_prefix())
        .map(|k| {
            let k = k.unwrap();
            u16::from_be_bytes([k[k.len() - 2], k[k.len() - 1]])
        })
        .collect()
}

/// A finished ratchet leaves its journal rows for the next ratchet's batch to remove (no commit
/// of their own): they never pile up, and a reopen skips and removes them without changing a
/// key, the erased staying erased and everything else readable.
#[test]
fn a_ratchets_journal_rows_go_with_the_next_ratchet_and_a_reopen_skips_them() {
    let (tmp, v) = new_vault();
    let p = purpose("p");
    let kept = sid("kept@example.com");
    let record = v
        .put(
            &kept,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"kept",
        )
        .unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..20 {
        let s = sid(&format!("erased-{i}@example.com"));
        v.put(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"x",
        )
        .unwrap();
        v.put(
            &s,
            RecordMeta::new(Category::Usage).purpose(p.clone()),
            b"y",
        )
        .unwrap();
        let before = journal_shards(&v);
        v.erase_subject(&s).unwrap();
        let after = journal_shards(&v);
        assert!(!after.is_empty(), "erasure {i} journaled its shards");
        // One ratchet's rows: a subject's keys and its index entry.
        assert!(
            after.len() <= 2,
            "erasure {i}: {after:?} (before it: {before:?})"
        );
        seen.extend(after);
    }
    assert!(
        seen.len() > 2,
        "the erasures ratcheted different shards: {seen:?}"
    );
    let dir = tmp.path().to_path_buf();
    v.close().unwrap();
    let v = reopen(&dir);
    assert!(
        journal_shards(&v).is_empty(),
        "the reopen removed the stale rows"
    );
    assert_eq!(v.get(&kept, record, &p).unwrap().payload, b"kept");
    for i in 0..20 {
        let s = sid(&format!("erased-{i}@example.com"));
        assert!(matches!(v.find(&s), Err(Error::SubjectNotFound)));
    }
    assert!(v.verify().unwrap().is_whole());
}
