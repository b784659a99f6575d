//! Calling the vault from async code (feature `tokio`): [`AsyncVault`] runs every call on
//! Tokio's blocking pool, never on a runtime worker thread.
//!
//! # What blocks, and for how long
//!
//! Every [`Vault`] method blocks its thread until it is done:
//!
//! - **A durable write** (a put, an update, a hold, a consent, an event, a request, the audit
//!   entry that closes an export) returns after its fsync with [`Durability::Immediate`], the
//!   default: about a millisecond on an SSD, tens on a busy or network disk. Concurrent writers
//!   share one sync (group commit), so a writer can also wait for the group it joined. On
//!   PostgreSQL (feature `postgres`) it is the commit's round trips instead.
//! - **An erasure** always syncs, and destroys an epoch key and rewrites the vault file: a few
//!   milliseconds (README, Performance), longer where the key source is a hardware token.
//! - **Opening or creating a vault** with a passphrase runs Argon2id: about 27 ms at the default
//!   costs (m = 19 MiB, t = 2) in an optimised build, seconds with stronger costs or in a build
//!   whose dependencies are not optimised (README, "Use it in a service").
//! - **A read** takes microseconds on sled when its pages are cached, a disk read when not, a
//!   round trip on PostgreSQL. An export, an import, a sweep or a verification grows with the
//!   data it covers.
//! - **Closing** flushes buffered audit entries and writes a checkpoint (fsync).
//!
//! On a runtime worker thread any of these stalls every task scheduled on that worker for as
//! long. [`AsyncVault`] sends each call to the blocking pool with
//! [`tokio::task::spawn_blocking`] and awaits its result; the workers stay free.
//!
//! # Why `spawn_blocking`, not `block_in_place`
//!
//! `tokio::task::block_in_place` blocks the calling task where it stands: it panics on a
//! current-thread runtime (the default of `#[tokio::test]`), and everything the task was
//! driving alongside the call (`join!`, `select!`, a response body being written) stops until
//! the call returns. `spawn_blocking` works on every runtime flavour and returns a future; the
//! task goes on with anything else it is doing meanwhile.
//!
//! # PostgreSQL
//!
//! On PostgreSQL the vault uses the synchronous `postgres` client, which runs a runtime of its
//! own to block on: on a Tokio worker thread it panics ("Cannot start a runtime from within a
//! runtime"). On the blocking pool it works, so through [`AsyncVault`] it is safe.
//!
//! # Cancellation
//!
//! A call, once started on the blocking pool, runs to its end: dropping the future that awaits
//! it (a client that went away, a timeout) does not stop it, and an erasure is carried out whole.
//! Its result is then dropped. An export whose future is dropped stops at its next chunk and is
//! recorded in the audit trail as interrupted, like any export whose writer fails.
//!
//! # Example
//!
//! ```no_run
//! use pdvault::nonblocking::AsyncVault;
//! use pdvault::{Category, Purpose, RecordMeta, RootSecret, SubjectId, Vault};
//!
//! # async fn serve() -> pdvault::Result<()> {
//! // Argon2id and the first fsync run on the blocking pool too.
//! let vault = AsyncVault::open_with(|| {
//!     Vault::builder("/var/lib/my-service/vault")
//!         .actor("my-service")
//!         .open_or_create(RootSecret::passphrase("from the service's secret store"))
//! })
//! .await?;
//!
//! let alice = SubjectId::new("alice@example.com")?;
//! let account = Purpose::new("account")?;
//! let id = vault
//!     .call({
//!         let (alice, account) = (alice.clone(), account.clone());
//!         move |v| v.put(&alice, RecordMeta::new(Category::Profile).purpose(account), b"Alice")
//!     })
//!     .await?;
//! let profile = vault.call({
//!     let alice = alice.clone();
//!     move |v| v.get(&alice, id, &account)
//! });
//! assert_eq!(profile.await?.payload, b"Alice");
//!
//! // An access request: the document streams out in bounded chunks.
//! let mut out = tokio::io::sink();
//! let records = vault.export_to(&alice, &mut out).await?;
//! assert_eq!(records, 1);
//!
//! vault.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/service.rs` is a whole HTTP service built this way.

