//! Erasure by crypto-shredding: the one guarded path to destruction.
//!
//! Every way to destroy data — [`Vault::delete`], the erase calls, the retention sweep, consent
//! withdrawal with erasure, re-applying a ledger after a restore — plans through
//! `Vault::plan_destruction` and carries the plan out with `Vault::execute`. Planning checks
//! every record against the active legal holds and the minimum retention of its category; what
//! they protect is retained (and reported, with the hold ids or the date retention ends), what
//! they do not is destroyed by destroying keys:
//!
//! - a (subject, category) group with nothing retained loses its key: O(1) whatever its size;
//! - a group with some records retained is re-keyed: the retained records are sealed under a new
//!   generation of the key, and the old generation is destroyed;
//! - a subject with nothing left loses its identity key, its subject key and its index entry:
//!   nothing in the vault links its identifier to anything any more. An entry in the erasure
//!   ledger (no personal data) records what was destroyed.
//!
//! Key destruction ratchets the touched shards (see the `keys` module) and replaces the vault file
//! before the call returns. The rows of destroyed records stay (unreadable) until the sweep
//! reclaims their space.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditOp, Draft};
use crate::crypto::{self, SecretKey};
use crate::error::{ErasureError, Error, Result, StorageError};
use crate::ids::{BlindIndex, HoldId, RecordId, SubjectId, SubjectRef};
use crate::keys::{GroupKey, Purge, SUBJECT_GROUP};
use crate::model::Category;
use crate::policy::holds::Hold;
use crate::report::{ErasureCause, erase_note};
use crate::storage::entries::{DueKind, RecordEntry, StoredRecord, SubjectState};
use crate::storage::{Txn, layout, members};
use crate::vault::{StoredHold, Vault};

/// A record, or a whole category of a subject, that was destroyed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// The category.
    pub category: Category,
    /// The record; `None` when every record of the category was destroyed at once.
    pub record: Option<RecordId>,
}

/// Why a record was kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RetainReason {
    /// Legal holds cover it.
    Held {
        /// The holds.
        holds: Vec<HoldId>,
    },
    /// Its category's minimum retention has not passed. `until: None` while the retention's
    /// anchor event (say, the account's closing) has not happened.
    MinimumRetention {
        /// When it ends.
        until: Option<Timestamp>,
    },
}

/// A record that was kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// The record.
    pub record: RecordId,
    /// Its category.
    pub category: Category,
    /// Why.
    pub reason: RetainReason,
}

/// What an erasure did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReport {
    /// What was destroyed.
    pub erased: Vec<Erased>,
    /// What was kept, and why. Kept records of a subject-wide erasure stay pending: the sweep
    /// destroys them once nothing protects them any more.
    pub retained: Vec<Retained>,
    /// Whether the subject is gone entirely (nothing links its identifier to anything).
    pub subject_erased: bool,
}

/// An entry of the erasure ledger: what was destroyed, by internal reference only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the ledger.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// The subject's internal reference.
    pub subject: SubjectRef,
    /// Categories destroyed whole, with the key generation destroyed (and every older one).
    pub categories: Vec<(String, u32)>,
    /// Records destroyed one by one.
    pub records: Vec<RecordId>,
    /// Whether the subject itself was destroyed.
    pub subject_erased: bool,
}

/// What a destruction covers.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    Subject,
    Category(Category),
    Records(BTreeSet<RecordId>),
    /// Records of a pending subject erasure; completes the subject when nothing is left.
    Pending(BTreeSet<RecordId>),
    /// Groups up to a generation (re-applying a ledger).
    Groups(Vec<(String, u32)>),
    /// Nothing but the subject itself, if it holds no record and nothing is pending for it (the
    /// sweep, once the span the policy keeps a subject's state for has passed).
    Finish,
}

/// The record id of a due entry that concerns a subject, not a record.
pub(crate) const NO_RECORD: RecordId = RecordId([0; 16]);

/// Destruction planned across one or more subjects, carried out by one key ratchet.
#[derive(Default)]
pub(crate) struct Plan {
    txn: Txn,
    destroy: Vec<Vec<u8>>,
    create: Vec<(Vec<u8>, SecretKey)>,
    purge: Purge,
    drafts: Vec<Draft>,
    ledger: Vec<LedgerEntry>,
    /// Re-schedule retained records (the sweep removed their due entries).
    pub(crate) revisit_retained: bool,
    /// Re-applying a ledger: what the ledger destroyed already passed the guard once.
    pub(crate) replay: bool,
}

