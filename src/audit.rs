//! The tamper-evident audit trail.
//!
//! Every operation appends an entry: time, actor, operation, the subject's internal reference,
//! category, record id. Never a payload, never a subject identifier. Entry `n` carries
//! `mac_n = BLAKE3-keyed(audit key, mac_{n-1} ‖ entry_n)` (`entry_n` encoded up to its chain
//! value, the last field), so that without the audit key nobody
//! can rebuild the chain; `Trail::verify` finds any altered, removed, inserted or
//! reordered entry and names the first bad one. Pruning old entries moves a keyed anchor forward,
//! so that what remains still verifies.
//!
//! Reads are buffered in memory and written with the next commit (or at flush and close); every
//! other operation's entry is written in the same atomic batch as the operation.
//!
//! On a store that several processes share, each open of the vault appends to a chain of its
//! own (chains are numbered from 1, and each new chain starts with a keyed anchor naming the head
//! of the chain before it), so that processes never wait for one another to append: one head that
//! every commit of every process rewrote would serialise them all. Verification checks every
//! chain, every anchor, and that no chain is missing; entry positions count within a chain.
//!
//! Entries are stored in blocks: the entries of one commit, up to `BLOCK_ENTRIES` per row, under
//! the position of the block's first entry. A block is one store row where an entry per row
//! would cost one row each (a batch of 1,000 puts, 512 buffered reads); the chain is still per
//! entry, and verification still names the first bad entry.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::crypto::{SecretKey, keyed_hash, keyed_hash_public};
use crate::error::{Result, StorageError};
use crate::ids::{RecordId, SubjectRef};
use crate::model::{Category, SharedText};
use crate::storage::{Store, Txn, codec, layout};
use crate::telemetry::Meter;

/// The operations the trail records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditOp {
    /// A record was written.
    Put,
    /// A record was read.
    Read,
    /// A record's payload was replaced.
    Update,
    /// A record was rectified (payload or metadata), with a reason.
    Rectify,
    /// A record was deleted.
    Delete,
    /// An erasure was requested and carried out (fully or in part).
    Erase,
    /// Keys were destroyed.
    KeyDestruction,
    /// A legal hold was placed.
    HoldPlace,
    /// A legal hold was released.
    HoldRelease,
    /// Processing was restricted.
    Restrict,
    /// A restriction was lifted.
    Unrestrict,
    /// Consent was granted.
    ConsentGrant,
    /// Consent was withdrawn.
    ConsentWithdraw,
    /// A subject's data was exported.
    Export,
    /// A subject's data was imported.
    Import,
    /// A disclosure to a third party was recorded.
    Disclosure,
    /// The retention sweep ran.
    Sweep,
    /// The root key was rotated.
    KeyRotation,
    /// A subject event was recorded.
    Event,
    /// The retention policy was set.
    PolicySet,
    /// A data-subject request was opened.
    RequestOpen,
    /// A data-subject request was closed.
    RequestClose,
    /// The identity of a data-subject request's requester was recorded as verified; the note
    /// names the request and who verified.
    RequestVerify,
    /// A backup was written.
    Backup,
    /// Erasures of a ledger were re-applied after a restore.
    LedgerApply,
    /// Audit entries were pruned.
    Prune,
    /// An operation was refused (access, grant, disclosure); the note says which and why.
    Refused,
    /// A subject's records were listed (metadata only).
    List,
    /// The subject objected to processing for a purpose.
    Object,
    /// An objection was lifted.
    LiftObjection,
    /// A subject's age status was set.
    AgeStatus,
    /// A scoped handle read what the vault holds about itself (counts, holds, requests, the
    /// trail, a verification); the note says which.
    Query,
}

