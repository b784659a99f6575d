//! The auditor's report (`Vault::report`): its figures against `stats`, `requests`, `holds` and
//! `audit_verify`; nothing in it that identifies a person; and the page of the example's vault
//! (`examples/auditor_report.rs`) in headless Chromium: it loads with no console error and
//! fetches nothing, every section and chart is there with the typed report's figures, and its
//! screenshot is not blank.
//!
//! Without Chromium (`chromium` on the PATH, or `PDVAULT_TEST_CHROMIUM`) the Chromium tests
//! fail when `CI` is set and are skipped otherwise (Debian: `apt-get install chromium`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::ToSpan;
use pdvault::anonymised::Cell;
use pdvault::report::ErasureCause;
use pdvault::{
    AuditOp, Category, HoldReason, HoldTarget, KdfParams, LegalBasis, NewHold, Policy, Purpose,
    RecordMeta, Report, ReportOptions, RequestFilter, RequestKind, RootSecret, SubjectId, Vault,
    Withdrawal,
};

#[allow(dead_code)]
#[path = "../examples/auditor_report.rs"]
mod example;

/// The example's vault after its year, and its report.
fn example_report(dir: &Path) -> (Vault, Report) {
    let (vault, _clock) = example::year_of_activity(dir).expect("the example's year runs");
    let report = vault.report(&ReportOptions::new()).expect("report");
    (vault, report)
}

/// A shown count, or `None` when withheld.
fn n(c: Cell) -> Option<u64> {
    c.count()
}

