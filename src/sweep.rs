//! The retention sweep: destroys what is past its maximum retention and every pending erasure
//! that has become possible, reclaims the space of destroyed records, and prunes the audit trail.
//!
//! Its cost grows with what is due (an index by due time), not with the size of the vault. Its
//! memory is bounded apart from the due entries it holds (74 bytes each): it destroys through a
//! run of key ratchets, each taking whole subjects of at most [`RATCHET_SHARDS`] key shards until
//! its batch reaches [`RATCHET_WRITES`] writes, and reclaims [`RECLAIM_BATCH`] rows per commit.
//! It is idempotent: a crash in the middle leaves every destruction either done or not started
//! (each ratchet is one atomic batch), and a re-run completes it. It plans through the one
//! guarded path of [`crate::erasure`].

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use crate::audit::AuditOp;
use crate::erasure::{ErasureReport, Plan, RetainReason, Scope};
use crate::error::{InputError, Result, StorageError};
use crate::ids::{RecordId, SubjectRef};
use crate::storage::entries::{DueKind, RecordEntry};
use crate::storage::{Txn, layout};
use crate::vault::Vault;

/// At most this many shards' keys are re-wrapped by one key ratchet of the sweep.
const RATCHET_SHARDS: usize = 128;
/// A ratchet of the sweep takes no further subject once its batch holds this many writes. The
/// bound is what keeps the sweep's memory from growing with what is due: sled 0.34 keeps a copy
/// of every leaf node a batch changes until the whole batch is applied.
const RATCHET_WRITES: usize = 2048;
/// Rows removed per commit when reclaiming (the same bound, for the same reason).
const RECLAIM_BATCH: usize = 2048;

/// One entry of the due index, as the sweep holds it (no allocation per entry).
struct Due {
    key: [u8; layout::DUE_KEY_LEN],
    subject: SubjectRef,
    record: RecordId,
    kind: DueKind,
}

// The size the module documentation states.
const _: () = assert!(std::mem::size_of::<Due>() == 74);

/// What a sweep did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// The time the sweep ran at (for [`Vault::sweep_dry_run_at`], the time it was planned at).
    pub at: Option<Timestamp>,
    /// Records destroyed (one by one, or as part of a category).
    pub erased: u64,
    /// Categories destroyed whole.
    pub categories_erased: u64,
    /// Records due but kept (a hold, or minimum retention).
    pub retained: u64,
    /// Subjects whose pending erasure completed.
    pub subjects_erased: u64,
    /// Rows of destroyed records removed.
    pub reclaimed: u64,
    /// Audit entries pruned.
    pub audit_pruned: u64,
    /// Backups whose epoch key was destroyed because they expired.
    pub backups_expired: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Per category (by name), how many due records were destroyed (one by one or with their
    /// whole category) and how many were kept, and why. Only categories with a due record
    /// appear.
    pub by_category: BTreeMap<String, CategorySweep>,
}

/// What a sweep did (or, dry, would do) in one category, and why: the records it destroyed by
/// the reason they were due, and the due records it kept by what protects them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CategorySweep {
    /// Records destroyed because their maximum retention passed.
    pub expired: u64,
    /// Records destroyed because an erasure of their subject was pending and nothing protects
    /// them any more (a hold was released or ended, or their minimum retention passed).
    pub erasure_completed: u64,
    /// Due records kept because a legal hold covers them.
    pub held: u64,
    /// Due records kept because their category's minimum retention has not passed.
    pub minimum_retention: u64,
}