impl Plan {
    pub(crate) fn take_txn(&mut self) -> Txn {
        std::mem::take(&mut self.txn)
    }
    pub(crate) fn set_txn(&mut self, txn: Txn) {
        self.txn = txn;
    }
    pub(crate) fn add_draft(&mut self, d: Draft) {
        self.drafts.push(d);
    }
    /// The store writes planned so far, before the ratchet re-wraps the touched shards' keys.
    pub(crate) fn writes(&self) -> usize {
        self.txn.len() + self.destroy.len() + self.create.len() + self.drafts.len()
    }
}

struct Group {
    category: String,
    generation: u32,
}

/// The member chunks' keys of a key generation, and the records they list.
type GroupRecords = (Vec<Vec<u8>>, Vec<(RecordId, RecordEntry)>);

impl Vault {
    /// Erases everything held about a subject that no hold or minimum retention protects, at once
    /// and durably. What is protected stays readable and pending: the sweep destroys it once the
    /// last hold is released and its retention has passed.
    /// Closes the subject's open erasure requests. Where the policy requires the requester's
    /// identity verified before an erasure request is answered, an open erasure request not yet
    /// verified refuses the erasure, naming the request
    /// ([`RequestError::IdentityNotVerified`](crate::RequestError)), and nothing is erased.
    pub fn erase_subject(&self, subject: &SubjectId) -> Result<ErasureReport> {
        self.operation("erase_subject", || {
            let ident = self.find(subject)?.subject;
            let mut answered = false;
            {
                let kinds = [crate::policy::RequestKind::Erasure];
                let _g = self.lock_subject(&ident)?;
                let mut txn = Txn::new();
                self.answer_requests_in(&mut txn, &ident, &kinds)?;
                if !txn.is_empty() {
                    self.commit(txn, Vec::new())?;
                    answered = true;
                }
            }
            let cause = if answered {
                ErasureCause::Request
            } else {
                ErasureCause::ErasureCall
            };
            self.destroy_now(ident, Scope::Subject, cause)
        })
    }

    /// Erases one category of a subject. The category must be known ([`Vault::known_category`])
    /// or held by the subject; a known one the subject does not hold erases nothing.
    pub fn erase_category(
        &self,
        subject: &SubjectId,
        category: &Category,
    ) -> Result<ErasureReport> {
        self.operation("erase_category", || {
            let ident = self.find(subject)?.subject;
            self.known_or_held_category(&ident, category)?;
            self.destroy_now(
                ident,
                Scope::Category(category.clone()),
                ErasureCause::ErasureCall,
            )
        })
    }

    /// Erases one record (the report says if it was retained instead, and why). This is the
    /// answer to an erasure request for one record: a retained record is a result, not an
    /// error. [`Vault::delete`] is the same erasure for a service removing its own record, where
    /// a protected record is an error.
    pub fn erase_record(&self, subject: &SubjectId, record: RecordId) -> Result<ErasureReport> {
        self.operation("erase_record", || {
            let ident = self.find(subject)?.subject;
            self.destroy_now(
                ident,
                Scope::Records([record].into()),
                ErasureCause::ErasureCall,
            )
        })
    }

    /// Deletes one record: [`Vault::erase_record`], failing and destroying nothing when a hold
    /// ([`ErasureError::Held`]) or minimum retention ([`ErasureError::Retained`]) protects it.
    /// For a service's own removals (a user deleting a draft), where being kept is an error to
    /// show; to answer an erasure request use [`Vault::erase_record`], whose report says what was
    /// kept and why.
    pub fn delete(&self, subject: &SubjectId, record: RecordId) -> Result<()> {
        self.operation("delete", || {
            let report = self.erase_record(subject, record)?;
            match report.retained.into_iter().next() {
                None => Ok(()),
                Some(Retained {
                    reason: RetainReason::Held { holds },
                    ..
                }) => Err(ErasureError::Held { holds }.into()),
                Some(Retained {
                    reason: RetainReason::MinimumRetention { until },
                    ..
                }) => Err(ErasureError::Retained {
                    until: until.unwrap_or(Timestamp::MAX),
                }
                .into()),
            }
        })
    }

