//! What the vault says about itself while it runs: `Vault::metrics` counts every operation, and
//! with the `tracing` feature a subscriber sees one span per operation, the refusals and erasures
//! as events, and never a subject identifier or a payload.

use pdvault::*;

const MARKER_SUBJECT: &str = "marker-subject-7f3a9c@example.com";
const MARKER_PAYLOAD: &str = "MARKER-PAYLOAD-91b2e4";

/// The tests of this file run one at a time: tracing caches, per call site, whether any
/// subscriber wants its events, and a call site first reached by one test while another
/// installs its thread's subscriber can be cached as unwanted for both (its events then go
/// missing at random).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("telemetry passphrase"))
        .unwrap();
    (dir, vault)
}

/// The operations the tests run, by the name their span and their metrics carry; the refused
/// read is the fourth.
const SCRIPT: [&str; 10] = [
    "put",
    "get",
    "get_value",
    "get",
    "list",
    "update",
    "export",
    "erase_subject",
    "sweep",
    "audit_verify",
];

/// Runs [`SCRIPT`] on `vault`, checking each result.
fn run_script(vault: &Vault) {
    let subject = SubjectId::new(MARKER_SUBJECT).unwrap();
    let billing = Purpose::new("billing").unwrap();
    let marketing = Purpose::new("marketing").unwrap();
    let meta = RecordMeta::new(Category::Payment)
        .purpose(billing.clone())
        .basis(LegalBasis::Contract);
    let payload = serde_json::to_vec(MARKER_PAYLOAD).unwrap();
    let id = vault.put(&subject, meta, &payload).unwrap();
    assert_eq!(vault.get(&subject, id, &billing).unwrap().payload, payload);
    // A typed read is one operation, not a read inside a read.
    let typed: String = vault.get_value(&subject, id, &billing).unwrap();
    assert_eq!(typed, MARKER_PAYLOAD);
    let refused = vault.get(&subject, id, &marketing).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Refused);
    assert_eq!(vault.list(&subject).unwrap().len(), 1);
    vault.update(&subject, id, &payload).unwrap();
    let mut export = Vec::new();
    vault.export(&subject, &mut export).unwrap();
    assert!(vault.erase_subject(&subject).unwrap().subject_erased);
    vault.sweep().unwrap();
    assert!(vault.audit_verify().unwrap().is_intact());
}

#[test]
fn metrics_count_every_operation_its_errors_and_what_was_audited() {
    let _serial = one_at_a_time();
    let (_dir, vault) = vault();
    run_script(&vault);
    let m = vault.metrics();
    for name in SCRIPT {
        let calls = SCRIPT.iter().filter(|n| **n == name).count() as u64;
        let op = m
            .operation(name)
            .unwrap_or_else(|| panic!("{name} counted"));
        assert_eq!(op.calls, calls, "{name}");
        assert!(op.max <= op.total, "{name}");
    }
    assert_eq!(m.operation("get").unwrap().errors, 1, "the refused read");
    assert_eq!(m.operation("put").unwrap().errors, 0);
    assert_eq!(
        m.operations.iter().map(|o| o.calls).sum::<u64>(),
        SCRIPT.len() as u64,
        "nothing else counted, nothing counted twice: {m:?}"
    );
    assert_eq!(m.refusals, 1);
    assert_eq!(m.erasures, 1);
    assert_eq!(m.sweeps, 1);
    assert!(m.key_destructions >= 1, "the erasure destroyed keys: {m:?}");
    // A clone and another actor's handle count into the same vault.
    vault.as_actor("other").unwrap().stats().unwrap();
    assert_eq!(vault.metrics().operation("stats").unwrap().calls, 1);
}

#[test]
fn a_scoped_call_is_one_operation() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::from_toml(
        r#"
        name = "telemetry test policy"
        version = "t-1"
        [roles.support]
        grants = [{ ops = ["read", "write"], categories = ["payment"], purposes = ["billing"] }]
        "#,
    )
    .unwrap();
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .policy(policy)
        .create(RootSecret::passphrase("telemetry passphrase"))
        .unwrap();
    let scoped = vault.scoped("agent-1", "support").unwrap();
    let subject = SubjectId::new(MARKER_SUBJECT).unwrap();
    let meta = RecordMeta::new(Category::Payment)
        .purpose(Purpose::new("billing").unwrap())
        .basis(LegalBasis::Contract);
    scoped.put(&subject, meta, b"x").unwrap();
    let m = vault.metrics();
    assert_eq!(m.operation("put").unwrap().calls, 1, "{m:?}");
    assert_eq!(m.operations.len(), 1, "{m:?}");
}

