//! Group commit: the durable commits of concurrent callers written as one batch, with one sync.
//!
//! A caller queues its job. If no leader is writing, it becomes the leader: it takes the queued
//! jobs (its own and whatever arrived while the previous leader wrote, up to [`GROUP_OPS`]
//! writes), writes them together, and hands every caller in the group the outcome. Callers that
//! arrive while a leader writes wait, and the next leader takes them all. Before it takes the
//! queue, a new leader waits (up to [`GATHER_WAIT`]) for the jobs still being prepared (see
//! [`GroupCommit::announce`]) and for the callers of the last group to collect their outcomes,
//! so that writers released together are written together again instead of settling into two
//! groups that take turns. A lone writer leads at once: it never waits for anyone.
//!
//! Writing the group as one batch matters on sled 0.34 more than sharing the sync: there, a
//! flush holds a process-wide lock for as long as it syncs, and every batch write waits for that
//! lock, so separate commits cannot be applied while a sync is under way.
//!
//! This module owns the queue only; what a group writes, and how, is the caller's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::lock;
use crate::error::{Error, Result, StorageError};

/// How long a new leader waits, at most, for jobs still being prepared.
const GATHER_WAIT: Duration = Duration::from_micros(500);

/// The writes a group holds at most (unless its first job alone is larger): one atomic batch
/// is held in memory until it is applied.
const GROUP_OPS: usize = 8192;

/// A queue of jobs written in groups by one leader at a time.
pub(crate) struct GroupCommit<J> {
    state: Mutex<State<J>>,
    /// Signalled when a leader has posted its group's outcomes.
    written: Condvar,
    /// Signalled when the last job being prepared is queued or abandoned, and when the last
    /// outcome of a group is collected.
    settled: Condvar,
    gather_wait: Duration,
}

struct Queued<J> {
    ticket: u64,
    ops: usize,
    job: J,
}

struct State<J> {
    queued: VecDeque<Queued<J>>,
    next_ticket: u64,
    leading: bool,
    /// Jobs announced and not yet queued ([`GroupCommit::announce`]).
    preparing: usize,
    /// Outcomes of jobs another caller's leader wrote (`None` for success), until their callers
    /// collect them.
    outcomes: HashMap<u64, Option<Error>>,
}

/// A job being prepared, announced with [`GroupCommit::announce`]: a leader elected meanwhile
/// waits for it. Pass it to [`GroupCommit::submit`]; dropping it withdraws the announcement.
pub(crate) struct Announced<'a, J> {
    group: &'a GroupCommit<J>,
    /// Until submitted.
    pending: bool,
}

impl<J> Drop for Announced<'_, J> {
    fn drop(&mut self) {
        if self.pending {
            let mut state = lock(&self.group.state);
            self.group.prepared(&mut state);
        }
    }
}

impl<J> GroupCommit<J> {
    pub(crate) fn new() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queued: VecDeque::new(),
                next_ticket: 0,
                leading: false,
                preparing: 0,
                outcomes: HashMap::new(),
            }),
            written: Condvar::new(),
            settled: Condvar::new(),
            gather_wait: GATHER_WAIT,
        }
    }

    /// Announces a job about to be prepared and submitted, so that a group formed meanwhile
    /// includes it.
    pub(crate) fn announce(&self) -> Announced<'_, J> {
        lock(&self.state).preparing += 1;
        Announced {
            group: self,
            pending: true,
        }
    }

    /// One announced job is queued or withdrawn.
    fn prepared(&self, state: &mut State<J>) {
        state.preparing -= 1;
        if state.preparing == 0 {
            self.settled.notify_all();
        }
    }

    /// Queues `job` (`ops` writes) and returns once it is written: by this caller, as leader,
    /// with `write` (given a group's jobs in queue order; every caller passes the same
    /// function), or by another caller's leader.
    pub(crate) fn submit(
        &self,
        announced: Option<Announced<'_, J>>,
        job: J,
        ops: usize,
        write: impl Fn(Vec<J>) -> Result<()>,
    ) -> Result<()> {
        let mut state = lock(&self.state);
        if let Some(mut a) = announced {
            a.pending = false;
            self.prepared(&mut state);
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push_back(Queued { ticket, ops, job });
        loop {
            if let Some(outcome) = state.outcomes.remove(&ticket) {
                if state.outcomes.is_empty() {
                    self.settled.notify_all();
                }
                return outcome.map_or(Ok(()), Err);
            }
            if state.leading {
                state = self.written.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.leading = true;
            state = self.gather(state);
            let (tickets, jobs) = take_group(&mut state.queued);
            drop(state);
            let mut leader = Leader {
                group: self,
                tickets,
                own: ticket,
                failure: None,
            };
            let result = write(jobs);
            leader.failure = Some(result.as_ref().err().map(Error::shared));
            let own = leader.tickets.contains(&ticket);
            drop(leader);
            if own {
                return result;
            }
            // The group was the jobs queued ahead of this caller's, up to its size: this
            // caller's job waits for the next group.
            state = lock(&self.state);
        }
    }

    /// Waits, at most [`GATHER_WAIT`], while announced jobs are still being prepared or the last
    /// group's callers have not collected their outcomes.
    fn gather<'a>(&self, mut state: MutexGuard<'a, State<J>>) -> MutexGuard<'a, State<J>> {
        let deadline = Instant::now() + self.gather_wait;
        while state.preparing > 0 || !state.outcomes.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .settled
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state
    }
}