#[test]
fn the_figures_match_stats_requests_holds_and_the_audit_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, report) = example_report(dir.path());
    let stats = vault.stats().unwrap();
    assert_eq!(n(report.holdings.records), Some(stats.records));
    assert!(!report.holdings.by_category.is_empty());
    for (cat, c) in &report.holdings.by_category {
        let held = stats.by_category[cat];
        match c {
            Cell::Count(x) => assert_eq!(*x, held, "{cat}"),
            Cell::Suppressed => assert!(held > 0, "{cat}"),
        }
    }
    assert_eq!(
        report.holdings.by_category.len(),
        stats.by_category.len(),
        "every category held is listed"
    );
    for (basis, c) in &report.holdings.by_basis {
        if let Cell::Count(x) = c {
            assert_eq!(*x, stats.by_basis[basis], "{basis}");
        }
    }
    let expired = stats.by_retention.get("expired").copied().unwrap_or(0);
    assert_eq!(n(report.holdings.past_maximum), Some(expired));
    assert_eq!(report.holdings.past_maximum_flag, expired > 0);
    assert_eq!(report.holdings.due_by_month.len(), 24);

    // Requests: every one was received within the period (the whole history).
    let all = vault.requests(RequestFilter::All).unwrap();
    let overdue = vault.requests(RequestFilter::Overdue).unwrap();
    for row in &report.requests.by_kind {
        let of_kind = all.iter().filter(|r| r.kind.name() == row.kind).count() as u64;
        let overdue_of_kind = overdue.iter().filter(|r| r.kind.name() == row.kind).count() as u64;
        if let Cell::Count(x) = row.opened {
            assert_eq!(x, of_kind, "{}", row.kind);
        }
        match row.overdue {
            Cell::Count(x) => assert_eq!(x, overdue_of_kind),
            Cell::Suppressed => assert!(overdue_of_kind > 0),
        }
        let open = all
            .iter()
            .filter(|r| r.kind.name() == row.kind && r.closed_at.is_none())
            .count() as u64;
        if let Cell::Count(x) = row.open {
            assert_eq!(x, open);
        }
    }
    assert_eq!(report.requests.overdue_flag, !overdue.is_empty());
    let erasure = report
        .requests
        .by_kind
        .iter()
        .find(|r| r.kind == "erasure")
        .unwrap();
    assert_eq!(erasure.deadline.as_deref(), Some("10 days"));
    assert_eq!(erasure.opened, Cell::Count(11));
    assert_eq!(erasure.answered_on_time, Cell::Count(6));
    assert_eq!(erasure.answered_late, Cell::Count(5));
    let late: u64 = report
        .requests
        .response_times
        .iter()
        .filter(|b| !b.on_time)
        .filter_map(|b| b.count.count())
        .sum();
    assert_eq!(late, 5, "{:?}", report.requests.response_times);

    // Holds: the active ones, oldest first.
    let now = vault.now();
    let active: Vec<_> = vault
        .holds(None)
        .unwrap()
        .into_iter()
        .filter(|h| h.is_active(now))
        .collect();
    assert_eq!(report.holds.len(), active.len());
    for (row, hold) in report.holds.iter().zip(&active) {
        assert_eq!(row.hold, hold.id.to_string());
        assert_eq!(row.reference, hold.reference);
        assert_eq!(row.reason, hold.reason.name());
    }
    assert_eq!(report.holds[0].covers, "category payment");

    // Erasures: what the example did, by cause.
    let by = |c: ErasureCause| report.erasures.by_cause.get(&c).copied();
    assert_eq!(by(ErasureCause::Request), Some(Cell::Count(11)));
    assert_eq!(by(ErasureCause::ConsentWithdrawal), Some(Cell::Count(6)));
    assert!(matches!(by(ErasureCause::RetentionSweep), Some(Cell::Count(x)) if x >= 100));
    let request = report
        .erasures
        .table
        .iter()
        .find(|r| r.cause == ErasureCause::Request)
        .unwrap();
    // Payment records outlive an erasure request (5 years' minimum); one is also held.
    assert_eq!(request.retained_minimum, Cell::Count(10));
    assert_eq!(request.retained_held, Cell::Suppressed);
    let per_month: u64 = report
        .erasures
        .by_month
        .iter()
        .flat_map(|m| m.by_cause.values())
        .filter_map(|c| c.count())
        .sum();
    assert!(per_month > 0);

    // Disclosures, by the register's name and the ground's kind.
    assert_eq!(report.disclosures.len(), 1);
    assert_eq!(report.disclosures[0].recipient, "payment-processor");
    assert_eq!(report.disclosures[0].ground, "contract");
    assert_eq!(report.disclosures[0].count, Cell::Count(12));

    // The trail as `audit_verify` sees it, the report's own entry included.
    let audit = vault.audit_verify().unwrap();
    assert_eq!(report.integrity.audit_entries, audit.entries);
    assert!(report.integrity.audit_first_bad.is_none());
    let verify = vault.verify().unwrap();
    assert_eq!(report.integrity.vault_whole, verify.is_whole());
    assert_eq!(report.integrity.records_checked, verify.records);
    assert_eq!(report.integrity.key_source, verify.key_source.kind);
    assert_eq!(
        report.integrity.erasure_guarantee,
        verify.key_source.guarantee.describe()
    );
    let last = vault.audit_entries(None, None).unwrap();
    assert!(
        last.iter()
            .any(|e| e.op == AuditOp::Query && e.note.as_deref() == Some("report")),
        "reading the report is audited"
    );
    let policy = report.policy.as_ref().unwrap();
    let contract = policy
        .categories
        .iter()
        .find(|c| c.category == "contract")
        .unwrap();
    assert_eq!(
        contract.summary,
        "kept 5 years from the end of the contract, then erased"
    );
    assert_eq!(
        contract.wording.as_deref(),
        Some("Records of contracts or withdrawal: 5 years")
    );
    vault.close().unwrap();
}

#[test]
fn a_period_selects_erasures_and_requests_and_a_reversed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, whole) = example_report(dir.path());
    let start = example::start();
    // The first three months: sweeps only (access logs from month 3 on), no request.
    let april: jiff::Timestamp = "2025-04-01T00:00:00Z".parse().unwrap();
    let early = vault
        .report(&ReportOptions::new().since(start).until(april))
        .unwrap();
    assert!(
        early
            .requests
            .by_kind
            .iter()
            .all(|r| r.opened == Cell::Count(0))
    );
    assert!(!early.erasures.by_cause.contains_key(&ErasureCause::Request));
    assert_eq!(early.erasures.by_month.len(), 3);
    assert_ne!(early.erasures, whole.erasures);
    let e = vault
        .report(&ReportOptions::new().since(april).until(start))
        .unwrap_err();
    assert_eq!(e.kind(), pdvault::ErrorKind::InvalidInput, "{e}");
    vault.close().unwrap();
}

