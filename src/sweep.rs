//! The retention sweep: destroys what is past its maximum retention and every pending erasure
//! that has become possible, reclaims the space of destroyed records, and prunes the audit trail.
//!
//! Its cost grows with what is due (an index by due time), not with the size of the vault. It is
//! idempotent: a crash in the middle leaves every destruction either done or not started (each
//! batch is one key ratchet), and a re-run completes it. It plans through the one guarded path
//! of [`crate::erasure`].

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use crate::audit::AuditOp;
use crate::erasure::{Plan, Scope};
use crate::error::{Result, StorageError};
use crate::ids::{RecordId, SubjectRef};
use crate::storage::entries::{DueKind, RecordEntry};
use crate::storage::{Txn, layout};
use crate::vault::Vault;

/// Due entries handled per key ratchet.
const BATCH: usize = 20_000;
/// Rows removed per commit when reclaiming.
const RECLAIM_BATCH: usize = 10_000;

/// What a sweep did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// The time the sweep ran at.
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
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Vault {
    /// Runs the sweep at the vault clock's current time.
    pub fn sweep(&self) -> Result<SweepReport> {
        self.sweep_with(false, &mut |_, _| ())
    }

    /// Reports what the sweep would destroy, destroying nothing.
    pub fn sweep_dry_run(&self) -> Result<SweepReport> {
        self.sweep_with(true, &mut |_, _| ())
    }

    /// Runs the sweep, calling `progress(done, total)` as it goes.
    pub fn sweep_with(
        &self,
        dry_run: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SweepReport> {
        let now = self.now();
        let mut report = SweepReport {
            at: Some(now),
            dry_run,
            ..Default::default()
        };
        let (start, end) = layout::due_until(now);
        let mut due: Vec<(Vec<u8>, SubjectRef, RecordId, DueKind)> = Vec::new();
        for r in self.store().range_raw(&start, &end) {
            let (k, v) = r?;
            let (_, sref, id) = layout::parse_due(&k).ok_or(StorageError::Malformed("due key"))?;
            let kind = crate::storage::codec::decode::<DueKind>(&v, "due kind")?;
            due.push((k, sref, id, kind));
        }
        let total = due.len() as u64;
        let mut done = 0u64;
        for chunk in due.chunks(BATCH) {
            let _d = self
                .inner
                .destruction
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let mut by_subject: BTreeMap<SubjectRef, (BTreeSet<RecordId>, bool)> = BTreeMap::new();
            let mut cleared = Txn::new();
            for (k, sref, id, kind) in chunk {
                let e = by_subject.entry(*sref).or_default();
                e.0.insert(*id);
                e.1 |= *kind == DueKind::PendingErasure;
                cleared.delete(k.clone());
            }
            let mut plan = Plan::default();
            plan.revisit_retained = true;
            for (sref, (ids, pending)) in by_subject {
                let state = self.state(&sref)?;
                let live = self.live_records(&sref, &ids)?;
                if live.is_empty() {
                    continue;
                }
                // A pending erasure covers the records it retained (those with pending due
                // entries), not what was written for the subject since.
                let scope = if pending && state.pending_erasure.is_some() {
                    Scope::Pending(live)
                } else {
                    Scope::Records(live)
                };
                let r = self.plan_destruction(&mut plan, sref, scope, now)?;
                report.erased += r.erased.iter().filter(|e| e.record.is_some()).count() as u64;
                report.categories_erased +=
                    r.erased.iter().filter(|e| e.record.is_none()).count() as u64;
                report.retained += r.retained.len() as u64;
                report.subjects_erased += u64::from(r.subject_erased);
            }
            done += chunk.len() as u64;
            progress(done, total);
            if dry_run {
                continue;
            }
            // Due entries of what was kept were re-added by the plan where they must be revisited.
            let mut txn = cleared;
            txn.append(plan.take_txn());
            plan.set_txn(txn);
            plan.add_draft(
                self.draft(AuditOp::Sweep)
                    .note(format!("{} due", chunk.len())),
            );
            self.execute(plan)?;
        }
        if !dry_run {
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

    /// The ids among `ids` that are readable records of the subject.
    fn live_records(
        &self,
        sref: &SubjectRef,
        ids: &BTreeSet<RecordId>,
    ) -> Result<BTreeSet<RecordId>> {
        let destroyed = self.destroyed_groups(sref)?;
        let mut out = BTreeSet::new();
        for id in ids {
            if let Some(e) = self
                .store()
                .get::<RecordEntry>(&layout::record(sref, id), "record")?
                && !destroyed.contains(&(e.meta.category.name().to_owned(), e.key_gen))
            {
                out.insert(*id);
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
            let prefix = layout::members_of_group(&sref, &cat);
            for m in self.store().scan_keys(&prefix) {
                let m = m?;
                let (member_gen, id) = layout::parse_member(&prefix, &m)
                    .ok_or(StorageError::Malformed("member key"))?;
                if member_gen > generation {
                    break;
                }
                txn.delete(layout::record(&sref, &id));
                txn.delete(m);
                n += 1;
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
