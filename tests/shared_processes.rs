//! Real child processes sharing one vault on PostgreSQL. Three processes running a mixed workload
//! at once keep every acknowledged promise: what was written stays readable with its latest
//! payload, what was erased is gone for every process (its caches notwithstanding), a held subject
//! is never erased, and the audit trail holds every process's writes. Processes killed with
//! SIGKILL in the middle of erasures and sweeps lose nothing acknowledged, never leave an erasure
//! half applied, and a sweep by the next opener finishes what was due. Narrower tests pin what
//! the workload runs into: two processes erasing one subject at once, reads of erased records
//! while another process's sweep reclaims them, and a hold on a subject with no records left.
//!
//! Each child re-runs this test binary on its own test (`PDVAULT_TEST_CHILD` names its role) and
//! journals every acknowledged operation, one JSON line each, with the wall-clock times it started
//! and returned; the judge orders operations of different processes by those times and judges only
//! what the order decides.
#![cfg(feature = "postgres")]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::postgres::{PW, Schema};
use jiff::{Span, Timestamp};
use pdvault::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

const ROLE: &str = "PDVAULT_TEST_CHILD";
const SCHEMA: &str = "PDVAULT_TEST_CHILD_SCHEMA";
const JOURNAL: &str = "PDVAULT_TEST_CHILD_JOURNAL";
const PEERS: &str = "PDVAULT_TEST_CHILD_PEERS";
const SEED: &str = "PDVAULT_TEST_CHILD_SEED";
const NUMBER: &str = "PDVAULT_TEST_CHILD_NUMBER";
const SECONDS: &str = "PDVAULT_TEST_CHILD_SECONDS";

const MIXED: &str = "mixed";
const KILLABLE: &str = "killable";
const SAME_SUBJECT: &str = "same-subject";
const SWEEPER: &str = "sweeper";

const SHORT_RETENTION: &str = "[retention.access-log]\nmax = \"1 day\"\n";

// ---------------------------------------------------------------------------------------------
// The journal
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    /// The child has opened the vault.
    #[default]
    Ready,
    Put,
    Update,
    /// An update that returned an error: it may or may not have been applied.
    UpdateFailed,
    /// Journaled before an erasure is called.
    EraseStart,
    Erase,
    PlaceHold,
    ReleaseHold,
    Restrict,
    SweepStart,
    Sweep,
    /// An operation that returned an error it should not have (`note` says which).
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum EraseScope {
    Subject,
    Category(String),
    Record(RecordId),
}

/// One journaled operation. `start` and `end` are wall-clock nanoseconds, comparable across the
/// processes of one machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Entry {
    op: Op,
    child: u32,
    day: u32,
    start: u64,
    end: u64,
    subject: String,
    record: Option<RecordId>,
    category: Option<String>,
    payload: Option<String>,
    scope: Option<EraseScope>,
    report: Option<ErasureReport>,
    hold: Option<HoldId>,
    note: Option<String>,
}

impl Entry {
    fn new(op: Op, start: u64, subject: &str) -> Entry {
        Entry {
            op,
            start,
            end: now_ns(),
            subject: subject.to_owned(),
            ..Entry::default()
        }
    }

    fn record(&self) -> RecordId {
        self.record.expect("a put names its record")
    }

    fn category(&self) -> &str {
        self.category.as_deref().expect("a put names its category")
    }
}

/// A child's journal: appended one whole line per write (the kernel keeps it if the process is
/// killed right after), and kept in memory too.
struct Journal {
    file: File,
    child: u32,
    day: u32,
    entries: Vec<Entry>,
}

impl Journal {
    fn create(path: &Path, child: u32, day: u32) -> Journal {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        Journal {
            file,
            child,
            day,
            entries: Vec::new(),
        }
    }

    fn log(&mut self, mut entry: Entry) {
        entry.child = self.child;
        entry.day = self.day;
        let mut line = serde_json::to_string(&entry).unwrap();
        line.push('\n');
        self.file.write_all(line.as_bytes()).unwrap();
        self.entries.push(entry);
    }
}

/// The whole lines of a journal (a line a killed process left half written is no entry).
fn read_journal(path: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// What the journals decide
// ---------------------------------------------------------------------------------------------

/// What must have become of an acknowledged put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// No erasure could have touched it: readable.
    Kept,
    /// An erasure that started after the put returned destroyed it: unreadable.
    Erased,
    /// An erasure raced with it, failed, or left it pending for a sweep: either.
    Unknown,
}

/// Every journaled operation of every process, by subject.
#[derive(Default)]
struct History {
    entries: Vec<Entry>,
    by_subject: HashMap<String, Vec<usize>>,
}