/// One entry of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the trail, from 1.
    pub seq: u64,
    /// When.
    #[serde(with = "crate::storage::timestamp")]
    pub at: Timestamp,
    /// Who (named by the host).
    pub actor: String,
    /// The role the actor acted in, for a handle scoped to a principal
    /// ([`Vault::scoped`](crate::Vault::scoped)); `None` for the host's own administrative handle.
    pub role: Option<String>,
    /// What.
    pub op: AuditOp,
    /// The subject's internal reference.
    pub subject: Option<SubjectRef>,
    /// The category.
    pub category: Option<String>,
    /// The record.
    pub record: Option<RecordId>,
    /// A short note with no personal data: a hold id, a purpose, a count.
    pub note: Option<String>,
    /// The chain value.
    #[serde(with = "serde_bytes")]
    pub mac: [u8; 32],
}

/// An [`AuditEntry`] made from a draft it borrows: encodes to the same bytes, without copying
/// the draft's strings.
struct EntryView<'a> {
    seq: u64,
    at: Timestamp,
    actor: &'a str,
    role: Option<&'a str>,
    op: AuditOp,
    subject: Option<SubjectRef>,
    category: Option<&'a str>,
    record: Option<RecordId>,
    note: Option<&'a str>,
    mac: [u8; 32],
}

impl<'a> EntryView<'a> {
    /// The entry at position `seq` for `d`, its chain value zeroed.
    fn unchained(seq: u64, d: &'a Draft) -> Self {
        EntryView {
            seq,
            at: d.at,
            actor: &d.actor,
            role: d.role.as_deref(),
            op: d.op,
            subject: d.subject,
            category: d.category.as_deref(),
            record: d.record,
            note: d.note.as_deref(),
            mac: [0; 32],
        }
    }

    /// Writes the bytes the [`AuditEntry`] it stands for encodes to (its fields in the order
    /// the entry declares them), by hand: every read writes an entry, and serde's encoding cost
    /// a read more than the entry's chain value.
    fn write(&self, w: &mut codec::FieldWriter) {
        w.u64(self.seq);
        w.timestamp(self.at);
        w.str(self.actor);
        w.option_str(self.role);
        // A unit variant is encoded as its index, the order the enum declares it in.
        w.u32(self.op as u32);
        w.option(self.subject.is_some());
        if let Some(s) = &self.subject {
            w.bytes(s.as_bytes());
        }
        w.option_str(self.category);
        w.option(self.record.is_some());
        if let Some(r) = &self.record {
            w.bytes(r.as_bytes());
        }
        w.option_str(self.note);
        w.bytes(&self.mac);
    }
}

/// An entry before it is chained.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    pub(crate) at: Timestamp,
    pub(crate) actor: Arc<str>,
    pub(crate) role: Option<Arc<str>>,
    pub(crate) op: AuditOp,
    pub(crate) subject: Option<SubjectRef>,
    pub(crate) category: Option<Cow<'static, str>>,
    pub(crate) record: Option<RecordId>,
    pub(crate) note: Option<SharedText>,
}

// The steps are inlined: every read builds a draft, and a step that is a call moves the whole
// draft in and out.
impl Draft {
    #[inline]
    pub(crate) fn new(at: Timestamp, actor: Arc<str>, op: AuditOp) -> Self {
        Draft {
            at,
            actor,
            role: None,
            op,
            subject: None,
            category: None,
            record: None,
            note: None,
        }
    }
    #[inline]
    pub(crate) fn role(mut self, r: Option<Arc<str>>) -> Self {
        self.role = r;
        self
    }
    #[inline]
    pub(crate) fn subject(mut self, s: SubjectRef) -> Self {
        self.subject = Some(s);
        self
    }
    pub(crate) fn category(mut self, c: &str) -> Self {
        self.category = Some(Cow::Owned(c.to_owned()));
        self
    }
    /// The category of a record (a built-in one's name is not copied).
    #[inline]
    pub(crate) fn category_of(mut self, c: &Category) -> Self {
        self.category = Some(c.name_owned());
        self
    }
    #[inline]
    pub(crate) fn record(mut self, r: RecordId) -> Self {
        self.record = Some(r);
        self
    }
    #[inline]
    pub(crate) fn note(mut self, n: impl Into<SharedText>) -> Self {
        self.note = Some(n.into());
        self
    }
}

