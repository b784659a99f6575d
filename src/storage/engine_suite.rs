//! One suite of engine properties, run against every engine: each property is one function over
//! `&dyn Engine`, and [`engine_tests!`] makes a `#[test]` of each for one engine. An engine that
//! can inject a failed write also runs [`failed_batches_apply_nothing`].
//!
//! The PostgreSQL tests (feature `postgres`) connect to `PDVAULT_TEST_POSTGRES` (a connection URL;
//! `.ci/run` starts a throwaway cluster and sets it), each in a schema of its own that is dropped
//! afterwards. Without the variable they fail under CI (`CI` set) and are skipped otherwise.

use std::collections::BTreeMap;

use super::engine::{Engine, EngineOp};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn put(k: &[u8], v: &[u8]) -> EngineOp {
    EngineOp::Put(k.to_vec(), v.to_vec())
}

fn insert(k: &[u8], v: &[u8]) -> EngineOp {
    EngineOp::Insert(k.to_vec(), v.to_vec())
}

fn del(k: &[u8]) -> EngineOp {
    EngineOp::Delete(k.to_vec())
}

/// Text pairs as the engine's byte pairs.
fn pairs(p: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    p.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn collect(it: super::engine::KvIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.collect::<Result<_, _>>().expect("a scan fails")
}

/// Point reads see puts, overwrites and deletes; deleting an absent key is fine; empty values
/// and keys holding `0x00` and `0xff` bytes round-trip.
pub(super) fn put_get_delete(e: &dyn Engine) {
    assert_eq!(e.get(b"a").unwrap(), None);
    e.apply(vec![put(b"a", b"1")]).unwrap();
    assert_eq!(e.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    e.apply(vec![put(b"a", b"2")]).unwrap();
    assert_eq!(e.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    e.apply(vec![del(b"a"), del(b"never-written")]).unwrap();
    assert_eq!(e.get(b"a").unwrap(), None);
    let odd = [0x00, 0xff, 0x00, 0x80];
    e.apply(vec![put(&odd, b""), put(b"b", &[0xff; 3])])
        .unwrap();
    assert_eq!(e.get(&odd).unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(e.get(&odd[..3]).unwrap(), None);
    assert_eq!(e.get(b"b").unwrap().as_deref(), Some(&[0xff; 3][..]));
    e.apply(vec![]).unwrap();
    e.flush().unwrap();
    assert_eq!(e.get(b"b").unwrap().as_deref(), Some(&[0xff; 3][..]));
}

/// A batch and the whole map after it.
type Batch<'a> = (Vec<EngineOp>, &'a [(&'a str, &'a str)]);

/// Inserts at fresh keys land beside puts and deletes of the same batch; an insert at a key that
/// was there after all overwrites it, as a put would, in the same batch as everything else, and
/// the last op on a key counts whatever its kind.
pub(super) fn inserts_at_present_keys_overwrite(e: &dyn Engine) {
    let steps: [Batch<'_>; 4] = [
        (
            vec![put(b"old", b"0"), put(b"gone", b"0")],
            &[("gone", "0"), ("old", "0")],
        ),
        (
            vec![
                insert(b"new-1", b"1"),
                insert(b"new-2", b"2"),
                put(b"old", b"1"),
                del(b"gone"),
            ],
            &[("new-1", "1"), ("new-2", "2"), ("old", "1")],
        ),
        // `new-1` and `old` are present: the whole batch still lands, overwriting them.
        (
            vec![
                insert(b"new-1", b"again"),
                insert(b"old", b"again"),
                del(b"new-2"),
            ],
            &[("new-1", "again"), ("old", "again")],
        ),
        (
            vec![
                insert(b"n-4", b"4"),
                del(b"n-4"),
                del(b"old"),
                insert(b"old", b"last"),
            ],
            &[("new-1", "again"), ("old", "last")],
        ),
    ];
    for (i, (ops, want)) in steps.into_iter().enumerate() {
        e.apply(ops).unwrap();
        assert_eq!(collect(e.scan_prefix(b"")), pairs(want), "after batch {i}");
    }
}

/// Scans return exactly the keys in their bounds, in unsigned byte order (shorter first on a
/// common prefix), for prefixes ending in `0xff`, all-`0xff` prefixes and the empty prefix.
pub(super) fn scans_are_ordered_and_bounded(e: &dyn Engine) {
    let keys: &[&[u8]] = &[
        &[0x00],
        &[0x01],
        &[0x01, 0x00],
        &[0x01, 0x7f],
        &[0x01, 0x80],
        &[0x01, 0xff],
        &[0x01, 0xff, 0x00],
        &[0x01, 0xff, 0xff],
        &[0x02],
        &[0x02, 0x00],
        &[0x7f],
        &[0x80],
        &[0xfe, 0xff],
        &[0xff],
        &[0xff, 0x00],
        &[0xff, 0xff],
        &[0xff, 0xff, 0xff, 0x01],
    ];
    let mut model = Model::new();
    // Written in reverse, so that order comes from the engine.
    let ops = keys
        .iter()
        .rev()
        .enumerate()
        .map(|(i, k)| {
            model.insert(k.to_vec(), vec![i as u8]);
            put(k, &[i as u8])
        })
        .collect();
    e.apply(ops).unwrap();

    let prefixes: &[&[u8]] = &[
        &[],
        &[0x01],
        &[0x01, 0xff],
        &[0x01, 0xff, 0xff],
        &[0x02],
        &[0x03],
        &[0x7f],
        &[0xfe],
        &[0xff],
        &[0xff, 0xff],
        &[0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0xff],
    ];
    for p in prefixes {
        let want: Vec<_> = model
            .iter()
            .filter(|(k, _)| k.starts_with(p))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(collect(e.scan_prefix(p)), want, "prefix {p:02x?}");
    }
    let bounds: &[(&[u8], &[u8])] = &[
        (&[], &[0x01, 0xff]),
        (&[0x01], &[0x02]),
        (&[0x01, 0x00], &[0x01, 0xff, 0xff]),
        (&[0x01, 0x80], &[0x01, 0x80]),
        (&[0x7f], &[0x80]),
        (&[0x80], &[0xff, 0xff, 0xff, 0xff]),
        (&[0x03], &[0x04]),
    ];
    for (start, end) in bounds {
        let want: Vec<_> = model
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            collect(e.range(start, end)),
            want,
            "range {start:02x?}..{end:02x?}"
        );
    }
}

/// A batch applies as its ops in order: the last op on a key wins, puts and deletes of one key
/// mix, and a large batch lands whole.
pub(super) fn batches_are_atomic(e: &dyn Engine) {
    e.apply(vec![put(b"gone", b"x"), put(b"kept", b"x")])
        .unwrap();
    e.apply(vec![
        put(b"k", b"1"),
        del(b"k"),
        put(b"k", b"2"),
        put(b"j", b"1"),
        del(b"j"),
        del(b"gone"),
        put(b"gone", b"back"),
        del(b"gone"),
        put(b"kept", b"y"),
        put(b"kept", b"z"),
    ])
    .unwrap();
    assert_eq!(e.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(e.get(b"j").unwrap(), None);
    assert_eq!(e.get(b"gone").unwrap(), None);
    assert_eq!(e.get(b"kept").unwrap().as_deref(), Some(&b"z"[..]));

    let big: Vec<EngineOp> = (0..3000u32)
        .map(|i| put(&[b"big/", &i.to_be_bytes()[..]].concat(), &i.to_le_bytes()))
        .chain(
            (0..3000u32)
                .step_by(3)
                .map(|i| del(&[b"big/", &i.to_be_bytes()[..]].concat())),
        )
        .collect();
    e.apply(big).unwrap();
    let rows = collect(e.scan_prefix(b"big/"));
    let got: Vec<u32> = rows
        .iter()
        .map(|(k, _)| u32::from_be_bytes(k[4..8].try_into().unwrap()))
        .collect();
    let want: Vec<u32> = (0..3000).filter(|i| i % 3 != 0).collect();
    assert_eq!(got, want);
}

/// A batch that the engine fails applies nothing, and the engine writes again afterwards.
/// `arm` makes the next batch fail if it writes the key `b"fault"`.
pub(super) fn failed_batches_apply_nothing(e: &dyn Engine, arm: &dyn Fn()) {
    e.apply(vec![put(b"old", b"1")]).unwrap();
    arm();
    let failed = e.apply(vec![
        put(b"new", b"1"),
        del(b"old"),
        put(b"old2", b"1"),
        put(b"fault", b"1"),
    ]);
    assert!(failed.is_err(), "the armed batch succeeded");
    assert_eq!(e.get(b"new").unwrap(), None);
    assert_eq!(e.get(b"old").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        collect(e.scan_prefix(b"")),
        vec![(b"old".to_vec(), b"1".to_vec())]
    );
    e.apply(vec![put(b"new", b"1")]).unwrap();
    assert_eq!(e.get(b"new").unwrap().as_deref(), Some(&b"1"[..]));
}

/// Scans of 5,000 rows return every row in order; scans dropped part way, and reads and writes
/// made while a scan is open, leave the engine working.
pub(super) fn large_scans_stream(e: &dyn Engine) {
    const ROWS: u32 = 5000;
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(1000) {
        e.apply(
            chunk
                .iter()
                .map(|i| put(&[&b"r"[..], &i.to_be_bytes()].concat(), &[7; 100]))
                .collect(),
        )
        .unwrap();
    }
    let mut n = 0u32;
    for r in e.scan_prefix(b"r") {
        let (k, v) = r.unwrap();
        assert_eq!(k, [&b"r"[..], &n.to_be_bytes()].concat());
        assert_eq!(v, [7; 100]);
        n += 1;
    }
    assert_eq!(n, ROWS);
    let start = [&b"r"[..], &1000u32.to_be_bytes()].concat();
    let end = [&b"r"[..], &4000u32.to_be_bytes()].concat();
    assert_eq!(e.range(&start, &end).count(), 3000);

    // More scans dropped part way than any pool has connections.
    for i in 0..40u32 {
        let mut it = e.scan_prefix(b"r");
        for _ in 0..=(i * 37 % 300) {
            it.next().unwrap().unwrap();
        }
    }
    // Reads and writes while a scan is open.
    let mut it = e.scan_prefix(b"r");
    it.next().unwrap().unwrap();
    e.apply(vec![put(b"s", b"during")]).unwrap();
    assert_eq!(e.get(b"s").unwrap().as_deref(), Some(&b"during"[..]));
    assert_eq!(it.count(), ROWS as usize - 1);
    assert_eq!(e.scan_prefix(b"").count(), ROWS as usize + 1);
}

/// `#[test]`s of every property for one engine: `$make` is an expression giving a value that
/// derefs to the engine (kept alive for the test), or `None` to skip.
macro_rules! engine_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn put_get_delete() {
                if let Some(e) = $make {
                    super::put_get_delete(&*e);
                }
            }

            #[test]
            fn inserts_at_present_keys_overwrite() {
                if let Some(e) = $make {
                    super::inserts_at_present_keys_overwrite(&*e);
                }
            }

            #[test]
            fn scans_are_ordered_and_bounded() {
                if let Some(e) = $make {
                    super::scans_are_ordered_and_bounded(&*e);
                }
            }

            #[test]
            fn batches_are_atomic() {
                if let Some(e) = $make {
                    super::batches_are_atomic(&*e);
                }
            }

            #[test]
            fn large_scans_stream() {
                if let Some(e) = $make {
                    super::large_scans_stream(&*e);
                }
            }
        }
    };
}