impl History {
    fn new(entries: Vec<Entry>) -> History {
        let mut by_subject: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_subject.entry(e.subject.clone()).or_default().push(i);
        }
        History {
            entries,
            by_subject,
        }
    }

    fn of_subject<'a>(&'a self, subject: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
    }

    fn puts(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.op == Op::Put)
    }

    fn with(&self, op: Op) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.op == op)
    }

    fn fate(&self, put: &Entry) -> Fate {
        let (record, category) = (put.record(), put.category());
        let mut fate = Fate::Kept;
        for e in self.of_subject(&put.subject) {
            let after_put = e.start > put.end;
            match (e.op, &e.report) {
                (Op::Erase, Some(report)) if e.end >= put.start => {
                    let covers = report.subject_erased
                        || report.erased.iter().any(|x| {
                            x.category.name() == category && x.record.is_none_or(|r| r == record)
                        });
                    let left_pending = e.scope == Some(EraseScope::Subject)
                        && report.retained.iter().any(|r| r.record == record);
                    if covers && after_put {
                        return Fate::Erased;
                    }
                    let sweep_may_finish = left_pending && !self.held_ever_after(e);
                    if (covers && !after_put) || sweep_may_finish {
                        fate = Fate::Unknown;
                    }
                }
                (Op::Failed, _) if e.scope.is_some() && e.end >= put.start => fate = Fate::Unknown,
                _ => {}
            }
        }
        fate
    }

    /// Whether a hold on the erasure's subject was placed before it started and never released
    /// (then no sweep may finish what the erasure left pending).
    fn held_ever_after(&self, erasure: &Entry) -> bool {
        let released: HashSet<HoldId> = self
            .of_subject(&erasure.subject)
            .filter(|e| e.op == Op::ReleaseHold)
            .filter_map(|e| e.hold)
            .collect();
        self.of_subject(&erasure.subject).any(|e| {
            e.op == Op::PlaceHold
                && e.end < erasure.start
                && e.hold.is_some_and(|h| !released.contains(&h))
        })
    }

    /// The payloads a put's record may hold now: its latest acknowledged one, or one a failed
    /// update since may have written.
    fn payloads(&self, put: &Entry) -> BTreeSet<String> {
        let mut updates: Vec<&Entry> = self
            .of_subject(&put.subject)
            .filter(|e| matches!(e.op, Op::Update | Op::UpdateFailed) && e.record == put.record)
            .collect();
        updates.sort_by_key(|e| e.end);
        let mut ok: BTreeSet<String> = put.payload.iter().cloned().collect();
        for u in updates {
            if u.op == Op::Update {
                ok.clear();
            }
            ok.extend(u.payload.iter().cloned());
        }
        ok
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and judging
// ---------------------------------------------------------------------------------------------

fn subject(id: &str) -> SubjectId {
    SubjectId::new(id).unwrap()
}

fn service() -> Purpose {
    Purpose::new("service").unwrap()
}

/// The purpose a restriction never refuses.
fn subject_access() -> Purpose {
    Purpose::SUBJECT_ACCESS
}

fn read(v: &Vault, put: &Entry) -> Result<Record> {
    v.get(&subject(&put.subject), put.record(), &subject_access())
}

fn is_gone(result: &Result<Record>) -> bool {
    matches!(
        result,
        Err(Error::SubjectNotFound | Error::RecordNotFound(_))
    )
}

fn assert_unreadable(v: &Vault, put: &Entry, context: &str) {
    let got = read(v, put);
    assert!(
        is_gone(&got),
        "{context}: an erased record is not gone: {put:?}: {:?}",
        got.map(|r| String::from_utf8_lossy(&r.payload).into_owned())
    );
}

fn assert_readable(v: &Vault, put: &Entry, payloads: &BTreeSet<String>, context: &str) {
    match read(v, put) {
        Ok(r) => {
            let payload = String::from_utf8(r.payload).unwrap();
            assert!(
                payloads.contains(&payload),
                "{context}: {put:?} holds {payload:?}, not one of {payloads:?}"
            );
        }
        Err(e) => panic!("{context}: an acknowledged record is lost: {put:?}: {e:?}"),
    }
}

/// Judges one put: kept ones are readable with their payload, erased ones are gone, and an
/// unknown one, if readable, holds one of its payloads.
fn judge(v: &Vault, history: &History, put: &Entry, fate: Fate, context: &str) {
    let payloads = history.payloads(put);
    match fate {
        Fate::Kept => assert_readable(v, put, &payloads, context),
        Fate::Erased => assert_unreadable(v, put, context),
        Fate::Unknown => {
            if read(v, put).is_ok() {
                assert_readable(v, put, &payloads, context);
            }
        }
    }
}

fn assert_whole(v: &Vault) {
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "verify: {:?}", report.problems);
    let audit = v.audit_verify().unwrap();
    assert!(audit.is_intact(), "audit: {audit:?}");
}

fn assert_no_failures(history: &History) {
    let failed: Vec<&Entry> = history.with(Op::Failed).collect();
    assert!(failed.is_empty(), "operations failed: {failed:#?}");
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// What a child process is told by its parent.
struct ChildEnv {
    /// Not dropped: dropping a `Schema` drops the schema, which is the parent's to drop.
    schema: ManuallyDrop<Schema>,
    journal: PathBuf,
    peers: Vec<PathBuf>,
    seed: u64,
    number: u32,
    seconds: u64,
}

impl ChildEnv {
    /// `Some` in a child process of the role.
    fn for_role(role: &str) -> Option<ChildEnv> {
        if std::env::var(ROLE).ok()? != role {
            return None;
        }
        let var = |name: &str| std::env::var(name).unwrap();
        let url = common::postgres::url().unwrap();
        Some(ChildEnv {
            schema: ManuallyDrop::new(Schema::named(&url, &var(SCHEMA))),
            journal: var(JOURNAL).into(),
            peers: std::env::split_paths(&var(PEERS)).collect(),
            seed: var(SEED).parse().unwrap(),
            number: var(NUMBER).parse().unwrap(),
            seconds: var(SECONDS).parse().unwrap(),
        })
    }

    fn open(&self, clock: &ManualClock) -> Vault {
        self.schema
            .builder()
            .clock(clock.clone())
            .open(RootSecret::passphrase(PW))
            .unwrap()
            .as_actor(&actor(self.number))
            .unwrap()
    }
}

fn actor(number: u32) -> String {
    format!("proc-{number}")
}

/// Runs `test` of this binary again as a child process of `role`.
struct ChildSpec<'a> {
    test: &'a str,
    role: &'a str,
    schema: &'a Schema,
    number: u32,
    journal: &'a Path,
    peers: &'a [PathBuf],
    seconds: u64,
}