use std::io::{self, Read, Write};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[cfg(doc)]
use crate::Durability;
use crate::error::{Result, TaskError};
use crate::ids::SubjectId;
use crate::rights::export::ImportReport;
use crate::vault::Vault;

/// The size of the chunks [`AsyncVault::export_to`] and [`AsyncVault::import_from`] pass between
/// the blocking pool and the async side (the last chunk of an export is shorter).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How many chunks may wait between the blocking pool and the async side: with one being
/// filled and one being written, an export or import holds at most `CHANNEL_CHUNKS + 2` chunks
/// of the document in memory, whatever its size.
pub const CHANNEL_CHUNKS: usize = 4;

/// A [`Vault`] for async code: every call runs on Tokio's blocking pool
/// ([`spawn_blocking`](tokio::task::spawn_blocking)), never on a runtime worker thread (see
/// the [module documentation](self) for what blocks and why).
///
/// Cheap to clone (clones share one open vault, as [`Vault`]'s do) and `Send + Sync`: keep one
/// in the service's state. A panic in a call, or a runtime that shut down before the call
/// started, is returned as [`Error::Task`](crate::Error::Task), never re-raised in the caller.
///
/// End with [`AsyncVault::close`]: dropping the last handle of a vault that was not closed
/// flushes and writes a checkpoint in the drop, on whatever thread drops it (a worker, if that
/// is where the service's state goes).
#[derive(Clone, Debug)]
pub struct AsyncVault {
    vault: Vault,
}

impl From<Vault> for AsyncVault {
    fn from(vault: Vault) -> Self {
        AsyncVault { vault }
    }
}

impl AsyncVault {
    /// Wraps an open vault.
    pub fn new(vault: Vault) -> Self {
        AsyncVault { vault }
    }

    /// Opens (or creates) a vault on the blocking pool: `open` builds and opens it, as in
    /// `|| Vault::builder(dir).open_or_create(secret)`. Argon2id and the open's reads and syncs
    /// run there, not on a worker.
    pub async fn open_with<F>(open: F) -> Result<AsyncVault>
    where
        F: FnOnce() -> Result<Vault> + Send + 'static,
    {
        let vault = join(spawn(open)?).await??;
        Ok(AsyncVault { vault })
    }