mod mem {
    use super::*;
    use crate::storage::mem_engine::MemEngine;

    fn engine() -> Option<Box<MemEngine>> {
        Some(Box::new(MemEngine::new()))
    }

    engine_tests!(suite, engine());

    #[test]
    fn failed_batches_apply_nothing() {
        let e = MemEngine::new();
        super::failed_batches_apply_nothing(&e, &|| e.fail_after(0));
    }
}

mod sled {
    use super::*;
    use crate::storage::sled_engine::SledEngine;

    /// A sled engine in a temporary directory, removed after the engine.
    pub(super) struct TempSled {
        engine: SledEngine,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for TempSled {
        type Target = SledEngine;
        fn deref(&self) -> &SledEngine {
            &self.engine
        }
    }

    fn engine() -> Option<TempSled> {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(&dir.path().join("store"), None, 8 << 20).unwrap();
        Some(TempSled { engine, _dir: dir })
    }

    engine_tests!(suite, engine());
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::storage::postgres_engine::{PostgresEngine, prefix_end};

    /// A PostgreSQL engine in a schema of its own, dropped with it.
    pub(super) struct TempPg {
        engine: PostgresEngine,
        url: String,
        schema: String,
    }

    impl std::ops::Deref for TempPg {
        type Target = PostgresEngine;
        fn deref(&self) -> &PostgresEngine {
            &self.engine
        }
    }

