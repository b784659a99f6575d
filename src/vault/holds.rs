//! Legal holds, subject events and the retention policy of a vault.

use jiff::Timestamp;

use super::Vault;
use super::subject_text::StoredHold;
use crate::audit::AuditOp;
use crate::error::{Error, Result};
use crate::ids::{HoldId, SubjectId};
use crate::model::check_text;
use crate::policy::holds::{Hold, HoldScope, HoldTarget, NewHold, Release};
use crate::policy::{EventKind, Policy};
use crate::storage::entries::{DueKind, RecordEntry};
use crate::storage::{Txn, layout};

impl Vault {
    /// Places a legal hold; returns its id. While it stands, nothing destroys what it covers.
    pub fn place_hold(&self, subject: &SubjectId, hold: NewHold) -> Result<HoldId> {
        self.operation("place_hold", || {
            let NewHold {
                target,
                reason,
                reference,
                until,
            } = hold;
            if let Some(r) = &reference {
                check_text("reference", r)?;
            }
            if let HoldTarget::Category(c) = &target {
                self.known_category(c)?;
            }
            // Ordered with destruction: a destruction that has not committed yet plans after this
            // hold is stored, and sees it.
            let _no_destruction = self.no_destruction()?;
            let ident = self.find(subject)?.subject;
            let scope = match target {
                HoldTarget::Subject => HoldScope::Subject,
                HoldTarget::Category(c) => HoldScope::Category(c),
                HoldTarget::Record(r) => {
                    self.load(&ident, r)?;
                    HoldScope::Record(r)
                }
            };
            let hold = Hold {
                id: HoldId::random(),
                subject: ident,
                scope,
                reason,
                reference,
                placed_by: self.actor.to_string(),
                placed_at: self.now(),
                until,
                released: None,
            };
            let mut txn = Txn::new();
            let row = layout::hold(&hold.id);
            let (id, reason, scope) = (hold.id, hold.reason, hold.scope.clone());
            txn.put_new(row.clone(), &self.seal_hold(hold, &row)?);
            txn.put_new(layout::subject_hold(&ident, &id), &());
            let mut d = self
                .draft(AuditOp::HoldPlace)
                .subject(ident)
                .note(format!("hold {id} ({reason})"));
            if let HoldScope::Category(c) = &scope {
                d = d.category_of(c);
            }
            if let HoldScope::Record(r) = &scope {
                d = d.record(*r);
            }
            self.commit_synced(txn, vec![d])?;
            Ok(id)
        })
    }

    /// Releases a hold (recorded; the hold stays listed as released). What it protected is
    /// destroyed by the next sweep if an erasure is pending and its retention has passed.
    pub fn release_hold(&self, id: HoldId) -> Result<Hold> {
        self.operation("release_hold", || {
            let row = layout::hold(&id);
            let mut stored: StoredHold = self
                .store()
                .get(&row, "hold")?
                .ok_or(Error::HoldNotFound(id))?;
            if stored.hold.released.is_none() {
                stored.hold.released = Some(Release {
                    at: self.now(),
                    by: self.actor.to_string(),
                });
                let mut txn = Txn::new();
                txn.put(row.clone(), &stored);
                let d = self
                    .draft(AuditOp::HoldRelease)
                    .subject(stored.hold.subject)
                    .note(format!("hold {id}"));
                self.commit_synced(txn, vec![d])?;
            }
            self.open_hold(stored, &row)
        })
    }

    /// Holds, all or one subject's, active and released.
    pub fn holds(&self, subject: Option<&SubjectId>) -> Result<Vec<Hold>> {
        self.operation("holds", || {
            self.checked_read(|| self.holds_unchecked(subject))
        })
    }

    /// One hold, released or not.
    pub(crate) fn hold(&self, id: HoldId) -> Result<Hold> {
        let row = layout::hold(&id);
        let stored: StoredHold = self
            .store()
            .get(&row, "hold")?
            .ok_or(Error::HoldNotFound(id))?;
        self.open_hold(stored, &row)
    }