impl ChildSpec<'_> {
    fn spawn(&self, seed: u64) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", self.test, "--nocapture", "--test-threads=1"])
            .env(ROLE, self.role)
            .env(SCHEMA, &self.schema.name)
            .env(JOURNAL, self.journal)
            .env(PEERS, std::env::join_paths(self.peers).unwrap())
            .env(SEED, seed.to_string())
            .env(NUMBER, self.number.to_string())
            .env(SECONDS, self.seconds.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }
}

/// Waits for a child, killing it and failing if it outlives `deadline`.
fn wait_until(mut child: Child, deadline: Instant) -> Output {
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a child process hung: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Where a test's children journal: kept after a failure, for the post-mortem.
struct JournalDir(PathBuf);

impl JournalDir {
    fn new(pg: &Schema) -> JournalDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("shared-processes")
            .join(&pg.name);
        std::fs::create_dir_all(&dir).unwrap();
        JournalDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for JournalDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("journals kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Waits for children that run `seconds`, each of which must pass its test (all are waited for
/// first: the schema they use is dropped when the parent fails).
fn wait_for_all(children: Vec<Child>, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds + 90);
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|child| wait_until(child, deadline))
        .collect();
    for out in outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "a child failed ({}):\n{stdout}",
            out.status
        );
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().unwrap())
}

fn start_time() -> Timestamp {
    "2025-03-01T09:00:00Z".parse().unwrap()
}

fn clock_on_day(day: u32) -> ManualClock {
    ManualClock::new(start_time() + Span::new().hours(24 * i64::from(day)))
}

/// An erasure whose start is journaled before it is called: if the process dies inside it, the
/// journal says it may have happened.
fn journaled_erasure(
    journal: &mut Journal,
    subject_id: &str,
    scope: EraseScope,
    erase: impl FnOnce() -> Result<ErasureReport>,
) -> Option<ErasureReport> {
    let start = now_ns();
    journal.log(Entry {
        scope: Some(scope.clone()),
        ..Entry::new(Op::EraseStart, start, subject_id)
    });
    let (report, note) = match erase() {
        Ok(report) => (Some(report), None),
        // Nothing of the subject, or no such record: nothing destroyed.
        Err(Error::SubjectNotFound | Error::RecordNotFound(_)) => {
            (Some(ErasureReport::default()), None)
        }
        Err(e) => (None, Some(format!("{e:?}"))),
    };
    let op = if report.is_some() {
        Op::Erase
    } else {
        Op::Failed
    };
    journal.log(Entry {
        scope: Some(scope),
        report: report.clone(),
        note,
        ..Entry::new(op, start, subject_id)
    });
    report
}

fn journaled_put(
    journal: &mut Journal,
    v: &Vault,
    subject_id: &str,
    category: Category,
    payload: String,
) {
    let start = now_ns();
    let meta = RecordMeta::new(category.clone()).purpose(service());
    match v.put(&subject(subject_id), meta, payload.as_bytes()) {
        Ok(id) => journal.log(Entry {
            record: Some(id),
            category: Some(category.name().to_owned()),
            payload: Some(payload),
            ..Entry::new(Op::Put, start, subject_id)
        }),
        Err(e) => journal.log(Entry {
            note: Some(format!("put: {e:?}")),
            ..Entry::new(Op::Failed, start, subject_id)
        }),
    }
}

