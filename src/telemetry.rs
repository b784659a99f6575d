//! What the vault tells its host about itself while it runs: counters and timings per operation,
//! readable from the vault ([`Vault::metrics`](crate::Vault::metrics)), and with the `tracing`
//! feature a [`tracing`](https://docs.rs/tracing) span per operation and an event per refusal,
//! erasure, key destruction, sweep and key rotation.
//!
//! This module owns what may be said: an operation's name, its outcome as an
//! [`ErrorKind`](crate::ErrorKind), its duration, and the subject's internal
//! [`SubjectRef`] (the reference the audit trail already carries). It never sees a subject
//! identifier, a payload, a category's records or an error's text, and may not be given them:
//! its functions take only those types.
//!
//! Spans (target `pdvault`, name `operation`, level INFO) carry `op` (the method's name),
//! `subject` (the subject's reference, once the operation has found the subject) and `outcome`
//! (`ok` or the error's kind). An operation that calls another (a typed read calls a read, a
//! scoped handle calls the vault) is one span. Events (target `pdvault`, level INFO; refusals at
//! WARN) carry `audit` (the entry's operation) and the entry's note when it has one (a reason, a
//! count or a purpose, never personal data).

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::audit::{AuditOp, Draft};
use crate::error::Result;
use crate::ids::SubjectRef;

/// Counters and timings of a vault since it was opened in this process
/// ([`Vault::metrics`](crate::Vault::metrics)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Per operation (by method name, sorted), what was called.
    pub operations: Vec<OperationMetrics>,
    /// Operations refused (by a role, a purpose, a restriction, a hold, …): each has an audit
    /// entry ([`AuditOp::Refused`]).
    pub refusals: u64,
    /// Erasures recorded in the audit trail ([`AuditOp::Erase`]): a subject, a category or a
    /// record each.
    pub erasures: u64,
    /// Epoch keys destroyed ([`AuditOp::KeyDestruction`]): the ratchets that make erasures final.
    pub key_destructions: u64,
    /// Retention sweeps run ([`AuditOp::Sweep`]).
    pub sweeps: u64,
    /// Root-key rotations ([`AuditOp::KeyRotation`]).
    pub key_rotations: u64,
}

impl Metrics {
    /// The figures of the operation named `name` (a method name such as `"get"`), if it ran.
    pub fn operation(&self, name: &str) -> Option<&OperationMetrics> {
        self.operations.iter().find(|o| o.name == name)
    }
}

/// How often one operation ran, how often it failed, and how long it took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationMetrics {
    /// The method's name, e.g. `"erase_subject"`.
    pub name: &'static str,
    /// Calls, failed ones included.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Time spent in all calls.
    pub total: Duration,
    /// The longest call.
    pub max: Duration,
}

/// The counters of one open vault. Lives in its audit trail, which sees every entry.
#[derive(Default)]
pub(crate) struct Meter {
    /// In the order first called: an operation is found by its name's address (one comparison
    /// per operation before it), its name compared only where the address differs.
    operations: Mutex<Vec<OperationMetrics>>,
    refusals: AtomicU64,
    erasures: AtomicU64,
    key_destructions: AtomicU64,
    sweeps: AtomicU64,
    key_rotations: AtomicU64,
}

impl Meter {
    pub(crate) fn snapshot(&self) -> Metrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut operations = self
            .operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        operations.sort_by_key(|o| o.name);
        Metrics {
            operations,
            refusals: load(&self.refusals),
            erasures: load(&self.erasures),
            key_destructions: load(&self.key_destructions),
            sweeps: load(&self.sweeps),
            key_rotations: load(&self.key_rotations),
        }
    }

    fn record(&self, name: &'static str, took: Duration, failed: bool) {
        let mut ops = self.operations.lock().unwrap_or_else(|p| p.into_inner());
        let at = match ops.iter().position(|o| std::ptr::eq(o.name, name)) {
            Some(at) => at,
            None => match ops.iter().position(|o| o.name == name) {
                Some(at) => at,
                None => {
                    ops.push(OperationMetrics {
                        name,
                        ..Default::default()
                    });
                    ops.len() - 1
                }
            },
        };
        let m = &mut ops[at];
        m.calls += 1;
        m.errors += u64::from(failed);
        m.total += took;
        m.max = m.max.max(took);
    }

    /// The entries among `drafts` that are counted: refusals, erasures, key destructions,
    /// sweeps, rotations. Taken before the entries go to be written, counted ([`Meter::count`])
    /// once they are, on the thread of the operation that made them.
    #[inline]
    pub(crate) fn notable(drafts: &[Draft]) -> Vec<Notable> {
        // Most operations (every read) have none: no vector is built for them.
        if !drafts.iter().any(|d| counted(d.op)) {
            return Vec::new();
        }
        drafts
            .iter()
            .filter(|d| counted(d.op))
            .map(|d| Notable {
                op: d.op,
                #[cfg(feature = "tracing")]
                note: d.note.clone(),
            })
            .collect()
    }

    /// Counts (and, with `tracing`, announces) entries that were recorded.
    pub(crate) fn count(&self, notable: Vec<Notable>) {
        for n in notable {
            let counter = match n.op {
                AuditOp::Refused => &self.refusals,
                AuditOp::Erase => &self.erasures,
                AuditOp::KeyDestruction => &self.key_destructions,
                AuditOp::Sweep => &self.sweeps,
                _ => &self.key_rotations,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "tracing")]
            announce(&n);
        }
    }
}

fn counted(op: AuditOp) -> bool {
    matches!(
        op,
        AuditOp::Refused
            | AuditOp::Erase
            | AuditOp::KeyDestruction
            | AuditOp::Sweep
            | AuditOp::KeyRotation
    )
}

/// An audit entry worth counting, as much of it as is counted and announced.
pub(crate) struct Notable {
    op: AuditOp,
    #[cfg(feature = "tracing")]
    note: Option<crate::model::SharedText>,
}

#[cfg(feature = "tracing")]
fn announce(n: &Notable) {
    let note = n.note.as_deref().unwrap_or("");
    if n.op == AuditOp::Refused {
        tracing::warn!(target: "pdvault", audit = ?n.op, note, "refused");
    } else {
        tracing::info!(target: "pdvault", audit = ?n.op, note, "audited");
    }
}

thread_local! {
    /// How many operations this thread is inside: only the outermost is measured and spanned.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Leaves an operation, however it ends (a panic included).
struct Depth;

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs the operation `name`: measured into `meter` and, with `tracing`, inside its span,
/// unless this thread is already inside an operation (then it is part of that one).
pub(crate) fn operation<T>(
    meter: &Meter,
    name: &'static str,
    body: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let outermost = DEPTH.with(|d| {
        let depth = d.get();
        d.set(depth + 1);
        depth == 0
    });
    let _depth = Depth;
    if !outermost {
        return body();
    }
    #[cfg(feature = "tracing")]
    let span = tracing::info_span!(
        target: "pdvault",
        "operation",
        op = name,
        subject = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
    .entered();
    let started = Instant::now();
    let result = body();
    meter.record(name, started.elapsed(), result.is_err());
    #[cfg(feature = "tracing")]
    match &result {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", tracing::field::debug(e.kind()));
        }
    }
    result
}

/// Names the subject of the operation running on this thread, by its internal reference.
#[cfg(feature = "tracing")]
pub(crate) fn subject_found(subject: &SubjectRef) {
    tracing::Span::current().record("subject", tracing::field::display(subject));
}

/// Without `tracing`, nothing to name the subject to.
#[cfg(not(feature = "tracing"))]
pub(crate) fn subject_found(_: &SubjectRef) {}
