//! The engine interface: an ordered byte-key/byte-value map with atomic batches and a durable
//! flush. sled implements it today; nothing above `storage` sees which engine runs.

use crate::error::StorageError;

/// An iterator over key/value pairs in key order.
pub(crate) type KvIter<'a> =
    Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + Send + 'a>;

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub(crate) enum EngineOp {
    /// Insert or overwrite.
    Put(Vec<u8>, Vec<u8>),
    /// Remove (absent keys are fine).
    Delete(Vec<u8>),
}

/// An ordered key-value engine.
pub(crate) trait Engine: Send + Sync {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
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
}
