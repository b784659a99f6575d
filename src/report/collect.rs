//! Gathers a [`Report`] from the vault: record metadata, the audit trail, requests, holds,
//! disclosures and a full verification. Decrypts no payload; opens only what the report shows
//! (hold references, disclosure recipients and grounds).

use std::collections::BTreeMap;

use jiff::{Span, Timestamp, ToSpan, tz::TimeZone};

use super::{
    CategoryRule, DisclosureRow, ErasureCause, ErasureMonth, ErasureRow, Erasures, HoldRow,
    Holdings, Integrity, MonthCount, Period, PolicySummary, Report, ReportOptions, RequestRow,
    Requests, ResponseBucket, parse_erase_note,
};
use crate::anonymised::{Cell, cell, month, suppress};
use crate::audit::{AuditEntry, AuditOp};
use crate::error::{InputError, Result, StorageError};
use crate::ids::SubjectRef;
use crate::model::Category;
use crate::policy::holds::HoldScope;
use crate::policy::{Anchor, EventKind, Policy};
use crate::storage::entries::SubjectState;
use crate::storage::layout;
use crate::vault::{StoredRequest, Vault};

/// How many months ahead the due chart looks.
const DUE_MONTHS: i32 = 24;

/// The most months an erasure chart spans (ten years); a longer period shows its last ten.
const MAX_MONTHS: usize = 120;

/// The bands of response time, as upper bounds of the share of the deadline.
const BANDS: [(f64, &str); 7] = [
    (0.25, "0-25%"),
    (0.5, "25-50%"),
    (0.75, "50-75%"),
    (1.0, "75-100%"),
    (1.5, "100-150%"),
    (2.0, "150-200%"),
    (f64::INFINITY, "over 200%"),
];

/// A count shown as 0 when it is zero, else withheld below `k`.
fn shown(n: u64, k: u64) -> Cell {
    if n == 0 { Cell::Count(0) } else { cell(n, k) }
}

