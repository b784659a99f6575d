//! Many threads mixing puts, reads, updates, erasures and sweeps for a bounded time: no deadlock,
//! no lost acknowledged write, nothing readable after its erasure returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pdvault::*;

/// Live records by (subject, id), with their last acknowledged payload.
type Live = HashMap<(String, RecordId), Vec<u8>>;

#[test]
fn mixed_threads_lose_nothing_and_resurrect_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = Policy::from_toml("[retention.access-log]\nmax = \"1 day\"").unwrap();
    let clock = ManualClock::new("2025-01-01T00:00:00Z".parse().unwrap());
    let v = Vault::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(policy)
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let sa = Purpose::SUBJECT_ACCESS;
    // What each thread was told: live records with their last payload, and erased ones.
    let live: Arc<Mutex<Live>> = Arc::default();
    let erased: Arc<Mutex<Vec<(String, RecordId)>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut handles = Vec::new();
    for t in 0..6 {
        let (v, live, erased, sa) = (v.clone(), live.clone(), erased.clone(), sa.clone());
        handles.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                // Each thread owns its subjects: subject-level erasures do not race its own checks.
                let name = format!("t{t}-s{}", n % 5);
                let s = SubjectId::new(name.clone()).unwrap();
                match n % 10 {
                    0..=4 => {
                        let payload = format!("{name}-{n}").into_bytes();
                        let cat = if n.is_multiple_of(2) {
                            Category::Contact
                        } else {
                            Category::AccessLog
                        };
                        let id = v.put(&s, RecordMeta::new(cat), &payload).unwrap();
                        live.lock().unwrap().insert((name, id), payload);
                    }
                    5 | 6 => {
                        let pick = live
                            .lock()
                            .unwrap()
                            .keys()
                            .find(|(s2, _)| *s2 == name)
                            .cloned();
                        if let Some((_, id)) = pick {
                            let payload = format!("{name}-{n}-upd").into_bytes();
                            if v.update(&s, id, &payload).is_ok() {
                                live.lock().unwrap().insert((name, id), payload);
                            }
                        }
                    }
                    7 => {
                        let pick = live
                            .lock()
                            .unwrap()
                            .keys()
                            .find(|(s2, _)| *s2 == name)
                            .cloned();
                        if let Some((_, id)) = pick {
                            v.erase_record(&s, id).unwrap();
                            live.lock().unwrap().remove(&(name.clone(), id));
                            erased.lock().unwrap().push((name.clone(), id));
                            assert!(
                                v.get(&s, id, &sa).is_err(),
                                "readable right after its erasure returned"
                            );
                        }
                    }
                    8 if n % 40 == 8 => {
                        if v.erase_subject(&s).is_ok() {
                            let mut l = live.lock().unwrap();
                            let gone: Vec<_> =
                                l.keys().filter(|(s2, _)| *s2 == name).cloned().collect();
                            for k in gone {
                                l.remove(&k);
                                erased.lock().unwrap().push(k);
                            }
                        }
                    }
                    9 if t == 0 => {
                        v.sweep().unwrap();
                    }
                    _ => {
                        let pick = live
                            .lock()
                            .unwrap()
                            .iter()
                            .find(|((s2, _), _)| *s2 == name)
                            .map(|(k, p)| (k.clone(), p.clone()));
                        if let Some(((_, id), payload)) = pick {
                            assert_eq!(v.get(&s, id, &sa).unwrap().payload, payload);
                        }
                    }
                }
            }
            n
        }));
    }
    let ops: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("a thread panicked"))
        .sum();
    let check = |v: &Vault| {
        for ((name, id), payload) in live.lock().unwrap().iter() {
            let s = SubjectId::new(name.clone()).unwrap();
            assert_eq!(
                &v.get(&s, *id, &sa).unwrap().payload,
                payload,
                "lost an acknowledged write"
            );
        }
        for (name, id) in erased.lock().unwrap().iter() {
            let s = SubjectId::new(name.clone()).unwrap();
            assert!(v.get(&s, *id, &sa).is_err(), "an erased record came back");
        }
    };
    check(&v);
    assert!(v.verify().unwrap().is_whole());
    drop(v);
    let v = Vault::builder(tmp.path())
        .clock(clock)
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    check(&v);
    println!(
        "concurrency: {ops} operations, {} live, {} erased",
        live.lock().unwrap().len(),
        erased.lock().unwrap().len()
    );
}