#[cfg(feature = "tracing")]
mod spans {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};
    use tracing_core::span::Current;

    use super::*;

    #[derive(Debug)]
    struct Span {
        meta: &'static Metadata<'static>,
        name: &'static str,
        target: String,
        fields: BTreeMap<String, String>,
        entered_on: Vec<std::thread::ThreadId>,
    }

    #[derive(Debug)]
    struct Seen {
        level: Level,
        target: String,
        fields: BTreeMap<String, String>,
        /// The span the event happened in.
        inside: Option<u64>,
    }

    #[derive(Default)]
    struct State {
        spans: Vec<Span>,
        events: Vec<Seen>,
        /// Per thread, the spans entered and not yet left.
        stack: HashMap<std::thread::ThreadId, Vec<u64>>,
    }

    /// A subscriber that keeps everything it is told.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<State>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let mut state = self.0.lock().unwrap();
            let mut span = Span {
                meta: attrs.metadata(),
                name: attrs.metadata().name(),
                target: attrs.metadata().target().into(),
                fields: BTreeMap::new(),
                entered_on: Vec::new(),
            };
            attrs.record(&mut Fields(&mut span.fields));
            state.spans.push(span);
            Id::from_u64(state.spans.len() as u64)
        }
        fn record(&self, id: &Id, values: &Record<'_>) {
            let mut state = self.0.lock().unwrap();
            let span = &mut state.spans[id.into_u64() as usize - 1];
            values.record(&mut Fields(&mut span.fields));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn current_span(&self) -> Current {
            let state = self.0.lock().unwrap();
            match state
                .stack
                .get(&std::thread::current().id())
                .and_then(|s| s.last())
            {
                Some(id) => Current::new(Id::from_u64(*id), state.spans[*id as usize - 1].meta),
                None => Current::none(),
            }
        }
        fn event(&self, event: &Event<'_>) {
            let mut state = self.0.lock().unwrap();
            let inside = state
                .stack
                .get(&std::thread::current().id())
                .and_then(|s| s.last().copied());
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            state.events.push(Seen {
                level: *event.metadata().level(),
                target: event.metadata().target().into(),
                fields,
                inside,
            });
        }
        fn enter(&self, id: &Id) {
            let mut state = self.0.lock().unwrap();
            let thread = std::thread::current().id();
            state.spans[id.into_u64() as usize - 1]
                .entered_on
                .push(thread);
            state.stack.entry(thread).or_default().push(id.into_u64());
        }
        fn exit(&self, id: &Id) {
            let mut state = self.0.lock().unwrap();
            let stack = state.stack.entry(std::thread::current().id()).or_default();
            if stack.last() == Some(&id.into_u64()) {
                stack.pop();
            }
        }
    }

    #[test]
    fn one_span_per_operation_and_never_an_identifier_or_a_payload() {
        let _serial = super::one_at_a_time();
        let (_dir, vault) = vault();
        let capture = Capture::default();
        tracing::subscriber::with_default(capture.clone(), || run_script(&vault));
        let state = capture.0.lock().unwrap();

        let ops: Vec<&str> = state
            .spans
            .iter()
            .filter(|s| s.target == "pdvault")
            .map(|s| {
                assert_eq!(s.name, "operation");
                s.fields["op"].as_str()
            })
            .collect();
        assert_eq!(ops, SCRIPT, "one span per operation, in order");
        for span in &state.spans {
            assert_eq!(span.entered_on.len(), 1, "entered once: {span:?}");
        }

        // Each operation on the subject names it by its internal reference, the same one
        // throughout, and says how it ended.
        let subject_of = |i: usize| state.spans[i].fields.get("subject").cloned();
        let reference = subject_of(0).expect("the put names its subject");
        assert_eq!(reference.len(), 32, "a reference: {reference}");
        for (i, op) in SCRIPT.iter().enumerate().take(8) {
            assert_eq!(subject_of(i).as_ref(), Some(&reference), "{op}");
        }
        assert_eq!(state.spans[3].fields["outcome"], "Refused");
        assert_eq!(state.spans[0].fields["outcome"], "ok");

        // The refusal is a warning inside the refused read's span; the erasure an event inside
        // the erasure's span.
        let refusal = state
            .events
            .iter()
            .find(|e| e.level == Level::WARN)
            .expect("a refusal event");
        assert_eq!(refusal.target, "pdvault");
        assert_eq!(
            refusal.inside,
            Some(4),
            "inside the refused read: {refusal:?}"
        );
        let erasure = state
            .events
            .iter()
            .find(|e| e.fields.get("audit").map(String::as_str) == Some("Erase"))
            .expect("an erasure event");
        assert_eq!(erasure.inside, Some(8), "inside erase_subject: {erasure:?}");
        assert!(
            state
                .events
                .iter()
                .any(|e| e.fields.get("audit").map(String::as_str) == Some("Sweep")),
            "a sweep event"
        );

        // Nothing said names the person or carries the data.
        let said = format!("{:?} {:?}", state.spans, state.events);
        assert!(!said.contains(MARKER_SUBJECT), "{said}");
        assert!(!said.contains("marker-subject"), "{said}");
        assert!(!said.contains(MARKER_PAYLOAD), "{said}");
    }

    #[test]
    fn with_no_subscriber_nothing_is_spanned_and_metrics_still_count() {
        let _serial = super::one_at_a_time();
        let (_dir, vault) = vault();
        run_script(&vault);
        assert_eq!(vault.metrics().operation("put").unwrap().calls, 1);
    }
}