impl SweepReport {
    /// Counts, per category, what one subject's plan destroys and keeps of its due records
    /// (`live`, with their categories; `kinds`, why each was due).
    fn count(
        &mut self,
        r: &ErasureReport,
        live: &BTreeMap<RecordId, String>,
        kinds: &BTreeMap<RecordId, DueKind>,
    ) {
        let retained: BTreeSet<RecordId> = r.retained.iter().map(|k| k.record).collect();
        let one_by_one: BTreeSet<RecordId> = r.erased.iter().filter_map(|e| e.record).collect();
        let whole: BTreeSet<&str> = r
            .erased
            .iter()
            .filter(|e| e.record.is_none())
            .map(|e| e.category.name())
            .collect();
        for (id, category) in live {
            let destroyed = one_by_one.contains(id)
                || (whole.contains(category.as_str()) && !retained.contains(id));
            if !destroyed {
                continue;
            }
            let c = self.by_category.entry(category.clone()).or_default();
            if kinds.get(id) == Some(&DueKind::Expiry) {
                c.expired += 1;
            } else {
                c.erasure_completed += 1;
            }
        }
        for k in &r.retained {
            let c = self
                .by_category
                .entry(k.category.name().to_owned())
                .or_default();
            match k.reason {
                RetainReason::Held { .. } => c.held += 1,
                RetainReason::MinimumRetention { .. } => c.minimum_retention += 1,
            }
        }
    }
}

/// How a sweep runs ([`Vault::sweep_with`]): destroying what is due now, or as a dry run (now or
/// at a later time), and whom it tells its progress.
pub struct SweepOptions<'a> {
    dry_run: bool,
    at: Option<Timestamp>,
    progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

impl std::fmt::Debug for SweepOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepOptions")
            .field("dry_run", &self.dry_run)
            .field("at", &self.at)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl<'a> SweepOptions<'a> {
    /// Destroys what is due at the vault clock's now.
    pub fn now() -> Self {
        SweepOptions {
            dry_run: false,
            at: None,
            progress: None,
        }
    }

    /// Reports what a sweep now would destroy, and why, destroying nothing.
    pub fn dry_run() -> Self {
        SweepOptions {
            dry_run: true,
            ..Self::now()
        }
    }

    /// Reports what a sweep at `at` (now or later) would destroy, destroying nothing
    /// ([`Vault::sweep_dry_run_at`] says what such a report holds).
    pub fn dry_run_at(at: Timestamp) -> Self {
        SweepOptions {
            at: Some(at),
            ..Self::dry_run()
        }
    }

    /// The operation's name in [`Vault::metrics`] and its span.
    pub(crate) fn operation_name(&self) -> &'static str {
        match (self.dry_run, self.at) {
            (false, _) => "sweep",
            (true, None) => "sweep_dry_run",
            (true, Some(_)) => "sweep_dry_run_at",
        }
    }

    /// Calls `progress(done, total)` as the sweep goes.
    pub fn progress(mut self, progress: &'a mut dyn FnMut(u64, u64)) -> Self {
        self.progress = Some(progress);
        self
    }
}

impl Vault {
    /// Runs the sweep at the vault clock's current time.
    pub fn sweep(&self) -> Result<SweepReport> {
        self.sweep_with(SweepOptions::now())
    }

    /// Reports what the sweep would destroy now, and why, destroying nothing (at a later time:
    /// [`Vault::sweep_dry_run_at`]).
    pub fn sweep_dry_run(&self) -> Result<SweepReport> {
        self.sweep_with(SweepOptions::dry_run())
    }

    /// Reports what a sweep at `at` (now or later) would destroy, and why, destroying nothing
    /// and writing nothing: the impact of time passing, or of a policy just set. The report is
    /// that of a dry run ([`SweepReport::by_category`] says why each due record would go or
    /// stay) and a sweep run at `at` destroys what it reports, provided nothing changes
    /// meanwhile (no record written, erased or rectified, no hold placed or released, no event
    /// or policy recorded). Holds that end before `at` are counted as ended; what the sweep
    /// does besides destroying records (reclaiming rows, pruning the audit trail, expiring
    /// backups) is not planned, and neither is the finishing of subjects whose last record a
    /// sweep before `at` would destroy while the policy keeps their state for a while.
    ///
    /// An `at` before the vault clock's now is refused ([`InputError::SweepInPast`]): the vault
    /// has changed since, and what a sweep then would have destroyed is not knowable from it
    /// now. At now, this is [`Vault::sweep_dry_run`].
    pub fn sweep_dry_run_at(&self, at: Timestamp) -> Result<SweepReport> {
        self.sweep_with(SweepOptions::dry_run_at(at))
    }

