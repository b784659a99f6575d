//! The PostgreSQL engine (feature `postgres`): the engine interface over a pool of connections to
//! one PostgreSQL database. It owns the two tables it creates and nothing else: `pdvault_kv`
//! (`key bytea primary key, value bytea not null`) and `pdvault_schema` (`version int`, one row),
//! optionally in a schema of their own. The only file that names `postgres` or `r2d2`.
//!
//! - Order: `bytea` compares byte by byte as unsigned bytes, shorter first on a common prefix,
//!   which is sled's order; scans are `ORDER BY key` over the primary key.
//! - [`apply`](Engine::apply) is one statement, whatever the batch's size, and so one
//!   transaction and one round trip: the batch is first reduced to the last op per key (sorted,
//!   so concurrent batches lock rows in one order), then the puts are one `INSERT ... SELECT FROM
//!   UNNEST($1::bytea[], $2::bytea[]) ON CONFLICT (key) DO UPDATE`, the rows at fresh keys
//!   ([`EngineOp::Insert`]: records, key-group member chunks, audit blocks) a plain `INSERT ... SELECT FROM UNNEST` and the
//!   deletes a `DELETE ... WHERE key = ANY(...)`, the last two in `WITH` clauses of the same
//!   statement. A serialization failure or deadlock (SQLSTATE 40001, 40P01), after which
//!   PostgreSQL has rolled the transaction back, is retried a few times; a fresh key that was
//!   there after all (23505) makes the batch go again with every row as a put.
//! - Scans stream: a scan first reads one batch with a single `SELECT ... LIMIT` (one round trip,
//!   one snapshot); only if there is more does it start over, in a `REPEATABLE READ READ ONLY`
//!   transaction on a pooled connection
//!   the iterator owns, through a server-side cursor (`DECLARE ... CURSOR`, then `FETCH 256` at a
//!   time), so a scan sees one snapshot and holds at most one batch of rows in memory. (A named SQL
//!   cursor is the same portal that `postgres::Transaction::bind` opens at the protocol level; a
//!   `Transaction` borrows its client, so an iterator that owns its connection cannot keep one
//!   without a self-referential type.) The connection goes back to the pool when the scan ends or
//!   the iterator is dropped, its transaction rolled back. A scan holds its connection while it
//!   runs: a caller that reads while scanning uses a second one.
//! - Every pooled connection prepares the hot statements (get, get-many, the batch's) once when
//!   it is made: a call is then one round trip that the server neither parses nor plans again.
//! - [`flush`](Engine::flush) does nothing: every transaction is durable when its commit returns,
//!   with PostgreSQL's default `synchronous_commit = on` (a server configured otherwise loses the
//!   last commits in a crash of the server, which this engine cannot see).
//! - Errors: a connection that cannot be made, a pool that has no connection in time and every
//!   database error become [`StorageError`]s (a full disk, SQLSTATE 53100, is
//!   [`StorageError::NoSpace`]; data or index corruption, XX001/XX002, is
//!   [`StorageError::Corrupted`]; the rest [`StorageError::Engine`]); nothing here panics on them.
//!   Error messages carry the database's message, never a key or a value.
//! - The `postgres` client is synchronous: it runs a Tokio runtime of its own on each call, and
//!   calling it from inside a Tokio runtime panics (Tokio forbids nested runtimes). The vault is
//!   not async; a host that is must call the vault from `spawn_blocking`.
//! - Connections are made without TLS (`NoTls`): a connection string that requires TLS
//!   (`sslmode=require`) fails to connect.

//! - Coordination: the vault's cross-process locks are PostgreSQL session-level advisory locks
//!   (`pg_advisory_lock[_shared]`) on one key per lock, all of one thread's locks in one session
//!   taken from a second pool; while a thread holds any, its commits run in that session, so a
//!   session the server lost (and its locks with it) fails the commit that relied on them. A
//!   lock is waited for at most [`LOCK_TIMEOUT`]; PostgreSQL's deadlock detector covers them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Config, NoTls};
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use super::engine::{Coordination, Engine, EngineOp, KvIter, LockGuard, LockMode, SharedLock};
use crate::error::StorageError;