impl Vault {
    /// The auditor's report for a period ([`ReportOptions`]): the policy in words, what the
    /// vault holds and when it falls due, erasures by cause and what they retained, data-subject
    /// requests against their deadlines, active holds, disclosures, and the verification of the
    /// audit trail and the vault. Nothing in it identifies a person: counts below the policy's
    /// `[anonymisation] min_cell` are withheld (the rules are in [`report`](crate::report)'s
    /// documentation). Render it with [`Report::to_html`] or serialize it (JSON).
    ///
    /// Runs a full [`Vault::verify`]: it reads (and decrypts, to check) every record, and so
    /// costs what that costs; it blocks. Audited: an [`AuditOp::Query`] entry noted `report`.
    /// Refused, reading nothing, when `since` is not before `until` ([`InputError::Field`]).
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::report::ReportOptions;
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// let report = vault.report(&ReportOptions::new())?;
    /// assert!(report.integrity.vault_whole);
    /// let html = report.to_html();
    /// assert!(html.contains("<svg"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn report(&self, options: &ReportOptions) -> Result<Report> {
        self.operation("report", || {
            let now = self.now();
            let until = options.until.unwrap_or(now);
            if options.since.is_some_and(|s| s >= until) {
                return Err(InputError::Field {
                    field: "report period",
                    why: "its start is not before its end",
                }
                .into());
            }
            let period = Period {
                since: options.since,
                until,
            };
            self.inner
                .trail
                .note_read(self.store(), self.draft(AuditOp::Query).note("report"))?;
            self.flush()?;
            let policy = self.policy();
            let k = policy
                .as_ref()
                .map_or(crate::policy::anonymisation::DEFAULT_MIN_CELL, |p| {
                    p.anonymisation.min_cell
                });
            let holdings = self.report_holdings(policy.as_deref(), now, k)?;
            let trail = self.inner.trail.entries(self.store(), None, None)?;
            // Without an end, everything up to now, now included.
            let in_period = |at: Timestamp| {
                period.since.is_none_or(|s| at >= s) && options.until.is_none_or(|u| at < u)
            };
            let erasures = erasures(&trail, &period, options.until.is_none(), &in_period, k);
            let requests = self.report_requests(policy.as_deref(), now, &in_period, k)?;
            let holds = self
                .holds(None)?
                .into_iter()
                .filter(|h| h.is_active(now))
                .map(|h| HoldRow {
                    hold: h.id.to_string(),
                    reason: h.reason.name().to_owned(),
                    reference: h.reference,
                    covers: match h.scope {
                        HoldScope::Subject => "subject".to_owned(),
                        HoldScope::Category(c) => format!("category {c}"),
                        HoldScope::Record(_) => "record".to_owned(),
                    },
                    placed_at: h.placed_at,
                    age_days: now.duration_since(h.placed_at).as_secs() / 86_400,
                    until: h.until,
                })
                .collect();
            let disclosures = self.report_disclosures(policy.as_deref(), &in_period, k)?;
            let verify = self.verify()?;
            let integrity = Integrity {
                audit_entries: verify.audit.entries,
                audit_head: trail.iter().max_by_key(|e| e.seq).map(|e| {
                    let hex: String = e.mac[..8].iter().map(|b| format!("{b:02x}")).collect();
                    format!("entry {}, chain value {hex}", e.seq)
                }),
                audit_first_bad: verify.audit.first_bad.clone(),
                vault_whole: verify.is_whole(),
                problems: verify.problems.clone(),
                entries_checked: verify.entries,
                keys_checked: verify.keys,
                records_checked: verify.records,
                key_source: verify.key_source.kind.clone(),
                key_source_location: verify.key_source.location.clone(),
                erasure_guarantee: verify.key_source.guarantee.describe().to_owned(),
            };
            Ok(Report {
                generated_at: now,
                period,
                min_cell: k,
                policy: policy.as_deref().map(policy_summary),
                holdings,
                erasures,
                requests,
                holds,
                disclosures,
                integrity,
            })
        })
    }

    /// Records per category and basis, due per month, and past their maximum.
    fn report_holdings(&self, policy: Option<&Policy>, now: Timestamp, k: u64) -> Result<Holdings> {
        let mut states: BTreeMap<SubjectRef, SubjectState> = BTreeMap::new();
        for r in self
            .store()
            .scan::<SubjectState>(&layout::table(layout::Table::Subject), "subject state")
        {
            let (key, st) = r?;
            let sref =
                SubjectRef::from_slice(&key[1..]).ok_or(StorageError::Malformed("subject key"))?;
            states.insert(sref, st);
        }
        let holds = self.active_holds_by_subject(now)?;
        let months = months_from(now, DUE_MONTHS);
        let window_end = crate::policy::add_span(first_of_month(now), DUE_MONTHS.months());
        let (mut records, mut past) = (0u64, 0u64);
        let (mut by_category, mut by_basis, mut due) = (
            BTreeMap::<String, u64>::new(),
            BTreeMap::<String, u64>::new(),
            BTreeMap::<String, u64>::new(),
        );
        let no_state = SubjectState::default();
        self.each_readable_record(|sref, id, e| {
            records += 1;
            *by_category
                .entry(e.meta.category.name().to_owned())
                .or_default() += 1;
            *by_basis.entry(e.meta.basis.name().to_owned()).or_default() += 1;
            let state = states.get(&sref).unwrap_or(&no_state);
            let held = holds
                .get(&sref)
                .is_some_and(|hs| hs.iter().any(|h| h.covers(&e.meta.category, &id)));
            if held || state.pending_erasure.is_some() {
                return;
            }
            let expires = policy
                .and_then(|p| p.expires_at(&e.meta.category, e.meta.collected_at, &state.events));
            match expires {
                Some(x) if x <= now => past += 1,
                Some(x) if x < window_end => *due.entry(month(x)).or_default() += 1,
                _ => {}
            }
        })?;
        let due = suppress(due, k);
        Ok(Holdings {
            records: shown(records, k),
            by_category: suppress(by_category, k),
            by_basis: suppress(by_basis, k),
            due_by_month: months
                .into_iter()
                .map(|m| MonthCount {
                    count: due.get(&m).copied().unwrap_or(Cell::Count(0)),
                    month: m,
                })
                .collect(),
            past_maximum: shown(past, k),
            past_maximum_flag: past > 0,
        })
    }

    /// Requests received in the period, per kind, and their response times.
    fn report_requests(
        &self,
        policy: Option<&Policy>,
        now: Timestamp,
        in_period: &dyn Fn(Timestamp) -> bool,
        k: u64,
    ) -> Result<Requests> {
        /// Counts of one kind: opened, on time, late, open, overdue.
        #[derive(Default)]
        struct Tally {
            opened: u64,
            on_time: u64,
            late: u64,
            open: u64,
            overdue: u64,
        }
        let mut kinds: BTreeMap<String, Tally> = BTreeMap::new();
        let mut bands = [0u64; BANDS.len()];
        for r in self
            .store()
            .scan::<StoredRequest>(&layout::table(layout::Table::Request), "request")
        {
            let req = r?.1.request;
            if !in_period(req.received_at) {
                continue;
            }
            let t = kinds.entry(req.kind.name().to_owned()).or_default();
            t.opened += 1;
            match (req.closed_at, req.due_at) {
                (None, _) => {
                    t.open += 1;
                    if req.is_overdue(now) {
                        t.overdue += 1;
                    }
                }
                (Some(closed), None) => {
                    let _ = closed;
                    t.on_time += 1;
                }
                (Some(closed), Some(due)) => {
                    if closed <= due {
                        t.on_time += 1;
                    } else {
                        t.late += 1;
                    }
                    let allowed = due.duration_since(req.received_at).as_secs_f64();
                    let took = closed.duration_since(req.received_at).as_secs_f64();
                    let share = if allowed > 0.0 {
                        took / allowed
                    } else {
                        f64::INFINITY
                    };
                    // The on-time bands end at exactly the deadline, as `closed <= due` does.
                    let band = if closed <= due {
                        BANDS[..4]
                            .iter()
                            .position(|(hi, _)| share <= *hi)
                            .unwrap_or(3)
                    } else {
                        4 + BANDS[4..]
                            .iter()
                            .position(|(hi, _)| share <= *hi)
                            .unwrap_or(2)
                    };
                    bands[band] += 1;
                }
            }
        }
        if let Some(p) = policy {
            for kind in p.requests.keys() {
                kinds.entry(kind.name().to_owned()).or_default();
            }
        }
        let opened = suppress(
            kinds.iter().map(|(n, t)| (n.clone(), t.opened)).collect(),
            k,
        );
        let by_kind = kinds
            .iter()
            .map(|(name, t)| {
                let parts = suppress(
                    [
                        ("late".to_owned(), t.late),
                        ("on-time".to_owned(), t.on_time),
                        ("open".to_owned(), t.open),
                    ]
                    .into(),
                    k,
                );
                let part = |n: &str| parts.get(n).copied().unwrap_or(Cell::Count(0));
                let deadline = policy.and_then(|p| {
                    p.requests
                        .iter()
                        .find(|(kind, _)| kind.name() == name)
                        .map(|(_, span)| span_words(*span))
                });
                RequestRow {
                    kind: name.clone(),
                    deadline,
                    opened: opened.get(name).copied().unwrap_or(Cell::Count(0)),
                    answered_on_time: part("on-time"),
                    answered_late: part("late"),
                    open: part("open"),
                    overdue: shown(t.overdue, k),
                }
            })
            .collect();
        let shown_bands = suppress(
            BANDS
                .iter()
                .zip(bands)
                .map(|((_, name), n)| ((*name).to_owned(), n))
                .collect(),
            k,
        );
        Ok(Requests {
            overdue_flag: kinds.values().any(|t| t.overdue > 0),
            by_kind,
            response_times: BANDS
                .iter()
                .enumerate()
                .map(|(i, (_, name))| ResponseBucket {
                    band: (*name).to_owned(),
                    on_time: i < 4,
                    count: shown_bands.get(*name).copied().unwrap_or(Cell::Count(0)),
                })
                .collect(),
        })
    }

    /// Disclosures in the period by recipient (as the register names it) and kind of ground.
    fn report_disclosures(
        &self,
        policy: Option<&Policy>,
        in_period: &dyn Fn(Timestamp) -> bool,
        k: u64,
    ) -> Result<Vec<DisclosureRow>> {
        const SEP: char = '\u{1f}';
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut subjects = Vec::new();
        for key in self
            .store()
            .scan_keys(&layout::table(layout::Table::Subject))
        {
            let key = key?;
            subjects.push(
                SubjectRef::from_slice(&key[1..]).ok_or(StorageError::Malformed("subject key"))?,
            );
        }
        for sref in subjects {
            for d in self.disclosures_of(&sref)? {
                if !in_period(d.at) {
                    continue;
                }
                let recipient = match policy.and_then(|p| p.recipient(&d.recipient)) {
                    Some(_) => d.recipient.clone(),
                    None => "not in the register".to_owned(),
                };
                let ground = d
                    .ground
                    .as_deref()
                    .and_then(|g| g.split(':').next())
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .unwrap_or("none given");
                *counts
                    .entry(format!("{recipient}{SEP}{ground}"))
                    .or_default() += 1;
            }
        }
        Ok(suppress(counts, k)
            .into_iter()
            .map(|(key, count)| {
                let (recipient, ground) = key.split_once(SEP).unwrap_or((&key, ""));
                DisclosureRow {
                    recipient: recipient.to_owned(),
                    ground: ground.to_owned(),
                    count,
                }
            })
            .collect())
    }
}