/// A vault whose subjects, payloads and free text carry markers.
fn marked_vault(dir: &Path) -> (Vault, Vec<String>) {
    // No policy: the disclosure below is recorded as given, free text and all.
    let vault = Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let mut markers = Vec::new();
    let purpose = Purpose::new("billing").unwrap();
    for i in 0..12 {
        let id = format!("MARKERSUBJECT{i:02}@example.com");
        let payload = format!("MARKERPAYLOAD{i:02}");
        let s = SubjectId::new(&id).unwrap();
        let rec = vault
            .put(
                &s,
                RecordMeta::new(Category::Contact)
                    .basis(LegalBasis::Contract)
                    .purpose(purpose.clone()),
                payload.as_bytes(),
            )
            .unwrap();
        markers.push(rec.to_string());
        markers.push(id);
        markers.push(payload);
        if i < 6 {
            let r = vault.open_request(&s, RequestKind::Access, None).unwrap();
            markers.push(r.id.to_string());
        }
    }
    let s = SubjectId::new("MARKERSUBJECT00@example.com").unwrap();
    vault
        .place_hold(&s, NewHold::new(HoldTarget::Subject, HoldReason::Dispute))
        .unwrap();
    vault
        .disclose(
            &s,
            "MARKERRECIPIENT Jane Roe",
            &purpose,
            &[Category::Contact],
            Some("subpoena: MARKERCASE against Jane Roe"),
        )
        .unwrap();
    vault
        .erase_subject(&SubjectId::new("MARKERSUBJECT11@example.com").unwrap())
        .unwrap();
    (vault, markers)
}

#[test]
fn the_report_names_no_subject_record_request_or_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, markers) = marked_vault(dir.path());
    let report = vault.report(&ReportOptions::new()).unwrap();
    let html = report.to_html();
    let json = serde_json::to_string(&report).unwrap();
    for m in &markers {
        assert!(!html.contains(m.as_str()), "the HTML holds {m}");
        assert!(!json.contains(m.as_str()), "the JSON holds {m}");
    }
    for text in [&html, &json] {
        assert!(!text.contains("MARKER"), "a marker leaked");
        assert!(!text.contains("Jane Roe"));
    }
    // Subject references never: the trail's are internal references of subjects.
    for e in vault.audit_entries(None, None).unwrap() {
        if let Some(s) = e.subject {
            let s = s.to_string();
            assert!(
                !html.contains(&s) && !json.contains(&s),
                "subject reference {s}"
            );
        }
    }
    // 11 records, 6 requests: the 6 shown; a hold is a row by its id; the disclosure by what
    // may be said of it.
    assert_eq!(report.holdings.records, Cell::Count(11));
    assert_eq!(report.holds.len(), 1);
    assert_eq!(report.disclosures.len(), 1);
    assert_eq!(report.disclosures[0].recipient, "not in the register");
    assert_eq!(report.disclosures[0].ground, "subpoena");
    assert_eq!(report.disclosures[0].count, Cell::Suppressed);
    vault.close().unwrap();
}

#[test]
fn small_counts_are_withheld_as_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::from_toml("[anonymisation]\nmin_cell = 3\n").unwrap();
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .policy(policy)
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    for i in 0..5 {
        let s = SubjectId::new(format!("user-{i}")).unwrap();
        vault
            .put(&s, RecordMeta::new(Category::Usage), b"clicks")
            .unwrap();
    }
    let s = SubjectId::new("user-0").unwrap();
    vault
        .put(&s, RecordMeta::new(Category::Contact), b"phone")
        .unwrap();
    let r = vault.report(&ReportOptions::new()).unwrap();
    assert_eq!(r.min_cell, 3);
    assert_eq!(r.holdings.records, Cell::Count(6));
    assert_eq!(r.holdings.by_category["contact"], Cell::Suppressed);
    assert_eq!(
        r.holdings.by_category["usage"],
        Cell::Suppressed,
        "else 6 - 5 gives contact's"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["holdings"]["by_category"]["contact"], "suppressed");
    vault.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium.