/// The version of the table layout this code reads and writes.
const SCHEMA_VERSION: i32 = 1;
/// Rows fetched from a scan's cursor at a time.
const FETCH_ROWS: usize = 256;
/// Attempts of a batch that PostgreSQL rolled back for a serialization failure or deadlock.
const APPLY_ATTEMPTS: u32 = 5;
/// Connections the pool keeps at most.
const POOL_SIZE: u32 = 16;
/// How long making a connection, or waiting for a free one, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The advisory lock that serialises concurrent schema creation (an arbitrary constant).
const SETUP_LOCK: i64 = 0x7064_7661_756c_7401;
/// The vault's advisory locks are this base plus a small number (see [`lock_key`]).
const VAULT_LOCKS: i64 = 0x7064_7661_756c_7500;
/// Sessions that hold locks, at most (one per thread inside a lock).
const LOCK_POOL_SIZE: u32 = 64;
/// How long a lock is waited for before the call fails (PostgreSQL's `lock_timeout`).
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Tells engines apart in the per-thread session table.
static NEXT_ENGINE: AtomicU64 = AtomicU64::new(1);

/// The session of the locks one thread holds on one engine.
struct LockSession {
    /// `None` once the session failed: its locks are gone.
    conn: Option<PooledConnection<Manager>>,
    /// Locks held.
    depth: usize,
}

thread_local! {
    /// Per engine: the session of this thread's locks.
    static SESSIONS: RefCell<HashMap<u64, LockSession>> = RefCell::new(HashMap::new());
}

/// The advisory-lock key of a vault lock, within the schema's namespace of locks (a hash of the
/// schema name, so that vaults in two schemas of one database do not share locks).
fn lock_key(namespace: i64, lock: SharedLock) -> i64 {
    let n: i64 = match lock {
        SharedLock::Destruction => 0,
        SharedLock::Sweep => 1,
        SharedLock::AuditChains => 2,
        SharedLock::Subject(i) => 0x100 + i64::from(i),
        SharedLock::Create(i) => 0x200 + i64::from(i),
    };
    VAULT_LOCKS ^ (namespace << 16) ^ n
}

/// Makes the pools' connections, each with the engine's hot statements prepared on it.
struct Manager {
    inner: PostgresConnectionManager<NoTls>,
    sql: Statements,
}

/// The statements prepared on a connection: parsed and planned once per connection, not per call.
struct Prepared {
    get: postgres::Statement,
    get_many: postgres::Statement,
    upsert: postgres::Statement,
    delete: postgres::Statement,
    upsert_and_delete: postgres::Statement,
    insert_upsert_and_delete: postgres::Statement,
}

/// A pooled connection with its prepared statements.
pub(crate) struct Conn {
    client: postgres::Client,
    prepared: Prepared,
}

impl std::ops::Deref for Conn {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.inner.connect()?;
        let one = [Type::BYTEA];
        let arrays = [Type::BYTEA_ARRAY; 5];
        let prepared = Prepared {
            get: client.prepare_typed(&self.sql.get, &one)?,
            get_many: client.prepare_typed(&self.sql.get_many, &arrays[..1])?,
            upsert: client.prepare_typed(&self.sql.upsert, &arrays[..2])?,
            delete: client.prepare_typed(&self.sql.delete, &arrays[..1])?,
            upsert_and_delete: client.prepare_typed(&self.sql.upsert_and_delete, &arrays[..3])?,
            insert_upsert_and_delete: client
                .prepare_typed(&self.sql.insert_upsert_and_delete, &arrays)?,
        };
        Ok(Conn { client, prepared })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}
/// A key and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// The SQL of every statement, with the table names (and their schema) filled in once.
#[derive(Clone)]
struct Statements {
    /// The table, qualified.
    kv: String,
    get: String,
    get_many: String,
    upsert: String,
    delete: String,
    upsert_and_delete: String,
    insert_upsert_and_delete: String,
    scan_all: String,
    scan_from: String,
    scan_between: String,
    size: String,
}