/// One erasure, as the trail shows it.
struct Erasure {
    at: Timestamp,
    cause: ErasureCause,
    destroyed: u64,
    held: u64,
    minimum: u64,
}

/// Erasures from the trail, oldest first. An erase call's entry notes its cause; the key
/// destructions that follow it (same commit, same subject) are its own. Key destructions of a
/// subject that no erase entry precedes are the sweep's (or a ledger's re-application's): the
/// entry that closes their commit says which, and each subject among them is one erasure.
fn erasures_of(trail: &[AuditEntry]) -> Vec<Erasure> {
    let mut out = Vec::new();
    let mut call: Option<SubjectRef> = None;
    let mut loose: BTreeMap<SubjectRef, (Timestamp, u64)> = BTreeMap::new();
    let flush = |loose: &mut BTreeMap<SubjectRef, (Timestamp, u64)>,
                 cause: ErasureCause,
                 out: &mut Vec<Erasure>| {
        for (_, (at, destroyed)) in std::mem::take(loose) {
            out.push(Erasure {
                at,
                cause,
                destroyed,
                held: 0,
                minimum: 0,
            });
        }
    };
    for e in trail {
        match e.op {
            AuditOp::Erase => {
                let note = e.note.as_deref().and_then(parse_erase_note);
                out.push(Erasure {
                    at: e.at,
                    cause: note.map_or(ErasureCause::ErasureCall, |n| n.cause),
                    destroyed: note.map_or(0, |n| n.erased),
                    held: note.map_or(0, |n| n.held),
                    minimum: note.map_or(0, |n| n.minimum),
                });
                call = e.subject;
            }
            AuditOp::KeyDestruction => {
                if let Some(s) = e.subject
                    && call != Some(s)
                {
                    let entry = loose.entry(s).or_insert((e.at, 0));
                    if e.category.is_some() {
                        entry.1 += 1;
                    }
                }
            }
            AuditOp::Sweep => {
                flush(&mut loose, ErasureCause::RetentionSweep, &mut out);
                call = None;
            }
            AuditOp::LedgerApply => {
                flush(&mut loose, ErasureCause::LedgerReapplied, &mut out);
                call = None;
            }
            _ => {
                // Key destructions belong to the commit they are in: one of the operations above
                // closes or opens it.
                loose.clear();
                call = None;
            }
        }
    }
    out
}

