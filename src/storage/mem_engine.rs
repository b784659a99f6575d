//! An in-memory engine with fault injection, for tests: it can fail the Nth write or flush, and
//! it forgets everything not flushed when "crashed".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::engine::{Engine, EngineOp, KvIter};
use crate::error::StorageError;

#[derive(Default)]
struct State {
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A shared in-memory engine; clones see the same data.
#[derive(Clone, Default)]
pub(crate) struct MemEngine {
    state: Arc<Mutex<State>>,
    /// Writes (applies or flushes) left before one fails; negative: never fail.
    fail_after: Arc<AtomicI64>,
    /// Flushes made.
    flushes: Arc<AtomicU64>,
}

impl MemEngine {
    pub(crate) fn new() -> Self {
        MemEngine {
            state: Arc::default(),
            fail_after: Arc::new(AtomicI64::new(-1)),
            flushes: Arc::default(),
        }
    }

    /// How many flushes were made.
    #[allow(dead_code)]
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// The next `n` writes succeed, the one after fails (and then every write succeeds again).
    #[allow(dead_code)]
    pub(crate) fn fail_after(&self, n: i64) {
        self.fail_after.store(n, Ordering::SeqCst);
    }

    /// Drops everything not flushed, as a crash would.
    #[allow(dead_code)]
    pub(crate) fn crash(&self) {
        let mut s = self.lock();
        s.live = s.durable.clone();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn injected_fault(&self) -> Result<(), StorageError> {
        let left = self.fail_after.fetch_sub(1, Ordering::SeqCst);
        if left == 0 {
            return Err(StorageError::Io(std::io::Error::other("injected fault")));
        }
        if left < 0 {
            self.fail_after.store(-1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn collect(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> KvIter<'_> {
        Box::new(pairs.into_iter().map(Ok))
    }
}

impl Engine for MemEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().live.get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_> {
        let s = self.lock();
        let v = s
            .live
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.collect(v)
    }

    fn range(&self, start: &[u8], end: &[u8]) -> KvIter<'_> {
        let s = self.lock();
        let v = s
            .live
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.collect(v)
    }

    fn apply(&self, ops: Vec<EngineOp>) -> Result<(), StorageError> {
        self.injected_fault()?;
        let mut s = self.lock();
        for op in ops {
            match op {
                EngineOp::Put(k, v) | EngineOp::Insert(k, v) => {
                    s.live.insert(k, v);
                }
                EngineOp::Delete(k) => {
                    s.live.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.injected_fault()?;
        self.flushes.fetch_add(1, Ordering::SeqCst);
        let mut s = self.lock();
        s.durable = s.live.clone();
        Ok(())
    }

    fn size_on_disk(&self) -> Option<u64> {
        None
    }
}