/// The Chromium binary, if here; if not, a failure under CI and a note otherwise.
fn chromium() -> Option<PathBuf> {
    let bin: PathBuf =
        std::env::var_os("PDVAULT_TEST_CHROMIUM").map_or_else(|| "chromium".into(), Into::into);
    let found = Command::new(&bin).arg("--version").output();
    match found {
        Ok(o) if o.status.success() => Some(bin),
        _ if std::env::var_os("CI").is_some() => {
            panic!("chromium is missing: install it (Debian: apt-get install chromium)")
        }
        _ => {
            eprintln!("skipped: chromium is missing (Debian: apt-get install chromium)");
            None
        }
    }
}

/// Runs headless Chromium on `page` with a fresh profile and `extra` arguments; returns stdout
/// and stderr.
fn run_chromium(bin: &Path, page: &Path, profile: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What Chromium's log says about the page itself: console messages, refused loads (the CSP),
/// network errors. Its own complaints (no D-Bus in a container) are not the page's.
fn page_complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Content Security Policy")
                || l.contains("Refused to")
                || l.contains("net::ERR")
                || l.contains("Uncaught")
        })
        .collect()
}

/// The bars of one chart in the DOM: (label, series, count) as their attributes say.
fn bars(dom: &str, chart: &str) -> Vec<(String, String, String)> {
    let start = dom
        .find(&format!("<svg id=\"{chart}\""))
        .unwrap_or_else(|| panic!("chart {chart} is missing"));
    let end = start + dom[start..].find("</svg>").expect("the chart ends");
    let attr = |tag: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let at = tag.find(&key).expect("attribute") + key.len();
        tag[at..at + tag[at..].find('"').expect("quoted")].to_owned()
    };
    dom[start..end]
        .split("<rect ")
        .skip(1)
        .filter(|t| t.starts_with("class=\"bar\""))
        .map(|t| {
            let tag = &t[..t.find('>').expect("tag ends")];
            (
                attr(tag, "data-label"),
                attr(tag, "data-series"),
                attr(tag, "data-count"),
            )
        })
        .collect()
}

/// The `data-count` cells of one table row, in order.
fn row_counts(dom: &str, table: &str, row_attr: &str) -> Vec<String> {
    let start = dom
        .find(&format!("<table id=\"{table}\""))
        .unwrap_or_else(|| panic!("table {table} is missing"));
    let end = start + dom[start..].find("</table>").expect("the table ends");
    let row = dom[start..end]
        .find(row_attr)
        .unwrap_or_else(|| panic!("row {row_attr} of {table} is missing"));
    let body = &dom[start + row..end];
    let body = &body[..body.find("</tr>").expect("the row ends")];
    body.split("data-count=\"")
        .skip(1)
        .map(|s| s[..s.find('"').expect("quoted")].to_owned())
        .collect()
}

fn s(c: Cell) -> String {
    c.to_string()
}