impl Statements {
    fn new(schema: Option<&str>) -> Self {
        let kv = qualified(schema, "pdvault_kv");
        let select = format!("SELECT key, value FROM {kv}");
        Statements {
            kv: kv.clone(),
            get: format!("SELECT value FROM {kv} WHERE key = $1"),
            get_many: format!("SELECT key, value FROM {kv} WHERE key = ANY($1::bytea[])"),
            upsert: format!(
                "INSERT INTO {kv} (key, value) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete: format!("DELETE FROM {kv} WHERE key = ANY($1::bytea[])"),
            // Both in one statement, which is its own transaction: one round trip.
            upsert_and_delete: format!(
                "WITH gone AS (DELETE FROM {kv} WHERE key = ANY($3::bytea[])) \
                 INSERT INTO {kv} (key, value) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            // Rows at fresh keys go in without `ON CONFLICT`, which costs PostgreSQL a
            // speculative insertion per row (about 60% more server time for a batch of new rows).
            insert_upsert_and_delete: format!(
                "WITH gone AS (DELETE FROM {kv} WHERE key = ANY($5::bytea[])), \
                 fresh AS (INSERT INTO {kv} (key, value) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[])) \
                 INSERT INTO {kv} (key, value) SELECT * FROM UNNEST($3::bytea[], $4::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            scan_all: format!("{select} ORDER BY key"),
            scan_from: format!("{select} WHERE key >= $1 ORDER BY key"),
            scan_between: format!("{select} WHERE key >= $1 AND key < $2 ORDER BY key"),
            size: format!("SELECT pg_total_relation_size('{kv}')::bigint"),
        }
    }
}

/// `"schema".table`, or `table` alone.
fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) => format!("\"{s}\".{table}"),
        None => table.to_string(),
    }
}

/// A schema name is a plain lower-case identifier: `[a-z_][a-z0-9_]*`, at most 63 bytes.
fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// An engine on PostgreSQL tables, shared by every process that connects to them. Clones share
/// the pools and the locks.
#[derive(Clone)]
pub(crate) struct PostgresEngine {
    pool: Pool<Manager>,
    /// Sessions holding locks ([`Coordination`]).
    lock_pool: Pool<Manager>,
    sql: Statements,
    id: u64,
    namespace: i64,
}

