//! A small HTTP service on pdvault (feature `tokio`, axum): sign-up, purpose-bound reads, an
//! order kept under a legal obligation, a legal hold, an erasure request and an access request
//! whose export streams out as the response body. Every vault call goes through
//! `pdvault::nonblocking::AsyncVault`, so it runs on Tokio's blocking pool and never on a
//! runtime worker thread; errors become HTTP statuses through `Error::kind()`.
//!
//! Run:
//!
//! - `cargo run --features tokio --example service`: a demo that starts the service on
//!   127.0.0.1 (a free port) with a vault in a temporary directory, sends one request to each
//!   endpoint over HTTP, prints what happened and shuts down gracefully.
//! - `cargo run --features tokio --example service -- --serve 127.0.0.1:8080 [--dir DIR]`:
//!   serves until ctrl-c (the vault in DIR, or in a temporary directory removed at exit), then
//!   shuts down gracefully and closes the vault. The passphrase is read from
//!   `PDVAULT_EXAMPLE_PASSPHRASE`.
//! - `cargo test --all-features --example service`: the HTTP test at the end of this file.
//!
//! Endpoints (the subject identifier is in the path to keep the example short; a real service
//! takes it from the caller's authenticated session, since URLs end up in access logs):
//!
//! | request | does | answers |
//! | --- | --- | --- |
//! | `POST /subjects/{subject}/signup` `{"name", "email"}` | a profile and a contact record, basis contract, purpose `account` | 201 `{"profile", "contact"}` |
//! | `GET /subjects/{subject}/records/{record}?purpose=P` | reads the record for purpose P | 200 the payload; 403 for a purpose the record was not collected for |
//! | `POST /subjects/{subject}/orders` (the order as text) | a transaction record, basis legal obligation, purpose `settlement` | 201 `{"record"}` |
//! | `POST /subjects/{subject}/holds` `{"category", "reason", "reference"}` | a legal hold on one category | 201 `{"hold"}` |
//! | `POST /subjects/{subject}/erasure` | erases the subject but what a hold or a retention obligation keeps | 200 the erasure report: what was erased, what was retained and why |
//! | `GET /subjects/{subject}/export` | the access request: the subject's export document, streamed | 200 JSON |
//!
//! Errors answer `{"error": kind, "message": ...}` with the kind's status (404, 403, 409, 400,
//! 503, ...). The policy is seed 000's (`policies/seed-000-cmcendpoint.toml`): transactions are
//! kept five years, and so survive an erasure request.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pdvault::nonblocking::{AsyncVault, CHUNK_BYTES};
use pdvault::{
    Category, Clock, ErrorKind, HoldReason, HoldTarget, KdfParams, LegalBasis, NewHold, Policy,
    Purpose, RecordId, RecordMeta, RootSecret, SubjectId, SystemClock, Vault,
};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The purpose the sign-up records are collected for.
const ACCOUNT: &str = "account";
/// The purpose orders are collected for.
const SETTLEMENT: &str = "settlement";
/// The passphrase of the demo's throwaway vault.
const DEMO_PASSPHRASE: &str = "example only: a real service reads its secret store";

/// Opens (or creates) the service's vault on the blocking pool, with seed 000's policy.
async fn open_vault(
    dir: PathBuf,
    passphrase: String,
    kdf: KdfParams,
    clock: impl Clock + 'static,
) -> pdvault::Result<AsyncVault> {
    let policy = Policy::from_toml(include_str!("../policies/seed-000-cmcendpoint.toml"))?;
    AsyncVault::open_with(move || {
        Vault::builder(dir)
            .actor("service")
            .kdf(kdf)
            .clock(clock)
            .policy(policy)
            .open_or_create(RootSecret::passphrase(passphrase))
    })
    .await
}

/// The service's routes, over one shared vault.
fn router(vault: AsyncVault) -> Router {
    Router::new()
        .route("/subjects/{subject}/signup", post(sign_up))
        .route("/subjects/{subject}/records/{record}", get(read_record))
        .route("/subjects/{subject}/orders", post(place_order))
        .route("/subjects/{subject}/holds", post(place_hold))
        .route("/subjects/{subject}/erasure", post(erasure_request))
        .route("/subjects/{subject}/export", get(access_request))
        .with_state(vault)
}

