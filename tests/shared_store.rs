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
