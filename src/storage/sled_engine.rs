//! The sled 0.34 engine. The only file that names sled.
//!
//! sled 0.34 can panic on a damaged file: every call into it is contained and turned into
//! [`StorageError::Corrupted`]. All data lives in one sled tree, so that every batch is atomic.
//!
//! sled creates its own files, with the process umask: the store directory is created `0700`
//! before sled opens it, everything sled wrote at open (`conf`, `db`, snapshots, `blobs/`) is
//! made private after, and new files in `blobs/` (values too large for a log segment) after each
//! flush (see [`private_fs`](super::private_fs); the `0700` directory is what keeps others out).

use std::collections::HashSet;
use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::engine::{Engine, EngineOp, KvIter};
use super::private_fs;
use crate::error::StorageError;

pub(crate) struct SledEngine {
    /// Always `Some` until dropped.
    db: Option<sled::Db>,
    /// Set once a write or flush failed.
    failed: std::sync::atomic::AtomicBool,
    /// sled's directory of large values, whose new files are made private after each flush.
    blobs: PathBuf,
    /// The files of `blobs` already made private.
    private_blobs: Mutex<HashSet<OsString>>,
}

impl SledEngine {
    fn db(&self) -> &sled::Db {
        self.db.as_ref().expect("the store is open until dropped")
    }

    /// Runs a write: a failure is remembered for the drop.
    fn write<T>(
        &self,
        f: impl FnOnce(&sled::Db) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let r = contain(|| f(self.db()));
        if r.is_err() {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
}

impl Drop for SledEngine {
    /// sled flushes when its last handle is dropped, and after a failed write (a full disk) that
    /// flush can wait forever. After a failure the handle is dropped on a thread of its own, so
    /// the caller never hangs; if sled does hang there, its file lock stays taken until the
    /// process exits, and the vault is reopened by a new process.
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::thread::Builder::new()
                .name("pdvault-close-failed-store".into())
                .spawn(move || drop(db));
            return;
        }
        // sled's last flush at drop may still write a blob: make what it wrote private.
        drop(db);
        let _ = self.restrict_new_blobs();
    }
}

fn contain<T>(f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(StorageError::Corrupted(format!(
                "the store failed while reading its files: {msg}"
            )))
        }
    }
}

fn map_err(e: sled::Error) -> StorageError {
    match e {
        sled::Error::Io(io) => io.into(),
        sled::Error::Corruption { .. } => StorageError::Corrupted(e.to_string()),
        other => StorageError::engine_error("sled", other),
    }
}

/// Removes the snapshot files sled left half written. sled 0.34 writes a snapshot to
/// `snap.<lsn>.generating`, syncs it and renames it to `snap.<lsn>`; an I/O failure or a crash
/// before the rename leaves the `.generating` file behind, and sled then takes it for the newest
/// snapshot and refuses to open the store as corrupted. Such a file is never complete by
/// construction (the rename is what completes it): the previous snapshot and the log it has not
/// replaced are still there, so removing it loses nothing.
fn remove_incomplete_snapshots(dir: &Path) -> Result<(), StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut removed = false;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path())?;
            removed = true;
        }
    }
    if removed {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl SledEngine {
    /// Opens (or creates) the store in `dir`. `flush_every_ms`: sled's background flush period,
    /// `None` to flush only when asked; `cache_bytes`: the most memory sled's page cache may hold.
    pub(crate) fn open(
        dir: &Path,
        flush_every_ms: Option<u64>,
        cache_bytes: u64,
    ) -> Result<Self, StorageError> {
        private_fs::create_dir_all(dir)?;
        remove_incomplete_snapshots(dir)?;
        // sled's background threads hold its file lock for a moment after the previous handle
        // was dropped: retry a lock conflict for up to two seconds. (The vault's own LOCK file
        // already tells a real second opener apart.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let result = contain(|| {
                let db = sled::Config::new()
                    .path(dir)
                    .mode(sled::Mode::HighThroughput)
                    .flush_every_ms(flush_every_ms)
                    .cache_capacity(cache_bytes)
                    .open()
                    .map_err(map_err)?;
                Ok(SledEngine {
                    db: Some(db),
                    failed: std::sync::atomic::AtomicBool::new(false),
                    blobs: dir.join("blobs"),
                    private_blobs: Mutex::new(HashSet::new()),
                })
            });
            match result {
                Err(StorageError::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("acquire lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(StorageError::Io(e));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(engine) => {
                    // sled wrote its files at open with the umask's modes.
                    private_fs::restrict_tree(dir)?;
                    engine.restrict_new_blobs()?;
                    return Ok(engine);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the files sled added to `blobs/` since the last call private.
    fn restrict_new_blobs(&self) -> Result<(), StorageError> {
        let mut known = self.private_blobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(private_fs::restrict_new_files(&self.blobs, &mut known)?)
    }
}

struct SledIter(sled::Iter);

impl Iterator for SledIter {
    type Item = Result<(Vec<u8>, Vec<u8>), StorageError>;
    fn next(&mut self) -> Option<Self::Item> {
        let it = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| it.next())) {
            Ok(None) => None,
            Ok(Some(Ok((k, v)))) => Some(Ok((k.to_vec(), v.to_vec()))),
            Ok(Some(Err(e))) => Some(Err(map_err(e))),
            Err(_) => Some(Err(StorageError::Corrupted(
                "the store failed while scanning its files".into(),
            ))),
        }
    }
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        contain(|| Ok(self.db().get(key).map_err(map_err)?.map(|v| v.to_vec())))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_> {
        match contain(|| Ok(self.db().scan_prefix(prefix))) {
            Ok(it) => Box::new(SledIter(it)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn range(&self, start: &[u8], end: &[u8]) -> KvIter<'_> {
        match contain(|| Ok(self.db().range(start.to_vec()..end.to_vec()))) {
            Ok(it) => Box::new(SledIter(it)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn apply(&self, ops: Vec<EngineOp>) -> Result<(), StorageError> {
        self.write(|db| {
            let mut batch = sled::Batch::default();
            for op in ops {
                match op {
                    EngineOp::Put(k, v) | EngineOp::Insert(k, v) => batch.insert(k, v),
                    EngineOp::Delete(k) => batch.remove(k),
                }
            }
            db.apply_batch(batch).map_err(map_err)
        })
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.write(|db| db.flush().map(|_| ()).map_err(map_err))?;
        // Best effort: the store directory's 0700 already keeps others out of a new blob, and a
        // failed chmod must not fail a flush that succeeded.
        let _ = self.restrict_new_blobs();
        Ok(())
    }

    fn size_on_disk(&self) -> Option<u64> {
        contain(|| self.db().size_on_disk().map_err(map_err)).ok()
    }
}

/// sled's own failure points, for the I/O-error tests (feature `sled-failpoints`).
#[cfg(feature = "sled-failpoints")]
pub(crate) mod failpoints {
    /// Arms sled's failure point `name`: bit `n` of `bitset` makes its `n`-th next hit fail.
    pub(crate) fn set(name: &'static str, bitset: u64) {
        sled::fail::set(name, bitset);
    }

    /// Disarms every failure point.
    pub(crate) fn reset() {
        sled::fail::reset();
    }
}