/// The erasures section: per cause, per month, and what erase calls retained.
fn erasures(
    trail: &[AuditEntry],
    period: &Period,
    up_to_now: bool,
    in_period: &dyn Fn(Timestamp) -> bool,
    k: u64,
) -> Erasures {
    let all: Vec<Erasure> = erasures_of(trail)
        .into_iter()
        .filter(|e| in_period(e.at))
        .collect();
    let mut per_cause: BTreeMap<ErasureCause, [u64; 4]> = BTreeMap::new();
    let mut per_month: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in &all {
        let t = per_cause.entry(e.cause).or_default();
        t[0] += 1;
        t[1] += e.destroyed;
        t[2] += e.held;
        t[3] += e.minimum;
        *per_month
            .entry(month(e.at))
            .or_default()
            .entry(e.cause.name().to_owned())
            .or_default() += 1;
    }
    let named = |m: BTreeMap<String, Cell>| -> BTreeMap<ErasureCause, Cell> {
        m.into_iter()
            .filter_map(|(n, c)| ErasureCause::from_name(&n).map(|cause| (cause, c)))
            .collect()
    };
    let column = |i: usize| -> BTreeMap<ErasureCause, Cell> {
        named(suppress(
            per_cause
                .iter()
                .map(|(c, t)| (c.name().to_owned(), t[i]))
                .collect(),
            k,
        ))
    };
    let (erasures, destroyed, held, minimum) = (column(0), column(1), column(2), column(3));
    let get = |m: &BTreeMap<ErasureCause, Cell>, c: &ErasureCause| {
        m.get(c).copied().unwrap_or(Cell::Count(0))
    };
    let table = per_cause
        .keys()
        .map(|c| ErasureRow {
            cause: *c,
            erasures: get(&erasures, c),
            destroyed: get(&destroyed, c),
            retained_held: get(&held, c),
            retained_minimum: get(&minimum, c),
        })
        .collect();
    let first = period
        .since
        .or_else(|| trail.iter().map(|e| e.at).min())
        .unwrap_or(period.until);
    // Up to now, now's month included.
    let end = if up_to_now {
        period
            .until
            .checked_add(jiff::SignedDuration::from_nanos(1))
            .unwrap_or(period.until)
    } else {
        period.until
    };
    let by_month = months_between(first, end)
        .into_iter()
        .map(|m| ErasureMonth {
            by_cause: per_month
                .remove(&m)
                .map(|counts| named(suppress(counts, k)))
                .unwrap_or_default(),
            month: m,
        })
        .collect();
    let (held_total, minimum_total) = per_cause
        .values()
        .fold((0, 0), |(h, m), t| (h + t[2], m + t[3]));
    Erasures {
        by_cause: erasures,
        table,
        by_month,
        retained: suppress(
            [
                ("held".to_owned(), held_total),
                ("minimum-retention".to_owned(), minimum_total),
            ]
            .into(),
            k,
        ),
    }
}

