//! Crash consistency, the way sled's `test_crash_recovery` does it: this test binary re-runs
//! itself as a child process that works on one vault forever (puts, updates, erasures of
//! records, categories and subjects, legal holds, retention sweeps under a manual clock) and
//! journals every acknowledged operation; the parent SIGKILLs the child at a random moment,
//! reopens the vault and checks it against the journal:
//!
//! 1. the vault opens;
//! 2. every acknowledged record that was not acknowledged erased reads back (purpose
//!    `subject-access`) with its last acknowledged payload (or, for an update in flight, the
//!    payload being written), and the vault lists exactly the records the journal says are live;
//! 3. nothing acknowledged erased is readable; an erasure or sweep in flight is complete or not
//!    started; after a sweep in the parent nothing due and allowed to be destroyed remains, and
//!    nothing else is gone; erasure reports and sweeps destroy what the policy and the holds
//!    allow and nothing else;
//! 4. `verify()` is whole and `audit_verify()` intact.
//!
//! Then the parent closes the vault and the next child continues with the same vault.
//!
//! The journal (`journal.log`, next to the vault directory) has one line per step, each written
//! and synced before the next step starts: `BEGIN <op>` before an operation, its acknowledgement
//! after (`PUT`, `UPD`, `ERASED`, `SWEPT`, `HOLD`, `RELEASE`), `CLOCK <time>` before the child's
//! clock moves. The parent settles an operation that was in flight when the child died (adopting
//! it if it became durable, completing an erasure that had not started) and journals that too, so
//! the journal always describes the vault exactly.
//!
//! `PDVAULT_CRASH_KILLS` sets the number of kills (default 200), `PDVAULT_CRASH_SEED` the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan};
use pdvault::{
    Category, ErasureReport, Error, HoldId, HoldReason, HoldScope, HoldTarget, KdfParams,
    ManualClock, NewHold, Policy, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault,
};

/// Set (to the vault directory) in the child's environment.
const CHILD_ENV: &str = "PDVAULT_CRASH_CHILD";
/// The child's seed.
const CHILD_SEED_ENV: &str = "PDVAULT_CRASH_CHILD_SEED";
const KILLS_ENV: &str = "PDVAULT_CRASH_KILLS";
const SEED_ENV: &str = "PDVAULT_CRASH_SEED";
/// The name of the child's test function.
const CHILD_TEST: &str = "crash_child";
const DEFAULT_KILLS: usize = 200;
/// Kills that must land while an erasure or a sweep is in flight: the run goes on past
/// `PDVAULT_CRASH_KILLS` until it has this many (at most three times as many kills in all).
const DESTROYING_KILLS_ENV: &str = "PDVAULT_CRASH_DESTROYING_KILLS";
const DEFAULT_DESTROYING_KILLS: usize = 100;
/// What counts as an erasure or a sweep in flight.
const DESTROYING: [&str; 4] = ["erase-record", "erase-category", "erase-subject", "sweep"];
const PASSPHRASE: &str = "crash-harness";
const POLICY: &str = "[retention.access-log]\nmax = \"3 months\"\n\
                      [retention.transaction]\nmin = \"7 years\"\nmax = \"7 years\"\n\
                      [audit]\nretain = \"1 year\"\n";
const SUBJECTS: usize = 10;
const CATEGORIES: [&str; 5] = ["contact", "usage", "access-log", "transaction", "payment"];
const START: &str = "2020-01-01T00:00:00Z";
const MAX_ACTIVE_HOLDS: usize = 4;
/// Erased records probed again at every check, besides those erased since the last one.
const ERASED_SAMPLE: usize = 60;

// ---------------------------------------------------------------------------------------------
// Small helpers

/// splitmix64: deterministic from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.below(v.len())].clone())
        }
    }
}

fn secret() -> RootSecret {
    RootSecret::passphrase(PASSPHRASE)
}

fn subject_id(s: usize) -> SubjectId {
    SubjectId::new(format!("subject-{s}@example.com")).unwrap()
}

fn payload(s: usize, n: u64) -> String {
    format!("subject-{s}-n-{n}")
}

fn parse_payload(p: &[u8]) -> Option<(usize, u64)> {
    let p = std::str::from_utf8(p).ok()?;
    let rest = p.strip_prefix("subject-")?;
    let (s, n) = rest.split_once("-n-")?;
    Some((s.parse().ok()?, n.parse().ok()?))
}

fn category(c: usize) -> Category {
    CATEGORIES[c].parse().unwrap()
}

fn cat_index(name: &str) -> Option<usize> {
    CATEGORIES.iter().position(|c| *c == name)
}

fn sa() -> Purpose {
    Purpose::SUBJECT_ACCESS
}

fn service() -> Purpose {
    Purpose::new("service").unwrap()
}

fn join<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn split<T: FromStr>(field: &str, key: &str) -> Result<Vec<T>, String> {
    let list = field
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix('='))
        .ok_or_else(|| format!("expected {key}=, got {field}"))?;
    if list == "-" {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|x| x.parse().map_err(|_| format!("bad {key} item {x:?}")))
        .collect()
}

fn num<T: FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad field {s:?}"))
}