#[test]
fn the_example_report_loads_in_chromium_fetches_nothing_and_shows_the_typed_figures() {
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (vault, report) = example_report(&dir.path().join("vault"));
    vault.close().unwrap();
    let html = report.to_html();
    // Nothing the page could fetch: no URL, no source or link but a fragment or data:.
    assert!(!html.contains("http://") && !html.contains("https://"));
    for attr in ["src=", "href="] {
        for (i, _) in html.match_indices(attr) {
            let v = &html[i + attr.len()..];
            assert!(
                v.starts_with("\"#") || v.starts_with("\"data:"),
                "{attr} to {}",
                &v[..v.len().min(40)]
            );
        }
    }
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("@import"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
    ));
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let (dom, log) = run_chromium(
        &bin,
        &page,
        &dir.path().join("profile-dom"),
        &["--dump-dom"],
    );
    let complaints = page_complaints(&log);
    assert!(complaints.is_empty(), "chromium: {complaints:#?}");
    for section in [
        "policy",
        "holdings",
        "erasures",
        "requests",
        "holds",
        "disclosures",
        "integrity",
    ] {
        assert!(
            dom.contains(&format!("<section id=\"{section}\"")),
            "section {section}"
        );
    }

    // Charts: every bar, with the typed report's figure.
    let due: Vec<_> = report
        .holdings
        .due_by_month
        .iter()
        .map(|m| (m.month.clone(), "due".to_owned(), s(m.count)))
        .collect();
    assert_eq!(bars(&dom, "chart-due"), due);
    assert!(due.iter().any(|(_, _, c)| c != "0"), "something falls due");
    let cats: Vec<_> = report
        .holdings
        .by_category
        .iter()
        .map(|(k, c)| (k.clone(), "records".to_owned(), s(*c)))
        .collect();
    assert_eq!(bars(&dom, "chart-categories"), cats);
    let erasures: Vec<_> = report
        .erasures
        .by_month
        .iter()
        .flat_map(|m| {
            m.by_cause
                .iter()
                .map(|(c, n)| (m.month.clone(), c.name().to_owned(), s(*n)))
        })
        .collect();
    assert!(!erasures.is_empty());
    assert_eq!(bars(&dom, "chart-erasures"), erasures);
    let response: Vec<_> = report
        .requests
        .response_times
        .iter()
        .map(|b| {
            (
                b.band.clone(),
                if b.on_time { "on time" } else { "late" }.to_owned(),
                s(b.count),
            )
        })
        .collect();
    assert_eq!(bars(&dom, "chart-response"), response);
    assert!(dom.contains("class=\"marker\""), "the deadline line");

    // Tables: requests, erasures, categories, disclosures, holds and the verdict.
    for r in &report.requests.by_kind {
        assert_eq!(
            row_counts(&dom, "table-requests", &format!("data-kind=\"{}\"", r.kind)),
            [
                r.opened,
                r.answered_on_time,
                r.answered_late,
                r.open,
                r.overdue
            ]
            .map(s),
            "{}",
            r.kind
        );
    }
    for r in &report.erasures.table {
        assert_eq!(
            row_counts(
                &dom,
                "table-erasures",
                &format!("data-cause=\"{}\"", r.cause)
            ),
            [r.erasures, r.destroyed, r.retained_held, r.retained_minimum].map(s)
        );
    }
    for (k, c) in &report.holdings.by_category {
        assert_eq!(
            row_counts(&dom, "table-categories", &format!("data-key=\"{k}\"")),
            [s(*c)]
        );
    }
    for d in &report.disclosures {
        assert_eq!(
            row_counts(
                &dom,
                "table-disclosures",
                &format!(
                    "data-recipient=\"{}\" data-ground=\"{}\"",
                    d.recipient, d.ground
                )
            ),
            [s(d.count)]
        );
    }
    for h in &report.holds {
        assert!(dom.contains(&format!("data-hold=\"{}\"", h.hold)));
    }
    assert!(dom.contains(&format!(
        "id=\"holds-total\" data-count=\"{}\"",
        report.holds.len()
    )));
    assert!(dom.contains(&format!(
        "id=\"audit-entries\" data-count=\"{}\"",
        report.integrity.audit_entries
    )));
    assert!(dom.contains("id=\"verdict\" data-whole=\"true\""));
    assert!(dom.contains(&format!(
        "id=\"records-total\">{}<",
        report.holdings.records
    )));
    for c in &report.policy.as_ref().unwrap().categories {
        assert!(dom.contains(&format!("data-category=\"{}\"", c.category)));
    }

    // The screenshot: the size asked for, and not blank.
    let shot = dir.path().join("report.png");
    let (_, log) = run_chromium(
        &bin,
        &page,
        &dir.path().join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
            "--hide-scrollbars",
        ],
    );
    assert!(page_complaints(&log).is_empty(), "{log}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("the screenshot is written"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!((info.width, info.height), (1280, 2400));
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut colours: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for px in pixels.chunks(channels) {
        *colours.entry(px[..3.min(channels)].to_vec()).or_default() += 1;
    }
    let total = pixels.len() as u64 / channels as u64;
    let background = colours.values().max().copied().unwrap_or(0);
    assert!(colours.len() > 50, "{} colours: blank", colours.len());
    assert!(
        total - background > total / 50,
        "less than 2% of the page is drawn"
    );
}

