use pdvault::*;

fn vault(dir: &std::path::Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap()
}

#[test]
fn put_get_erase_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let alice = SubjectId::new("alice@example.com").unwrap();
    let p = Purpose::new("billing").unwrap();
    let id = v
        .put(
            &alice,
            RecordMeta::new(Category::Payment).purpose(p.clone()),
            b"hello",
        )
        .unwrap();
    let id2 = v
        .put(
            &alice,
            RecordMeta::new(Category::Usage).purpose(p.clone()),
            b"usage",
        )
        .unwrap();
    assert_eq!(v.get(&alice, id, &p).unwrap().payload, b"hello");
    v.update(&alice, id, b"hello2").unwrap();
    assert_eq!(v.get(&alice, id, &p).unwrap().payload, b"hello2");
    assert_eq!(v.list(&alice).unwrap().len(), 2);
    v.close().unwrap();
    assert!(matches!(
        Vault::builder(dir.path()).open(RootSecret::passphrase("wrong-passphrase")),
        Err(Error::Open(OpenError::WrongKey))
    ));
    let v = Vault::builder(dir.path())
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert_eq!(v.get(&alice, id, &p).unwrap().payload, b"hello2");
    let r = v.erase_category(&alice, &Category::Usage).unwrap();
    assert_eq!(r.erased.len(), 1);
    assert!(v.get(&alice, id2, &p).is_err());
    assert_eq!(v.get(&alice, id, &p).unwrap().payload, b"hello2");
    let r = v.erase_subject(&alice).unwrap();
    assert!(r.subject_erased);
    assert!(matches!(v.get(&alice, id, &p), Err(Error::SubjectNotFound)));
    let rep = v.verify().unwrap();
    assert!(rep.is_whole(), "{rep:?}");
    assert_eq!(v.ledger().unwrap().len(), 2);
    v.close().unwrap();
    let v = Vault::builder(dir.path())
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert!(v.verify().unwrap().is_whole());
}