fn journal_path(vault_dir: &Path) -> PathBuf {
    vault_dir.parent().unwrap().join("journal.log")
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

// ---------------------------------------------------------------------------------------------
// The model: what the journal says the vault holds

#[derive(Clone, Debug)]
struct Rec {
    subject: usize,
    cat: usize,
    collected: Timestamp,
    /// The payload counter: the payload is `payload(subject, n)`.
    n: u64,
    /// Retained by a subject erasure: the sweep destroys it once nothing protects it.
    pending: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum HScope {
    Subject,
    Cat(usize),
    Rec(RecordId),
}

impl HScope {
    fn token(&self) -> String {
        match self {
            HScope::Subject => "subject".into(),
            HScope::Cat(c) => format!("category:{c}"),
            HScope::Rec(r) => format!("record:{r}"),
        }
    }
    fn parse(t: &str) -> Result<HScope, String> {
        if t == "subject" {
            Ok(HScope::Subject)
        } else if let Some(c) = t.strip_prefix("category:") {
            Ok(HScope::Cat(num(c)?))
        } else if let Some(r) = t.strip_prefix("record:") {
            Ok(HScope::Rec(num(r)?))
        } else {
            Err(format!("bad hold scope {t:?}"))
        }
    }
    fn matches(&self, scope: &HoldScope) -> bool {
        match (self, scope) {
            (HScope::Subject, HoldScope::Subject) => true,
            (HScope::Cat(c), HoldScope::Category(x)) => x.name() == CATEGORIES[*c],
            (HScope::Rec(r), HoldScope::Record(x)) => r == x,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
struct HoldM {
    subject: usize,
    /// The subject's incarnation when placed: a hold on a subject that was destroyed does not
    /// cover a later subject with the same identifier.
    inc: u32,
    scope: HScope,
}

#[derive(Clone, Debug, Default)]
struct Subj {
    alive: bool,
    inc: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum Begin {
    Put { s: usize, cat: usize, n: u64 },
    Upd { s: usize, rid: RecordId, n: u64 },
    EraseRecord { s: usize, rid: RecordId },
    EraseCat { s: usize, cat: usize },
    EraseSubject { s: usize },
    Sweep,
    Hold { s: usize, scope: HScope },
    Release { hold: HoldId },
}

impl Begin {
    fn line(&self) -> String {
        match self {
            Begin::Put { s, cat, n } => format!("BEGIN PUT {s} {cat} {n}"),
            Begin::Upd { s, rid, n } => format!("BEGIN UPD {s} {rid} {n}"),
            Begin::EraseRecord { s, rid } => format!("BEGIN ERASE-RECORD {s} {rid}"),
            Begin::EraseCat { s, cat } => format!("BEGIN ERASE-CATEGORY {s} {cat}"),
            Begin::EraseSubject { s } => format!("BEGIN ERASE-SUBJECT {s}"),
            Begin::Sweep => "BEGIN SWEEP".into(),
            Begin::Hold { s, scope } => format!("BEGIN HOLD {s} {}", scope.token()),
            Begin::Release { hold } => format!("BEGIN RELEASE {hold}"),
        }
    }
    fn parse(t: &[&str]) -> Result<Begin, String> {
        Ok(match t {
            ["PUT", s, cat, n] => Begin::Put {
                s: num(s)?,
                cat: num(cat)?,
                n: num(n)?,
            },
            ["UPD", s, rid, n] => Begin::Upd {
                s: num(s)?,
                rid: num(rid)?,
                n: num(n)?,
            },
            ["ERASE-RECORD", s, rid] => Begin::EraseRecord {
                s: num(s)?,
                rid: num(rid)?,
            },
            ["ERASE-CATEGORY", s, cat] => Begin::EraseCat {
                s: num(s)?,
                cat: num(cat)?,
            },
            ["ERASE-SUBJECT", s] => Begin::EraseSubject { s: num(s)? },
            ["SWEEP"] => Begin::Sweep,
            ["HOLD", s, scope] => Begin::Hold {
                s: num(s)?,
                scope: HScope::parse(scope)?,
            },
            ["RELEASE", h] => Begin::Release { hold: num(h)? },
            _ => return Err(format!("bad BEGIN {t:?}")),
        })
    }
    fn kind(&self) -> &'static str {
        match self {
            Begin::Put { .. } => "put",
            Begin::Upd { .. } => "update",
            Begin::EraseRecord { .. } => "erase-record",
            Begin::EraseCat { .. } => "erase-category",
            Begin::EraseSubject { .. } => "erase-subject",
            Begin::Sweep => "sweep",
            Begin::Hold { .. } => "place-hold",
            Begin::Release { .. } => "release-hold",
        }
    }
}

struct Model {
    policy: Policy,
    clock: Timestamp,
    live: BTreeMap<RecordId, Rec>,
    /// Records acknowledged erased, in order.
    erased: Vec<(usize, RecordId)>,
    /// Active (unreleased) holds, including those of destroyed subjects.
    holds: BTreeMap<HoldId, HoldM>,
    subjects: Vec<Subj>,
    next_n: u64,
    inflight: Option<Begin>,
    lines: usize,
    /// Whether to compare erasure reports and sweeps with what the policy and holds allow.
    check: bool,
    checks: u64,
    mismatches: Vec<String>,
    acked: BTreeMap<&'static str, u64>,
}

impl Model {
    fn new(check: bool) -> Model {
        Model {
            policy: Policy::from_toml(POLICY).unwrap(),
            clock: START.parse().unwrap(),
            live: BTreeMap::new(),
            erased: Vec::new(),
            holds: BTreeMap::new(),
            subjects: vec![Subj::default(); SUBJECTS],
            next_n: 0,
            inflight: None,
            lines: 0,
            check,
            checks: 0,
            mismatches: Vec::new(),
            acked: BTreeMap::new(),
        }
    }

    fn mismatch(&mut self, m: String) {
        if self.check {
            self.mismatches.push(format!("line {}: {m}", self.lines));
        }
    }

    fn live_of(&self, s: usize) -> Vec<RecordId> {
        self.live
            .iter()
            .filter(|(_, r)| r.subject == s)
            .map(|(id, _)| *id)
            .collect()
    }

    fn held(&self, rid: &RecordId, r: &Rec) -> bool {
        let inc = self.subjects[r.subject].inc;
        self.holds.values().any(|h| {
            h.subject == r.subject
                && h.inc == inc
                && match &h.scope {
                    HScope::Subject => true,
                    HScope::Cat(c) => *c == r.cat,
                    HScope::Rec(x) => x == rid,
                }
        })
    }

    fn within_minimum(&self, r: &Rec) -> bool {
        self.policy
            .retained_until(&category(r.cat), r.collected, &BTreeMap::new())
            .is_some_and(|u| u > self.clock)
    }

    fn expired(&self, r: &Rec) -> bool {
        self.policy
            .expires_at(&category(r.cat), r.collected, &BTreeMap::new())
            .is_some_and(|e| e <= self.clock)
    }

    fn protected(&self, rid: &RecordId, r: &Rec) -> bool {
        self.held(rid, r) || self.within_minimum(r)
    }

    /// What an erasure should destroy and what it should retain.
    fn expect_erasure(&self, b: &Begin) -> (BTreeSet<RecordId>, BTreeSet<RecordId>) {
        let candidates: Vec<RecordId> = match b {
            Begin::EraseRecord { rid, .. } => self
                .live
                .contains_key(rid)
                .then_some(*rid)
                .into_iter()
                .collect(),
            Begin::EraseCat { s, cat } => self
                .live
                .iter()
                .filter(|(_, r)| r.subject == *s && r.cat == *cat)
                .map(|(id, _)| *id)
                .collect(),
            Begin::EraseSubject { s } => self.live_of(*s),
            _ => Vec::new(),
        };
        let (retained, erased): (Vec<RecordId>, Vec<RecordId>) = candidates
            .into_iter()
            .partition(|id| self.protected(id, &self.live[id]));
        (erased.into_iter().collect(), retained.into_iter().collect())
    }

    /// What a sweep at the model's clock should destroy: past maximum retention, or pending
    /// erasure past minimum retention, and not held.
    fn expect_sweep(&self) -> BTreeSet<RecordId> {
        self.live
            .iter()
            .filter(|(id, r)| {
                !self.held(id, r) && (self.expired(r) || (r.pending && !self.within_minimum(r)))
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn erase(&mut self, rid: RecordId) {
        if let Some(r) = self.live.remove(&rid) {
            self.erased.push((r.subject, rid));
        }
    }

    fn destroy_subject(&mut self, s: usize, what: &str) {
        let left = self.live_of(s);
        if !left.is_empty() {
            self.mismatch(format!(
                "{what}: subject {s} destroyed while records {} were live",
                join(&left)
            ));
            for rid in left {
                self.erase(rid);
            }
        }
        self.subjects[s].alive = false;
        self.subjects[s].inc += 1;
    }

    fn ack(&mut self, what: &'static str) {
        *self.acked.entry(what).or_default() += 1;
    }

    fn apply(&mut self, line: &str) -> Result<(), String> {
        self.lines += 1;
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["CLOCK", ts] => {
                self.clock = ts.parse().map_err(|e| format!("bad time: {e}"))?;
            }
            ["BEGIN", rest @ ..] => {
                let b = Begin::parse(rest)?;
                if let Begin::Put { n, .. } | Begin::Upd { n, .. } = &b {
                    self.next_n = self.next_n.max(n + 1);
                }
                self.inflight = Some(b);
            }
            ["PUT", s, rid, cat, n] => {
                let (s, rid, cat, n): (usize, RecordId, usize, u64) =
                    (num(s)?, num(rid)?, num(cat)?, num(n)?);
                self.inflight = None;
                self.next_n = self.next_n.max(n + 1);
                self.subjects[s].alive = true;
                let rec = Rec {
                    subject: s,
                    cat,
                    collected: self.clock,
                    n,
                    pending: false,
                };
                if self.live.insert(rid, rec).is_some() {
                    return Err(format!("record {rid} put twice"));
                }
                self.ack("put");
            }
            ["UPD", s, rid, n] => {
                let (s, rid, n): (usize, RecordId, u64) = (num(s)?, num(rid)?, num(n)?);
                self.inflight = None;
                self.next_n = self.next_n.max(n + 1);
                match self.live.get_mut(&rid) {
                    Some(r) if r.subject == s => r.n = n,
                    _ => return Err(format!("update of a record not live: {rid}")),
                }
                self.ack("update");
            }
            ["ERASED", mode, cats, recs, retained, subject] => {
                let b = self
                    .inflight
                    .take()
                    .ok_or("ERASED without an erasure in flight")?;
                let s = match &b {
                    Begin::EraseRecord { s, .. }
                    | Begin::EraseCat { s, .. }
                    | Begin::EraseSubject { s } => *s,
                    _ => return Err(format!("ERASED after {b:?}")),
                };
                let cats: Vec<usize> = split(cats, "cats")?;
                let recs: Vec<RecordId> = split(recs, "recs")?;
                let retained: BTreeSet<RecordId> =
                    split(retained, "retained")?.into_iter().collect();
                let subject_erased = split::<u8>(subject, "subject")? == [1];
                let mut erased: BTreeSet<RecordId> = recs.iter().copied().collect();
                for (id, r) in &self.live {
                    if r.subject == s && cats.contains(&r.cat) {
                        erased.insert(*id);
                    }
                }
                if *mode == "check" {
                    self.checks += 1;
                    let (want_e, want_r) = self.expect_erasure(&b);
                    let want_subject = matches!(b, Begin::EraseSubject { .. }) && want_r.is_empty();
                    let unknown: Vec<RecordId> = recs
                        .iter()
                        .chain(&retained)
                        .filter(|id| self.live.get(id).is_none_or(|r| r.subject != s))
                        .copied()
                        .collect();
                    if want_e != erased || want_r != retained || want_subject != subject_erased {
                        self.mismatch(format!(
                            "{}: reported erased [{}] retained [{}] subject_erased {subject_erased}; \
                             the policy and holds allow erased [{}] retained [{}] subject_erased {want_subject}",
                            b.line(),
                            join(&erased),
                            join(&retained),
                            join(&want_e),
                            join(&want_r)
                        ));
                    }
                    if !unknown.is_empty() {
                        self.mismatch(format!(
                            "{}: the report names records not live for the subject: {}",
                            b.line(),
                            join(&unknown)
                        ));
                    }
                }
                for id in erased {
                    self.erase(id);
                }
                if matches!(b, Begin::EraseSubject { .. }) {
                    for id in &retained {
                        if let Some(r) = self.live.get_mut(id) {
                            r.pending = true;
                        }
                    }
                }
                if subject_erased {
                    self.destroy_subject(s, &b.line());
                }
                self.ack(b.kind());
            }
            ["SWEPT", mode, erased, gone] => {
                let b = self
                    .inflight
                    .take()
                    .ok_or("SWEPT without a sweep in flight")?;
                if b != Begin::Sweep {
                    return Err(format!("SWEPT after {b:?}"));
                }
                let erased: BTreeSet<RecordId> = split(erased, "erased")?.into_iter().collect();
                let gone: Vec<usize> = split(gone, "gone")?;
                if *mode == "check" {
                    self.checks += 1;
                    let want = self.expect_sweep();
                    if want != erased {
                        let missed: Vec<_> = want.difference(&erased).collect();
                        let extra: Vec<_> = erased.difference(&want).collect();
                        let describe = |ids: &[&RecordId]| {
                            join(ids.iter().map(|id| {
                                let r = &self.live[*id];
                                format!(
                                    "{id}(subject {} {} collected {} pending {} held {})",
                                    r.subject,
                                    CATEGORIES[r.cat],
                                    r.collected,
                                    r.pending,
                                    self.held(id, r)
                                )
                            }))
                        };
                        let m = format!(
                            "sweep at {}: left what it should destroy: [{}]; destroyed what it should keep: [{}]",
                            self.clock,
                            describe(&missed),
                            describe(&extra)
                        );
                        self.mismatch(m);
                    }
                }
                for id in erased {
                    self.erase(id);
                }
                for s in gone {
                    self.destroy_subject(s, "sweep");
                }
                self.ack("sweep");
            }
            ["HOLD", hid, s, scope] => {
                let (hid, s): (HoldId, usize) = (num(hid)?, num(s)?);
                self.inflight = None;
                let h = HoldM {
                    subject: s,
                    inc: self.subjects[s].inc,
                    scope: HScope::parse(scope)?,
                };
                self.holds.insert(hid, h);
                self.ack("place-hold");
            }
            ["RELEASE", hid] => {
                let hid: HoldId = num(hid)?;
                self.inflight = None;
                self.holds.remove(&hid);
                self.ack("release-hold");
            }
            ["ALIVE", s] => {
                let s: usize = num(s)?;
                self.subjects[s].alive = true;
            }
            ["GONE", s] => {
                let s: usize = num(s)?;
                self.destroy_subject(s, "GONE");
            }
            ["LOST", rid] => {
                let rid: RecordId = num(rid)?;
                self.erase(rid);
            }
            ["ABANDON"] => self.inflight = None,
            ["ERROR", ..] => {
                let m = format!("the child's operation failed: {line}");
                self.mismatch(m);
            }
            _ => return Err(format!("bad journal line {line:?}")),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The journal

struct Log {
    path: PathBuf,
    file: File,
    /// Bytes of the journal applied to the model.
    offset: u64,
    model: Model,
}

impl Log {
    fn open(path: &Path, check: bool) -> Log {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let mut log = Log {
            path: path.to_owned(),
            file,
            offset: 0,
            model: Model::new(check),
        };
        log.ingest();
        log
    }

    /// Applies the complete lines appended since the last call; cuts off a torn last line.
    fn ingest(&mut self) {
        let mut f = File::open(&self.path).unwrap();
        f.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < buf.len() {
            let w = OpenOptions::new().write(true).open(&self.path).unwrap();
            w.set_len(self.offset + complete as u64).unwrap();
            w.sync_all().unwrap();
        }
        let text = String::from_utf8(buf[..complete].to_vec()).unwrap();
        for line in text.lines() {
            self.model
                .apply(line)
                .unwrap_or_else(|e| panic!("journal {}: {e}", self.path.display()));
        }
        self.offset += complete as u64;
    }

    /// Appends a line, durably, and applies it.
    fn write(&mut self, line: &str) {
        let text = format!("{line}\n");
        self.file.write_all(text.as_bytes()).unwrap();
        self.file.sync_data().unwrap();
        self.offset += text.len() as u64;
        self.model
            .apply(line)
            .unwrap_or_else(|e| panic!("journal line {line:?}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Operations, shared by the child and the parent: each journals BEGIN, runs, journals the ack.

/// Each subject's listed records (`None`: the subject is not found).
type Observation = Vec<Option<BTreeMap<RecordId, Category>>>;

fn observe(v: &Vault) -> Result<Observation, String> {
    (0..SUBJECTS)
        .map(|s| match v.list(&subject_id(s)) {
            Ok(infos) => Ok(Some(
                infos
                    .into_iter()
                    .map(|i| (i.record, i.meta.category))
                    .collect(),
            )),
            Err(Error::SubjectNotFound) => Ok(None),
            Err(e) => Err(format!("list of subject {s}: {e}")),
        })
        .collect()
}

fn listed(obs: &Observation, s: usize, rid: &RecordId) -> bool {
    obs[s].as_ref().is_some_and(|m| m.contains_key(rid))
}

fn erased_line(mode: &str, r: &ErasureReport) -> Result<String, String> {
    let mut cats = Vec::new();
    for e in r.erased.iter().filter(|e| e.record.is_none()) {
        cats.push(cat_index(e.category.name()).ok_or(format!("unknown category {}", e.category))?);
    }
    Ok(format!(
        "ERASED {mode} cats={} recs={} retained={} subject={}",
        join(cats),
        join(r.erased.iter().filter_map(|e| e.record)),
        join(r.retained.iter().map(|r| r.record)),
        u8::from(r.subject_erased)
    ))
}

fn run(v: &Vault, log: &mut Log, b: Begin) -> Result<(), String> {
    log.write(&b.line());
    let err = |e: Error| format!("{}: {e}", b.line());
    match &b {
        Begin::Put { s, cat, n } => {
            let meta = RecordMeta::new(category(*cat))
                .purpose(service())
                .collected_at(log.model.clock);
            let rid = v
                .put(&subject_id(*s), meta, payload(*s, *n).as_bytes())
                .map_err(err)?;
            log.write(&format!("PUT {s} {rid} {cat} {n}"));
        }
        Begin::Upd { s, rid, n } => {
            v.update(&subject_id(*s), *rid, payload(*s, *n).as_bytes())
                .map_err(err)?;
            log.write(&format!("UPD {s} {rid} {n}"));
        }
        Begin::EraseRecord { s, rid } => {
            let r = v.erase_record(&subject_id(*s), *rid).map_err(err)?;
            log.write(&erased_line("check", &r)?);
        }
        Begin::EraseCat { s, cat } => {
            let r = v
                .erase_category(&subject_id(*s), &category(*cat))
                .map_err(err)?;
            log.write(&erased_line("check", &r)?);
        }
        Begin::EraseSubject { s } => {
            let r = v.erase_subject(&subject_id(*s)).map_err(err)?;
            log.write(&erased_line("check", &r)?);
        }
        Begin::Sweep => {
            v.sweep().map_err(err)?;
            let obs = observe(v)?;
            let m = &log.model;
            let erased: Vec<RecordId> = m
                .live
                .iter()
                .filter(|(id, r)| !listed(&obs, r.subject, id))
                .map(|(id, _)| *id)
                .collect();
            let gone: Vec<usize> = (0..SUBJECTS)
                .filter(|s| m.subjects[*s].alive && obs[*s].is_none())
                .collect();
            log.write(&format!(
                "SWEPT check erased={} gone={}",
                join(erased),
                join(gone)
            ));
        }
        Begin::Hold { s, scope } => {
            let target = match scope {
                HScope::Subject => HoldTarget::Subject,
                HScope::Cat(c) => HoldTarget::Category(category(*c)),
                HScope::Rec(r) => HoldTarget::Record(*r),
            };
            let id = v
                .place_hold(&subject_id(*s), NewHold::new(target, HoldReason::Dispute))
                .map_err(err)?;
            log.write(&format!("HOLD {id} {s} {}", scope.token()));
        }
        Begin::Release { hold } => {
            v.release_hold(*hold).map_err(err)?;
            log.write(&format!("RELEASE {hold}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The child

/// The next operation: ~40% erasures and sweeps.
fn pick(rng: &mut Rng, m: &Model) -> Option<Begin> {
    let alive: Vec<usize> = (0..SUBJECTS).filter(|s| m.subjects[*s].alive).collect();
    let live: Vec<RecordId> = m.live.keys().copied().collect();
    let roll = rng.below(100);
    let put = || Begin::Put {
        s: 0,
        cat: 0,
        n: m.next_n,
    };
    let op = match roll {
        0..28 => put(),
        28..40 => {
            // Records pending erasure are not updated: whether an update takes a record out of
            // a pending erasure is not what this harness is about.
            let candidates: Vec<RecordId> = live
                .iter()
                .filter(|id| !m.live[id].pending)
                .copied()
                .collect();
            match rng.pick(&candidates) {
                Some(rid) => Begin::Upd {
                    s: m.live[&rid].subject,
                    rid,
                    n: m.next_n,
                },
                None => put(),
            }
        }
        40..52 => match rng.pick(&live) {
            Some(rid) => Begin::EraseRecord {
                s: m.live[&rid].subject,
                rid,
            },
            None => put(),
        },
        52..62 => match rng.pick(&live) {
            // A category the subject has records in, mostly.
            Some(rid) if rng.below(4) > 0 => Begin::EraseCat {
                s: m.live[&rid].subject,
                cat: m.live[&rid].cat,
            },
            _ => match rng.pick(&alive) {
                Some(s) => Begin::EraseCat {
                    s,
                    cat: rng.below(CATEGORIES.len()),
                },
                None => put(),
            },
        },
        62..70 => match rng.pick(&live) {
            Some(rid) => Begin::EraseSubject {
                s: m.live[&rid].subject,
            },
            None => put(),
        },
        70..80 => Begin::Sweep,
        80..86 if m.holds.len() < MAX_ACTIVE_HOLDS => match rng.pick(&alive) {
            Some(s) => {
                let recs = m.live_of(s);
                let scope = match rng.below(5) {
                    0 => HScope::Subject,
                    1 | 2 => HScope::Cat(rng.below(CATEGORIES.len())),
                    _ => match rng.pick(&recs) {
                        Some(r) => HScope::Rec(r),
                        None => HScope::Cat(rng.below(CATEGORIES.len())),
                    },
                };
                Begin::Hold { s, scope }
            }
            None => put(),
        },
        80..92 => {
            let holds: Vec<HoldId> = m.holds.keys().copied().collect();
            match rng.pick(&holds) {
                Some(hold) => Begin::Release { hold },
                None => put(),
            }
        }
        _ => return None, // the clock moves
    };
    Some(match op {
        Begin::Put { n, .. } => Begin::Put {
            s: rng.below(SUBJECTS),
            cat: rng.below(CATEGORIES.len()),
            n,
        },
        op => op,
    })
}

fn child_main(dir: PathBuf, seed: u64) -> ! {
    let mut rng = Rng(seed);
    let mut log = Log::open(&journal_path(&dir), false);
    let clock = ManualClock::new(log.model.clock);
    let builder = Vault::builder(&dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone());
    let opened = if dir.join("vault.pdv").exists() {
        builder.open(secret())
    } else {
        builder
            .policy(Policy::from_toml(POLICY).unwrap())
            .create(secret())
    };
    let v = match opened {
        Ok(v) => v,
        Err(e) => {
            log.write(&format!("ERROR open: {}", one_line(&e.to_string())));
            std::process::exit(3);
        }
    };
    // Killed right after the previous child, without the parent's check in between: settle what
    // that child had in flight as the parent would. Failures go to the journal, which the parent
    // reads.
    let mut st = Stats::default();
    let settled = settle(&v, &mut log, &mut st);
    for m in st.violations {
        log.write(&format!("ERROR settling after a kill: {}", one_line(&m)));
    }
    if let Err(e) = settled {
        log.write(&format!("ERROR settling after a kill: {}", one_line(&e)));
        std::process::exit(3);
    }
    loop {
        match pick(&mut rng, &log.model) {
            None => {
                let days = rng.range(1, 41) as i64;
                let t = log.model.clock.checked_add((days * 24).hours()).unwrap();
                log.write(&format!("CLOCK {t}"));
                clock.set(t);
            }
            Some(op) => {
                if let Err(e) = run(&v, &mut log, op) {
                    log.write(&format!("ERROR {}", one_line(&e)));
                    std::process::exit(3);
                }
            }
        }
    }
}

/// The child: does nothing unless re-run by `crash_recovery`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let seed = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    child_main(PathBuf::from(dir), seed);
}

// ---------------------------------------------------------------------------------------------
// The parent

#[derive(Default)]
struct Stats {
    kills: usize,
    checks: u64,
    violations: Vec<String>,
    /// What was in flight when the child was killed.
    in_flight: BTreeMap<&'static str, usize>,
    /// Kills followed by the next child directly, without a check in between.
    chained: usize,
    /// How the operations in flight were settled (by the parent).
    settled: BTreeMap<String, usize>,
}

impl Stats {
    fn violation(&mut self, m: String) {
        if std::env::var_os(CHILD_ENV).is_none() {
            println!("VIOLATION: {m}");
        }
        self.violations.push(m);
    }
    fn settled(&mut self, b: &Begin, how: &str) {
        *self
            .settled
            .entry(format!("{} {how}", b.kind()))
            .or_default() += 1;
    }
    fn check(&mut self, ok: bool, m: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.violation(m());
        }
    }
}

fn take_mismatches(log: &mut Log, st: &mut Stats) {
    st.checks += std::mem::take(&mut log.model.checks);
    for m in std::mem::take(&mut log.model.mismatches) {
        st.violation(m);
    }
}

fn active_holds(v: &Vault, now: Timestamp) -> Result<BTreeMap<HoldId, pdvault::Hold>, String> {
    Ok(v.holds(None)
        .map_err(|e| format!("holds: {e}"))?
        .into_iter()
        .filter(|h| h.is_active(now))
        .map(|h| (h.id, h))
        .collect())
}

/// The payload counter of a record, read for subject access.
fn read_n(v: &Vault, s: usize, rid: RecordId) -> Result<Option<u64>, Error> {
    let r = v.get(&subject_id(s), rid, &sa())?;
    Ok(parse_payload(&r.payload)
        .filter(|(ps, _)| *ps == s)
        .map(|(_, n)| n))
}

/// Settles the operation the child was killed in: adopts it if it became durable, completes an
/// erasure that had not started, and checks that none was half done.
fn settle(v: &Vault, log: &mut Log, st: &mut Stats) -> Result<(), String> {
    let Some(b) = log.model.inflight.clone() else {
        return Ok(());
    };
    let obs = observe(v)?;
    let holds = active_holds(v, log.model.clock)?;
    let m = &log.model;
    // Model records no longer listed, and subjects gone.
    let gone: BTreeSet<RecordId> = m
        .live
        .iter()
        .filter(|(id, r)| !listed(&obs, r.subject, id))
        .map(|(id, _)| *id)
        .collect();
    let gone_subjects: Vec<usize> = (0..SUBJECTS)
        .filter(|s| m.subjects[*s].alive && obs[*s].is_none())
        .collect();
    match &b {
        Begin::Put { s, cat, n } => {
            let s = *s;
            if !m.subjects[s].alive && obs[s].is_some() {
                // The subject was created before the record was written.
                log.write(&format!("ALIVE {s}"));
            }
            let extra: Vec<(RecordId, Category)> = obs[s]
                .iter()
                .flatten()
                .filter(|(id, _)| !log.model.live.contains_key(id))
                .map(|(id, c)| (*id, c.clone()))
                .collect();
            st.settled(
                &b,
                if extra.is_empty() {
                    "not durable"
                } else {
                    "durable"
                },
            );
            match extra.as_slice() {
                [] => log.write("ABANDON"),
                [(rid, c)] => {
                    let got = read_n(v, s, *rid).map_err(|e| format!("read of {rid}: {e}"))?;
                    st.check(got == Some(*n) && *c == category(*cat), || {
                        format!(
                            "{}: the record that appeared ({rid}, {c}) holds payload n={got:?}",
                            b.line()
                        )
                    });
                    log.write(&format!("PUT {s} {rid} {cat} {n}"));
                }
                _ => {
                    st.violation(format!(
                        "{}: {} records appeared: {}",
                        b.line(),
                        extra.len(),
                        join(extra.iter().map(|e| e.0))
                    ));
                    log.write("ABANDON");
                }
            }
        }
        Begin::Upd { s, rid, n } => {
            let old = m.live.get(rid).map(|r| r.n);
            match read_n(v, *s, *rid) {
                Ok(Some(got)) if got == *n => {
                    st.settled(&b, "durable");
                    log.write(&format!("UPD {s} {rid} {n}"));
                }
                Ok(got) => {
                    st.settled(&b, "not durable");
                    st.check(got == old, || {
                        format!(
                            "{}: the record holds n={got:?}, neither the acknowledged n={old:?} \
                             nor the one in flight",
                            b.line()
                        )
                    });
                    log.write("ABANDON");
                }
                Err(e) => {
                    st.violation(format!("{}: the record does not read: {e}", b.line()));
                    log.write("ABANDON");
                }
            }
        }
        Begin::Hold { s, scope } => {
            let extra: Vec<&pdvault::Hold> = holds
                .values()
                .filter(|h| !log.model.holds.contains_key(&h.id))
                .collect();
            st.settled(
                &b,
                if extra.is_empty() {
                    "not durable"
                } else {
                    "durable"
                },
            );
            match extra.as_slice() {
                [] => log.write("ABANDON"),
                [h] => {
                    st.check(scope.matches(&h.scope), || {
                        format!("{}: the hold that appeared covers {:?}", b.line(), h.scope)
                    });
                    log.write(&format!("HOLD {} {s} {}", h.id, scope.token()));
                }
                _ => {
                    st.violation(format!("{}: {} holds appeared", b.line(), extra.len()));
                    log.write("ABANDON");
                }
            }
        }
        Begin::Release { hold } => {
            st.settled(
                &b,
                if holds.contains_key(hold) {
                    "not durable"
                } else {
                    "durable"
                },
            );
            if holds.contains_key(hold) {
                log.write("ABANDON");
            } else {
                log.write(&format!("RELEASE {hold}"));
            }
        }
        Begin::EraseRecord { s, .. } | Begin::EraseCat { s, .. } | Begin::EraseSubject { s } => {
            let s = *s;
            let (want_e, want_r) = m.expect_erasure(&b);
            let want_subject = matches!(b, Begin::EraseSubject { .. }) && want_r.is_empty();
            let subject_gone = gone_subjects.contains(&s);
            let others: Vec<usize> = gone_subjects.iter().copied().filter(|x| *x != s).collect();
            st.check(others.is_empty(), || {
                format!("{}: other subjects are gone: {others:?}", b.line())
            });
            if gone.is_empty() && !subject_gone {
                // Not started (or nothing to destroy): run it to completion here.
                st.settled(&b, "not started");
                run(v, log, b.clone())?;
            } else {
                st.settled(&b, "complete");
                st.check(gone == want_e && subject_gone == want_subject, || {
                    format!(
                        "{}: erasure half done: gone [{}] subject gone {subject_gone}; \
                         complete would be [{}] subject gone {want_subject}",
                        b.line(),
                        join(&gone),
                        join(&want_e)
                    )
                });
                log.write(&format!(
                    "ERASED recover cats=- recs={} retained={} subject={}",
                    join(&gone),
                    join(&want_r),
                    u8::from(subject_gone)
                ));
            }
        }
        Begin::Sweep => {
            let want = m.expect_sweep();
            st.settled(
                &b,
                if gone.is_empty() {
                    "destroyed nothing"
                } else {
                    "complete"
                },
            );
            st.check(gone.is_empty() || gone == want, || {
                format!(
                    "sweep half done at {}: gone [{}], complete would be [{}]",
                    m.clock,
                    join(&gone),
                    join(&want)
                )
            });
            log.write(&format!(
                "SWEPT recover erased={} gone={}",
                join(&gone),
                join(&gone_subjects)
            ));
        }
    }
    Ok(())
}

/// Compares the vault with the model, record by record; resynchronises the model on a violation
/// so that one fault is reported once.
fn compare(v: &Vault, log: &mut Log, st: &mut Stats, probed: &mut usize) -> Result<(), String> {
    let now = log.model.clock;
    // Holds.
    let holds = active_holds(v, now)?;
    let model_holds: BTreeSet<HoldId> = log.model.holds.keys().copied().collect();
    let actual: BTreeSet<HoldId> = holds.keys().copied().collect();
    st.check(model_holds == actual, || {
        format!(
            "active holds [{}], acknowledged [{}]",
            join(&actual),
            join(&model_holds)
        )
    });
    for id in model_holds.difference(&actual) {
        log.write(&format!("RELEASE {id}"));
    }
    // Subjects and their records.
    let obs = observe(v)?;
    for (s, found) in obs.iter().enumerate() {
        let alive = log.model.subjects[s].alive;
        st.check(alive == found.is_some(), || {
            format!(
                "subject {s}: acknowledged {}, found {}",
                if alive { "present" } else { "destroyed" },
                found.is_some()
            )
        });
        if alive && found.is_none() {
            log.write(&format!("GONE {s}"));
        } else if !alive && found.is_some() {
            log.write(&format!("ALIVE {s}"));
        }
        let want: BTreeMap<RecordId, Category> = log
            .model
            .live
            .iter()
            .filter(|(_, r)| r.subject == s)
            .map(|(id, r)| (*id, category(r.cat)))
            .collect();
        let got = found.clone().unwrap_or_default();
        st.check(want == got, || {
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(k)).collect();
            format!(
                "subject {s}: acknowledged records missing [{}], unacknowledged records listed [{}]",
                join(missing),
                join(extra)
            )
        });
        for rid in want.keys().filter(|k| !got.contains_key(k)) {
            log.write(&format!("LOST {rid}"));
        }
        for (rid, c) in got.iter().filter(|(k, _)| !want.contains_key(k)) {
            if let Ok(Some(n)) = read_n(v, s, *rid) {
                let cat = cat_index(c.name()).unwrap_or(0);
                log.write(&format!("PUT {s} {rid} {cat} {n}"));
            }
        }
    }
    // Payloads.
    let live: Vec<(RecordId, usize, u64)> = log
        .model
        .live
        .iter()
        .map(|(id, r)| (*id, r.subject, r.n))
        .collect();
    for (rid, s, n) in live {
        let got = read_n(v, s, rid);
        st.check(matches!(got, Ok(Some(x)) if x == n), || {
            format!("record {rid} of subject {s}: acknowledged n={n}, read {got:?}")
        });
        if let Ok(Some(x)) = got
            && x != n
        {
            log.write(&format!("UPD {s} {rid} {x}"));
        }
    }
    // Erased records stay unreadable: every one erased since the last check, and a sample.
    let erased = log.model.erased.clone();
    let mut probe: Vec<(usize, RecordId)> = erased[(*probed).min(erased.len())..].to_vec();
    let mut rng = Rng(erased.len() as u64 ^ st.checks);
    for _ in 0..ERASED_SAMPLE.min(*probed) {
        probe.push(erased[rng.below(*probed)]);
    }
    *probed = erased.len();
    for (s, rid) in probe {
        let got = v.get(&subject_id(s), rid, &sa());
        st.check(
            matches!(
                got,
                Err(Error::RecordNotFound(_)) | Err(Error::SubjectNotFound)
            ),
            || {
                format!(
                    "erased record {rid} of subject {s}: {}",
                    match &got {
                        Ok(r) => format!("reads back {:?}", String::from_utf8_lossy(&r.payload)),
                        Err(e) => format!("fails with {e} instead of not found"),
                    }
                )
            },
        );
    }
    Ok(())
}

/// Reopens the vault after a kill and checks it.
fn check(dir: &Path, log: &mut Log, st: &mut Stats, probed: &mut usize) -> Result<(), String> {
    let v = Vault::builder(dir)
        .clock(ManualClock::new(log.model.clock))
        .open(secret());
    st.checks += 1;
    let v = v.map_err(|e| format!("the vault does not open: {e} ({e:?})"))?;
    settle(&v, log, st)?;
    take_mismatches(log, st);
    compare(&v, log, st, probed)?;
    // A sweep now: everything due and unprotected goes, nothing else (checked by the model).
    run(&v, log, Begin::Sweep)?;
    take_mismatches(log, st);
    let report = v.verify().map_err(|e| format!("verify: {e}"))?;
    st.check(report.is_whole(), || format!("verify: {report:?}"));
    let audit = v.audit_verify().map_err(|e| format!("audit_verify: {e}"))?;
    st.check(audit.is_intact(), || format!("audit_verify: {audit:?}"));
    v.close().map_err(|e| format!("close: {e}"))?;
    Ok(())
}

#[test]
fn crash_recovery() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let kills: usize = std::env::var(KILLS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let want_destroying: usize = std::env::var(DESTROYING_KILLS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_DESTROYING_KILLS.min(kills));
    println!(
        "crash: seed {seed} ({SEED_ENV}), {kills} kills ({KILLS_ENV}), \
         {want_destroying} of them during erasures or sweeps ({DESTROYING_KILLS_ENV})"
    );
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    {
        let v = Vault::builder(&dir)
            .kdf(KdfParams::insecure_for_tests())
            .clock(ManualClock::new(START.parse().unwrap()))
            .policy(Policy::from_toml(POLICY).unwrap())
            .create(secret())
            .unwrap();
        v.close().unwrap();
    }
    let journal = journal_path(&dir);
    std::fs::write(&journal, format!("CLOCK {START}\n")).unwrap();
    let mut log = Log::open(&journal, true);
    let child_out = tmp.path().join("child.out");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut st = Stats::default();
    let mut probed = 0usize;
    let mut fatal = None;
    let destroying = |st: &Stats| -> usize {
        DESTROYING
            .iter()
            .map(|k| st.in_flight.get(k).copied().unwrap_or(0))
            .sum()
    };
    let max_kills = kills.saturating_mul(3);
    let mut i = 0;
    while (i < kills || destroying(&st) < want_destroying) && i < max_kills {
        if i > 0 && i % 25 == 0 {
            println!(
                "crash: {} kills, {} checks, {} violations, {} live, {} erased, clock {}, {:.0?}",
                st.kills,
                st.checks,
                st.violations.len(),
                log.model.live.len(),
                log.model.erased.len(),
                log.model.clock,
                started.elapsed()
            );
        }
        let out = File::create(&child_out).unwrap();
        let child_seed = rng.next();
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env(CHILD_SEED_ENV, child_seed.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let lines_before = log.model.lines;
        std::thread::sleep(Duration::from_millis(rng.range(20, 300)));
        let early = child.try_wait().unwrap();
        let _ = child.kill();
        child.wait().unwrap();
        st.kills += 1;
        log.ingest();
        if let Some(status) = early {
            let out = std::fs::read_to_string(&child_out).unwrap_or_default();
            let tail: String = out
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            st.violation(format!(
                "kill {i}: the child (seed {child_seed}) exited by itself with {status}:\n{tail}"
            ));
        }
        let what = match &log.model.inflight {
            _ if log.model.lines == lines_before => "startup",
            Some(b) => b.kind(),
            None => "between",
        };
        *st.in_flight.entry(what).or_default() += 1;
        take_mismatches(&mut log, &mut st);
        // One kill in four: the next child opens the crashed vault itself (recovery in the
        // child, a crash during recovery, crashes in a row); the next check covers both.
        i += 1;
        if i < kills && rng.below(4) == 0 {
            st.chained += 1;
            continue;
        }
        if let Err(e) = check(&dir, &mut log, &mut st, &mut probed) {
            st.violation(format!("kill {} (child seed {child_seed}): {e}", i - 1));
            fatal = Some(e);
            break;
        }
    }
    let destroying = destroying(&st);
    println!(
        "crash: in flight at the kill: {} (erasure or sweep: {destroying})",
        join(st.in_flight.iter().map(|(k, n)| format!("{k} {n}")))
    );
    println!(
        "crash: settled by the parent after a kill: {}",
        join(st.settled.iter().map(|(k, n)| format!("{k} {n}")))
    );
    println!(
        "crash: acknowledged: {}; {} records live, {} erased, clock {}, {:.1?}",
        join(log.model.acked.iter().map(|(k, n)| format!("{k} {n}"))),
        log.model.live.len(),
        log.model.erased.len(),
        log.model.clock,
        started.elapsed()
    );
    println!(
        "crash: {} kills followed directly by the next child, {} checked",
        st.chained,
        st.kills - st.chained
    );
    println!(
        "crash: {} kills, {} checks, {} violations",
        st.kills,
        st.checks,
        st.violations.len()
    );
    if !st.violations.is_empty() || fatal.is_some() {
        let kept = tmp.keep();
        println!("crash: vault and journal kept in {}", kept.display());
    }
    assert!(fatal.is_none(), "stopped: {}", fatal.unwrap_or_default());
    assert!(
        destroying >= want_destroying,
        "only {destroying} of {} kills landed during an erasure or a sweep",
        st.kills
    );
    assert_eq!(
        st.violations.len(),
        0,
        "violations (seed {seed}):\n{}",
        st.violations.join("\n")
    );
}