#[test]
fn every_cause_of_erasure_is_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::from_toml(
        "[anonymisation]\nmin_cell = 2\n[minors]\non_marked = \"erase\"\n\
         [retention.usage]\nmax = \"1 day\"\n[requests]\nerasure = \"30 days\"\n",
    )
    .unwrap();
    let start: jiff::Timestamp = "2025-03-01T00:00:00Z".parse().unwrap();
    let clock = pdvault::ManualClock::new(start);
    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(policy)
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let marketing = Purpose::new("marketing").unwrap();
    let subjects: Vec<SubjectId> = (0..10)
        .map(|i| SubjectId::new(format!("user-{i}")).unwrap())
        .collect();
    for s in &subjects {
        vault
            .put(
                s,
                RecordMeta::new(Category::Contact).basis(LegalBasis::Contract),
                b"phone",
            )
            .unwrap();
        vault.grant_consent(s, &marketing, None).unwrap();
        vault
            .put(
                s,
                RecordMeta::new(Category::Preference)
                    .basis(LegalBasis::Consent)
                    .purpose(marketing.clone()),
                b"weekly",
            )
            .unwrap();
    }
    for s in &subjects[0..2] {
        vault.open_request(s, RequestKind::Erasure, None).unwrap();
        vault.erase_subject(s).unwrap();
    }
    for s in &subjects[2..4] {
        vault
            .set_age_status(s, pdvault::AgeStatus::Minor)
            .unwrap()
            .expect("erased");
    }
    for s in &subjects[4..6] {
        vault
            .withdraw_consent(s, &marketing, Withdrawal::EraseRecords)
            .unwrap();
    }
    for s in &subjects[6..8] {
        vault.erase_category(s, &Category::Contact).unwrap();
    }
    for s in &subjects[8..10] {
        vault
            .put(s, RecordMeta::new(Category::Usage), b"clicks")
            .unwrap();
    }
    clock.advance(2.days());
    let swept = vault.sweep().unwrap();
    assert_eq!(swept.categories_erased + swept.erased, 2, "{swept:?}");
    let r = vault.report(&ReportOptions::new()).unwrap();
    let by = |c| r.erasures.by_cause.get(&c).copied();
    assert_eq!(by(ErasureCause::Request), Some(Cell::Count(2)));
    assert_eq!(by(ErasureCause::Minor), Some(Cell::Count(2)));
    assert_eq!(by(ErasureCause::ConsentWithdrawal), Some(Cell::Count(2)));
    assert_eq!(by(ErasureCause::ErasureCall), Some(Cell::Count(2)));
    assert_eq!(by(ErasureCause::RetentionSweep), Some(Cell::Count(2)));
    assert_eq!(by(ErasureCause::LedgerReapplied), None);
    assert_eq!(r.erasures.by_month.len(), 1);
    assert_eq!(r.erasures.by_month[0].month, "2025-03");
    let erasure = r
        .requests
        .by_kind
        .iter()
        .find(|k| k.kind == "erasure")
        .unwrap();
    assert_eq!(erasure.answered_on_time, Cell::Count(2));
    // An erasure at this very instant, the first of a month, is in the period and its month.
    clock.set("2025-04-01T00:00:00Z".parse().unwrap());
    vault
        .erase_category(&subjects[9], &Category::Contact)
        .unwrap();
    let r = vault.report(&ReportOptions::new()).unwrap();
    let months: Vec<&str> = r
        .erasures
        .by_month
        .iter()
        .map(|m| m.month.as_str())
        .collect();
    assert_eq!(months, ["2025-03", "2025-04"]);
    assert_eq!(
        r.erasures.by_month[1].by_cause[&ErasureCause::ErasureCall],
        Cell::Suppressed
    );
    assert_eq!(
        r.erasures.by_cause[&ErasureCause::ErasureCall],
        Cell::Count(3)
    );
    vault.close().unwrap();
}
