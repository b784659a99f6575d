//! A vault on PostgreSQL whose server is restarted (`pg_ctl restart -m immediate`, a crash and
//! recovery) under a workload of writes and erasures: operations fail with errors while it is
//! down, neither panicking nor hanging, and succeed again once it is back; nothing acknowledged is
//! lost, no erasure is half applied, and the vault verifies whole with its audit trail intact.
//!
//! It restarts the server every other PostgreSQL test uses: run it in a `cargo test` of its own
//! (`cargo test --features postgres --test shared_restart`), after the others.
#![cfg(feature = "postgres")]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::Schema;
use pdvault::*;

const RESTARTS: usize = 5;
const SUBJECTS: usize = 10;
/// The longest an operation may take, server down or not.
const OPERATION_BOUND: Duration = Duration::from_secs(30);

/// The test cluster, as `.ci/run` started it.
struct Server {
    bin: String,
    data: String,
    socket_dir: String,
    port: String,
}

impl Server {
    fn from_env() -> Option<Server> {
        let var = |name: &str| std::env::var(name).ok();
        let found = (|| {
            Some(Server {
                bin: var("PDVAULT_TEST_PG_BIN")?,
                data: var("PDVAULT_TEST_PGDATA")?,
                socket_dir: var("PDVAULT_TEST_PG_SOCKET_DIR")?,
                port: var("PDVAULT_TEST_PG_PORT")?,
            })
        })();
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "PDVAULT_TEST_PGDATA, PDVAULT_TEST_PG_BIN, PDVAULT_TEST_PG_SOCKET_DIR and \
                 PDVAULT_TEST_PG_PORT must be set under CI"
            );
            eprintln!("skipped: the PostgreSQL cluster's data directory and binaries are not set");
        }
        found
    }

    /// Crashes the server and starts it again with the options `.ci/run` started it with (its
    /// log in the socket directory, as there), as the data directory's owner.
    fn restart(&self) {
        let Server {
            bin,
            data,
            socket_dir,
            port,
        } = self;
        let command = format!(
            "{bin}/pg_ctl -D '{data}' -l '{socket_dir}/log' -m immediate -w restart \
             -o '-k {socket_dir} -p {port} -c listen_addresses=127.0.0.1'"
        );
        let out = as_postgres(&command).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn as_postgres(command: &str) -> Command {
    let uid = Command::new("id").arg("-u").output().unwrap();
    let mut c;
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", command]);
    } else {
        c = Command::new("sh");
        c.args(["-c", command]);
    }
    c
}

/// What the workload was told, in the order it was told.
#[derive(Default)]
struct Log {
    puts: Vec<Put>,
    erasures: Vec<Erasure>,
    failures: usize,
    slowest: Duration,
    last_success: Option<Instant>,
}

struct Put {
    subject: String,
    record: RecordId,
    payload: String,
    start: Instant,
    end: Instant,
}

struct Erasure {
    subject: String,
    start: Instant,
    end: Instant,
    /// Returned: applied whole. Failed: applied whole or not at all, nobody said which.
    acknowledged: bool,
}

fn subject(id: &str) -> SubjectId {
    SubjectId::new(id).unwrap()
}

fn purpose() -> Purpose {
    Purpose::new("service").unwrap()
}

