//! Crash consistency of concurrent durable writers (group commit): this test binary re-runs
//! itself as a child process in which 8 threads put records durably, one at a time, each on its
//! own subject, and append every acknowledged put to its own journal file. The parent SIGKILLs
//! the child at a random moment, reopens the vault and checks that every journaled put reads back
//! with its payload, that the vault lists nothing else for those subjects beyond the put each
//! thread may have had in flight at each kill, that `verify()` is whole and that the audit trail is intact.
//!
//! A put is journaled only after it returned, so a group commit that acknowledged a write before
//! the sync covering it (the kill drops what sled has not written out) fails this test.
//!
//! `PDVAULT_CRASH_WRITER_KILLS` sets the number of kills (default 12).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pdvault::{Category, KdfParams, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault};

const CHILD_ENV: &str = "PDVAULT_CRASH_WRITERS_CHILD";
const CHILD_TEST: &str = "crash_writers_child";
const KILLS_ENV: &str = "PDVAULT_CRASH_WRITER_KILLS";
const WRITERS: usize = 8;

fn secret() -> RootSecret {
    RootSecret::passphrase("crash-writers")
}

fn subject(t: usize) -> SubjectId {
    SubjectId::new(format!("writer-{t}")).unwrap()
}

fn purpose() -> Purpose {
    Purpose::new("subject-access").unwrap()
}

fn journal(dir: &Path, t: usize) -> PathBuf {
    dir.with_file_name(format!("writer-{t}.log"))
}

/// The child: 8 threads putting durably until killed.
#[test]
fn crash_writers_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let v = Vault::builder(&dir).open(secret()).unwrap();
    std::thread::scope(|s| {
        for t in 0..WRITERS {
            let (v, dir) = (&v, &dir);
            s.spawn(move || {
                let mut log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(journal(dir, t))
                    .unwrap();
                let who = subject(t);
                for i in 0u64.. {
                    let payload = format!("t{t}-{}-{i}", std::process::id());
                    let id = v
                        .put(&who, RecordMeta::new(Category::Usage), payload.as_bytes())
                        .unwrap();
                    // One write call per line: a kill leaves whole lines or a torn last one.
                    log.write_all(format!("{id} {payload}\n").as_bytes())
                        .unwrap();
                }
            });
        }
    });
}

/// Every complete line of a writer's journal: record id and payload.
fn acknowledged(dir: &Path, t: usize) -> BTreeMap<RecordId, String> {
    let text = std::fs::read_to_string(journal(dir, t)).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            let (id, payload) = l.trim_end().split_once(' ').unwrap();
            (id.parse().unwrap(), payload.to_owned())
        })
        .collect()
}

#[test]
fn acknowledged_concurrent_puts_survive_a_kill() {
    let kills: usize = std::env::var(KILLS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    Vault::builder(&dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(secret())
        .unwrap()
        .close()
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut total = 0;
    // Per writer: records durable whose put was never acknowledged (in flight at a kill).
    let mut unacknowledged = [0usize; WRITERS];
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 350));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child stopped before it was killed (kill {kill})"
        );
        child.kill().unwrap();
        child.wait().unwrap();

        let v = Vault::builder(&dir).open(secret()).unwrap();
        for (t, unacknowledged) in unacknowledged.iter_mut().enumerate() {
            let acked = acknowledged(&dir, t);
            let listed = match v.list(&subject(t)) {
                Ok(l) => l,
                Err(pdvault::Error::SubjectNotFound) if acked.is_empty() => Vec::new(),
                Err(e) => panic!("listing writer {t}: {e}"),
            };
            for (id, payload) in &acked {
                let r = v.get(&subject(t), *id, &purpose()).unwrap_or_else(|e| {
                    panic!("kill {kill}: writer {t}'s acknowledged put {id} is lost: {e}")
                });
                assert_eq!(r.payload, payload.as_bytes(), "kill {kill}: record {id}");
            }
            // Besides the acknowledged puts, at most the one in flight at each kill.
            let extra = listed.len().checked_sub(acked.len());
            assert!(
                extra.is_some_and(|e| e <= *unacknowledged + 1),
                "kill {kill}: writer {t} has {} records, {} acknowledged, {} unacknowledged before",
                listed.len(),
                acked.len(),
                unacknowledged
            );
            *unacknowledged = listed.len() - acked.len();
            total += acked.len();
        }
        assert!(v.verify().unwrap().is_whole(), "kill {kill}: verify");
        assert!(v.audit_verify().unwrap().is_intact(), "kill {kill}: audit");
        v.close().unwrap();
    }
    assert!(total > 0, "no put was acknowledged before any kill");
    println!("{kills} kills; {total} acknowledged puts checked (cumulative)");
}