    /// Destroys what `scope` covers and nothing protects, now; the audit entry records `cause`
    /// and what was retained, and why ([`erase_note`]).
    pub(crate) fn destroy_now(
        &self,
        ident: SubjectRef,
        scope: Scope,
        cause: ErasureCause,
    ) -> Result<ErasureReport> {
        let _d = self.exclusive_destruction()?;
        // Looked up before the lock: another erasure (of this process or another) may have
        // destroyed the subject meanwhile.
        if !self.store().contains(&layout::subject(&ident))? {
            return Err(Error::SubjectNotFound);
        }
        let now = self.now();
        let erase = self.draft(AuditOp::Erase).subject(ident);
        let mut plan = Plan::default();
        let report = self.plan_destruction(&mut plan, ident, scope, now)?;
        plan.drafts
            .insert(0, erase.note(erase_note(cause, &report)));
        crate::pause::point(crate::pause::DESTRUCTION_PLANNED);
        self.execute(plan)?;
        Ok(report)
    }

    /// Active holds of a subject.
    pub(crate) fn active_holds_of(&self, ident: &SubjectRef, now: Timestamp) -> Result<Vec<Hold>> {
        let mut out = Vec::new();
        for k in self.store().scan_keys(&layout::holds_of(ident)) {
            let k = k?;
            let Some(id) = layout::parse_subject_hold(&k) else {
                continue;
            };
            if let Some(h) = self.store().get::<StoredHold>(&layout::hold(&id), "hold")?
                && h.hold.is_active(now)
            {
                out.push(h.hold);
            }
        }
        Ok(out)
    }

    /// Active holds of every subject (for statistics).
    pub(crate) fn active_holds_by_subject(
        &self,
        now: Timestamp,
    ) -> Result<BTreeMap<SubjectRef, Vec<Hold>>> {
        let mut out: BTreeMap<SubjectRef, Vec<Hold>> = BTreeMap::new();
        for r in self
            .store()
            .scan::<StoredHold>(&layout::table(layout::Table::Hold), "hold")
        {
            let (_, StoredHold { hold: h, .. }) = r?;
            if h.is_active(now) {
                out.entry(h.subject).or_default().push(h);
            }
        }
        Ok(out)
    }

    fn current_groups(&self, ident: &SubjectRef) -> Result<Vec<Group>> {
        let mut groups: BTreeMap<String, u32> = BTreeMap::new();
        for k in self.store().scan_keys(&layout::data_keys_of_subject(ident)) {
            let Some((_, cat, generation)) = layout::parse_data_key(&k?) else {
                return Err(StorageError::Malformed("data key address").into());
            };
            if cat == SUBJECT_GROUP {
                continue;
            }
            let g = groups.entry(cat).or_insert(generation);
            *g = (*g).max(generation);
        }
        Ok(groups
            .into_iter()
            .map(|(category, generation)| Group {
                category,
                generation,
            })
            .collect())
    }