fn journaled_sweep(journal: &mut Journal, v: &Vault) {
    let start = now_ns();
    journal.log(Entry::new(Op::SweepStart, start, ""));
    match v.sweep() {
        Ok(report) => journal.log(Entry {
            note: Some(format!("erased {}", report.erased)),
            ..Entry::new(Op::Sweep, start, "")
        }),
        Err(e) => journal.log(Entry {
            note: Some(format!("sweep: {e:?}")),
            ..Entry::new(Op::Failed, start, "")
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Three processes, one vault
// ---------------------------------------------------------------------------------------------

const SUBJECTS: usize = 50;
const CATEGORIES: [Category; 3] = [Category::Contact, Category::Usage, Category::Preference];

/// One child of the mixed workload.
struct MixedWorker {
    v: Vault,
    clock: ManualClock,
    journal: Journal,
    peer_journals: Vec<PathBuf>,
    peer_entries: Vec<Entry>,
    rng: StdRng,
    /// Records already seen gone once they were due to be.
    seen_gone: HashSet<RecordId>,
    /// Holds this child placed and has not released.
    own_holds: Vec<(String, HoldId)>,
    ops: u64,
}

impl MixedWorker {
    fn random_subject(&mut self) -> String {
        format!("s{}@example.com", self.rng.random_range(0..SUBJECTS))
    }

    fn random_own_put(&mut self) -> Option<Entry> {
        let puts: Vec<&Entry> = self
            .journal
            .entries
            .iter()
            .filter(|e| e.op == Op::Put)
            .collect();
        (!puts.is_empty()).then(|| puts[self.rng.random_range(0..puts.len())].clone())
    }

    fn history(&self) -> History {
        History::new(
            self.peer_entries
                .iter()
                .chain(&self.journal.entries)
                .cloned()
                .collect(),
        )
    }

    fn step(&mut self) {
        self.ops += 1;
        self.clock
            .set(start_time() + Span::new().seconds(self.ops as i64));
        match self.rng.random_range(0..100) {
            0..35 => self.put(),
            35..55 => self.get(),
            55..65 => self.update(),
            65..70 => self.erase(EraseKind::Subject),
            70..75 => self.erase(EraseKind::Category),
            75..80 => self.erase(EraseKind::Record),
            80..86 => self.place_hold(),
            86..91 => self.release_hold(),
            91..94 => self.restrict(),
            _ => journaled_sweep(&mut self.journal, &self.v),
        }
        if self.ops.is_multiple_of(30) {
            self.reload_peers();
            self.check_erased_are_gone();
        }
    }

    fn put(&mut self) {
        let s = self.random_subject();
        let category = CATEGORIES[self.rng.random_range(0..CATEGORIES.len())].clone();
        let payload = format!("{}-put-{}", actor(self.journal.child), self.ops);
        journaled_put(&mut self.journal, &self.v, &s, category, payload);
    }

    /// Reads one of its own records: gone if this child saw it erased, else (if readable) with
    /// its latest payload.
    fn get(&mut self) {
        let Some(put) = self.random_own_put() else {
            return;
        };
        let own = History::new(self.journal.entries.clone());
        let context = format!("{} reading its own record", actor(self.journal.child));
        judge(&self.v, &own, &put, own.fate(&put).min_known(), &context);
    }

    fn update(&mut self) {
        let Some(put) = self.random_own_put() else {
            return;
        };
        let payload = format!("{}-update-{}", actor(self.journal.child), self.ops);
        let start = now_ns();
        let op = match self
            .v
            .update(&subject(&put.subject), put.record(), payload.as_bytes())
        {
            Ok(()) => Op::Update,
            Err(Error::SubjectNotFound | Error::RecordNotFound(_)) => return,
            Err(_) => Op::UpdateFailed,
        };
        self.journal.log(Entry {
            record: put.record,
            payload: Some(payload),
            ..Entry::new(op, start, &put.subject)
        });
    }

    fn erase(&mut self, kind: EraseKind) {
        let (s, scope) = match kind {
            EraseKind::Subject => (self.random_subject(), EraseScope::Subject),
            EraseKind::Category => {
                let c = &CATEGORIES[self.rng.random_range(0..CATEGORIES.len())];
                (self.random_subject(), EraseScope::Category(c.name().into()))
            }
            EraseKind::Record => match self.random_own_put() {
                Some(put) => (put.subject.clone(), EraseScope::Record(put.record())),
                None => return,
            },
        };
        let (v, sid) = (&self.v, subject(&s));
        journaled_erasure(&mut self.journal, &s, scope.clone(), || match &scope {
            EraseScope::Subject => v.erase_subject(&sid),
            EraseScope::Category(c) => v.erase_category(&sid, &c.parse::<Category>().unwrap()),
            EraseScope::Record(r) => v.erase_record(&sid, *r),
        });
        // What this erasure destroyed is gone for this process's next read at once.
        self.check_erased_are_gone();
    }

    fn place_hold(&mut self) {
        let s = self.random_subject();
        let start = now_ns();
        let placed = self.v.place_hold(
            &subject(&s),
            NewHold::new(HoldTarget::Subject, HoldReason::Dispute),
        );
        match placed {
            Ok(id) => {
                self.journal.log(Entry {
                    hold: Some(id),
                    ..Entry::new(Op::PlaceHold, start, &s)
                });
                self.own_holds.push((s, id));
            }
            Err(Error::SubjectNotFound) => {}
            Err(e) => self.journal.log(Entry {
                note: Some(format!("place_hold: {e:?}")),
                ..Entry::new(Op::Failed, start, &s)
            }),
        }
    }

    /// Releases one of its holds, but never its first: that one stands to the end.
    fn release_hold(&mut self) {
        if self.own_holds.len() < 2 {
            return;
        }
        let (s, id) = self
            .own_holds
            .remove(self.rng.random_range(1..self.own_holds.len()));
        let start = now_ns();
        let op = match self.v.release_hold(id) {
            Ok(_) => Op::ReleaseHold,
            Err(_) => Op::Failed,
        };
        self.journal.log(Entry {
            hold: Some(id),
            ..Entry::new(op, start, &s)
        });
    }

    fn restrict(&mut self) {
        let s = self.random_subject();
        let start = now_ns();
        match self.v.restrict(&subject(&s), None) {
            Ok(()) => self.journal.log(Entry::new(Op::Restrict, start, &s)),
            Err(Error::SubjectNotFound) => {}
            Err(e) => self.journal.log(Entry {
                note: Some(format!("restrict: {e:?}")),
                ..Entry::new(Op::Failed, start, &s)
            }),
        }
    }

    fn reload_peers(&mut self) {
        self.peer_entries = self
            .peer_journals
            .iter()
            .flat_map(|p| read_journal(p))
            .collect();
    }

    /// Every record any process's journal says is erased is unreadable here.
    fn check_erased_are_gone(&mut self) {
        let history = self.history();
        let context = format!("{} after an erasure", actor(self.journal.child));
        for put in history.puts() {
            if !self.seen_gone.contains(&put.record()) && history.fate(put) == Fate::Erased {
                assert_unreadable(&self.v, put, &context);
                self.seen_gone.insert(put.record());
            }
        }
    }
}

#[derive(Clone, Copy)]
enum EraseKind {
    Subject,
    Category,
    Record,
}

impl Fate {
    /// A child's own journal cannot tell what others did: what it thinks kept may have been
    /// erased by another process, so only its erasures are judged.
    fn min_known(self) -> Fate {
        match self {
            Fate::Kept => Fate::Unknown,
            other => other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fate::Kept => "kept",
            Fate::Erased => "erased",
            Fate::Unknown => "unknown",
        }
    }
}

fn run_mixed_child(env: ChildEnv) {
    let clock = ManualClock::new(start_time());
    let mut worker = MixedWorker {
        v: env.open(&clock),
        clock,
        journal: Journal::create(&env.journal, env.number, 0),
        peer_journals: env.peers.clone(),
        peer_entries: Vec::new(),
        rng: StdRng::seed_from_u64(env.seed),
        seen_gone: HashSet::new(),
        own_holds: Vec::new(),
        ops: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(env.seconds);
    while Instant::now() < deadline {
        worker.step();
    }
    worker.reload_peers();
    worker.check_erased_are_gone();
    worker.v.close().unwrap();
}

/// Holds: no erasure of a subject that started after a hold on it returned, and before its
/// release started, destroyed anything; a hold never released is still active.
fn check_holds(v: &Vault, history: &History) {
    for hold in history.with(Op::PlaceHold) {
        let released = history
            .of_subject(&hold.subject)
            .find(|e| e.op == Op::ReleaseHold && e.hold == hold.hold);
        let destroying = history
            .of_subject(&hold.subject)
            .filter(|e| {
                e.op == Op::Erase && e.start > hold.end && released.is_none_or(|r| e.end < r.start)
            })
            .filter(|e| {
                let report = e.report.as_ref().unwrap();
                !report.erased.is_empty() || report.subject_erased
            })
            .min_by_key(|e| e.start);
        assert!(
            destroying.is_none(),
            "an erasure destroyed what a standing hold covers: {hold:?} {destroying:?}"
        );
        if released.is_none() {
            let holds = v.holds(Some(&subject(&hold.subject))).unwrap();
            assert!(
                holds
                    .iter()
                    .any(|h| Some(h.id) == hold.hold && h.released.is_none()),
                "a hold never released is not standing: {hold:?}"
            );
        }
    }
}

/// Restrictions: a kept record of a subject restricted, and not erased whole since (it would be
/// a new subject then), is refused for an ordinary purpose. A subject is erased whole by an
/// erasure of it that ends after the restriction starts, or by a sweep finishing an earlier one
/// that left it pending (held then, released since: the restriction goes with the subject).
fn check_restrictions(v: &Vault, history: &History) {
    let mut checked = 0;
    for restrict in history.with(Op::Restrict) {
        let erased_since = history.of_subject(&restrict.subject).any(|e| {
            matches!(e.op, Op::Erase | Op::Failed | Op::EraseStart)
                && e.scope == Some(EraseScope::Subject)
                && e.end > restrict.start
        });
        let sweep_may_finish = history.of_subject(&restrict.subject).any(|e| {
            e.op == Op::Erase
                && e.scope == Some(EraseScope::Subject)
                && e.report.as_ref().is_some_and(|r| !r.subject_erased)
                && !history.held_ever_after(e)
        });
        if erased_since || sweep_may_finish {
            continue;
        }
        for put in history
            .of_subject(&restrict.subject)
            .filter(|e| e.op == Op::Put && history.fate(e) == Fate::Kept)
        {
            let got = v.get(&subject(&put.subject), put.record(), &service());
            assert!(
                matches!(got, Err(Error::Access(_))),
                "a restricted subject's record was read for service: {put:?}: {got:?}"
            );
            checked += 1;
        }
    }
    eprintln!("restricted records refused: {checked}");
}

/// Every process's acknowledged puts are in the audit trail under its actor.
fn check_audit_puts(v: &Vault, history: &History, children: u32) {
    let entries = v.audit_entries(None, None).unwrap();
    for child in 1..=children {
        let name = actor(child);
        let audited = entries
            .iter()
            .filter(|e| e.actor == name && e.op == AuditOp::Put)
            .count();
        let acknowledged = history.puts().filter(|e| e.child == child).count();
        assert!(
            audited >= acknowledged,
            "{name}: {acknowledged} puts acknowledged, {audited} audited"
        );
    }
}

#[test]
fn three_processes_one_vault() {
    const TEST: &str = "three_processes_one_vault";
    const CHILDREN: u32 = 3;
    if let Some(env) = ChildEnv::for_role(MIXED) {
        run_mixed_child(env);
        return;
    }
    let Some(pg) = Schema::new() else {
        return;
    };
    let began = Instant::now();
    pg.create().close().unwrap();
    let dir = JournalDir::new(&pg);
    let seconds = env_number("PDVAULT_SHARED_SECONDS", 30);
    let journals: Vec<PathBuf> = (1..=CHILDREN)
        .map(|k| dir.path().join(format!("{}.jsonl", actor(k))))
        .collect();
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let children: Vec<Child> = (1..=CHILDREN)
        .map(|k| {
            let peers: Vec<PathBuf> = journals
                .iter()
                .filter(|p| **p != journals[k as usize - 1])
                .cloned()
                .collect();
            ChildSpec {
                test: TEST,
                role: MIXED,
                schema: &pg,
                number: k,
                journal: &journals[k as usize - 1],
                peers: &peers,
                seconds,
            }
            .spawn(seed.wrapping_add(u64::from(k)))
        })
        .collect();
    wait_for_all(children, seconds);
    let history = History::new(journals.iter().flat_map(|p| read_journal(p)).collect());
    let v = pg.open();
    let mut fates: HashMap<&'static str, usize> = HashMap::new();
    for put in history.puts() {
        let fate = history.fate(put);
        *fates.entry(fate.name()).or_default() += 1;
        judge(&v, &history, put, fate, "the fourth opener");
    }
    check_holds(&v, &history);
    check_restrictions(&v, &history);
    assert_no_failures(&history);
    assert_whole(&v);
    check_audit_puts(&v, &history, CHILDREN);
    let count = |op| history.with(op).count();
    eprintln!(
        "{} puts ({fates:?}), {} updates, {} erasures, {} holds placed, {} released, {} sweeps; {:.1?}",
        count(Op::Put),
        count(Op::Update),
        count(Op::Erase),
        count(Op::PlaceHold),
        count(Op::ReleaseHold),
        count(Op::Sweep),
        began.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// SIGKILL in the middle of erasures and sweeps
// ---------------------------------------------------------------------------------------------

const KILL_SUBJECTS: usize = 20;

/// Writes, erases subjects and sweeps in a loop on its day of the clock, until killed.
fn run_killable_child(env: ChildEnv) {
    let clock = clock_on_day(env.number);
    let v = env.open(&clock);
    let mut journal = Journal::create(&env.journal, env.number, env.number);
    let mut rng = StdRng::seed_from_u64(env.seed);
    journal.log(Entry::new(Op::Ready, now_ns(), ""));
    let deadline = Instant::now() + Duration::from_secs(env.seconds);
    let mut n = 0;
    while Instant::now() < deadline {
        for _ in 0..rng.random_range(1..=3) {
            n += 1;
            let s = format!("k{}@example.com", rng.random_range(0..KILL_SUBJECTS));
            let category = if rng.random_bool(0.5) {
                Category::Contact
            } else {
                Category::AccessLog
            };
            let payload = format!("day-{}-{n}", env.number);
            journaled_put(&mut journal, &v, &s, category, payload);
        }
        if rng.random_bool(0.5) {
            let s = format!("k{}@example.com", rng.random_range(0..KILL_SUBJECTS));
            journaled_erasure(&mut journal, &s, EraseScope::Subject, || {
                v.erase_subject(&subject(&s))
            });
        }
        if rng.random_bool(0.25) {
            journaled_sweep(&mut journal, &v);
        }
    }
}

/// Access-log records expire a day after they are written: once a later day's sweep may have
/// run, whether one is still there is not decided.
fn may_have_expired(put: &Entry, day: u32) -> bool {
    put.category() == Category::AccessLog.name() && put.day < day
}

/// What a killed child left behind: its in-flight erasure applied whole or not at all, and
/// (in the history) what it did.
#[derive(Default)]
struct KillTally {
    killed_in_erasure: u32,
    in_flight_erasures_applied: u32,
    killed_in_sweep: u32,
    records_judged: usize,
}

/// After a kill on `day`: the in-flight erasure, if any, is all-or-nothing (then journaled as
/// what it turned out to be), and this day's puts and a sample of older ones are as judged.
fn judge_after_kill(
    v: &Vault,
    entries: &mut Vec<Entry>,
    day_entries: Vec<Entry>,
    day: u32,
    rng: &mut StdRng,
    tally: &mut KillTally,
) {
    let finished: HashSet<u64> = day_entries
        .iter()
        .filter(|e| matches!(e.op, Op::Erase | Op::Failed | Op::Sweep))
        .map(|e| e.start)
        .collect();
    let in_flight = |op| {
        day_entries
            .iter()
            .find(|e| e.op == op && !finished.contains(&e.start))
            .cloned()
    };
    let erasure = in_flight(Op::EraseStart);
    tally.killed_in_sweep += u32::from(in_flight(Op::SweepStart).is_some());
    entries.extend(day_entries);
    let history = History::new(entries.clone());
    let context = format!("after the kill on day {day}");
    if let Some(erasure) = erasure {
        tally.killed_in_erasure += 1;
        let exists = match v.list(&subject(&erasure.subject)) {
            Ok(_) => true,
            Err(Error::SubjectNotFound) => false,
            Err(e) => panic!("{context}: listing {}: {e:?}", erasure.subject),
        };
        let certain: Vec<&Entry> = history
            .of_subject(&erasure.subject)
            .filter(|p| p.op == Op::Put && !may_have_expired(p, day))
            .filter(|p| history.fate(p) == Fate::Kept)
            .collect();
        let readable: Vec<bool> = certain.iter().map(|p| read(v, p).is_ok()).collect();
        assert!(
            readable.iter().all(|&r| r == exists),
            "{context}: an erasure of {} half applied (subject listed: {exists}): {:?}",
            erasure.subject,
            certain.iter().zip(&readable).collect::<Vec<_>>()
        );
        if !exists {
            tally.in_flight_erasures_applied += 1;
            entries.push(Entry {
                op: Op::Erase,
                report: Some(ErasureReport {
                    subject_erased: true,
                    ..ErasureReport::default()
                }),
                ..erasure
            });
        }
    }
    let history = History::new(entries.clone());
    let puts: Vec<&Entry> = history.puts().collect();
    let sample_size = if puts.is_empty() { 0 } else { 20 };
    let sample = (0..sample_size).map(|_| puts[rng.random_range(0..puts.len())]);
    for put in puts.iter().copied().filter(|p| p.day == day).chain(sample) {
        let fate = match history.fate(put) {
            Fate::Kept if may_have_expired(put, day) => Fate::Unknown,
            fate => fate,
        };
        judge(v, &history, put, fate, &context);
        tally.records_judged += 1;
    }
}

fn opener_on_day(pg: &Schema, day: u32) -> Vault {
    pg.builder()
        .clock(clock_on_day(day))
        .open(RootSecret::passphrase(PW))
        .unwrap()
}

/// Spawns the child of `day`, waits until it has opened the vault, and kills it with SIGKILL a
/// random 20-300 ms later. Its journal's entries.
fn run_and_kill(pg: &Schema, dir: &Path, day: u32, rng: &mut StdRng) -> Vec<Entry> {
    const TEST: &str = "sigkill_in_the_middle_of_erasures_and_sweeps";
    let journal = dir.join(format!("day-{day}.jsonl"));
    let mut child = ChildSpec {
        test: TEST,
        role: KILLABLE,
        schema: pg,
        number: day,
        journal: &journal,
        peers: &[],
        seconds: 60,
    }
    .spawn(rng.random());
    let ready_by = Instant::now() + Duration::from_secs(30);
    while read_journal(&journal).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child of day {day} exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < ready_by,
            "the child of day {day} never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(rng.random_range(20..=300)));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the child of day {day} ended before it was killed: {status}"
    );
    read_journal(&journal)
}

#[test]
fn sigkill_in_the_middle_of_erasures_and_sweeps() {
    if let Some(env) = ChildEnv::for_role(KILLABLE) {
        run_killable_child(env);
        return;
    }
    let Some(pg) = Schema::new() else {
        return;
    };
    let began = Instant::now();
    let kills = env_number("PDVAULT_SHARED_KILLS", 50) as u32;
    pg.builder()
        .clock(clock_on_day(0))
        .policy(Policy::from_toml(SHORT_RETENTION).unwrap())
        .create(RootSecret::passphrase(PW))
        .unwrap()
        .close()
        .unwrap();
    let dir = JournalDir::new(&pg);
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut entries: Vec<Entry> = Vec::new();
    let mut tally = KillTally::default();
    for day in 1..=kills {
        let day_entries = run_and_kill(&pg, dir.path(), day, &mut rng);
        // A new opener each time: whatever a dead process left is for the next one to find.
        let v = opener_on_day(&pg, day);
        judge_after_kill(&v, &mut entries, day_entries, day, &mut rng, &mut tally);
        v.close().unwrap();
    }
    let history = History::new(entries);
    assert_no_failures(&history);

    // A sweep by a new opener, after every access-log record has expired, finishes everything.
    let v = opener_on_day(&pg, kills + 5);
    let swept = v.sweep().unwrap();
    let left = v.sweep_dry_run().unwrap();
    assert_eq!(
        (left.erased, left.categories_erased, left.subjects_erased),
        (0, 0, 0),
        "a sweep left due work: {left:?}"
    );
    assert_eq!(v.stats().unwrap().subjects_pending_erasure, 0);
    for put in history.puts() {
        let fate = match history.fate(put) {
            _ if put.category() == Category::AccessLog.name() => Fate::Erased,
            fate => fate,
        };
        judge(&v, &history, put, fate, "after the last sweep");
    }
    assert_whole(&v);
    eprintln!(
        "{kills} kills: {} in an erasure ({} of them applied), {} in a sweep; {} puts, {} \
         erasures acknowledged; {} records judged between kills; the last sweep erased {} records and {} categories; {:.1?}",
        tally.killed_in_erasure,
        tally.in_flight_erasures_applied,
        tally.killed_in_sweep,
        history.puts().count(),
        history.with(Op::Erase).count(),
        tally.records_judged,
        swept.erased,
        swept.categories_erased,
        began.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Two processes erasing one subject at once
// ---------------------------------------------------------------------------------------------

/// Writes a record for one subject and erases the subject, in a loop: every outcome is a record
/// written, a subject erased, or no subject to erase.
fn run_same_subject_child(env: ChildEnv) {
    let v = env.open(&ManualClock::new(start_time()));
    let s = subject("same@example.com");
    let deadline = Instant::now() + Duration::from_secs(env.seconds);
    let (mut erased, mut missing) = (0, 0);
    while Instant::now() < deadline {
        v.put(
            &s,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"x",
        )
        .unwrap();
        match v.erase_subject(&s) {
            Ok(_) => erased += 1,
            Err(Error::SubjectNotFound) => missing += 1,
            Err(e) => panic!(
                "{}: erasing a subject another process erased meanwhile: {e:?} (after {erased} \
                 erasures, {missing} finding nothing)",
                actor(env.number)
            ),
        }
    }
    eprintln!(
        "{}: {erased} erasures, {missing} found nothing",
        actor(env.number)
    );
}

/// Two processes erase the same subject again and again; an erasure that loses the race to the
/// other finds nothing to erase (or erases what was written since), never a damaged store.
#[test]
fn two_processes_erasing_one_subject_at_once() {
    const TEST: &str = "two_processes_erasing_one_subject_at_once";
    if let Some(env) = ChildEnv::for_role(SAME_SUBJECT) {
        run_same_subject_child(env);
        return;
    }
    let Some(pg) = Schema::new() else {
        return;
    };
    pg.create().close().unwrap();
    let dir = JournalDir::new(&pg);
    let seconds = 8;
    let children = (1..=2)
        .map(|k| {
            ChildSpec {
                test: TEST,
                role: SAME_SUBJECT,
                schema: &pg,
                number: k,
                journal: &dir.path().join("unused"),
                peers: &[],
                seconds,
            }
            .spawn(0)
        })
        .collect();
    wait_for_all(children, seconds);
    assert_whole(&pg.open());
}

/// A subject whose records are all gone still stands under a hold placed on it by one opener:
/// another opener's erasure of the subject keeps it (records written for the identifier later
/// are then covered by the hold too).
#[test]
fn a_hold_on_a_subject_without_records_keeps_it_from_erasure() {
    let Some(pg) = Schema::new() else {
        return;
    };
    let a = pg.create();
    let b = pg.open();
    let s = subject("held@example.com");
    let id = a
        .put(
            &s,
            RecordMeta::new(Category::Usage).purpose(service()),
            b"x",
        )
        .unwrap();
    a.erase_record(&s, id).unwrap();
    let hold = a
        .place_hold(&s, NewHold::new(HoldTarget::Subject, HoldReason::Dispute))
        .unwrap();
    let report = b.erase_subject(&s).unwrap();
    assert!(
        !report.subject_erased,
        "a subject under a standing hold was erased: {report:?}"
    );
    let holds = b.holds(Some(&s)).unwrap();
    assert!(holds.iter().any(|h| h.id == hold && h.released.is_none()));
}

// ---------------------------------------------------------------------------------------------
// Reads of erased records while another process's sweep reclaims them
// ---------------------------------------------------------------------------------------------

/// Sweeps in a loop (each reclaiming the rows of destroyed records).
fn run_sweeper_child(env: ChildEnv) {
    let v = env.open(&ManualClock::new(start_time()));
    let deadline = Instant::now() + Duration::from_secs(env.seconds);
    let mut reclaimed = 0;
    while Instant::now() < deadline {
        reclaimed += v.sweep().unwrap().reclaimed;
    }
    eprintln!("{}: {reclaimed} rows reclaimed", actor(env.number));
}

/// One opener erases categories and reads the erased records again and again while another
/// process sweeps: each read finds the record erased, never a damaged store.
#[test]
fn reads_of_erased_records_during_another_process_sweeps_say_erased() {
    const TEST: &str = "reads_of_erased_records_during_another_process_sweeps_say_erased";
    if let Some(env) = ChildEnv::for_role(SWEEPER) {
        run_sweeper_child(env);
        return;
    }
    let Some(pg) = Schema::new() else {
        return;
    };
    let v = pg.create();
    let dir = JournalDir::new(&pg);
    let seconds = 8;
    let sweeper = ChildSpec {
        test: TEST,
        role: SWEEPER,
        schema: &pg,
        number: 1,
        journal: &dir.path().join("unused"),
        peers: &[],
        seconds,
    }
    .spawn(0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut reads = 0;
    let mut damaged = Vec::new();
    while Instant::now() < deadline && damaged.is_empty() {
        let s = subject(&format!("r{}@example.com", reads % 5));
        let meta = || RecordMeta::new(Category::Usage).purpose(service());
        let ids: Vec<RecordId> = (0..5).map(|_| v.put(&s, meta(), b"x").unwrap()).collect();
        v.erase_category(&s, &Category::Usage).unwrap();
        for _ in 0..10 {
            for id in &ids {
                reads += 1;
                match v.get(&s, *id, &subject_access()) {
                    Err(Error::SubjectNotFound | Error::RecordNotFound(_)) => {}
                    other => damaged.push(format!("{other:?}")),
                }
            }
        }
    }
    wait_for_all(vec![sweeper], seconds);
    assert!(
        damaged.is_empty(),
        "reads of erased records ({reads} in all) said: {damaged:?}"
    );
    assert_whole(&v);
}