/// The position the chain continues from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct ChainPoint {
    pub(crate) seq: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) mac: [u8; 32],
}

/// The anchor after pruning: the last pruned entry's position, keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Anchor {
    pub(crate) point: ChainPoint,
    #[serde(with = "serde_bytes")]
    pub(crate) tag: [u8; 32],
}

/// The outcome of verifying the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// The first bad entry's sequence number and what is wrong, if any.
    pub first_bad: Option<(u64, String)>,
}

impl AuditReport {
    /// Whether the trail is intact.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// The trail of one vault.
pub(crate) struct Trail {
    key: SecretKey,
    /// This process's chain in a shared store; `None` for the one chain of a store this process
    /// owns.
    chain: Option<u64>,
    head: Mutex<ChainPoint>,
    pending: Mutex<Vec<Draft>>,
    /// Whether a read's entry is made durable before the read returns.
    durable_reads: std::sync::atomic::AtomicBool,
    /// Counts what the trail records ([`Vault::metrics`](crate::Vault::metrics)).
    meter: Meter,
}

/// Buffered reads are written once this many wait.
const PENDING_LIMIT: usize = 512;

/// The most entries one stored block holds (about 8 KiB of entries: small enough that a block
/// stays an ordinary row of the store).
pub(crate) const BLOCK_ENTRIES: usize = 64;

/// About what an entry takes in a block (a read's takes about 120 bytes): what a block is sized
/// for per entry.
const ENTRY_LEN_GUESS: usize = 128;

// A block's entries are chained into a short sequence.
const _: () = assert!(BLOCK_ENTRIES <= codec::SHORT_SEQ_MAX);

/// Decodes a stored block of entries.
pub(crate) fn decode_block(raw: &[u8]) -> std::result::Result<Vec<AuditEntry>, StorageError> {
    codec::decode::<Vec<AuditEntry>>(raw, "audit block")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Trail {
    pub(crate) fn load(store: &Store, key: SecretKey) -> Result<Self> {
        if store.is_shared() {
            return Self::start_chain(store, key);
        }
        let head = store
            .get::<ChainPoint>(&layout::meta(layout::AUDIT_HEAD), "audit head")?
            .unwrap_or_default();
        Ok(Trail {
            key,
            chain: None,
            head: Mutex::new(head),
            pending: Mutex::new(Vec::new()),
            durable_reads: std::sync::atomic::AtomicBool::new(false),
            meter: Meter::default(),
        })
    }

    /// Starts this process's chain in a shared store: the next number, anchored to the head of
    /// the chain before it.
    fn start_chain(store: &Store, key: SecretKey) -> Result<Self> {
        let _registering = store
            .coordination()
            .map(|c| {
                c.lock(
                    crate::storage::engine::SharedLock::AuditChains,
                    crate::storage::engine::LockMode::Exclusive,
                )
            })
            .transpose()?;
        let before = store
            .get::<u64>(&layout::meta(layout::AUDIT_CHAINS), "audit chains")?
            .unwrap_or(0);
        let chain = before + 1;
        let prev = if before == 0 {
            ChainPoint::default()
        } else {
            store
                .get::<ChainPoint>(&layout::audit_head(Some(before)), "audit head")?
                .unwrap_or_default()
        };
        let trail = Trail {
            key,
            chain: Some(chain),
            head: Mutex::new(ChainPoint::default()),
            pending: Mutex::new(Vec::new()),
            durable_reads: std::sync::atomic::AtomicBool::new(false),
            meter: Meter::default(),
        };
        let mut txn = Txn::new();
        txn.put(layout::meta(layout::AUDIT_CHAINS), &chain);
        txn.put(
            layout::audit_chain_anchor(chain),
            &Anchor {
                point: prev,
                tag: trail.chain_anchor_tag(chain, &prev),
            },
        );
        txn.put(layout::audit_head(Some(chain)), &ChainPoint::default());
        store.commit(txn)?;
        Ok(trail)
    }

    fn chain_anchor_tag(&self, chain: u64, p: &ChainPoint) -> [u8; 32] {
        keyed_hash(
            &self.key,
            &[
                b"chain-anchor",
                &chain.to_be_bytes(),
                &p.seq.to_be_bytes(),
                &p.mac,
            ],
        )
    }

    /// The chain value of an entry after `prev`: a keyed hash over `prev` and the entry as it
    /// is encoded, up to its own chain value (the last field: 32 bytes, its bytes last), so that
    /// the chain value is computed over what is stored without hashing 32 bytes of zeros.
    fn mac(&self, prev: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
        codec::with_encoded(entry, |e| {
            // `e` is the version byte and the entry's fields.
            let (format, fields) = e.split_first().unwrap_or((&0, &[]));
            self.mac_over(prev, *format, fields)
        })
    }

    /// [`Trail::mac`] over an entry's encoded fields (its chain value's bytes included, not
    /// hashed). A short entry (as a read's is) keeps the input within two BLAKE3 blocks. An
    /// entry is stored in the clear: its bytes are not secret.
    fn mac_over(&self, prev: &[u8; 32], format: u8, fields: &[u8]) -> [u8; 32] {
        let body = &fields[..fields.len().saturating_sub(32)];
        keyed_hash_public(&self.key, &[&prev[..], &[format][..], body])
    }

    /// Appends `unchained` (its chain value zeroed) to `block`, chained after `prev`: the chain
    /// value is [`Trail::mac`]'s, computed over the bytes the entry is stored as (encoded once),
    /// and written into them. Returns it.
    fn chain_into(
        &self,
        prev: &[u8; 32],
        block: &mut codec::ShortSeq,
        unchained: &EntryView,
    ) -> [u8; 32] {
        // A block never holds more than BLOCK_ENTRIES, far below what a short sequence takes,
        // and an entry view always encodes.
        let Some(bytes) = block.push_with(|w| unchained.write(w)) else {
            return [0; 32];
        };
        let mac = self.mac_over(prev, codec::ENTRY_FORMAT, bytes);
        // The chain value is the entry's last field: a byte string of 32 bytes, its bytes last.
        let at = bytes.len().saturating_sub(32);
        bytes[at..].copy_from_slice(&mac);
        mac
    }

    /// Whether `entry` carries the chain value it should after `prev`.
    fn chains_from(&self, prev: &[u8; 32], entry: &AuditEntry) -> bool {
        self.mac(prev, entry) == entry.mac
    }

    fn anchor_tag(&self, p: &ChainPoint) -> [u8; 32] {
        keyed_hash(&self.key, &[b"anchor", &p.seq.to_be_bytes(), &p.mac])
    }

    /// Buffers a read for the next commit, writing nothing now: for a path that cannot report a
    /// second error (a scan unwinding, an export whose writer failed).
    pub(crate) fn defer_read(&self, draft: Draft) {
        let notable = Meter::notable(std::slice::from_ref(&draft));
        lock(&self.pending).push(draft);
        self.meter.count(notable);
    }

    /// Buffers a read's entry; writes the buffer when it is full, or at once (and syncs) when
    /// reads are to be durable.
    pub(crate) fn note_read(&self, store: &Store, draft: Draft) -> Result<()> {
        let notable = Meter::notable(std::slice::from_ref(&draft));
        let full = {
            let mut p = lock(&self.pending);
            p.push(draft);
            p.len() >= PENDING_LIMIT
        };
        self.meter.count(notable);
        let durable = self
            .durable_reads
            .load(std::sync::atomic::Ordering::Relaxed);
        if full || durable {
            let seq = self.commit(store, Txn::new(), Vec::new())?;
            if durable {
                store.sync_to(seq)?;
            }
        }
        Ok(())
    }

    pub(crate) fn set_durable_reads(&self, on: bool) {
        self.durable_reads
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Commits `txn` with `drafts` (and every buffered read) chained onto the trail, and counts
    /// the entries on this thread.
    pub(crate) fn commit(&self, store: &Store, txn: Txn, drafts: Vec<Draft>) -> Result<u64> {
        let notable = Meter::notable(&drafts);
        let seq = self.append(store, txn, drafts)?;
        self.meter.count(notable);
        Ok(seq)
    }

    /// What the trail counts.
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// [`Trail::commit`], for entries counted already, on the thread that made them (a group
    /// commit writes other threads' entries).
    pub(crate) fn append(&self, store: &Store, txn: Txn, drafts: Vec<Draft>) -> Result<u64> {
        let seq = store.commit_with(
            txn,
            |txn| {
                let pending = lock(&self.pending);
                let taken = pending.len();
                let mut head = *lock(&self.head);
                // Each block is sized for its entries at once, not grown entry by entry.
                let mut left = taken + drafts.len();
                let room = |left: usize| left.min(BLOCK_ENTRIES) * ENTRY_LEN_GUESS;
                let mut block = (head.seq + 1, codec::ShortSeq::with_capacity(room(left)));
                for d in pending.iter().chain(&drafts) {
                    let seq = head.seq + 1;
                    let mac =
                        self.chain_into(&head.mac, &mut block.1, &EntryView::unchained(seq, d));
                    head = ChainPoint { seq, mac };
                    left -= 1;
                    if block.1.len() == BLOCK_ENTRIES {
                        let next = (seq + 1, codec::ShortSeq::with_capacity(room(left)));
                        let full = std::mem::replace(&mut block, next);
                        txn.put_raw_new(layout::audit_in(self.chain, full.0), full.1.into_bytes());
                    }
                }
                if block.1.len() > 0 {
                    txn.put_raw_new(layout::audit_in(self.chain, block.0), block.1.into_bytes());
                }
                txn.put(layout::audit_head(self.chain), &head);
                (taken, head)
            },
            |(taken, head)| {
                lock(&self.pending).drain(..taken);
                *lock(&self.head) = head;
            },
        )?;
        Ok(seq)
    }

    /// Whether reads wait in the buffer.
    pub(crate) fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// Checks the whole trail: the chain, or on a shared store every process's chain.
    pub(crate) fn verify(&self, store: &Store) -> Result<AuditReport> {
        if self.chain.is_none() {
            let anchor = store.get::<Anchor>(&layout::audit_anchor(None), "audit anchor")?;
            return self.verify_chain(store, None, anchor, 0);
        }
        let chains = self.chains(store)?;
        let mut total = AuditReport {
            entries: 0,
            first_bad: None,
        };
        for c in 1..=chains {
            let bad = |total: &AuditReport, why: String| AuditReport {
                entries: total.entries,
                first_bad: Some((0, why)),
            };
            let Some(start) =
                store.get::<Anchor>(&layout::audit_chain_anchor(c), "audit chain anchor")?
            else {
                return Ok(bad(
                    &total,
                    format!("chain {c}: its anchor is missing (removed)"),
                ));
            };
            if start.tag != self.chain_anchor_tag(c, &start.point) {
                return Ok(bad(&total, format!("chain {c}: its anchor was altered")));
            }
            if c > 1 && start.point.seq > 0 && !self.holds_point(store, c - 1, &start.point)? {
                return Ok(bad(
                    &total,
                    format!(
                        "chain {}: entry {} that chain {c} was anchored to is missing or altered",
                        c - 1,
                        start.point.seq
                    ),
                ));
            }
            let pruned = store.get::<Anchor>(&layout::audit_anchor(Some(c)), "audit anchor")?;
            let report = self.verify_chain(store, Some(c), pruned, total.entries)?;
            total.entries = report.entries;
            if let Some((at, why)) = report.first_bad {
                total.first_bad = Some((at, format!("chain {c}: {why}")));
                return Ok(total);
            }
        }
        Ok(total)
    }

    /// Whether chain `c` holds an entry at `p` with `p`'s chain value (or pruned it: its
    /// pruning anchor, checked with the chain, is at or after `p`).
    fn holds_point(&self, store: &Store, c: u64, p: &ChainPoint) -> Result<bool> {
        if let Some(a) = store.get::<Anchor>(&layout::audit_anchor(Some(c)), "audit anchor")?
            && a.point.seq >= p.seq
        {
            return Ok(a.point.seq > p.seq || a.point.mac == p.mac);
        }
        for r in store.scan_raw(&layout::audit_chain(Some(c))) {
            let (k, v) = r?;
            let first = layout::parse_audit_seq(&k).unwrap_or(0);
            if first > p.seq {
                break;
            }
            if let Ok(block) = decode_block(&v)
                && let Some(e) = block.iter().find(|e| e.seq == p.seq)
            {
                return Ok(e.mac == p.mac);
            }
        }
        Ok(false)
    }

    /// Checks one chain from its pruning anchor (if any) to its head; `counted` entries were
    /// checked before it.
    fn verify_chain(
        &self,
        store: &Store,
        chain: Option<u64>,
        anchor: Option<Anchor>,
        counted: u64,
    ) -> Result<AuditReport> {
        let mut prev = ChainPoint::default();
        if let Some(a) = anchor {
            if a.tag != self.anchor_tag(&a.point) {
                return Ok(AuditReport {
                    entries: counted,
                    first_bad: Some((a.point.seq, "the pruning anchor was altered".into())),
                });
            }
            prev = a.point;
        }
        let mut n = counted;
        for r in store.scan_raw(&layout::audit_chain(chain)) {
            let (k, v) = r?;
            let first = layout::parse_audit_seq(&k).unwrap_or(0);
            let bad = |n: u64, at: u64, why: &str| {
                Ok(AuditReport {
                    entries: n,
                    first_bad: Some((at, why.to_owned())),
                })
            };
            let block = match decode_block(&v) {
                Ok(b) if !b.is_empty() => b,
                _ => return bad(n + 1, first, "does not decode"),
            };
            for (position, e) in (first..).zip(block) {
                n += 1;
                if e.seq != position {
                    return bad(
                        n,
                        position,
                        "stored under another position (moved or reordered)",
                    );
                }
                if e.seq != prev.seq + 1 {
                    return bad(n, prev.seq + 1, "missing (removed)");
                }
                if !self.chains_from(&prev.mac, &e) {
                    return bad(
                        n,
                        position,
                        "altered, inserted or out of order (chain value does not match)",
                    );
                }
                prev = ChainPoint {
                    seq: e.seq,
                    mac: e.mac,
                };
            }
        }
        let head = store
            .get::<ChainPoint>(&layout::audit_head(chain), "audit head")?
            .unwrap_or_default();
        if head != prev {
            return Ok(AuditReport {
                entries: n,
                first_bad: Some((prev.seq + 1, "entries after this point were removed".into())),
            });
        }
        Ok(AuditReport {
            entries: n,
            first_bad: None,
        })
    }

    /// Removes the oldest entries, up to the first one made at or after `cutoff`; moves the
    /// anchor. A block cut by the cutoff is stored again with the entries it keeps. Removes at
    /// most about 100,000 entries per call. Returns how many were removed.
    pub(crate) fn prune(&self, store: &Store, cutoff: Timestamp) -> Result<u64> {
        if self.chain.is_none() {
            return self.prune_chain(store, None, cutoff);
        }
        let mut n = 0;
        for c in 1..=self.chains(store)? {
            n += self.prune_chain(store, Some(c), cutoff)?;
        }
        Ok(n)
    }

    /// How many chains a shared store's trail has.
    fn chains(&self, store: &Store) -> Result<u64> {
        Ok(store
            .get::<u64>(&layout::meta(layout::AUDIT_CHAINS), "audit chains")?
            .unwrap_or(0))
    }

    fn prune_chain(&self, store: &Store, chain: Option<u64>, cutoff: Timestamp) -> Result<u64> {
        let mut txn = Txn::new();
        let mut last = None;
        let mut n = 0;
        for r in store.scan_raw(&layout::audit_chain(chain)) {
            let (k, v) = r?;
            let mut block = decode_block(&v)?;
            let old = block.iter().take_while(|e| e.at < cutoff).count();
            let Some(newest_pruned) = old.checked_sub(1).map(|i| &block[i]) else {
                break;
            };
            last = Some(ChainPoint {
                seq: newest_pruned.seq,
                mac: newest_pruned.mac,
            });
            n += old as u64;
            txn.delete(k);
            if old < block.len() {
                let mut kept = block.split_off(old);
                put_block(&mut txn, chain, &mut kept);
                break;
            }
            if n >= 100_000 {
                break;
            }
        }
        let Some(point) = last else { return Ok(0) };
        txn.put(
            layout::audit_anchor(chain),
            &Anchor {
                point,
                tag: self.anchor_tag(&point),
            },
        );
        store.commit(txn)?;
        Ok(n)
    }

    /// Entries, oldest first, optionally only one subject's and only since a time.
    pub(crate) fn entries(
        &self,
        store: &Store,
        subject: Option<SubjectRef>,
        since: Option<Timestamp>,
    ) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        for r in store.scan_raw(&layout::table(layout::Table::Audit)) {
            let (_, v) = r?;
            out.extend(decode_block(&v)?.into_iter().filter(|e| {
                subject.is_none_or(|s| e.subject == Some(s)) && since.is_none_or(|t| e.at >= t)
            }));
        }
        if self.chain.is_some() {
            // The chains one after the other: in time order instead (stable within a chain).
            out.sort_by_key(|e| e.at);
        }
        Ok(out)
    }
}

/// Stores a block under its first entry's position and empties it.
fn put_block(txn: &mut Txn, chain: Option<u64>, block: &mut Vec<AuditEntry>) {
    if let Some(first) = block.first() {
        txn.put_new(layout::audit_in(chain, first.seq), block);
        block.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trail under a fixed key, with nothing appended.
    fn a_trail() -> Trail {
        Trail {
            key: SecretKey::from_bytes([5; 32]),
            chain: None,
            head: Mutex::new(ChainPoint::default()),
            pending: Mutex::new(Vec::new()),
            durable_reads: std::sync::atomic::AtomicBool::new(false),
            meter: Meter::default(),
        }
    }

    impl EntryView<'_> {
        /// The entry the view stands for.
        fn entry(&self) -> AuditEntry {
            AuditEntry {
                seq: self.seq,
                at: self.at,
                actor: self.actor.to_owned(),
                role: self.role.map(str::to_owned),
                op: self.op,
                subject: self.subject,
                category: self.category.map(str::to_owned),
                record: self.record,
                note: self.note.map(str::to_owned),
                mac: self.mac,
            }
        }

        /// What the view writes, after the version byte.
        fn encoded(&self) -> Vec<u8> {
            let mut out = vec![codec::ENTRY_FORMAT];
            self.write(&mut codec::FieldWriter::new(&mut out));
            out
        }
    }

    /// A view encodes to the bytes of the entry it stands for, alone and in a block, with and
    /// without each optional field and with varints of every width: the chain values and blocks
    /// written from views read back as entries.
    #[test]
    fn an_entry_view_encodes_as_the_entry() {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let full = Draft::new(at, "operator".into(), AuditOp::Read)
            .role(Some("support".into()))
            .subject(SubjectRef([7; 16]))
            .category("contact")
            .record(RecordId([9; 16]))
            .note("billing");
        let long = Draft::new(Timestamp::MIN, "a".repeat(300).into(), AuditOp::Query)
            .note("n".repeat(70_000));
        for (seq, d) in [
            (42, full),
            (
                u64::MAX,
                Draft::new(Timestamp::MAX, "".into(), AuditOp::Prune),
            ),
            (70_000, long),
        ] {
            let mut view = EntryView::unchained(seq, &d);
            view.mac = [3; 32];
            let entry = view.entry();
            assert_eq!(entry.actor, &*d.actor);
            assert_eq!(view.encoded(), codec::encode(&entry));
            let mut block = codec::ShortSeq::with_capacity(0);
            block.push_with(|w| view.write(w));
            block.push_with(|w| view.write(w));
            assert_eq!(
                decode_block(&block.into_bytes()).unwrap(),
                [entry.clone(), entry]
            );
        }
    }

    /// An operation's encoding is its index in the enum, as the hand-written encoding takes it.
    #[test]
    fn an_operation_encodes_as_its_index() {
        let mut seen = 0;
        for i in 0..=u8::MAX {
            if let Ok(op) = codec::decode::<AuditOp>(&[codec::ENTRY_FORMAT, i], "op") {
                assert_eq!(op as u32, u32::from(i), "{op:?}");
                seen += 1;
            }
        }
        assert!(seen >= 20, "{seen} operations");
    }

    /// An entry's chain value is computed over its fields before the chain value only: the same
    /// whatever its own chain value bytes hold (verification hashes a stored entry as it is),
    /// and for a read as the vault writes it (the default actor, a built-in category, a purpose
    /// as its note) the keyed hash's input (a length, the previous chain value, the version
    /// byte, those fields) fits two BLAKE3 blocks.
    #[test]
    fn a_chain_value_covers_the_fields_before_it_in_two_blocks_for_a_read() {
        let trail = a_trail();
        let read = Draft::new(Timestamp::now(), "pdvault".into(), AuditOp::Read)
            .subject(SubjectRef([7; 16]))
            .category_of(&Category::Contact)
            .record(RecordId([9; 16]))
            .note("billing");
        let mut view = EntryView::unchained(u64::from(u32::MAX), &read);
        let prev = [1u8; 32];
        let zeroed = trail.mac(&prev, &view.entry());
        view.mac = [0xa5; 32];
        assert_eq!(trail.mac(&prev, &view.entry()), zeroed);
        view.note = Some("billinh");
        assert_ne!(trail.mac(&prev, &view.entry()), zeroed);
        let fields = view.encoded().len() - 1 - 32;
        let hashed = 8 + 32 + 1 + fields;
        assert!(hashed <= 128, "a read's chain value hashes {hashed} bytes");
    }

    /// An entry chained into a block gets the chain value `Trail::mac` gives it, and the block
    /// is the encoding of the chained entries: what verification recomputes.
    #[test]
    fn chaining_into_a_block_matches_the_chain_value_and_the_block_encoding() {
        let trail = a_trail();
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let drafts = [
            Draft::new(at, "operator".into(), AuditOp::Read)
                .subject(SubjectRef([7; 16]))
                .category("contact")
                .record(RecordId([9; 16]))
                .note("billing"),
            Draft::new(at, "".into(), AuditOp::Prune),
        ];
        let mut block = codec::ShortSeq::with_capacity(0);
        let mut expected = Vec::new();
        let mut prev = [1u8; 32];
        for (i, d) in drafts.iter().enumerate() {
            let mut view = EntryView::unchained(10 + i as u64, d);
            let mac = trail.chain_into(&prev, &mut block, &view);
            assert_eq!(mac, trail.mac(&prev, &view.entry()));
            view.mac = mac;
            expected.push(view.entry());
            prev = mac;
        }
        assert_eq!(block.into_bytes(), codec::encode(&expected));
    }
}
