//! A bounded cache of decoded rows of the tables read on every access and written rarely (a
//! subject's state: purposes, consent, restriction). It owns coherence with the store's commits
//! and nothing else: the store invalidates every cached key a commit touches, and a read that
//! raced a commit never fills the cache with what the commit replaced.

use std::any::Any;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

/// A cached row, decoded.
type Row = Arc<dyn Any + Send + Sync>;

struct Rows {
    /// Counts the commits that touched a cached table; a fill read before the latest one is
    /// dropped.
    epoch: u64,
    rows: LruCache<Vec<u8>, Row>,
}

pub(crate) struct RowCache {
    rows: Mutex<Rows>,
}

/// What a lookup found: the row, or the epoch to fill the cache under.
pub(crate) enum Lookup<T> {
    Hit(Arc<T>),
    Miss(u64),
}

impl RowCache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        RowCache {
            rows: Mutex::new(Rows {
                epoch: 0,
                rows: LruCache::new(capacity),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lookup<T: Send + Sync + 'static>(&self, key: &[u8]) -> Lookup<T> {
        let mut rows = self.lock();
        match rows.rows.get(key).cloned().map(Arc::downcast::<T>) {
            Some(Ok(hit)) => Lookup::Hit(hit),
            // Absent, or cached as another type (never: one type per table).
            _ => Lookup::Miss(rows.epoch),
        }
    }

    /// Caches `row`, read from the store after a lookup returned `epoch`, unless a commit
    /// touched a cached table since.
    pub(crate) fn fill<T: Send + Sync + 'static>(&self, key: &[u8], epoch: u64, row: Arc<T>) {
        let mut rows = self.lock();
        if rows.epoch == epoch {
            rows.rows.put(key.to_vec(), row);
        }
    }

    /// Forgets `keys`, written or deleted by a commit (called once it is applied, or failed).
    pub(crate) fn invalidate(&self, keys: &[Vec<u8>]) {
        if keys.is_empty() {
            return;
        }
        let mut rows = self.lock();
        rows.epoch += 1;
        for k in keys {
            rows.rows.pop(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> RowCache {
        RowCache::new(NonZeroUsize::new(2).unwrap())
    }

    fn get(c: &RowCache, key: &[u8]) -> Option<u32> {
        match c.lookup::<u32>(key) {
            Lookup::Hit(v) => Some(*v),
            Lookup::Miss(_) => None,
        }
    }

    fn epoch(c: &RowCache, key: &[u8]) -> u64 {
        match c.lookup::<u32>(key) {
            Lookup::Hit(_) => panic!("expected a miss"),
            Lookup::Miss(e) => e,
        }
    }

    #[test]
    fn a_filled_row_is_found_until_a_commit_touches_it() {
        let c = cache();
        let e = epoch(&c, b"a");
        c.fill(b"a", e, Arc::new(1u32));
        assert_eq!(get(&c, b"a"), Some(1));
        c.invalidate(&[b"b".to_vec()]);
        assert_eq!(get(&c, b"a"), Some(1));
        c.invalidate(&[b"a".to_vec()]);
        assert_eq!(get(&c, b"a"), None);
    }

    /// A reader that looked up before a commit and read the store before it applied holds the
    /// old row: its fill, after the commit, must not be kept.
    #[test]
    fn a_fill_that_raced_a_commit_is_dropped() {
        let c = cache();
        let e = epoch(&c, b"a");
        c.invalidate(&[b"a".to_vec()]);
        c.fill(b"a", e, Arc::new(1u32));
        assert_eq!(get(&c, b"a"), None);
        let e = epoch(&c, b"a");
        c.fill(b"a", e, Arc::new(2u32));
        assert_eq!(get(&c, b"a"), Some(2));
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = cache();
        for (i, k) in [b"a", b"b", b"c"].into_iter().enumerate() {
            let e = epoch(&c, k);
            c.fill(k, e, Arc::new(i as u32));
        }
        assert_eq!(get(&c, b"a"), None);
        assert_eq!(get(&c, b"c"), Some(2));
    }
}