/// Serves `listener` until `shutdown` completes, lets the requests in flight finish, then closes
/// the vault.
async fn serve(
    listener: TcpListener,
    vault: AsyncVault,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    axum::serve(listener, router(vault.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    vault.close().await?;
    Ok(())
}

/// A failure of the service outside a request.
#[derive(Debug)]
enum ServiceError {
    /// Serving the socket failed.
    Io(io::Error),
    /// The vault failed (opening or closing it).
    Vault(pdvault::Error),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Io(e) => write!(f, "serving failed: {e}"),
            ServiceError::Vault(e) => write!(f, "the vault failed: {e}"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<io::Error> for ServiceError {
    fn from(e: io::Error) -> Self {
        ServiceError::Io(e)
    }
}

impl From<pdvault::Error> for ServiceError {
    fn from(e: pdvault::Error) -> Self {
        ServiceError::Vault(e)
    }
}

/// A vault error as an HTTP response: the status its kind calls for.
struct ApiError(pdvault::Error);

impl<E: Into<pdvault::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

/// The HTTP status for an error kind (`ErrorKind`'s documentation names them).
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::Conflict | ErrorKind::Retained => {
            StatusCode::CONFLICT
        }
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Refused => StatusCode::FORBIDDEN,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable | ErrorKind::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        // A wrong secret is the service's configuration here, not the caller's; and a kind added
        // later is an internal error until it is given a status.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        // pdvault's messages name no subject, payload or key: they may go to the client.
        let body = json!({ "error": kind.to_string(), "message": self.0.to_string() });
        (status_of(kind), axum::Json(body)).into_response()
    }
}

type Reply = Result<Response, ApiError>;

#[derive(Deserialize)]
struct SignUp {
    name: String,
    email: String,
}

/// A profile and a contact record under the contract, for the account, in one trip to the
/// blocking pool.
async fn sign_up(
    State(vault): State<AsyncVault>,
    Path(subject): Path<String>,
    axum::Json(form): axum::Json<SignUp>,
) -> Reply {
    let subject = SubjectId::new(subject)?;
    let (profile, contact) = vault
        .call(move |v| {
            let account = Purpose::new(ACCOUNT)?;
            let meta = |category| {
                RecordMeta::new(category)
                    .basis(LegalBasis::Contract)
                    .purpose(account.clone())
                    .source("sign-up form")
            };
            let profile = v.put(&subject, meta(Category::Profile), form.name.as_bytes())?;
            let contact = v.put(&subject, meta(Category::Contact), form.email.as_bytes())?;
            Ok((profile, contact))
        })
        .await?;
    let body = json!({ "profile": profile.to_string(), "contact": contact.to_string() });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
struct ReadFor {
    purpose: String,
}

/// A read for a purpose: refused (403) unless the record was collected for it.
async fn read_record(
    State(vault): State<AsyncVault>,
    Path((subject, record)): Path<(String, String)>,
    Query(read_for): Query<ReadFor>,
) -> Reply {
    let subject = SubjectId::new(subject)?;
    let record: RecordId = record.parse()?;
    let purpose = Purpose::new(read_for.purpose)?;
    let read = vault
        .call(move |v| v.get(&subject, record, &purpose))
        .await?;
    let kind = if std::str::from_utf8(&read.payload).is_ok() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, kind)], read.payload).into_response())
}