/// Puts and erasures in a loop until `stop`, every outcome logged.
fn workload(v: &Vault, log: &Mutex<Log>, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let s = format!("r{}@example.com", rand::random_range(0..SUBJECTS));
        let start = Instant::now();
        let ok = if n.is_multiple_of(3) {
            let result = v.erase_subject(&subject(&s));
            let applied_or_not = !matches!(result, Err(Error::SubjectNotFound));
            if applied_or_not {
                log.lock().unwrap().erasures.push(Erasure {
                    subject: s,
                    start,
                    end: Instant::now(),
                    acknowledged: result.is_ok(),
                });
            }
            result.is_ok() || !applied_or_not
        } else {
            let payload = format!("payload-{n}");
            let meta = RecordMeta::new(Category::Contact).purpose(purpose());
            let result = v.put(&subject(&s), meta, payload.as_bytes());
            if let Ok(record) = &result {
                log.lock().unwrap().puts.push(Put {
                    subject: s,
                    record: *record,
                    payload,
                    start,
                    end: Instant::now(),
                });
            }
            result.is_ok()
        };
        let mut log = log.lock().unwrap();
        log.slowest = log.slowest.max(start.elapsed());
        if ok {
            log.last_success = Some(Instant::now());
        } else {
            log.failures += 1;
            drop(log);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until an operation that started after `since` succeeded.
fn wait_for_success_after(log: &Mutex<Log>, since: Instant) {
    let deadline = Instant::now() + OPERATION_BOUND;
    while log.lock().unwrap().last_success.is_none_or(|t| t <= since) {
        assert!(
            Instant::now() < deadline,
            "no operation succeeded within {OPERATION_BOUND:?} after the server came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A put whose record may have been erased, and whether it is readable.
type Readable<'a> = (&'a Put, bool);

/// Judges every acknowledged put: kept unless an erasure of its subject started after it
/// returned; erased if that erasure returned; and the records a failed erasure may have applied
/// to, grouped by the failed erasures that may have, all readable or none.
fn judge(v: &Vault, log: &Log) -> (usize, usize) {
    let mut uncertain: BTreeMap<(String, Vec<Instant>), Vec<Readable>> = BTreeMap::new();
    let mut judged = 0;
    for put in &log.puts {
        let later: Vec<&Erasure> = log
            .erasures
            .iter()
            .filter(|e| e.subject == put.subject && e.end >= put.start)
            .collect();
        let overlapping = later.iter().any(|e| e.start <= put.end);
        let erased = later.iter().any(|e| e.acknowledged);
        let got = v.get(&subject(&put.subject), put.record, &purpose());
        let readable = match &got {
            Ok(r) => {
                assert_eq!(r.payload, put.payload.as_bytes(), "{}", put.subject);
                true
            }
            Err(Error::SubjectNotFound | Error::RecordNotFound(_)) => false,
            Err(e) => panic!("reading {} {}: {e:?}", put.subject, put.record),
        };
        if overlapping {
            continue;
        }
        judged += 1;
        if erased {
            assert!(!readable, "an erased record is readable: {}", put.subject);
        } else if later.is_empty() {
            assert!(readable, "an acknowledged record is lost: {}", put.subject);
        } else {
            let key = (put.subject.clone(), later.iter().map(|e| e.start).collect());
            uncertain.entry(key).or_default().push((put, readable));
        }
    }
    for ((s, _), records) in &uncertain {
        let readable = records.iter().filter(|(_, r)| *r).count();
        assert!(
            readable == 0 || readable == records.len(),
            "an erasure of {s} that failed is half applied: {readable} of {} records readable",
            records.len()
        );
    }
    (judged, uncertain.len())
}

#[test]
fn server_restart_in_the_middle_of_a_workload() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let Some(pg) = Schema::new() else {
        return;
    };
    let began = Instant::now();
    let v = pg.create();
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (v, log, stop) = (v.as_actor("worker").unwrap(), log.clone(), stop.clone());
        std::thread::spawn(move || workload(&v, &log, &stop))
    };
    for _ in 0..RESTARTS {
        std::thread::sleep(Duration::from_millis(1500));
        server.restart();
        wait_for_success_after(&log, Instant::now());
    }
    stop.store(true, Ordering::SeqCst);
    worker.join().expect("the workload panicked");
    let log = log.lock().unwrap();
    assert!(
        log.failures > 0,
        "no operation failed while the server restarted"
    );
    assert!(
        log.slowest < OPERATION_BOUND,
        "an operation took {:?}",
        log.slowest
    );
    drop(v);
    let v = pg.open();
    let (judged, failed_erasure_groups) = judge(&v, &log);
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "verify: {:?}", report.problems);
    assert!(v.audit_verify().unwrap().is_intact());
    eprintln!(
        "{RESTARTS} restarts: {} puts and {} erasures acknowledged, {} operations failed (slowest \
         {:?}); {judged} records judged, {failed_erasure_groups} groups under failed erasures; \
         {:.1?}",
        log.puts.len(),
        log.erasures.iter().filter(|e| e.acknowledged).count(),
        log.failures,
        log.slowest,
        began.elapsed()
    );
}