/// The first instant of `at`'s month, UTC.
fn first_of_month(at: Timestamp) -> Timestamp {
    let z = at.to_zoned(TimeZone::UTC);
    z.date()
        .first_of_month()
        .to_zoned(TimeZone::UTC)
        .map_or(at, |z| z.timestamp())
}

/// `n` months (`YYYY-MM`) from `at`'s on.
fn months_from(at: Timestamp, n: i32) -> Vec<String> {
    let start = first_of_month(at);
    (0..n)
        .map(|i| month(crate::policy::add_span(start, i.months())))
        .collect()
}

/// The months (`YYYY-MM`) from `from`'s to the one before `until` (at least one; at most
/// [`MAX_MONTHS`], the last ones).
fn months_between(from: Timestamp, until: Timestamp) -> Vec<String> {
    let last = first_of_month(until.max(from));
    let earliest = crate::policy::sub_span(last, (MAX_MONTHS as i32 - 1).months());
    let mut at = first_of_month(from).max(earliest);
    let mut out = vec![month(at)];
    loop {
        at = crate::policy::add_span(at, 1.month());
        if at >= until || at == Timestamp::MAX || out.len() >= MAX_MONTHS {
            break;
        }
        out.push(month(at));
    }
    out
}

/// A span in words: `5 years`, `1 year 6 months`, `48 hours`, `0 days`.
pub(crate) fn span_words(span: Span) -> String {
    let parts: Vec<String> = [
        (i64::from(span.get_years()), "year"),
        (i64::from(span.get_months()), "month"),
        (i64::from(span.get_weeks()), "week"),
        (i64::from(span.get_days()), "day"),
        (i64::from(span.get_hours()), "hour"),
    ]
    .into_iter()
    .filter(|(n, _)| *n != 0)
    .map(|(n, unit)| format!("{n} {unit}{}", if n == 1 { "" } else { "s" }))
    .collect();
    if parts.is_empty() {
        "0 days".to_owned()
    } else {
        parts.join(" ")
    }
}

/// What a retention span counts from, in words.
fn anchor_words(anchor: Anchor) -> &'static str {
    match anchor {
        Anchor::Collected => "the collection of the record",
        Anchor::Event(EventKind::AccountClosed) => "the closing of the account",
        Anchor::Event(EventKind::ContractEnded) => "the end of the contract",
    }
}