    /// Runs `f` with the vault on the blocking pool and returns its result.
    ///
    /// `f` owns what it uses (`move`, with clones of the identifiers and purposes it needs), as a
    /// thread would. Put several vault calls that belong together in one `f`: they then take one
    /// trip to the pool. A panic in `f` is returned as [`TaskError::Panicked`]; a call made
    /// outside a Tokio runtime fails with [`TaskError::NoRuntime`], and one the runtime shut down
    /// before it started with [`TaskError::Cancelled`] (the call was not made).
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Vault) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let vault = self.vault.clone();
        join(spawn(move || f(&vault))?).await?
    }

    /// The vault itself, for code that may block: code already on the blocking pool, or outside
    /// the runtime (start-up, a command-line tool). Called on a runtime worker thread, its
    /// methods block the worker.
    pub fn blocking(&self) -> &Vault {
        &self.vault
    }

    /// Closes the vault on the blocking pool ([`Vault::close`]): writes what is buffered and a
    /// checkpoint, and closes every clone of this handle, async or not (their later calls fail
    /// with [`StorageError::Closed`](crate::StorageError::Closed)).
    pub async fn close(self) -> Result<()> {
        let vault = self.vault;
        join(spawn(move || vault.close())?).await?
    }

    /// Writes everything held about `subject` to `writer` ([`Vault::export`]: the same document,
    /// byte for byte, and the same rules) and returns the number of records.
    ///
    /// The export runs on the blocking pool and writes into chunks of [`CHUNK_BYTES`], sent
    /// through a channel of [`CHANNEL_CHUNKS`] to this future, which writes them to `writer`:
    /// while `writer` is slow the export waits, so memory is bounded by the channel, never the
    /// whole document. `writer` is flushed at the end.
    ///
    /// An export that fails before writing anything (no such subject, a request whose
    /// requester's identity is not verified) leaves `writer` untouched. One that fails later,
    /// or whose `writer` fails, leaves a partial document there, to be discarded; the audit
    /// trail records it as interrupted, and `writer`'s own error is the one returned.
    pub async fn export_to<W>(&self, subject: &SubjectId, writer: &mut W) -> Result<u64>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let (records, _) = self.export_counted(subject, writer, CHUNK_BYTES).await?;
        Ok(records)
    }

    /// [`AsyncVault::export_to`] in chunks of `chunk_bytes`, with what the chunks did.
    async fn export_counted<W>(
        &self,
        subject: &SubjectId,
        writer: &mut W,
        chunk_bytes: usize,
    ) -> Result<(u64, ChunkFlow)>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let (chunks, mut received) = mpsc::channel(CHANNEL_CHUNKS);
        let vault = self.vault.clone();
        let subject = subject.clone();
        let export = spawn(move || {
            let mut out = ChunkSender::new(chunks, chunk_bytes);
            // `Vault::export` flushes at its end; flushing again sends nothing, and sends the
            // last chunk should a later export not flush.
            let exported = vault
                .export(&subject, &mut out)
                .and_then(|records| Ok(out.flush().map(|()| records)?));
            (exported, out.flow)
        })?;
        let mut write_failed = None;
        while let Some(chunk) = received.recv().await {
            if let Err(e) = writer.write_all(&chunk).await {
                write_failed = Some(e);
                break;
            }
        }
        // An export still sending finds the channel closed and stops, recorded as interrupted.
        drop(received);
        let (exported, flow) = join(export).await?;
        if let Some(e) = write_failed {
            return Err(e.into());
        }
        let records = exported?;
        writer.flush().await?;
        Ok((records, flow))
    }

    /// Reads an export document from `reader` and files it in this vault ([`Vault::import`]:
    /// the same checks; a document it refuses leaves the vault as it was).
    ///
    /// `reader` is read here, in chunks of up to [`CHUNK_BYTES`] sent through a channel of
    /// [`CHANNEL_CHUNKS`] to the import on the blocking pool. [`Vault::import`] itself holds the
    /// whole parsed document in memory before it writes anything, so the channel bounds only the
    /// bytes in transit. An error reading `reader` stops the import before it writes anything,
    /// and is the error returned.
    pub async fn import_from<R>(&self, reader: &mut R) -> Result<ImportReport>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        let (chunks, received) = mpsc::channel(CHANNEL_CHUNKS);
        let vault = self.vault.clone();
        let import = spawn(move || vault.import(&mut ChunkReceiver::new(received)))?;
        let mut read_failed = None;
        loop {
            let mut chunk = vec![0; CHUNK_BYTES];
            let read = match reader.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    read_failed = Some(e);
                    // The import must not take what it has as the whole document.
                    let _ = chunks.send(Err(())).await;
                    break;
                }
            };
            chunk.truncate(read);
            if chunks.send(Ok(chunk)).await.is_err() {
                // The import stopped reading: it refused the document, and says why.
                break;
            }
        }
        // The end of the document.
        drop(chunks);
        let imported = join(import).await?;
        if let Some(e) = read_failed {
            return Err(e.into());
        }
        imported
    }
}

/// Starts `f` on the blocking pool of the current runtime.
fn spawn<T, F>(f: F) -> Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let runtime = Handle::try_current().map_err(|_| TaskError::NoRuntime)?;
    Ok(runtime.spawn_blocking(f))
}

/// Awaits a blocking task; a panic or a cancellation becomes a [`TaskError`].
async fn join<T>(task: JoinHandle<T>) -> Result<T> {
    task.await.map_err(|e| {
        // The panic's payload is dropped here: it may quote data, and the panic hook has
        // already reported it.
        if e.is_panic() {
            TaskError::Panicked.into()
        } else {
            TaskError::Cancelled.into()
        }
    })
}