/// An order, kept under the legal obligation to keep transaction records (five years in seed
/// 000's policy).
async fn place_order(
    State(vault): State<AsyncVault>,
    Path(subject): Path<String>,
    order: Bytes,
) -> Reply {
    let subject = SubjectId::new(subject)?;
    let record = vault
        .call(move |v| {
            let meta = RecordMeta::new(Category::Transaction)
                .basis(LegalBasis::LegalObligation)
                .purpose(Purpose::new(SETTLEMENT)?)
                .source("checkout");
            v.put(&subject, meta, &order)
        })
        .await?;
    let body = json!({ "record": record.to_string() });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
struct HoldOn {
    category: String,
    reason: String,
    reference: Option<String>,
}

/// A legal hold on one category of the subject's records.
async fn place_hold(
    State(vault): State<AsyncVault>,
    Path(subject): Path<String>,
    axum::Json(hold): axum::Json<HoldOn>,
) -> Reply {
    let subject = SubjectId::new(subject)?;
    let category: Category = hold.category.parse()?;
    let reason: HoldReason = hold.reason.parse()?;
    let id = vault
        .call(move |v| {
            let mut new = NewHold::new(HoldTarget::Category(category), reason);
            if let Some(reference) = hold.reference {
                new = new.reference(reference);
            }
            v.place_hold(&subject, new)
        })
        .await?;
    let body = json!({ "hold": id.to_string() });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// An erasure request: everything is destroyed but what a hold or a retention obligation keeps;
/// the report says which is which, and why.
async fn erasure_request(State(vault): State<AsyncVault>, Path(subject): Path<String>) -> Reply {
    let subject = SubjectId::new(subject)?;
    let report = vault.call(move |v| v.erase_subject(&subject)).await?;
    Ok(axum::Json(report).into_response())
}

/// An access request: the export document, streamed as the response body. The export runs on
/// the blocking pool ([`AsyncVault::export_to`]) into a pipe the body reads from; the status is
/// decided on its first bytes, so an export refused at once (no such subject, an unverified
/// requester) is answered with its own status, not a 200.
async fn access_request(State(vault): State<AsyncVault>, Path(subject): Path<String>) -> Reply {
    let subject = SubjectId::new(subject)?;
    let (mut into_body, mut from_export) = tokio::io::duplex(CHUNK_BYTES);
    let export = tokio::spawn(async move { vault.export_to(&subject, &mut into_body).await });
    let mut first = vec![0; CHUNK_BYTES];
    let read = from_export.read(&mut first).await?;
    if read == 0 {
        // Every document has a head: an export that wrote nothing failed.
        return Err(match export.await {
            Ok(Err(e)) => ApiError(e),
            Ok(Ok(_)) => ApiError(io::Error::other("the export wrote nothing").into()),
            Err(e) => ApiError(io::Error::other(e).into()),
        });
    }
    first.truncate(read);
    let body = ExportBody {
        first: Some(first),
        from_export,
        export: Some(export),
    };
    let stream = futures_util::stream::unfold(body, ExportBody::next);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The rest of an export, as response body chunks.
struct ExportBody {
    /// What was read to decide the status.
    first: Option<Vec<u8>>,
    from_export: tokio::io::DuplexStream,
    /// The export, until its outcome is known.
    export: Option<JoinHandle<pdvault::Result<u64>>>,
}

impl ExportBody {
    /// The next chunk; at the end of the pipe, the export's outcome: an export that failed half
    /// way ends the body with an error, which cuts the response off (the client sees a broken
    /// transfer, never a short document that looks whole).
    async fn next(mut self) -> Option<(io::Result<Bytes>, ExportBody)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(first.into()), self));
        }
        let export = self.export.take()?;
        let mut chunk = vec![0; CHUNK_BYTES];
        match self.from_export.read(&mut chunk).await {
            Ok(0) => match export.await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some((Err(io::Error::other(e)), self)),
                Err(e) => Some((Err(io::Error::other(e)), self)),
            },
            Ok(n) => {
                chunk.truncate(n);
                self.export = Some(export);
                Some((Ok(chunk.into()), self))
            }
            Err(e) => Some((Err(e), self)),
        }
    }
}

/// A blocking HTTP client for the demo and the test, run on a plain thread.
struct Client {
    base: String,
    agent: ureq::Agent,
}

/// A response: its status and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A string field of a JSON body.
    fn field(&self, name: &str) -> String {
        self.json()[name].as_str().unwrap_or_default().to_owned()
    }
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            base: format!("http://{addr}"),
            agent,
        }
    }

    fn get(&self, path: &str) -> Result<Answer, ureq::Error> {
        Self::answer(self.agent.get(format!("{}{path}", self.base)).call()?)
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> Result<Answer, ureq::Error> {
        let sent = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .send(body)?;
        Self::answer(sent)
    }

    fn post_json(&self, path: &str, body: serde_json::Value) -> Result<Answer, ureq::Error> {
        self.post(path, "application/json", &body.to_string())
    }

    fn answer(mut response: ureq::http::Response<ureq::Body>) -> Result<Answer, ureq::Error> {
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        Ok(Answer { status, body })
    }
}