/// The policy in words.
fn policy_summary(p: &Policy) -> PolicySummary {
    let categories = p
        .retention
        .iter()
        .map(|(name, rule)| {
            let anchor = anchor_words(rule.anchor);
            let (min, max) = (rule.min.map(span_words), rule.max.map(span_words));
            let summary = match (&min, &max) {
                (_, Some(hi)) if hi == "0 days" => format!("erased at {anchor}"),
                (Some(lo), Some(hi)) if lo == hi => format!("kept {lo} from {anchor}, then erased"),
                (Some(lo), Some(hi)) => {
                    format!("kept at least {lo} and at most {hi} from {anchor}")
                }
                (None, Some(hi)) => format!("kept at most {hi} from {anchor}"),
                (Some(lo), None) => format!("kept at least {lo} from {anchor}"),
                (None, None) => "no retention limit".to_owned(),
            };
            CategoryRule {
                category: name.clone(),
                fideslang: name
                    .parse::<Category>()
                    .ok()
                    .and_then(|c| c.fideslang_key())
                    .map(str::to_owned),
                minimum: min,
                maximum: max,
                anchor: anchor.to_owned(),
                summary,
                wording: rule.wording.clone(),
            }
        })
        .collect();
    PolicySummary {
        name: p.name.clone(),
        version: p.version.clone(),
        categories,
        request_deadlines: p
            .requests
            .iter()
            .map(|(k, s)| (k.name().to_owned(), span_words(*s)))
            .collect(),
        audit_retention: p.audit_retention.map(span_words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_rules_in_words() {
        let p = Policy::from_toml(
            "[retention.contract]\nmin = \"5 years\"\nmax = \"5 years\"\nanchor = \"contract-ended\"\n\
             wording = \"Records of contracts: 5 years\"\n\
             [retention.account]\nmax = \"0 days\"\nanchor = \"account-closed\"\n\
             [retention.usage]\nmax = \"18 months\"\n\
             [requests]\ninquiry = \"48 hours\"\naccess = \"1 month\"\ncustom_requests = 1\n",
        );
        assert!(p.is_err(), "custom_requests is top-level");
        let p = Policy::from_toml(
            "custom_requests = [\"inquiry\"]\n\
             [retention.contract]\nmin = \"5 years\"\nmax = \"5 years\"\nanchor = \"contract-ended\"\n\
             wording = \"Records of contracts: 5 years\"\n\
             [retention.account]\nmax = \"0 days\"\nanchor = \"account-closed\"\n\
             [retention.usage]\nmin = \"1 week\"\nmax = \"18 months\"\n\
             [requests]\ninquiry = \"48 hours\"\naccess = \"1 month\"\n",
        )
        .unwrap();
        let s = policy_summary(&p);
        let rule = |n: &str| s.categories.iter().find(|c| c.category == n).unwrap();
        assert_eq!(
            rule("contract").summary,
            "kept 5 years from the end of the contract, then erased"
        );
        assert_eq!(
            rule("contract").wording.as_deref(),
            Some("Records of contracts: 5 years")
        );
        assert_eq!(
            rule("account").summary,
            "erased at the closing of the account"
        );
        assert_eq!(rule("account").fideslang.as_deref(), Some("user.account"));
        assert_eq!(
            rule("usage").summary,
            "kept at least 1 week and at most 18 months from the collection of the record"
        );
        assert_eq!(s.request_deadlines["inquiry"], "48 hours");
        assert_eq!(s.request_deadlines["access"], "1 month");
        let e = Policy::from_toml("[retention.usage]\nmax = \"1 year\"\nwording = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("usage") && e.contains("wording"), "{e}");
    }

    #[test]
    fn month_ranges() {
        let at: Timestamp = "2025-11-15T10:00:00Z".parse().unwrap();
        let m = months_from(at, 24);
        assert_eq!(m.len(), 24);
        assert_eq!(m[0], "2025-11");
        assert_eq!(m[2], "2026-01");
        let until: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        assert_eq!(months_between(at, until), ["2025-11", "2025-12", "2026-01"]);
        assert_eq!(months_between(until, until), ["2026-02"]);
    }
}