/// The queued jobs from the front, up to [`GROUP_OPS`] writes (at least one job).
fn take_group<J>(queued: &mut VecDeque<Queued<J>>) -> (Vec<u64>, Vec<J>) {
    let (mut tickets, mut jobs, mut ops) = (Vec::new(), Vec::new(), 0);
    while let Some(next) = queued.front() {
        if !jobs.is_empty() && ops + next.ops > GROUP_OPS {
            break;
        }
        let q = queued.pop_front().expect("a front job");
        ops += q.ops;
        tickets.push(q.ticket);
        jobs.push(q.job);
    }
    (tickets, jobs)
}

/// A leader's group: when dropped, posts the outcome to the other callers of the group, as a
/// failure if `write` panicked (so that no caller waits for ever), and steps down.
struct Leader<'a, J> {
    group: &'a GroupCommit<J>,
    tickets: Vec<u64>,
    own: u64,
    /// `Some(outcome)` once `write` returned.
    failure: Option<Option<Error>>,
}

impl<J> Drop for Leader<'_, J> {
    fn drop(&mut self) {
        let failure = self.failure.take().unwrap_or_else(|| {
            Some(StorageError::engine("the thread writing this commit's group panicked").into())
        });
        let mut state = lock(&self.group.state);
        state.leading = false;
        for &t in &self.tickets {
            if t != self.own {
                state
                    .outcomes
                    .insert(t, failure.as_ref().map(Error::shared));
            }
        }
        drop(state);
        self.group.written.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    type Groups = Mutex<Vec<Vec<u32>>>;

    /// A `write` that records each group.
    fn record(groups: &Groups) -> impl Fn(Vec<u32>) -> Result<()> + '_ {
        move |jobs| {
            lock(groups).push(jobs);
            Ok(())
        }
    }

    fn until(mut done: impl FnMut() -> bool) {
        while !done() {
            std::thread::yield_now();
        }
    }

    fn queued<J>(group: &GroupCommit<J>) -> usize {
        lock(&group.state).queued.len()
    }

    /// Spawns a caller that leads the writing of job 0 and holds it until `release` is set;
    /// returns once the write has begun.
    fn hold_a_write<'scope, 'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        group: &'env GroupCommit<u32>,
        groups: &'env Groups,
        release: &'env AtomicBool,
    ) {
        let entered = std::sync::Arc::new(AtomicBool::new(false));
        let flag = entered.clone();
        s.spawn(move || {
            group.submit(None, 0, 1, move |jobs| {
                flag.store(true, Ordering::SeqCst);
                until(|| release.load(Ordering::SeqCst));
                record(groups)(jobs)
            })
        });
        until(|| entered.load(Ordering::SeqCst));
    }

    /// Jobs queued while a leader writes are written together by the next leader, and every
    /// caller learns its own job's outcome.
    #[test]
    fn jobs_queued_during_a_write_are_written_as_one_group() {
        let group = GroupCommit::<u32>::new();
        let groups = Groups::default();
        let release = AtomicBool::new(false);
        std::thread::scope(|s| {
            hold_a_write(s, &group, &groups, &release);
            let waiting: Vec<_> = (1..=4)
                .map(|i| {
                    let (group, groups) = (&group, &groups);
                    s.spawn(move || group.submit(None, i, 1, record(groups)))
                })
                .collect();
            until(|| queued(&group) == 4);
            release.store(true, Ordering::SeqCst);
            for w in waiting {
                w.join().unwrap().unwrap();
            }
        });
        let mut groups = groups.into_inner().unwrap();
        groups[1].sort();
        assert_eq!(groups, [vec![0], vec![1, 2, 3, 4]]);
        assert!(lock(&group.state).outcomes.is_empty());
    }

    /// A lone caller writes its job at once, alone, even when a job announced earlier was
    /// withdrawn.
    #[test]
    fn a_lone_job_is_written_by_its_caller_at_once() {
        let mut group = GroupCommit::<u32>::new();
        group.gather_wait = Duration::from_secs(600);
        drop(group.announce());
        let groups = Groups::default();
        let start = Instant::now();
        for i in 0..3 {
            group.submit(None, i, 1, record(&groups)).unwrap();
        }
        assert_eq!(groups.into_inner().unwrap(), [[0], [1], [2]]);
        assert!(start.elapsed() < Duration::from_secs(300));
    }

    /// A leader waits for a job announced before it took the queue, and writes it in its group.
    #[test]
    fn a_leader_waits_for_an_announced_job() {
        let mut group = GroupCommit::<u32>::new();
        group.gather_wait = Duration::from_secs(600);
        let groups = Groups::default();
        let announced = group.announce();
        std::thread::scope(|s| {
            let leader = s.spawn(|| group.submit(None, 1, 1, record(&groups)));
            until(|| lock(&group.state).leading);
            group
                .submit(Some(announced), 2, 1, record(&groups))
                .unwrap();
            leader.join().unwrap().unwrap();
        });
        assert_eq!(groups.into_inner().unwrap(), [[1, 2]]);
    }

    /// A group stops at [`GROUP_OPS`] writes; the jobs beyond wait for the next group.
    #[test]
    fn a_group_holds_at_most_group_ops_writes() {
        let group = GroupCommit::<u32>::new();
        let groups = Groups::default();
        let release = AtomicBool::new(false);
        std::thread::scope(|s| {
            hold_a_write(s, &group, &groups, &release);
            let big = s.spawn(|| group.submit(None, 1, GROUP_OPS - 1, record(&groups)));
            until(|| queued(&group) == 1);
            let small = [2, 3].map(|i| {
                let (group, groups) = (&group, &groups);
                let h = s.spawn(move || group.submit(None, i, 1, record(groups)));
                until(|| queued(group) == i as usize);
                h
            });
            release.store(true, Ordering::SeqCst);
            big.join().unwrap().unwrap();
            for h in small {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(groups.into_inner().unwrap(), [vec![0], vec![1, 2], vec![3]]);
    }

    /// A failed write fails every job of its group, each caller with the error's kind; a
    /// panicking write fails the others instead of leaving them waiting.
    #[test]
    fn every_caller_of_a_failed_group_gets_the_failure() {
        for panics in [false, true] {
            let group = GroupCommit::<u32>::new();
            let (entered, release) = (AtomicBool::new(false), AtomicBool::new(false));
            // The first group (job 0) is written; the second (jobs 1 and 2) fails.
            let write = |jobs: Vec<u32>| {
                if jobs == [0] {
                    entered.store(true, Ordering::SeqCst);
                    until(|| release.load(Ordering::SeqCst));
                    return Ok(());
                }
                assert!(!panics, "a write that panics");
                Err(StorageError::Halted("disk gone".into()).into())
            };
            let (group, write) = (&group, &write);
            let outcomes = std::thread::scope(|s| {
                let first = s.spawn(|| group.submit(None, 0, 1, write));
                until(|| entered.load(Ordering::SeqCst));
                let second = [1, 2].map(|i| {
                    let h = s.spawn(move || group.submit(None, i, 1, write));
                    until(|| queued(group) == i as usize);
                    h
                });
                release.store(true, Ordering::SeqCst);
                assert!(first.join().unwrap().is_ok());
                second.map(|h| h.join())
            });
            // One of the two callers led the failed group: it panicked or got the error
            // itself; the other got the failure as its outcome.
            let [a, b] = outcomes;
            let (led, followed) = match (a, b) {
                (Err(_), Ok(f)) | (Ok(f), Err(_)) if panics => (None, f),
                (Ok(x), Ok(y)) if !panics => (Some(x), y),
                _ => panic!("both callers panicked"),
            };
            if let Some(led) = led {
                assert!(matches!(led, Err(Error::Storage(StorageError::Halted(_)))));
                assert!(matches!(
                    followed,
                    Err(Error::Storage(StorageError::Halted(_)))
                ));
            } else {
                assert!(matches!(
                    followed,
                    Err(Error::Storage(StorageError::Engine { .. }))
                ));
            }
        }
    }
}
