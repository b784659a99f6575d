//! The engine interface: an ordered byte-key/byte-value map with atomic batches and a durable
//! flush, and, for an engine several processes share, the locks they take turns with
//! ([`Coordination`]). Nothing above `storage` sees which engine runs.

use crate::error::StorageError;

/// An iterator over key/value pairs in key order.
pub(crate) type KvIter<'a> =
    Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + Send + 'a>;

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub(crate) enum EngineOp {
    /// Insert or overwrite.
    Put(Vec<u8>, Vec<u8>),
    /// Insert at a key the writer knows to be absent (a fresh random id). An engine may write it
    /// without looking for an old row first, but the result is [`Put`](EngineOp::Put)'s whatever
    /// is there: a key that was present after all is overwritten, never an error.
    Insert(Vec<u8>, Vec<u8>),
    /// Remove (absent keys are fine).
    Delete(Vec<u8>),
}

/// An ordered key-value engine.
pub(crate) trait Engine: Send + Sync {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Several keys, read at one moment (one snapshot); in the order asked.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Every pair whose key starts with `prefix`, in order.
    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_>;
    /// Every pair with `start <= key < end`, in order.
    fn range(&self, start: &[u8], end: &[u8]) -> KvIter<'_>;
    /// Applies every op or none, also across a crash.
    fn apply(&self, ops: Vec<EngineOp>) -> Result<(), StorageError>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), StorageError>;
    /// Bytes the engine's files take on disk, when it can tell.
    #[allow(dead_code)]
    fn size_on_disk(&self) -> Option<u64>;
    /// The locks of an engine that several processes share; `None` for a store one process
    /// owns (its file lock keeps others out).
    fn coordination(&self) -> Option<&dyn Coordination> {
        None
    }
}

/// A lock that every process sharing a store sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SharedLock {
    /// Destruction (exclusive) against everything that must not interleave with it (shared).
    Destruction,
    /// One of the subject-state slots (read-modify-write of a subject's state).
    Subject(u8),
    /// One of the subject-creation slots (by blind index).
    Create(u8),
    /// The retention sweep: one at a time.
    Sweep,
    /// Registering a new audit chain.
    AuditChains,
}

/// How a [`SharedLock`] is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

/// Held until dropped; dropped on the thread that took it.
pub(crate) struct LockGuard {
    release: Option<Box<dyn FnOnce()>>,
}

impl LockGuard {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn new(release: impl FnOnce() + 'static) -> Self {
        LockGuard {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(f) = self.release.take() {
            f();
        }
    }
}

/// Locks shared by every process of one store. A thread's locks live in one database session,
/// and the thread's commits run in that session while it holds any: if the session is lost (the
/// server restarted), its locks are gone and so is every commit that relied on them.
pub(crate) trait Coordination: Send + Sync {
    /// Takes `lock` for the calling thread, waiting for it (within the engine's lock timeout).
    fn lock(&self, lock: SharedLock, mode: LockMode) -> Result<LockGuard, StorageError> {
        self.lock_then_read(lock, mode, None)
            .map(|(guard, _)| guard)
    }
    /// [`lock`](Self::lock), then reads `read` as it is once the lock is held (in the same
    /// round trip where the engine can).
    fn lock_then_read(
        &self,
        lock: SharedLock,
        mode: LockMode,
        read: Option<&[u8]>,
    ) -> Result<(LockGuard, Option<Vec<u8>>), StorageError>;
}
