//! In-crate tests of the vault that reach the stored bytes through the storage layer: tampered,
//! moved and swapped ciphertexts; altered metadata; the audit chain under tampering; round trips
//! of every stored structure.

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
    Category, Error, KdfParams, LegalBasis, Purpose, RecordId, RecordMeta, RootSecret, SubjectId,
    SubjectRef, Vault,
};

fn vault(dir: &std::path::Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw"))
        .unwrap()
}

fn sa() -> Purpose {
    Purpose::new(Purpose::SUBJECT_ACCESS).unwrap()
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
    // Metadata altered: purposes, basis, category, version.
    let alterations: [fn(&mut RecordEntry); 4] = [
        |e| e.meta.purposes.push(Purpose::new("marketing").unwrap()),
        |e| e.meta.basis = LegalBasis::VitalInterests,
        |e| e.meta.category = Category::Usage,
        |e| e.version += 1,
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
    let get =
        |seq: u64| -> AuditEntry { store.get(&layout::audit(seq), "audit").unwrap().unwrap() };
    let put = |seq: u64, e: &AuditEntry| {
        let mut t = Txn::new();
        t.put(layout::audit(seq), e);
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
        })
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
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
        roundtrip(&IndexEntry { sealed_ref: bytes.clone() })?;
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
        roundtrip(&AuditEntry { seq: n, at, actor: "a".into(), op: AuditOp::Erase, subject: Some(SubjectRef(r)), category: None, record: Some(RecordId(r)), note: None, mac: acc })?;
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