/// The demo: one request to each endpoint, printed.
fn walkthrough(client: &Client) -> Result<(), Box<dyn std::error::Error>> {
    let subject = "/subjects/alice@example.com";
    let show = |what: &str, answer: &Answer| {
        let body: String = answer.body.chars().take(420).collect();
        println!("{what}\n  -> {} {body}", answer.status);
    };

    let signed_up = client.post_json(
        &format!("{subject}/signup"),
        json!({ "name": "Alice Example", "email": "alice@example.com" }),
    )?;
    show("sign-up", &signed_up);
    let (profile, contact) = (signed_up.field("profile"), signed_up.field("contact"));

    let read = client.get(&format!("{subject}/records/{profile}?purpose={ACCOUNT}"))?;
    show("read the profile for the account", &read);
    let refused = client.get(&format!("{subject}/records/{profile}?purpose=marketing"))?;
    show(
        "read the profile for marketing (not a purpose it was collected for)",
        &refused,
    );

    let order = client.post(
        &format!("{subject}/orders"),
        "text/plain",
        "order 1001: 2 x notebook, EUR 12.40",
    )?;
    show("an order (kept under a legal obligation)", &order);

    let hold = client.post_json(
        &format!("{subject}/holds"),
        json!({ "category": "profile", "reason": "dispute", "reference": "CASE-4471" }),
    )?;
    show("a legal hold on the profile (a dispute)", &hold);

    let export = client.get(&format!("{subject}/export"))?;
    let records = export.json()["records"].as_array().map_or(0, Vec::len);
    println!(
        "access request (the export, streamed)\n  -> {} {} bytes, {records} records",
        export.status,
        export.body.len()
    );

    let erasure = client.post(&format!("{subject}/erasure"), "text/plain", "")?;
    show("erasure request", &erasure);
    let gone = client.get(&format!("{subject}/records/{contact}?purpose={ACCOUNT}"))?;
    show("read the erased contact record", &gone);
    Ok(())
}

/// The demo: a vault in a temporary directory, the service on a free port, the walkthrough,
/// and a graceful shutdown.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let opening = Instant::now();
    let vault = runtime.block_on(open_vault(
        dir.path().to_owned(),
        DEMO_PASSPHRASE.to_owned(),
        KdfParams::default(),
        SystemClock,
    ))?;
    println!(
        "vault created in {:?} (Argon2id at the default costs, on the blocking pool)",
        opening.elapsed()
    );
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    println!("serving on http://{addr}\n");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve(listener, vault, async {
        let _ = stopped.await;
    }));

    // The client runs here, on this plain thread: it blocks, and this is not a runtime thread.
    let walked = walkthrough(&Client::new(addr));
    let _ = stop.send(());
    runtime.block_on(server)??;
    println!("\nshut down gracefully; the vault is closed");
    walked
}