impl PostgresEngine {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` connection string)
    /// and creates the tables if absent, in `schema` if given (created too if absent; a plain
    /// lower-case identifier), else wherever the connection's `search_path` puts them. Fails with
    /// a clear error if the database cannot be reached, or holds tables of another layout version.
    pub(crate) fn connect(url: &str, schema: Option<&str>) -> Result<Self, StorageError> {
        if let Some(s) = schema
            && !valid_schema(s)
        {
            return Err(StorageError::engine(format!(
                "invalid PostgreSQL schema name {s:?} (expected [a-z_][a-z0-9_]*)"
            )));
        }
        let mut config: Config = url
            .parse()
            .map_err(|e| StorageError::engine_error("invalid PostgreSQL connection string", e))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        // One connection made here, so that an unreachable server or a refused login is reported
        // at once with PostgreSQL's own reason (the pool would only time out).
        let mut client = config
            .connect(NoTls)
            .map_err(|e| StorageError::engine_error("cannot connect to PostgreSQL", e))?;
        create_schema(&mut client, schema)?;
        drop(client);
        // A connection is checked when used, not when taken from the pool (a round trip saved
        // per call); one the server closed fails that call and is then discarded.
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(CONNECT_TIMEOUT)
            .build_unchecked(Manager {
                inner: PostgresConnectionManager::new(config.clone(), NoTls),
                sql: Statements::new(schema),
            });
        let mut lock_config = config;
        lock_config.options(&format!("-c lock_timeout={}", LOCK_TIMEOUT.as_millis()));
        let lock_pool = Pool::builder()
            .max_size(LOCK_POOL_SIZE)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(LOCK_TIMEOUT)
            .build_unchecked(Manager {
                inner: PostgresConnectionManager::new(lock_config, NoTls),
                sql: Statements::new(schema),
            });
        let namespace = i64::from(u16::from_be_bytes(
            blake3::hash(schema.unwrap_or("").as_bytes()).as_bytes()[..2]
                .try_into()
                .unwrap_or([0; 2]),
        ));
        Ok(PostgresEngine {
            pool,
            lock_pool,
            sql: Statements::new(schema),
            id: NEXT_ENGINE.fetch_add(1, Ordering::Relaxed),
            namespace,
        })
    }

    /// Runs `f` on the session of this thread's locks, if it holds any; `None` if it holds none.
    /// A session that failed before is an error: the locks the caller relies on are gone.
    fn with_lock_session<R>(
        &self,
        f: impl FnOnce(&mut Conn) -> R,
    ) -> Option<Result<R, StorageError>> {
        SESSIONS.with(|s| {
            let mut sessions = s.borrow_mut();
            let session = sessions.get_mut(&self.id)?;
            Some(match session.conn.as_mut() {
                Some(conn) => Ok(f(conn)),
                None => Err(lost_session()),
            })
        })
    }

    /// Marks this thread's session failed if `conn` reports its connection closed.
    fn note_if_closed(&self) {
        SESSIONS.with(|s| {
            if let Some(session) = s.borrow_mut().get_mut(&self.id)
                && session.conn.as_ref().is_some_and(|c| c.is_closed())
            {
                session.conn = None;
            }
        });
    }

    fn conn(&self) -> Result<PooledConnection<Manager>, StorageError> {
        self.pool
            .get()
            .map_err(|e| StorageError::engine_error("no PostgreSQL connection available", e))
    }

    /// One attempt at a batch, as one transaction: in the session of this thread's locks if it
    /// holds any, else on a pooled connection.
    fn try_apply(&self, batch: &Reduced<'_>) -> Result<(), AttemptError> {
        if let Some(r) = self.with_lock_session(|c| apply_on(c, batch)) {
            let r = r.map_err(AttemptError::Pool)?;
            self.note_if_closed();
            return r;
        }
        let mut conn = self.conn().map_err(AttemptError::Pool)?;
        apply_on(&mut conn, batch)
    }

    /// A streaming scan of `query` with `params`: most scans (a subject's keys, a shard's) fit
    /// one batch, read in one statement; a longer one starts over through a cursor.
    fn scan(&self, query: &str, params: &[&[u8]]) -> KvIter<'_> {
        match self.whole_if_small(query, params) {
            Ok(Some(rows)) => return Box::new(rows.into_iter().map(Ok)),
            Ok(None) => {}
            Err(e) => return Box::new(std::iter::once(Err(e))),
        }
        match Scan::open(self, query, params) {
            Ok(scan) => Box::new(scan),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Every row of `query`, if there are at most [`FETCH_ROWS`]; `None` if there are more.
    fn whole_if_small(
        &self,
        query: &str,
        params: &[&[u8]],
    ) -> Result<Option<Vec<Pair>>, StorageError> {
        let typed = typed_bytea(params);
        let limited = format!("{query} LIMIT {}", FETCH_ROWS + 1);
        let rows = self
            .conn()?
            .query_typed(&limited, &typed)
            .map_err(map_err)?;
        if rows.len() > FETCH_ROWS {
            return Ok(None);
        }
        rows.iter()
            .map(|r| Ok((bytes(r, 0)?, bytes(r, 1)?)))
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

/// A batch reduced to the last op per key, in key order: rows at fresh keys, rows that may
/// overwrite, keys to delete. The three touch disjoint keys.
#[derive(Default)]
struct Reduced<'a> {
    fresh: Vec<(&'a [u8], &'a [u8])>,
    puts: Vec<(&'a [u8], &'a [u8])>,
    deletes: Vec<&'a [u8]>,
}

/// The op of a batch that counts for one key: its last.
enum LastOp {
    Insert(Vec<u8>),
    Put(Vec<u8>),
    Delete,
}

impl<'a> Reduced<'a> {
    fn new(last: &'a [(Vec<u8>, LastOp)]) -> Self {
        let mut batch = Reduced::default();
        for (k, op) in last {
            match op {
                LastOp::Insert(v) => batch.fresh.push((k, v)),
                LastOp::Put(v) => batch.puts.push((k, v)),
                LastOp::Delete => batch.deletes.push(k),
            }
        }
        batch
    }

    fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.puts.is_empty() && self.deletes.is_empty()
    }

    /// The same batch with every fresh row written as a put (for a fresh key that was there).
    fn without_fresh(&mut self) {
        self.puts.append(&mut self.fresh);
        self.puts.sort_unstable_by_key(|(k, _)| *k);
    }
}

/// One attempt at a batch on `conn`: one statement, and so one transaction (autocommit), atomic
/// as a whole.
fn apply_on(conn: &mut Conn, batch: &Reduced<'_>) -> Result<(), AttemptError> {
    let (keys, values) = columns(&batch.puts);
    let (fresh_keys, fresh_values) = columns(&batch.fresh);
    let deletes = &batch.deletes;
    let p = &conn.prepared;
    let (st, params): (_, Vec<&(dyn ToSql + Sync)>) = if !fresh_keys.is_empty() {
        (
            p.insert_upsert_and_delete.clone(),
            vec![&fresh_keys, &fresh_values, &keys, &values, deletes],
        )
    } else if deletes.is_empty() {
        (p.upsert.clone(), vec![&keys, &values])
    } else if keys.is_empty() {
        (p.delete.clone(), vec![deletes])
    } else {
        (p.upsert_and_delete.clone(), vec![&keys, &values, deletes])
    };
    conn.client.execute(&st, &params)?;
    Ok(())
}

/// The key and value columns of `rows`.
fn columns<'a>(rows: &[(&'a [u8], &'a [u8])]) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    rows.iter().copied().unzip()
}

/// Creates the schema and the tables if absent and checks the layout version, in one
/// transaction under an advisory lock (concurrent `CREATE ... IF NOT EXISTS` can collide).
fn create_schema(client: &mut postgres::Client, schema: Option<&str>) -> Result<(), StorageError> {
    let kv = qualified(schema, "pdvault_kv");
    let version_table = qualified(schema, "pdvault_schema");
    let mut tx = client.transaction().map_err(map_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK])
        .map_err(map_err)?;
    if let Some(s) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
            .map_err(map_err)?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {kv} (key bytea PRIMARY KEY, value bytea NOT NULL);
         CREATE TABLE IF NOT EXISTS {version_table} (version int NOT NULL);"
    ))
    .map_err(map_err)?;
    let rows = tx
        .query(&format!("SELECT version FROM {version_table}"), &[])
        .map_err(map_err)?;
    match rows.as_slice() {
        [] => {
            tx.execute(
                &format!("INSERT INTO {version_table} (version) VALUES ($1)"),
                &[&SCHEMA_VERSION],
            )
            .map_err(map_err)?;
        }
        [row] => {
            let version: i32 = row.try_get(0).map_err(map_err)?;
            if version != SCHEMA_VERSION {
                return Err(StorageError::engine(format!(
                    "the PostgreSQL tables have layout version {version}, this build reads \
                     version {SCHEMA_VERSION}"
                )));
            }
        }
        _ => {
            return Err(StorageError::Corrupted(format!(
                "{version_table} holds {} rows, expected one",
                rows.len()
            )));
        }
    }
    tx.commit().map_err(map_err)
}

fn lost_session() -> StorageError {
    StorageError::engine(
        "the PostgreSQL session holding this call's locks was lost (did the server restart?); \
         nothing was written",
    )
}

impl Coordination for PostgresEngine {
    fn lock_then_read(
        &self,
        lock: SharedLock,
        mode: LockMode,
        read: Option<&[u8]>,
    ) -> Result<(LockGuard, Option<Vec<u8>>), StorageError> {
        let key = lock_key(self.namespace, lock);
        let (take, release) = match mode {
            LockMode::Shared => (
                format!("SELECT pg_advisory_lock_shared({key})"),
                format!("SELECT pg_advisory_unlock_shared({key})"),
            ),
            LockMode::Exclusive => (
                format!("SELECT pg_advisory_lock({key})"),
                format!("SELECT pg_advisory_unlock({key})"),
            ),
        };
        // The read is a second statement of the same simple query: one round trip, and a
        // snapshot taken after the lock was granted (each statement of READ COMMITTED takes its
        // own). Keys are sent as hex literals; the numbers are the engine's own.
        let query = match read {
            Some(k) => format!(
                "{take}; SELECT value FROM {} WHERE key = '\\x{}'::bytea",
                self.sql.kv,
                hex(k)
            ),
            None => take,
        };
        let id = self.id;
        let fresh = SESSIONS.with(|s| !s.borrow().contains_key(&id));
        if fresh {
            let conn = self.lock_pool.get().map_err(|e| {
                StorageError::engine_error("no PostgreSQL connection for a lock", e)
            })?;
            SESSIONS.with(|s| {
                s.borrow_mut().insert(
                    id,
                    LockSession {
                        conn: Some(conn),
                        depth: 0,
                    },
                )
            });
        }
        let taken = match self.with_lock_session(|c| c.simple_query(&query)) {
            Some(Ok(Ok(messages))) => read_value(&messages),
            Some(Ok(Err(e))) => Err(map_err(e)),
            Some(Err(e)) => Err(e),
            None => Err(lost_session()),
        };
        SESSIONS.with(|s| {
            let mut sessions = s.borrow_mut();
            if let Some(session) = sessions.get_mut(&id) {
                if taken.is_ok() {
                    session.depth += 1;
                } else if session.conn.as_ref().is_some_and(|c| c.is_closed()) {
                    session.conn = None;
                }
                if session.depth == 0 {
                    sessions.remove(&id);
                }
            }
        });
        let value = taken?;
        let guard = LockGuard::new(move || {
            SESSIONS.with(|s| {
                let mut sessions = s.borrow_mut();
                let Some(session) = sessions.get_mut(&id) else {
                    return;
                };
                if let Some(conn) = session.conn.as_mut()
                    && conn.batch_execute(&release).is_err()
                {
                    // The session (and every lock in it) is gone, or in a state the pool must
                    // not hand out again.
                    session.conn = None;
                }
                session.depth -= 1;
                if session.depth == 0 {
                    sessions.remove(&id);
                }
            })
        });
        Ok((guard, value))
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `bytea` value of the last row of a simple query's answer, if any (its text form is
/// `\x` and hex).
fn read_value(messages: &[postgres::SimpleQueryMessage]) -> Result<Option<Vec<u8>>, StorageError> {
    let malformed = || StorageError::engine("PostgreSQL sent a bytea in an unknown form");
    let mut value = None;
    for m in messages {
        if let postgres::SimpleQueryMessage::Row(row) = m
            && row.columns().first().is_some_and(|c| c.name() == "value")
        {
            let text = row.get(0).ok_or_else(malformed)?;
            let digits = text.strip_prefix("\\x").ok_or_else(malformed)?;
            if digits.len() % 2 != 0 {
                return Err(malformed());
            }
            let parsed: Option<Vec<u8>> = (0..digits.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
                .collect();
            value = Some(parsed.ok_or_else(malformed)?);
        }
    }
    Ok(value)
}

/// Why one attempt at a batch failed.
enum AttemptError {
    /// No connection: not retried.
    Pool(StorageError),
    /// PostgreSQL refused the transaction.
    Db(postgres::Error),
}

impl From<postgres::Error> for AttemptError {
    fn from(e: postgres::Error) -> Self {
        AttemptError::Db(e)
    }
}

/// Whether PostgreSQL rolled the transaction back for a conflict that a retry can resolve.
fn is_retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Whether a statement failed on a key that was already there.
fn is_duplicate_key(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

fn map_err(e: postgres::Error) -> StorageError {
    use postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL => StorageError::NoSpace(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("PostgreSQL: {e}"),
        )),
        Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            StorageError::Corrupted(format!("PostgreSQL: {e}"))
        }
        _ if e.is_closed() => StorageError::engine_error("the PostgreSQL connection was closed", e),
        _ => StorageError::engine_error("PostgreSQL", e),
    }
}

/// Parameters all of type `bytea`.
fn typed_bytea<'a>(params: &'a [&'a [u8]]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| (p as &(dyn ToSql + Sync), Type::BYTEA))
        .collect()
}

fn bytes(row: &postgres::Row, i: usize) -> Result<Vec<u8>, StorageError> {
    row.try_get::<_, Vec<u8>>(i).map_err(map_err)
}

/// The exclusive upper bound of the keys starting with `prefix`: the prefix without its tail of
/// `0xff` bytes, its last byte incremented. `None` if there is none (empty, or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

impl Engine for PostgresEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        // A read is retried once on a connection the server closed (after a restart, each pooled
        // connection fails once before the pool discards it).
        let mut attempt = 0;
        loop {
            let mut conn = self.conn()?;
            let st = conn.prepared.get.clone();
            match conn.client.query_opt(&st, &[&key]) {
                Ok(row) => return row.map(|r| bytes(&r, 0)).transpose(),
                Err(e) if e.is_closed() && attempt == 0 => attempt += 1,
                Err(e) => return Err(map_err(e)),
            }
        }
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        // One statement: one snapshot, one round trip.
        let mut attempt = 0;
        let rows = loop {
            let mut conn = self.conn()?;
            let st = conn.prepared.get_many.clone();
            match conn.client.query(&st, &[&keys]) {
                Ok(rows) => break rows,
                Err(e) if e.is_closed() && attempt == 0 => attempt += 1,
                Err(e) => return Err(map_err(e)),
            }
        };
        let mut found: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(bytes(r, 0)?, bytes(r, 1)?);
        }
        Ok(keys.iter().map(|k| found.remove(*k)).collect())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> KvIter<'_> {
        if prefix.is_empty() {
            return self.scan(&self.sql.scan_all, &[]);
        }
        match prefix_end(prefix) {
            Some(end) => self.scan(&self.sql.scan_between, &[prefix, &end]),
            None => self.scan(&self.sql.scan_from, &[prefix]),
        }
    }

    fn range(&self, start: &[u8], end: &[u8]) -> KvIter<'_> {
        self.scan(&self.sql.scan_between, &[start, end])
    }

    fn apply(&self, ops: Vec<EngineOp>) -> Result<(), StorageError> {
        // The last op on each key is the one that counts.
        // (A stable sort, then the last of each run of one key: cheaper than a map.)
        let mut ops: Vec<(Vec<u8>, LastOp)> = ops
            .into_iter()
            .map(|op| match op {
                EngineOp::Insert(k, v) => (k, LastOp::Insert(v)),
                EngineOp::Put(k, v) => (k, LastOp::Put(v)),
                EngineOp::Delete(k) => (k, LastOp::Delete),
            })
            .collect();
        ops.sort_by(|a, b| a.0.cmp(&b.0));
        let mut last: Vec<(Vec<u8>, LastOp)> = Vec::with_capacity(ops.len());
        for op in ops {
            match last.last_mut() {
                Some(prev) if prev.0 == op.0 => *prev = op,
                _ => last.push(op),
            }
        }
        let mut batch = Reduced::new(&last);
        if batch.is_empty() {
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            match self.try_apply(&batch) {
                Ok(()) => return Ok(()),
                Err(AttemptError::Pool(e)) => return Err(e),
                // A fresh key was there after all (PostgreSQL rolled the statement back): the
                // batch again, every row as a put, which overwrites as `Insert` promises.
                Err(AttemptError::Db(e)) if !batch.fresh.is_empty() && is_duplicate_key(&e) => {
                    batch.without_fresh();
                }
                Err(AttemptError::Db(e)) if attempt < APPLY_ATTEMPTS && is_retryable(&e) => {
                    std::thread::sleep(Duration::from_millis(5 << attempt));
                    attempt += 1;
                }
                Err(AttemptError::Db(e)) => return Err(map_err(e)),
            }
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Every committed transaction is already durable (`synchronous_commit = on`).
        Ok(())
    }

    fn coordination(&self) -> Option<&dyn Coordination> {
        Some(self)
    }

    fn size_on_disk(&self) -> Option<u64> {
        let mut conn = self.conn().ok()?;
        let row = conn.query_one(&self.sql.size, &[]).ok()?;
        let size: i64 = row.try_get(0).ok()?;
        u64::try_from(size).ok()
    }
}

/// A streaming scan: a read-only transaction on a connection of its own, read through a cursor.
struct Scan {
    /// `None` once the scan ended (the connection went back to the pool).
    conn: Option<PooledConnection<Manager>>,
    /// Rows fetched and not yet returned, in reverse order.
    batch: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The cursor's name (one per connection, and a connection runs one scan at a time).
const CURSOR: &str = "pdvault_scan";

impl Scan {
    fn open(engine: &PostgresEngine, query: &str, params: &[&[u8]]) -> Result<Self, StorageError> {
        let mut conn = engine.conn()?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(map_err)?;
        let mut scan = Scan {
            conn: Some(conn),
            batch: Vec::new(),
        };
        let typed = typed_bytea(params);
        let declare = format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {query}");
        if let Some(conn) = scan.conn.as_mut() {
            conn.query_typed(&declare, &typed).map_err(map_err)?;
        }
        Ok(scan)
    }

    /// Fetches the next batch; ends the scan when the cursor is exhausted.
    fn fetch(&mut self) -> Result<(), StorageError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let rows = conn
            .query_typed(&format!("FETCH {FETCH_ROWS} FROM {CURSOR}"), &[])
            .map_err(map_err)?;
        let done = rows.len() < FETCH_ROWS;
        self.batch = rows
            .iter()
            .rev()
            .map(|r| Ok((bytes(r, 0)?, bytes(r, 1)?)))
            .collect::<Result<_, StorageError>>()?;
        if done {
            self.close();
        }
        Ok(())
    }

    /// Ends the transaction and gives the connection back to the pool.
    fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Best effort: ROLLBACK succeeds in every transaction state on a live connection, and
            // a connection it failed on is closed, which the pool then discards.
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
}

impl Iterator for Scan {
    type Item = Result<(Vec<u8>, Vec<u8>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.batch.is_empty()
            && let Err(e) = self.fetch()
        {
            self.close();
            return Some(Err(e));
        }
        self.batch.pop().map(Ok)
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        self.close();
    }
}