    fn holds_unchecked(&self, subject: Option<&SubjectId>) -> Result<Vec<Hold>> {
        let ident = subject
            .map(|s| self.find(s))
            .transpose()?
            .map(|i| i.subject);
        let mut out = Vec::new();
        for r in self
            .store()
            .scan::<StoredHold>(&layout::table(layout::Table::Hold), "hold")
        {
            let (row, h) = r?;
            if ident.is_none_or(|s| s == h.hold.subject) {
                out.push(self.open_hold(h, &row)?);
            }
        }
        out.sort_by_key(|h| h.placed_at);
        Ok(out)
    }

    /// Records a subject event (account closed, contract ended) that retention counts from, and
    /// schedules the records whose retention it starts.
    pub fn record_event(&self, subject: &SubjectId, kind: EventKind, at: Timestamp) -> Result<()> {
        self.operation("record_event", || {
            let _no_destruction = self.no_destruction()?;
            let ident = self.find(subject)?.subject;
            let _g = self.lock_subject(&ident)?;
            let mut state = self.state_to_change(&ident)?;
            let before = state.events.clone();
            state.events.insert(kind.name().to_owned(), at);
            let mut txn = Txn::new();
            txn.put(layout::subject(&ident), &state);
            if let Some(p) = self.policy() {
                for r in self.stored_records(&ident) {
                    let (id, e) = r?;
                    if let Some(old) = p.expires_at(&e.meta.category, e.meta.collected_at, &before)
                    {
                        txn.delete(layout::due(old, &ident, &id));
                    }
                    if let Some(new) =
                        p.expires_at(&e.meta.category, e.meta.collected_at, &state.events)
                    {
                        txn.put(layout::due(new, &ident, &id), &DueKind::Expiry);
                    }
                    if state.pending_erasure.is_some_and(|t| e.updated_at <= t)
                        && let Some(until) =
                            p.retained_until(&e.meta.category, e.meta.collected_at, &state.events)
                        && until != Timestamp::MAX
                    {
                        txn.put(layout::due(until, &ident, &id), &DueKind::PendingErasure);
                    }
                }
            }
            let d = self.draft(AuditOp::Event).subject(ident).note(kind.name());
            self.commit(txn, vec![d])
        })
    }

    /// Sets the retention policy, stores it in the vault and reschedules every record (a scan of
    /// the whole vault).
    pub fn set_policy(&self, policy: Policy) -> Result<()> {
        self.operation("set_policy", || {
            let _d = self.exclusive_destruction()?;
            let mut txn = Txn::new();
            for k in self.store().scan_keys(&layout::table(layout::Table::Due)) {
                let k = k?;
                // Pending erasures stay; expiries are recomputed.
                if self.store().get::<DueKind>(&k, "due")? == Some(DueKind::Expiry) {
                    txn.delete(k);
                }
            }
            let mut states = std::collections::BTreeMap::new();
            for r in self
                .store()
                .scan::<RecordEntry>(&layout::table(layout::Table::Record), "record")
            {
                let (k, e) = r?;
                let Some((sref, id)) = layout::parse_record(&k) else {
                    continue;
                };
                if let std::collections::btree_map::Entry::Vacant(v) = states.entry(sref) {
                    v.insert(self.state(&sref)?);
                }
                let events = &states[&sref].events;
                if let Some(at) = policy.expires_at(&e.meta.category, e.meta.collected_at, events) {
                    txn.put(layout::due(at, &sref, &id), &DueKind::Expiry);
                }
            }
            txn.put(layout::meta(layout::POLICY), policy.source());
            // Every other process of a shared store reloads the policy at its next check.
            let generation = self.keys().advance_generation(self.store(), &mut txn)?;
            let d = self
                .draft(AuditOp::PolicySet)
                .note(policy.version.clone().unwrap_or_default());
            self.commit_synced(txn, vec![d])?;
            if let Some(g) = generation {
                self.keys().note_generation(g);
            }
            *self.inner.policy.write().unwrap_or_else(|p| p.into_inner()) =
                Some(std::sync::Arc::new(policy));
            Ok(())
        })
    }
}