    /// Runs the sweep as `options` say: now or dry (now or at a later time), with progress.
    pub fn sweep_with(&self, options: SweepOptions<'_>) -> Result<SweepReport> {
        self.operation(options.operation_name(), || {
            let now = self.now();
            let at = match options.at {
                Some(at) if at < now => return Err(InputError::SweepInPast { at, now }.into()),
                Some(at) => at,
                None => now,
            };
            let mut silent = |_, _| ();
            let progress = options.progress.unwrap_or(&mut silent);
            self.sweep_at(at, options.dry_run, progress)
        })
    }

    /// The sweep as it runs (or, dry, would run) at `now`.
    fn sweep_at(
        &self,
        now: Timestamp,
        dry_run: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SweepReport> {
        let mut report = SweepReport {
            at: Some(now),
            dry_run,
            ..Default::default()
        };
        // One sweep at a time among every process of a shared store: a second one waits, then
        // finds done what the first did.
        let _lease = self.shared_lock(
            crate::storage::engine::SharedLock::Sweep,
            crate::storage::engine::LockMode::Exclusive,
        )?;
        let due = self.due_entries(now)?;
        let total = due.len() as u64;
        let mut done = 0u64;
        let mut rest = due.as_slice();
        while !rest.is_empty() {
            let _d = self.exclusive_destruction()?;
            let mut plan = Plan::default();
            plan.revisit_retained = true;
            let mut cleared = Txn::new();
            let mut shards = BTreeSet::new();
            let mut taken = 0;
            // Whole subjects, until the ratchet reaches its bounds (at least one subject).
            while taken < rest.len()
                && shards.len() < RATCHET_SHARDS
                && plan.writes() + cleared.len() < RATCHET_WRITES
            {
                let sref = rest[taken].subject;
                let run = rest[taken..]
                    .iter()
                    .take_while(|d| d.subject == sref)
                    .count();
                let entries = &rest[taken..taken + run];
                taken += run;
                shards.insert(layout::shard_of(sref.as_bytes()));
                // Why each record is due: its maximum retention passed (whatever else is
                // pending for it), or an erasure of its subject is pending.
                let mut kinds: BTreeMap<RecordId, DueKind> = BTreeMap::new();
                let mut pending = false;
                let mut finish = false;
                for d in entries {
                    match d.kind {
                        DueKind::FinishSubject => finish = true,
                        kind => {
                            let k = kinds.entry(d.record).or_insert(kind);
                            if kind == DueKind::Expiry {
                                *k = kind;
                            }
                            pending |= kind == DueKind::PendingErasure;
                        }
                    }
                    cleared.delete(d.key.to_vec());
                }
                let state = self.state(&sref)?;
                let live = self.live_records(&sref, kinds.keys())?;
                if live.is_empty() {
                    if finish && self.store().contains(&layout::subject(&sref))? {
                        let r = self.plan_destruction(&mut plan, sref, Scope::Finish, now)?;
                        report.subjects_erased += u64::from(r.subject_erased);
                    }
                    continue;
                }
                // A pending erasure covers the records it retained (those with pending due
                // entries), not what was written for the subject since.
                let ids = live.keys().copied().collect();
                let scope = if pending && state.pending_erasure.is_some() {
                    Scope::Pending(ids)
                } else {
                    Scope::Records(ids)
                };
                let r = self.plan_destruction(&mut plan, sref, scope, now)?;
                report.count(&r, &live, &kinds);
                report.erased += r.erased.iter().filter(|e| e.record.is_some()).count() as u64;
                report.categories_erased +=
                    r.erased.iter().filter(|e| e.record.is_none()).count() as u64;
                report.retained += r.retained.len() as u64;
                report.subjects_erased += u64::from(r.subject_erased);
            }
            rest = &rest[taken..];
            done += taken as u64;
            progress(done, total);
            if dry_run {
                continue;
            }
            // Due entries of what was kept were re-added by the plan where they must be revisited.
            let mut txn = cleared;
            txn.append(plan.take_txn());
            plan.set_txn(txn);
            plan.add_draft(self.draft(AuditOp::Sweep).note(format!("{taken} due")));
            self.execute(plan)?;
        }
        if !dry_run {
            if total == 0 {
                // A sweep that found nothing due is audited too: who ran it, and when.
                self.commit(Txn::new(), vec![self.draft(AuditOp::Sweep).note("0 due")])?;
            }
            report.backups_expired = self.expire_backups(now)?;
            report.reclaimed = self.reclaim()?;
            if let Some(span) = self.policy().and_then(|p| p.audit_retention) {
                let cutoff = crate::policy::sub_span(now, span);
                report.audit_pruned = self.inner.trail.prune(self.store(), cutoff)?;
                if report.audit_pruned > 0 {
                    let d = self
                        .draft(AuditOp::Prune)
                        .note(format!("{} entries", report.audit_pruned));
                    self.commit(Txn::new(), vec![d])?;
                }
            }
        }
        Ok(report)
    }

    /// Every entry of the due index up to `now`, sorted by the shard of its subject's keys and
    /// then by subject, so that one ratchet re-wraps a run of neighbouring shards and takes
    /// whole subjects. The sweep holds these (74 bytes each) while it runs.
    fn due_entries(&self, now: Timestamp) -> Result<Vec<Due>> {
        let (start, end) = layout::due_until(now);
        let mut due = Vec::new();
        for r in self.store().range_raw(&start, &end) {
            let (k, v) = r?;
            let (_, subject, record) =
                layout::parse_due(&k).ok_or(StorageError::Malformed("due key"))?;
            let key = <[u8; layout::DUE_KEY_LEN]>::try_from(&k[..])
                .map_err(|_| StorageError::Malformed("due key"))?;
            let kind = crate::storage::codec::decode::<DueKind>(&v, "due kind")?;
            due.push(Due {
                key,
                subject,
                record,
                kind,
            });
        }
        due.sort_by_key(|d| (layout::shard_of(d.subject.as_bytes()), d.subject, d.key));
        Ok(due)
    }

    /// The ids among `ids` that are readable records of the subject, with their categories.
    fn live_records<'a>(
        &self,
        sref: &SubjectRef,
        ids: impl Iterator<Item = &'a RecordId>,
    ) -> Result<BTreeMap<RecordId, String>> {
        let destroyed = self.destroyed_groups(sref)?;
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some(e) = self
                .store()
                .get::<RecordEntry>(&layout::record(sref, id), "record")?
            {
                let category = e.meta.category.name().to_owned();
                if !destroyed.contains(&(category.clone(), e.key_gen)) {
                    out.insert(*id, category);
                }
            }
        }
        Ok(out)
    }

    /// Removes the rows of destroyed key generations.
    fn reclaim(&self) -> Result<u64> {
        let mut n = 0;
        let entries: Vec<Vec<u8>> = self
            .store()
            .scan_keys(&layout::table(layout::Table::Reclaim))
            .collect::<Result<_, _>>()?;
        let mut txn = Txn::new();
        for k in entries {
            let Some((sref, cat, generation)) = layout::parse_reclaim(&k) else {
                continue;
            };
            for chunk in self
                .store()
                .member_chunks(&layout::members_of_group(&sref, &cat))
            {
                let chunk = chunk?;
                if chunk.generation > generation {
                    break;
                }
                for id in &chunk.records {
                    txn.delete(layout::record(&sref, id));
                }
                n += chunk.records.len() as u64;
                txn.delete(chunk.key);
            }
            txn.delete(k);
            if txn.len() >= RECLAIM_BATCH {
                self.store().commit(std::mem::take(&mut txn))?;
            }
        }
        if !txn.is_empty() {
            self.store().commit(txn)?;
        }
        self.store().sync_all()?;
        Ok(n)
    }
}