    /// Plans the destruction of `scope` of one subject; adds to `plan`. Call with the destruction
    /// lock held.
    pub(crate) fn plan_destruction(
        &self,
        plan: &mut Plan,
        ident: SubjectRef,
        scope: Scope,
        now: Timestamp,
    ) -> Result<ErasureReport> {
        let policy = if plan.replay { None } else { self.policy() };
        let _subject = self.lock_subject(&ident)?;
        let mut state: SubjectState = self.state_to_change(&ident)?;
        let mut state_changed = false;
        let holds = if plan.replay {
            Vec::new()
        } else {
            self.active_holds_of(&ident, now)?
        };
        let mut groups = self.current_groups(&ident)?;
        let mut report = ErasureReport::default();
        let mut ledger = LedgerEntry {
            seq: 0,
            at: now,
            subject: ident,
            categories: Vec::new(),
            records: Vec::new(),
            subject_erased: false,
        };
        let wanted: Option<&BTreeSet<RecordId>> = match &scope {
            Scope::Records(r) | Scope::Pending(r) => Some(r),
            _ => None,
        };
        match &scope {
            Scope::Subject => {}
            Scope::Category(c) => groups.retain(|g| g.category == c.name()),
            Scope::Records(ids) | Scope::Pending(ids) => {
                let mut cats = HashSet::new();
                for id in ids {
                    match self
                        .store()
                        .get::<RecordEntry>(&layout::record(&ident, id), "record")?
                    {
                        Some(e)
                            if self
                                .keys()
                                .data_key_gen(
                                    self.store(),
                                    &ident,
                                    e.meta.category.name(),
                                    e.key_gen,
                                )?
                                .is_some() =>
                        {
                            cats.insert(e.meta.category.name().to_owned());
                        }
                        _ if ids.len() == 1 && !plan.replay => {
                            return Err(Error::RecordNotFound(*id));
                        }
                        _ => {}
                    }
                }
                groups.retain(|g| cats.contains(&g.category));
            }
            Scope::Groups(list) => groups.retain(|g| {
                list.iter()
                    .any(|(c, generation)| *c == g.category && g.generation <= *generation)
            }),
            Scope::Finish => groups.clear(),
        }
        let has_record_holds = holds
            .iter()
            .any(|h| matches!(h.scope, crate::policy::holds::HoldScope::Record(_)));
        let vault_id = *self.keys().ring().vault_id();
        for g in groups {
            let category: Category = g
                .category
                .parse()
                .map_err(|_| StorageError::Malformed("stored category"))?;
            let group_held = holds.iter().any(|h| h.covers_category(&category));
            let has_min = policy
                .as_ref()
                .and_then(|p| p.rule(&category))
                .is_some_and(|r| r.min.is_some());
            let scan = wanted.is_some() || group_held || has_record_holds || has_min;
            if !scan {
                self.destroy_group(plan, &ident, &g, &mut ledger);
                report.erased.push(Erased {
                    category: category.clone(),
                    record: None,
                });
                continue;
            }
            let mut erase: Vec<RecordId> = Vec::new();
            let mut keep: Vec<(RecordId, RecordEntry)> = Vec::new();
            let (chunks, records) = self.group_records(&ident, &g.category, g.generation)?;
            for (id, e) in records {
                if wanted.is_some_and(|w| !w.contains(&id)) {
                    keep.push((id, e));
                    continue;
                }
                let held: Vec<HoldId> = holds
                    .iter()
                    .filter(|h| h.covers(&category, &id))
                    .map(|h| h.id)
                    .collect();
                let until = policy
                    .as_ref()
                    .and_then(|p| p.retained_until(&category, e.meta.collected_at, &state.events))
                    .filter(|u| *u > now);
                let reason = if !held.is_empty() {
                    Some(RetainReason::Held { holds: held })
                } else {
                    until.map(|u| RetainReason::MinimumRetention {
                        until: (u != Timestamp::MAX).then_some(u),
                    })
                };
                match reason {
                    Some(reason) => {
                        if matches!(scope, Scope::Subject) || plan.revisit_retained {
                            let kind = if matches!(scope, Scope::Subject | Scope::Pending(_)) {
                                DueKind::PendingErasure
                            } else {
                                DueKind::Expiry
                            };
                            // Revisit when the retention ends, or at every sweep while held.
                            let at = match &reason {
                                RetainReason::MinimumRetention { until: Some(u) } => Some(*u),
                                RetainReason::MinimumRetention { until: None } => None,
                                RetainReason::Held { .. } => Some(now),
                            };
                            if let Some(at) = at {
                                plan.txn.put(layout::due(at, &ident, &id), &kind);
                            }
                        }
                        report.retained.push(Retained {
                            record: id,
                            category: category.clone(),
                            reason,
                        });
                        keep.push((id, e));
                    }
                    None => erase.push(id),
                }
            }
            if erase.is_empty() {
                continue;
            }
            if keep.is_empty() {
                self.destroy_group(plan, &ident, &g, &mut ledger);
                report.erased.push(Erased {
                    category: category.clone(),
                    record: None,
                });
                continue;
            }
            // Re-key: the kept records move to a new key generation; the old one is destroyed.
            let old_key = self
                .keys()
                .data_key_gen(self.store(), &ident, &g.category, g.generation)?
                .ok_or(StorageError::Malformed("missing group key"))?;
            let new_gen = self
                .allocate_gen(&ident, &g.category, &mut state)?
                .max(g.generation + 1);
            state_changed = true;
            let (addr, secret) = self.keys().fresh_key(&ident, &g.category, new_gen);
            let new_key = crypto::DataKey::new(&secret);
            // The old generation's chunks keep only what reclamation is to delete.
            for chunk in chunks {
                plan.txn.delete(chunk);
            }
            members::add(&mut plan.txn, &ident, &g.category, g.generation, &erase);
            let kept: Vec<RecordId> = keep.iter().map(|(id, _)| *id).collect();
            members::add(&mut plan.txn, &ident, &g.category, new_gen, &kept);
            for (id, e) in keep {
                let e = StoredRecord::from_entry(e);
                let payload = zeroize::Zeroizing::new(self.open_record(&old_key, &ident, id, &e)?);
                let e = e.head;
                let resealed = crate::vault::seal_record(
                    &new_key,
                    &vault_id,
                    &ident,
                    id,
                    e.version,
                    new_gen,
                    e.meta,
                    &payload,
                    e.updated_at,
                );
                plan.txn
                    .put_raw(layout::record(&ident, &id), resealed.bytes);
            }
            plan.create.push((addr, secret));
            self.destroy_group(plan, &ident, &g, &mut ledger);
            ledger.categories.pop();
            ledger.records.extend(erase.iter().copied());
            report.erased.extend(erase.into_iter().map(|id| Erased {
                category: category.clone(),
                record: Some(id),
            }));
        }
        // A hold on the whole subject keeps the subject itself, records or not (a category's or a
        // record's keeps what it covers).
        let subject_held = holds
            .iter()
            .any(|h| matches!(h.scope, crate::policy::holds::HoldScope::Subject));
        if matches!(scope, Scope::Subject) {
            if report.retained.is_empty() && !subject_held {
                self.destroy_subject(plan, &ident, &state)?;
                ledger.subject_erased = true;
                report.subject_erased = true;
            } else {
                if state.pending_erasure.is_none() {
                    state.pending_erasure = Some(now);
                    state_changed = true;
                }
                if report.retained.is_empty() {
                    // Held with nothing left to retain: the subject itself is what the hold
                    // keeps; every sweep looks again, and the first after the release finishes.
                    plan.txn.put(
                        layout::due(now, &ident, &NO_RECORD),
                        &DueKind::FinishSubject,
                    );
                }
            }
        }
        if matches!(scope, Scope::Pending(_))
            && report.retained.is_empty()
            && state.pending_erasure.is_some()
            && !self.has_records_left(&ident, &report)?
        {
            self.destroy_subject(plan, &ident, &state)?;
            ledger.subject_erased = true;
            report.subject_erased = true;
        }
        // A subject whose last record the sweep destroyed is finished like an erased one, unless
        // something is pending for it or the policy keeps its state for a while.
        let swept = plan.revisit_retained && matches!(scope, Scope::Records(_));
        if (swept || matches!(scope, Scope::Finish))
            && !report.subject_erased
            && report.retained.is_empty()
            && holds.is_empty()
            && !self.has_records_left(&ident, &report)?
            && !self.has_open_requests(&ident)?
        {
            match policy.as_ref().and_then(|p| p.keep_subject_state) {
                Some(span) if swept => plan.txn.put(
                    layout::due(crate::policy::add_span(now, span), &ident, &NO_RECORD),
                    &DueKind::FinishSubject,
                ),
                _ => {
                    self.destroy_subject(plan, &ident, &state)?;
                    ledger.subject_erased = true;
                    report.subject_erased = true;
                }
            }
        }
        if matches!(scope, Scope::Finish) && subject_held && state.pending_erasure.is_some() {
            plan.txn.put(
                layout::due(now, &ident, &NO_RECORD),
                &DueKind::FinishSubject,
            );
        }
        if state_changed && !report.subject_erased {
            plan.txn.put(layout::subject(&ident), &state);
        }
        if !ledger.categories.is_empty() || !ledger.records.is_empty() || ledger.subject_erased {
            plan.ledger.push(ledger);
        }
        Ok(report)
    }