/// Serves on `addr` until ctrl-c.
fn serve_until_ctrl_c(addr: &str, dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let passphrase = std::env::var("PDVAULT_EXAMPLE_PASSPHRASE")
        .map_err(|_| "set PDVAULT_EXAMPLE_PASSPHRASE to the vault's passphrase")?;
    let runtime = tokio::runtime::Runtime::new()?;
    // Without --dir, a temporary directory, removed when `_temporary` drops at the end.
    let (dir, _temporary) = match dir {
        Some(dir) => (dir, None),
        None => {
            let temporary = tempfile::tempdir()?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    runtime.block_on(async {
        let vault = open_vault(dir.clone(), passphrase, KdfParams::default(), SystemClock).await?;
        let listener = TcpListener::bind(addr).await?;
        println!(
            "serving on http://{} (vault in {}); ctrl-c stops",
            listener.local_addr()?,
            dir.display()
        );
        serve(listener, vault, async {
            let _ = tokio::signal::ctrl_c().await;
            println!("ctrl-c: finishing the requests in flight, then closing the vault");
        })
        .await?;
        println!("shut down gracefully; the vault is closed");
        Ok(())
    })
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = match args.as_slice() {
        [] => demo(),
        ["--serve", addr] => serve_until_ctrl_c(addr, None),
        ["--serve", addr, "--dir", dir] => serve_until_ctrl_c(addr, Some(PathBuf::from(dir))),
        _ => {
            eprintln!("usage: service [--serve ADDR [--dir DIR]]");
            return std::process::ExitCode::from(2);
        }
    };
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use pdvault::AuditOp;

    use super::*;

    /// A clock that notes, each time the vault asks it for the time, whether the asking thread
    /// drives async tasks (a runtime worker). The vault asks its clock in every operation it
    /// audits (each entry is stamped, refusals included), so the vault calls of every request
    /// that reaches the audit trail are seen here; a lookup that finds nothing returns before.
    #[derive(Clone, Default)]
    struct WorkerWatch {
        calls: Arc<AtomicU64>,
        on_worker: Arc<AtomicU64>,
    }

    impl WorkerWatch {
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::SeqCst)
        }

        fn on_worker(&self) -> u64 {
            self.on_worker.load(Ordering::SeqCst)
        }
    }

    /// On a runtime worker (or inside `Runtime::block_on`), `block_on` panics ("Cannot start a
    /// runtime from within a runtime"); on the blocking pool it runs; outside any runtime (the
    /// vault's own audit thread) there is no handle.
    fn on_runtime_worker() -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(async {}))).is_err()
    }

    impl Clock for WorkerWatch {
        fn now(&self) -> jiff::Timestamp {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if on_runtime_worker() {
                self.on_worker.fetch_add(1, Ordering::SeqCst);
            }
            jiff::Timestamp::now()
        }
    }

    const SECRET: &str = "correct horse battery staple";

    /// Sends a request and checks that the vault was called for it (the clock was asked).
    fn observed(
        watch: &WorkerWatch,
        request: impl FnOnce() -> Result<Answer, ureq::Error>,
    ) -> Answer {
        let before = watch.calls();
        let answer = request().expect("the request reached the service");
        assert!(
            watch.calls() > before,
            "the vault's work for this request was observed: {answer:?}"
        );
        answer
    }

    #[test]
    fn every_endpoint_over_http_with_no_vault_call_on_a_worker() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let watch = WorkerWatch::default();
        let dir = tempfile::tempdir().unwrap();
        let vault = runtime
            .block_on(open_vault(
                dir.path().to_owned(),
                SECRET.to_owned(),
                KdfParams::insecure_for_tests(),
                watch.clone(),
            ))
            .unwrap();
        let probe = vault.clone();
        // Required, under CI as anywhere: the test fails (never skips) without a loopback.
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("binding 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(serve(listener, vault, async {
            let _ = stopped.await;
        }));

        // The client blocks: it runs here, on the test's own thread, not on the runtime.
        let client = Client::new(addr);
        let alice = "/subjects/alice@example.com";

        let signed_up = observed(&watch, || {
            client.post_json(
                &format!("{alice}/signup"),
                json!({ "name": "Alice Example", "email": "alice@example.com" }),
            )
        });
        assert_eq!(signed_up.status, 201, "{signed_up:?}");
        let (profile, contact) = (signed_up.field("profile"), signed_up.field("contact"));
        assert!(profile.parse::<RecordId>().is_ok(), "{signed_up:?}");
        assert!(contact.parse::<RecordId>().is_ok(), "{signed_up:?}");

        let read = observed(&watch, || {
            client.get(&format!("{alice}/records/{profile}?purpose=account"))
        });
        assert_eq!((read.status, read.body.as_str()), (200, "Alice Example"));

        let refused = observed(&watch, || {
            client.get(&format!("{alice}/records/{profile}?purpose=marketing"))
        });
        assert_eq!(refused.status, 403, "{refused:?}");
        assert_eq!(refused.field("error"), "refused", "{refused:?}");
        assert!(
            !refused.body.contains("Alice"),
            "a refusal carries no data: {refused:?}"
        );

        let order = observed(&watch, || {
            client.post(
                &format!("{alice}/orders"),
                "text/plain",
                "order 1001: EUR 12.40",
            )
        });
        assert_eq!(order.status, 201, "{order:?}");
        let order_id = order.field("record");

        let hold = observed(&watch, || {
            client.post_json(
                &format!("{alice}/holds"),
                json!({ "category": "profile", "reason": "dispute", "reference": "CASE-4471" }),
            )
        });
        assert_eq!(hold.status, 201, "{hold:?}");
        let hold_id = hold.field("hold");

        let export = observed(&watch, || client.get(&format!("{alice}/export")));
        assert_eq!(export.status, 200, "{export:?}");
        let document = export.json();
        assert_eq!(document["format"], "pdvault-export");
        assert_eq!(document["subject_id"], "alice@example.com");
        let mut exported: Vec<&str> = document["records"]
            .as_array()
            .expect("a records array")
            .iter()
            .filter_map(|r| r["record"].as_str())
            .collect();
        exported.sort_unstable();
        let mut expected = vec![profile.as_str(), contact.as_str(), order_id.as_str()];
        expected.sort_unstable();
        assert_eq!(exported, expected);
        assert_eq!(document["holds"][0]["id"], hold_id.as_str());

        let erasure = observed(&watch, || {
            client.post(&format!("{alice}/erasure"), "text/plain", "")
        });
        assert_eq!(erasure.status, 200, "{erasure:?}");
        let report: pdvault::ErasureReport = serde_json::from_str(&erasure.body).unwrap();
        assert!(
            !report.subject_erased,
            "the hold and the obligation keep parts"
        );
        assert_eq!(report.erased.len(), 1, "{report:?}");
        assert_eq!(report.erased[0].category, Category::Contact);
        let mut retained: Vec<(&str, bool)> = report
            .retained
            .iter()
            .map(|r| {
                let held = matches!(r.reason, pdvault::RetainReason::Held { .. });
                (r.category.name(), held)
            })
            .collect();
        retained.sort_unstable();
        assert_eq!(
            retained,
            [("profile", true), ("transaction", false)],
            "the profile kept by the hold, the order by its minimum retention: {report:?}"
        );
        let ids: Vec<String> = report
            .retained
            .iter()
            .map(|r| r.record.to_string())
            .collect();
        assert!(
            ids.contains(&profile) && ids.contains(&order_id),
            "{report:?}"
        );

        // What is not found is answered before the vault stamps anything, so the clock does not
        // see these two; they take the same path through `AsyncVault::call` as the rest.
        let gone = client
            .get(&format!("{alice}/records/{contact}?purpose=account"))
            .unwrap();
        assert_eq!(gone.status, 404, "{gone:?}");
        let nobody = client.get("/subjects/nobody@example.com/export").unwrap();
        assert_eq!(nobody.status, 404, "{nobody:?}");
        assert_eq!(nobody.field("error"), "not found");

        // Input refused before the vault is called.
        let bad_id = client
            .get(&format!("{alice}/records/not-a-record?purpose=account"))
            .unwrap();
        assert_eq!(bad_id.status, 400, "{bad_id:?}");
        let bad_hold = client
            .post_json(
                &format!("{alice}/holds"),
                json!({ "category": "profile", "reason": "whim", "reference": null }),
            )
            .unwrap();
        assert_eq!(bad_hold.status, 400, "{bad_hold:?}");

        // A graceful shutdown: the server stops, then the vault is closed.
        stop.send(()).unwrap();
        runtime.block_on(server).unwrap().unwrap();
        let closed = runtime
            .block_on(probe.call(|v| v.list(&SubjectId::new("alice@example.com")?)))
            .unwrap_err();
        assert_eq!(closed.kind(), ErrorKind::Stopped, "the vault was closed");

        assert!(watch.calls() >= 9, "{} clock calls", watch.calls());
        assert_eq!(
            watch.on_worker(),
            0,
            "vault calls ran on a runtime worker thread"
        );
        // The check can fail: a vault call made on a worker is seen.
        runtime
            .block_on(runtime.spawn(async move {
                let _ = probe.blocking().now();
            }))
            .unwrap();
        assert_eq!(watch.on_worker(), 1, "a call on a worker is detected");

        // The audit trail, reopened from what the close wrote: intact, and it holds the reads.
        let vault = Vault::builder(dir.path())
            .kdf(KdfParams::insecure_for_tests())
            .open(RootSecret::passphrase(SECRET))
            .unwrap();
        assert!(vault.audit_verify().unwrap().is_intact());
        let entries = vault.audit_entries(None, None).unwrap();
        let notes = |op: AuditOp| -> Vec<String> {
            entries
                .iter()
                .filter(|e| e.op == op)
                .map(|e| e.note.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(
            notes(AuditOp::Read),
            ["account"],
            "the one read that was served"
        );
        assert_eq!(
            notes(AuditOp::Refused).len(),
            1,
            "{:?}",
            notes(AuditOp::Refused)
        );
        assert_eq!(notes(AuditOp::Export), ["3 records"]);
        assert_eq!(notes(AuditOp::HoldPlace).len(), 1);
        assert!(!notes(AuditOp::Erase).is_empty());
        vault.close().unwrap();
    }

    #[test]
    fn status_of_every_kind() {
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Refused), StatusCode::FORBIDDEN);
        assert_eq!(status_of(ErrorKind::Retained), StatusCode::CONFLICT);
        assert_eq!(status_of(ErrorKind::InvalidInput), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_of(ErrorKind::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(ErrorKind::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