    impl TempPg {
        fn client(&self) -> ::postgres::Client {
            ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap()
        }
    }

    impl Drop for TempPg {
        fn drop(&mut self) {
            if let Ok(mut c) = ::postgres::Client::connect(&self.url, ::postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
            }
        }
    }

    fn url() -> Option<String> {
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

    pub(super) fn engine() -> Option<TempPg> {
        let url = url()?;
        let schema = format!("pdv_{:016x}", rand::random::<u64>());
        let engine = PostgresEngine::connect(&url, Some(&schema)).unwrap();
        Some(TempPg {
            engine,
            url,
            schema,
        })
    }

    engine_tests!(suite, engine());

    #[test]
    fn failed_batches_apply_nothing() {
        let Some(e) = engine() else { return };
        let arm = || {
            e.client()
                .batch_execute(&format!(
                    "CREATE FUNCTION {s}.fault() RETURNS trigger LANGUAGE plpgsql AS
                       $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
                     CREATE TRIGGER fault BEFORE INSERT OR UPDATE ON {s}.pdvault_kv
                       FOR EACH ROW WHEN (NEW.key = 'fault'::bytea)
                       EXECUTE FUNCTION {s}.fault();",
                    s = e.schema
                ))
                .unwrap()
        };
        super::failed_batches_apply_nothing(&*e, &arm);
    }

    #[test]
    fn reconnecting_finds_the_data_and_checks_the_version() {
        let Some(e) = engine() else { return };
        e.apply(vec![put(b"a", b"1")]).unwrap();
        let again = PostgresEngine::connect(&e.url, Some(&e.schema)).unwrap();
        assert_eq!(again.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        e.client()
            .batch_execute(&format!(
                "UPDATE {}.pdvault_schema SET version = 99",
                e.schema
            ))
            .unwrap();
        let err = PostgresEngine::connect(&e.url, Some(&e.schema))
            .err()
            .expect("a newer layout opened");
        assert!(err.to_string().contains("version 99"), "{err}");
    }

    #[test]
    fn an_unreachable_server_is_an_error() {
        // Port 1 on the loopback: nothing listens there.
        let err = PostgresEngine::connect("postgres://postgres@127.0.0.1:1/postgres", None)
            .err()
            .expect("connected to nothing");
        assert!(
            err.to_string().contains("cannot connect to PostgreSQL"),
            "{err}"
        );
        assert!(PostgresEngine::connect("not a url ::", None).is_err());
        assert!(PostgresEngine::connect("postgres://x@127.0.0.1:1/x", Some("Bad-Name")).is_err());
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[0x01]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0x01, 0xff, 0xff]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0x01, 0xfe, 0xff]), Some(vec![0x01, 0xff]));
    }

    /// Concurrent batches over the same keys in opposite orders all land (the engine sorts each
    /// batch, and retries a deadlock).
    #[test]
    fn concurrent_batches_all_land() {
        let Some(e) = engine() else { return };
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let e = &*e;
                s.spawn(move || {
                    for round in 0..25u8 {
                        let mut ops: Vec<_> = (0..50u8).map(|k| put(&[k], &[t, round])).collect();
                        if t % 2 == 1 {
                            ops.reverse();
                        }
                        e.apply(ops).unwrap();
                    }
                });
            }
        });
        assert_eq!(e.scan_prefix(b"").count(), 50);
    }
}