/// What the chunks of an export did.
#[derive(Clone, Copy, Debug, Default)]
struct ChunkFlow {
    /// Chunks sent.
    chunks: usize,
    /// The most chunks ever waiting in the channel, counted after each send.
    max_in_flight: usize,
}

/// The `std::io::Write` an export writes into on the blocking pool: fills a chunk, sends it
/// when full (waiting while the channel is full), and sends what it holds at a flush.
struct ChunkSender {
    chunks: mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    chunk_bytes: usize,
    flow: ChunkFlow,
}

impl ChunkSender {
    fn new(chunks: mpsc::Sender<Vec<u8>>, chunk_bytes: usize) -> Self {
        let chunk_bytes = chunk_bytes.max(1);
        ChunkSender {
            chunks,
            chunk: Vec::with_capacity(chunk_bytes),
            chunk_bytes,
            flow: ChunkFlow::default(),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.chunk_bytes));
        self.chunks.blocking_send(full).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the export's writer stopped taking chunks",
            )
        })?;
        self.flow.chunks += 1;
        let waiting = self.chunks.max_capacity() - self.chunks.capacity();
        self.flow.max_in_flight = self.flow.max_in_flight.max(waiting);
        Ok(())
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let taken = buf.len().min(self.chunk_bytes - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..taken]);
        if self.chunk.len() == self.chunk_bytes {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

/// The `std::io::Read` an import reads from on the blocking pool: the chunks the async side
/// read, in order; the end of the input once the async side closes the channel. `Err(())` is
/// the async side's read failing (its error is reported there).
struct ChunkReceiver {
    chunks: mpsc::Receiver<Result<Vec<u8>, ()>>,
    chunk: Vec<u8>,
    read: usize,
}

impl ChunkReceiver {
    fn new(chunks: mpsc::Receiver<Result<Vec<u8>, ()>>) -> Self {
        ChunkReceiver {
            chunks,
            chunk: Vec::new(),
            read: 0,
        }
    }
}

impl Read for ChunkReceiver {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.read == self.chunk.len() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.read = 0;
                }
                Some(Err(())) => {
                    return Err(io::Error::other("reading the document failed"));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.read);
        buf[..n].copy_from_slice(&self.chunk[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};
    use std::time::Duration;

    use super::*;
    use crate::{Category, Error, ErrorKind, KdfParams, Purpose, RecordMeta, RootSecret};

    /// Whether this thread drives async tasks (a runtime worker, or a thread inside
    /// `Runtime::block_on`): there, `block_on` panics ("Cannot start a runtime from within a
    /// runtime"); on the blocking pool it works; outside any runtime there is no handle.
    fn on_runtime_worker() -> bool {
        let Ok(runtime) = Handle::try_current() else {
            return false;
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(async {}))).is_err()
    }

    async fn vault(dir: &tempfile::TempDir) -> AsyncVault {
        let path = dir.path().to_owned();
        AsyncVault::open_with(move || {
            Vault::builder(path)
                .kdf(KdfParams::insecure_for_tests())
                .create(RootSecret::passphrase("correct horse battery staple"))
        })
        .await
        .unwrap()
    }

    fn subject() -> SubjectId {
        SubjectId::new("alice@example.com").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_runs_off_the_worker_threads() {
        assert!(
            on_runtime_worker(),
            "the check tells the thread in block_on"
        );
        let on_worker = tokio::spawn(async { on_runtime_worker() }).await.unwrap();
        assert!(on_worker, "the check tells a worker thread");
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(&dir).await;
        let on_worker = vault.call(|_| Ok(on_runtime_worker())).await.unwrap();
        assert!(!on_worker, "the call ran on a worker thread");
        let clone = vault.clone();
        let id = clone
            .call(|v| {
                assert!(!on_runtime_worker());
                v.put(
                    &subject(),
                    RecordMeta::new(Category::Contact).purpose(Purpose::new("billing")?),
                    b"alice@example.com",
                )
            })
            .await
            .unwrap();
        let read = vault
            .call(move |v| v.get(&subject(), id, &Purpose::new("billing")?))
            .await
            .unwrap();
        assert_eq!(read.payload, b"alice@example.com");
        vault.close().await.unwrap();
        let after = clone.call(|v| v.list(&subject())).await.unwrap_err();
        assert_eq!(after.kind(), ErrorKind::Stopped, "close closed every clone");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_works_on_a_current_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(&dir).await;
        assert!(!vault.call(|_| Ok(on_runtime_worker())).await.unwrap());
        vault.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_call_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(&dir).await;
        let panicked = vault
            .call(|_| -> Result<()> { panic!("a bug in the closure (this panic is expected)") })
            .await
            .unwrap_err();
        assert!(
            matches!(panicked, Error::Task(TaskError::Panicked)),
            "{panicked:?}"
        );
        assert_eq!(panicked.kind(), ErrorKind::Internal);
        assert!(!panicked.is_retryable());
        assert!(
            !panicked.to_string().contains("a bug in the closure"),
            "the panic's message is not carried"
        );
        // The vault is unharmed.
        let stats = vault.call(|v| v.stats()).await;
        assert!(stats.is_ok(), "{stats:?}");
        vault.close().await.unwrap();
    }

    #[test]
    fn a_call_outside_a_runtime_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::builder(dir.path())
            .kdf(KdfParams::insecure_for_tests())
            .create(RootSecret::passphrase("correct horse battery staple"))
            .unwrap();
        let vault = AsyncVault::new(vault);
        // Polled by a runtime that is not the one the call looks for: no runtime is entered.
        let call = vault.call(|v| v.stats());
        let outcome = futures_util::FutureExt::now_or_never(call);
        let Some(Err(e)) = outcome else {
            panic!("expected an immediate error, got {outcome:?}");
        };
        assert!(matches!(e, Error::Task(TaskError::NoRuntime)), "{e:?}");
        vault.blocking().clone().close().unwrap();
    }

    /// A writer that takes each write only after a pause, the first a long one: the export gets
    /// ahead of it and the channel fills, even on a machine busy with other tests.
    struct SlowWriter {
        written: Vec<u8>,
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
        writes: usize,
    }

    impl AsyncWrite for SlowWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let millis = if this.writes == 0 { 500 } else { 2 };
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(millis))));
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
            this.written.extend_from_slice(buf);
            this.writes += 1;
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A subject whose export is several chunks of [`CHUNK_BYTES`].
    async fn subject_of_many_records(vault: &AsyncVault) -> usize {
        const RECORDS: usize = 400;
        vault
            .call(|v| {
                let purpose = Purpose::new("support")?;
                let payloads: Vec<Vec<u8>> = (0..RECORDS)
                    .map(|i| format!("{i:04} {}", "ticket text ".repeat(100)).into_bytes())
                    .collect();
                let alice = subject();
                v.put_many(payloads.iter().map(|p| {
                    (
                        &alice,
                        RecordMeta::new(Category::Complaint).purpose(purpose.clone()),
                        p.as_slice(),
                    )
                }))?;
                Ok(())
            })
            .await
            .unwrap();
        RECORDS
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_to_writes_what_export_writes_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        // A fixed clock: both documents carry the same `exported_at`.
        let path = dir.path().to_owned();
        let vault = AsyncVault::open_with(move || {
            Vault::builder(path)
                .kdf(KdfParams::insecure_for_tests())
                .clock(crate::ManualClock::new(jiff::Timestamp::now()))
                .create(RootSecret::passphrase("correct horse battery staple"))
        })
        .await
        .unwrap();
        let records = subject_of_many_records(&vault).await;

        let expected = vault
            .call(|v| {
                let mut out = Vec::new();
                v.export(&subject(), &mut out)?;
                Ok(out)
            })
            .await
            .unwrap();
        assert!(
            expected.len() > 8 * CHUNK_BYTES,
            "the document is several chunks: {} bytes",
            expected.len()
        );

        let mut slow = SlowWriter {
            written: Vec::new(),
            pause: None,
            writes: 0,
        };
        let (exported, flow) = vault
            .export_counted(&subject(), &mut slow, CHUNK_BYTES)
            .await
            .unwrap();
        assert_eq!(exported, records as u64);
        assert!(
            slow.written == expected,
            "byte for byte what Vault::export writes"
        );
        assert_eq!(flow.chunks, expected.len().div_ceil(CHUNK_BYTES));
        assert_eq!(slow.writes, flow.chunks, "one write per chunk");
        assert!(
            flow.max_in_flight <= CHANNEL_CHUNKS,
            "{} chunks were waiting at once",
            flow.max_in_flight
        );
        assert_eq!(
            flow.max_in_flight, CHANNEL_CHUNKS,
            "the export got ahead of the slow writer and was held back by the channel"
        );

        // The public call, into a plain buffer.
        let mut fast = Vec::new();
        assert_eq!(
            vault.export_to(&subject(), &mut fast).await.unwrap(),
            records as u64
        );
        assert!(fast == expected);
        vault.close().await.unwrap();
    }

    /// A writer that fails after its first chunk.
    struct FailingWriter {
        writes: usize,
    }

    impl AsyncWrite for FailingWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.writes += 1;
            if this.writes > 1 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the client went away",
                )));
            }
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_to_reports_the_writers_error_and_the_trail_the_interruption() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(&dir).await;
        subject_of_many_records(&vault).await;
        let mut failing = FailingWriter { writes: 0 };
        let e = vault.export_to(&subject(), &mut failing).await.unwrap_err();
        match &e {
            Error::Storage(crate::StorageError::Io(io)) => {
                assert_eq!(io.kind(), io::ErrorKind::ConnectionReset)
            }
            other => panic!("expected the writer's error, got {other:?}"),
        }
        let notes: Vec<String> = vault
            .call(|v| v.audit_entries(None, None))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.op == crate::AuditOp::Export)
            .filter_map(|e| e.note)
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].ends_with("interrupted"), "{notes:?}");
        vault.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_to_of_an_unknown_subject_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(&dir).await;
        let mut out = Vec::new();
        let e = vault.export_to(&subject(), &mut out).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(out.is_empty());
        vault.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn import_from_files_an_export_in_another_vault() {
        let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (vault(&from_dir).await, vault(&to_dir).await);
        let records = subject_of_many_records(&from).await;
        let mut document = Vec::new();
        from.export_to(&subject(), &mut document).await.unwrap();

        let report = to.import_from(&mut document.as_slice()).await.unwrap();
        assert_eq!(report.records, records);
        let listed = to.call(|v| v.list(&subject())).await.unwrap();
        assert_eq!(listed.len(), records);

        // A document cut short is refused whole.
        let third = tempfile::tempdir().unwrap();
        let other = vault(&third).await;
        let cut = &document[..document.len() / 2];
        let e = other.import_from(&mut &cut[..]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        let e = other.call(|v| v.list(&subject())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "nothing was written");

        for v in [from, to, other] {
            v.close().await.unwrap();
        }
    }

    /// A reader that gives a first chunk of a document, then fails.
    struct FailingReader {
        first: Option<Vec<u8>>,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.get_mut().first.take() {
                Some(first) => {
                    buf.put_slice(&first);
                    Poll::Ready(Ok(()))
                }
                None => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the upload broke off",
                ))),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn import_from_a_failing_reader_reports_its_error_and_writes_nothing() {
        let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (vault(&from_dir).await, vault(&to_dir).await);
        subject_of_many_records(&from).await;
        let mut document = Vec::new();
        from.export_to(&subject(), &mut document).await.unwrap();
        let mut reader = FailingReader {
            first: Some(document[..1000].to_vec()),
        };
        let e = to.import_from(&mut reader).await.unwrap_err();
        match &e {
            Error::Storage(crate::StorageError::Io(io)) => {
                assert_eq!(io.kind(), io::ErrorKind::ConnectionReset)
            }
            other => panic!("expected the reader's error, got {other:?}"),
        }
        let e = to.call(|v| v.list(&subject())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "nothing was written");
        from.close().await.unwrap();
        to.close().await.unwrap();
    }
}