    /// The records of one key generation of a group, through the group's member chunks (the
    /// cost is what the group holds, whatever else the subject holds), and the chunks' keys.
    fn group_records(
        &self,
        ident: &SubjectRef,
        category: &str,
        generation: u32,
    ) -> Result<GroupRecords> {
        let mut chunks = Vec::new();
        let mut out = Vec::new();
        for chunk in self
            .store()
            .member_chunks(&layout::members_of_generation(ident, category, generation))
        {
            let chunk = chunk?;
            for id in chunk.records {
                let e = self
                    .store()
                    .get::<RecordEntry>(&layout::record(ident, &id), "record")?
                    .ok_or(StorageError::Malformed("member without its record"))?;
                if e.meta.category.name() != category || e.key_gen != generation {
                    return Err(StorageError::Malformed("member of another group").into());
                }
                out.push((id, e));
            }
            chunks.push(chunk.key);
        }
        Ok((chunks, out))
    }

    /// Whether a subject keeps a readable record once `report`'s destructions are done.
    fn has_records_left(&self, ident: &SubjectRef, report: &ErasureReport) -> Result<bool> {
        let destroyed = self.destroyed_groups(ident)?;
        let whole: HashSet<&str> = report
            .erased
            .iter()
            .filter(|e| e.record.is_none())
            .map(|e| e.category.name())
            .collect();
        let single: HashSet<RecordId> = report.erased.iter().filter_map(|e| e.record).collect();
        for r in self.stored_records(ident) {
            let (id, e) = r?;
            let cat = e.meta.category.name();
            if destroyed.contains(&(cat.to_owned(), e.key_gen))
                || whole.contains(cat)
                || single.contains(&id)
            {
                continue;
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn destroy_group(
        &self,
        plan: &mut Plan,
        ident: &SubjectRef,
        g: &Group,
        ledger: &mut LedgerEntry,
    ) {
        plan.destroy
            .push(layout::data_key(ident, &g.category, g.generation));
        plan.txn
            .put(layout::reclaim(ident, &g.category, g.generation), &());
        plan.purge.groups.insert(GroupKey::new(*ident, &g.category));
        plan.drafts.push(
            self.draft(AuditOp::KeyDestruction)
                .subject(*ident)
                .category(&g.category),
        );
        ledger.categories.push((g.category.clone(), g.generation));
    }

    fn destroy_subject(
        &self,
        plan: &mut Plan,
        ident: &SubjectRef,
        state: &SubjectState,
    ) -> Result<()> {
        let subject_key = self
            .keys()
            .data_key_gen(self.store(), ident, SUBJECT_GROUP, 0)?
            .ok_or(StorageError::Malformed("missing subject key"))?;
        let blind = crypto::open(
            &subject_key,
            &self.keys().blind_ad(ident),
            &state.sealed_blind,
        )?;
        let blind = BlindIndex(
            blind
                .as_slice()
                .try_into()
                .map_err(|_| StorageError::Malformed("sealed blind index"))?,
        );
        let at = self.keys().index_addr(&blind);
        plan.destroy.push(layout::identity_key(&at));
        plan.destroy.push(layout::data_key(ident, SUBJECT_GROUP, 0));
        plan.txn.delete(layout::index(&at));
        plan.txn.delete(layout::subject(ident));
        for k in self.store().scan_keys(&layout::holds_of(ident)) {
            plan.txn.delete(k?);
        }
        // Their recipients and grounds are sealed under the subject key destroyed here; the rows
        // go too.
        for k in self.store().scan_keys(&layout::disclosures_of(ident)) {
            plan.txn.delete(k?);
        }
        plan.purge.subjects.insert(*ident);
        plan.purge.identities.push(blind);
        plan.drafts.push(
            self.draft(AuditOp::KeyDestruction)
                .subject(*ident)
                .note("subject"),
        );
        Ok(())
    }

    /// Carries a plan out: one ratchet, one sync, one vault-file replacement.
    pub(crate) fn execute(&self, mut plan: Plan) -> Result<()> {
        if !plan.ledger.is_empty() {
            let mut seq = self
                .store()
                .get::<u64>(&layout::meta(layout::LEDGER_HEAD), "ledger head")?
                .unwrap_or(0);
            for mut e in std::mem::take(&mut plan.ledger) {
                seq += 1;
                e.seq = seq;
                plan.txn.put(layout::ledger(seq), &e);
            }
            plan.txn.put(layout::meta(layout::LEDGER_HEAD), &seq);
        }
        let drafts = plan.drafts;
        if plan.destroy.is_empty() && plan.create.is_empty() {
            return self.commit_synced(plan.txn, drafts);
        }
        let store = self.store();
        let trail = &self.inner.trail;
        self.keys().ratchet(
            store,
            &plan.destroy,
            plan.create,
            plan.txn,
            &plan.purge,
            |t| trail.commit(store, t, drafts),
        )
    }

    /// The erasure ledger, oldest first.
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>> {
        self.operation("ledger", || {
            self.store()
                .scan::<LedgerEntry>(&layout::table(layout::Table::Ledger), "ledger entry")
                .map(|r| r.map(|(_, e)| e).map_err(Into::into))
                .collect()
        })
    }
}

#[cfg(test)]
mod attacker_tests {
    //! Erasure against the disk: the attacker holds the store files from before an erasure and
    //! every secret of the vault after it, the root secret included.

    use std::path::Path;

    use crate::crypto::{DataKey, KdfParams, RootSecret};
    use crate::forensic_tests::{open_record, unseal_ring};
    use crate::model::{Category, Purpose, RecordMeta};
    use crate::storage::engine::Engine;
    use crate::storage::entries::{RecordEntry, WrappedKey};
    use crate::storage::sled_engine::SledEngine;
    use crate::storage::{codec, layout, vault_file};
    use crate::{SubjectId, Vault};

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    /// Every record the attacker can decrypt: (record id, plaintext).
    fn attack(vault_dir: &Path, store_dir: &Path) -> Vec<(crate::RecordId, Vec<u8>)> {
        let header = vault_file::read(vault_dir).unwrap();
        let vault_id = header.vault_id;
        let slots = std::fs::read(vault_dir.join(crate::keysource::slot::FILE_NAME)).unwrap();
        let ring = unseal_ring(header, "pw-passphrase", &slots).unwrap();
        let engine =
            SledEngine::open(store_dir, None, crate::storage::DEFAULT_CACHE_BYTES).unwrap();
        let mut keys = Vec::new();
        for r in engine.scan_prefix(&layout::table(layout::Table::Key)) {
            let (addr, v) = r.unwrap();
            let w: WrappedKey = codec::decode(&v, "wrapped key").unwrap();
            if let Ok(secret) = ring.unwrap(&addr, &w) {
                keys.push(DataKey::new(&secret));
            }
        }
        let mut opened = Vec::new();
        for r in engine.scan_prefix(&layout::table(layout::Table::Record)) {
            let (k, v) = r.unwrap();
            let (sref, id) = layout::parse_record(&k).unwrap();
            let e: RecordEntry = codec::decode(&v, "record").unwrap();
            if let Some(pt) = keys
                .iter()
                .find_map(|key| open_record(&vault_id, &sref, &id, &e, key))
            {
                opened.push((id, pt));
            }
        }
        opened
    }

    /// Whether the bytes whose complement is `complement` appear anywhere in this process's
    /// writable memory (heap, stacks, anonymous mappings), read through `/proc/self/mem`. The
    /// caller holds only the complement, so its own copy is never what is found.
    fn in_process_memory(complement: &[u8; 32]) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
        let matches = |w: &[u8]| w.iter().zip(complement).all(|(b, c)| *b == !*c);
        let mut buf = vec![0u8; 1 << 20];
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            else {
                continue;
            };
            if !perms.starts_with("rw") {
                continue;
            }
            let mut at = start;
            while at < end {
                let n = ((end - at) as usize).min(buf.len());
                if mem.seek(SeekFrom::Start(at)).is_err() || mem.read_exact(&mut buf[..n]).is_err()
                {
                    break;
                }
                if buf[..n].windows(32).any(matches) {
                    return true;
                }
                // Overlap the chunks so that a key across a boundary is seen.
                at += (n as u64).saturating_sub(31).max(1);
            }
        }
        false
    }

    // Guards: the key ring in the clear passed through a thread's scratch buffer that was never
    // wiped (and was reallocated while it grew), so a destroyed shard key stayed in the heap after
    // the erasure that destroyed it.
    #[test]
    fn no_destroyed_shard_key_stays_in_the_process_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let v = Vault::builder(tmp.path())
            .kdf(KdfParams::insecure_for_tests())
            .create(RootSecret::passphrase("memory-scan-passphrase"))
            .unwrap();
        let p = Purpose::new("service").unwrap();
        let mut found = Vec::new();
        for run in 0..20 {
            let s = SubjectId::new(format!("memory-{run}@example.com")).unwrap();
            for c in [Category::Contact, Category::Usage] {
                v.put(&s, RecordMeta::new(c).purpose(p.clone()), b"payload")
                    .unwrap();
            }
            let shard = layout::shard_of(v.find(&s).unwrap().subject.as_bytes());
            let destroyed = v.keys().shard_key_complement(shard);
            assert!(v.erase_subject(&s).unwrap().subject_erased);
            assert_ne!(v.keys().shard_key_complement(shard), destroyed);
            if in_process_memory(&destroyed) {
                found.push(run);
            }
        }
        assert!(
            found.is_empty(),
            "a destroyed shard key is still in memory after the erasure in runs {found:?} of 20"
        );
        // Closed and dropped, the vault leaves none of its shard keys behind either.
        let live: Vec<[u8; 32]> = (0..20u16)
            .map(|i| v.keys().shard_key_complement(i * 200))
            .collect();
        v.close().unwrap();
        let left: Vec<usize> = (0..live.len())
            .filter(|&i| in_process_memory(&live[i]))
            .collect();
        assert!(
            left.is_empty(),
            "shard keys {left:?} stay in memory after close"
        );
    }

