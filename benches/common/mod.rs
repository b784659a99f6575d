//! Helpers shared by the benchmarks: vaults in temporary directories, bulk filling, a cheap
//! deterministic random number generator, medians, and the retention setup of the sweep.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use jiff::{Span, Timestamp};
use pdvault::{
    Category, Durability, KdfParams, ManualClock, Policy, RecordMeta, RootSecret, SubjectId, Vault,
};

pub const PASSPHRASE: &str = "bench passphrase";

/// Records per `put_many` call when filling a vault.
pub const FILL_BATCH: usize = 10_000;

/// The deferred durability the throughput benchmarks run under.
pub const DEFERRED: Durability = Durability::Deferred {
    flush_every_ms: 1000,
};

/// The policy of the sweep benchmarks: access logs are kept 3 months; usage has no rule.
pub const SWEEP_POLICY: &str = "[retention.access-log]\nmax = \"3 months\"\n";

/// Where the simulated clock of the retention benchmarks stands.
pub fn t0() -> Timestamp {
    "2026-06-30T12:00:00Z".parse().expect("a timestamp")
}

/// A new vault in `dir` with the cheap test KDF.
pub fn create(dir: &Path, durability: Durability) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .durability(durability)
        .create(RootSecret::passphrase(PASSPHRASE))
        .expect("create a vault")
}

/// A new vault in `dir` with the sweep policy and a manual clock at [`t0`].
pub fn create_with_policy(dir: &Path, durability: Durability, clock: &ManualClock) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .durability(durability)
        .clock(clock.clone())
        .policy(Policy::from_toml(SWEEP_POLICY).expect("the sweep policy parses"))
        .create(RootSecret::passphrase(PASSPHRASE))
        .expect("create a vault")
}

pub fn subject(prefix: &str, i: usize) -> SubjectId {
    SubjectId::new(format!("{prefix}-{i}@example.com")).expect("a subject id")
}

/// Stores `n` records of `category` for `subject`, `payload_len` bytes each, in batches of
/// [`FILL_BATCH`].
pub fn fill(
    vault: &Vault,
    subject: &SubjectId,
    category: &Category,
    n: usize,
    payload_len: usize,
    collected_at: Timestamp,
) {
    let payload = vec![0x5a_u8; payload_len];
    let mut left = n;
    while left > 0 {
        let k = left.min(FILL_BATCH);
        vault
            .put_many((0..k).map(|_| {
                (
                    subject,
                    RecordMeta::new(category.clone()).collected_at(collected_at),
                    payload.as_slice(),
                )
            }))
            .expect("put_many");
        left -= k;
    }
}

/// A sweep fixture: `total` records of usage (no rule), 100 per subject.
pub fn fill_sweep_bulk(vault: &Vault, total: usize) {
    let subjects = total.div_ceil(100);
    let payload: &[u8] = &[0x5a_u8; 64];
    let now = t0();
    let ids: Vec<SubjectId> = (0..subjects).map(|i| subject("bulk", i)).collect();
    for chunk in ids.chunks(FILL_BATCH / 100) {
        vault
            .put_many(chunk.iter().flat_map(|s| {
                (0..100).map(move |_| {
                    (
                        s,
                        RecordMeta::new(Category::Usage).collected_at(now),
                        payload,
                    )
                })
            }))
            .expect("put_many");
    }
}

/// The records the next sweep must erase: one access-log record, collected a year ago (past its
/// 3 months), in each of the first `due` subjects of the bulk.
pub fn add_due(vault: &Vault, due: usize) {
    let collected = t0()
        .checked_sub(Span::new().hours(24 * 365))
        .expect("a year before t0");
    let ids: Vec<SubjectId> = (0..due).map(|i| subject("bulk", i)).collect();
    vault
        .put_many(ids.iter().map(|s| {
            (
                s,
                RecordMeta::new(Category::AccessLog).collected_at(collected),
                b"GET /login 203.0.113.7".as_slice(),
            )
        }))
        .expect("put_many");
}

/// xorshift64*: cheap, deterministic, good enough to pick records.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n
    }
}

pub fn median(v: &mut [Duration]) -> Duration {
    assert!(!v.is_empty(), "no samples");
    v.sort();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    }
}