    #[test]
    fn erased_keys_leave_the_cache_and_nothing_prints_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let v = Vault::builder(tmp.path())
            .kdf(KdfParams::insecure_for_tests())
            .create(RootSecret::passphrase("pass-marker-1"))
            .unwrap();
        let s = SubjectId::new("subject-marker-2@example.com").unwrap();
        let p = Purpose::new("service").unwrap();
        let id = v
            .put(
                &s,
                RecordMeta::new(Category::Contact).purpose(p.clone()),
                b"payload-marker-3",
            )
            .unwrap();
        v.put(
            &s,
            RecordMeta::new(Category::Usage).purpose(p.clone()),
            b"payload-marker-4",
        )
        .unwrap();
        let record = v.get(&s, id, &p).unwrap();
        let sref = v.find(&s).unwrap().subject;
        assert!(v.keys().cached_keys_of(&sref) >= 2);
        let printed = format!(
            "{v:?} {record:?} {s:?} {:?} {:?}",
            RootSecret::passphrase("pass-marker-1"),
            v.keys().ring().subkey(crate::keys::Job::Audit)
        );
        for marker in ["marker-1", "marker-2", "marker-3"] {
            assert!(!printed.contains(marker), "{marker} printed: {printed}");
        }
        v.erase_subject(&s).unwrap();
        assert_eq!(
            v.keys().cached_keys_of(&sref),
            0,
            "unwrapped keys of an erased subject stay cached"
        );
        let err = v.get(&s, id, &p).unwrap_err().to_string();
        assert!(!err.contains("marker"), "{err}");
    }

    #[test]
    fn stale_store_files_with_current_keys_decrypt_no_erased_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let p = Purpose::new("service").unwrap();
        let alice = SubjectId::new("alice@example.com").unwrap();
        let bob = SubjectId::new("bob@example.com").unwrap();
        let (alice_ids, bob_keep, bob_gone, bob_usage) = {
            let v = Vault::builder(&dir)
                .kdf(KdfParams::insecure_for_tests())
                .create(RootSecret::passphrase("pw-passphrase"))
                .unwrap();
            let a1 = v
                .put(
                    &alice,
                    RecordMeta::new(Category::Contact).purpose(p.clone()),
                    b"alice-contact",
                )
                .unwrap();
            let a2 = v
                .put(
                    &alice,
                    RecordMeta::new(Category::Usage).purpose(p.clone()),
                    b"alice-usage",
                )
                .unwrap();
            let b1 = v
                .put(
                    &bob,
                    RecordMeta::new(Category::Contact).purpose(p.clone()),
                    b"bob-contact-kept",
                )
                .unwrap();
            let b2 = v
                .put(
                    &bob,
                    RecordMeta::new(Category::Contact).purpose(p.clone()),
                    b"bob-contact-erased",
                )
                .unwrap();
            let b3 = v
                .put(
                    &bob,
                    RecordMeta::new(Category::Usage).purpose(p.clone()),
                    b"bob-usage-erased",
                )
                .unwrap();
            v.close().unwrap();
            (vec![a1, a2], b1, b2, b3)
        };
        // Before the erasure, the attacker's view decrypts everything.
        assert_eq!(attack(&dir, &crate::vault::store_dir(&dir)).len(), 5);
        let stale = tmp.path().join("stale-store");
        copy_dir(&crate::vault::store_dir(&dir), &stale);

        let v = Vault::builder(&dir)
            .open(RootSecret::passphrase("pw-passphrase"))
            .unwrap();
        assert!(v.erase_subject(&alice).unwrap().subject_erased);
        v.erase_record(&bob, bob_gone).unwrap();
        v.erase_category(&bob, &Category::Usage).unwrap();
        // What was not erased still reads.
        assert_eq!(
            v.get(&bob, bob_keep, &p).unwrap().payload,
            b"bob-contact-kept"
        );
        v.close().unwrap();

        let erased: Vec<crate::RecordId> = alice_ids
            .iter()
            .copied()
            .chain([bob_gone, bob_usage])
            .collect();
        for (store, what) in [
            (stale.as_path(), "stale copy"),
            (crate::vault::store_dir(&dir).as_path(), "current files"),
        ] {
            let opened = attack(&dir, store);
            for (id, pt) in &opened {
                assert!(
                    !erased.contains(id),
                    "{what}: erased record {id} decrypted: {:?}",
                    String::from_utf8_lossy(pt)
                );
            }
        }
        // The current vault still serves the kept record after reopening.
        let v = Vault::builder(&dir)
            .open(RootSecret::passphrase("pw-passphrase"))
            .unwrap();
        assert_eq!(
            v.get(&bob, bob_keep, &p).unwrap().payload,
            b"bob-contact-kept"
        );
        assert!(v.verify().unwrap().is_whole());
    }
}
