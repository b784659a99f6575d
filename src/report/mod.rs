//! The auditor's report: what the vault promises and what it did, in one document without
//! personal data ([`Vault::report`](crate::Vault::report)).
//!
//! This module owns the facts: the typed, serializable [`Report`] (what `pdvault report --json`
//! prints) and the rules that decide what it may show. The `collect` submodule gathers them from
//! the vault (record metadata, the audit trail, requests, holds, disclosures and a full
//! verification; it decrypts no payload). [`html`] owns the presentation only: one self-contained
//! HTML page with inline SVG charts drawn by the crate, no script, no external style, font or
//! image, under a Content-Security-Policy that lets the browser fetch nothing.
//!
//! # What it shows
//!
//! - **Policy**: each category's minimum and maximum retention and what they count from, in
//!   words ("5 years from the end of the contract"), its fideslang key, and the policy's own
//!   `wording` for the rule where it has one; the request deadlines.
//! - **Holdings**: records per category and per legal basis (now); records falling due per month
//!   for the next 24 months; records past their maximum retention that no hold or pending
//!   erasure explains (a red flag unless zero).
//! - **Erasures** in the period, by cause, per month and in a table, with what was retained and
//!   why. Derived from the audit trail: each erase call's entry notes its cause and what it
//!   retained, by reason (`erased 2, retained 1 (held 1, minimum retention 0); cause request`:
//!   recorded since the report exists; an older entry counts as an erase call); the sweep's key destructions are attributed to the
//!   sweep entry that closes their commit. The sweep records no retention reasons of its own:
//!   what it keeps is what `stats` counts as `held` or `within-minimum` at the time.
//! - **Requests** received in the period, per kind: opened, answered on time, answered late,
//!   open, and open past their deadline, with the policy's deadline; response times against the
//!   deadline as a histogram.
//! - **Holds** active now (reason, reference, age) and **disclosures** in the period by
//!   recipient and ground.
//! - **Integrity**: the audit trail's verification (entries, head, first bad entry) and
//!   [`Vault::verify`](crate::Vault::verify)'s verdict, with the key source and the erasure
//!   guarantee it gives.
//!
//! # What it never shows
//!
//! No subject identifier, no subject reference, no record id, no payload. A hold is a row of its
//! table by its hold id (an internal reference, random), with its reference as the host gave it
//! (a case number: the host must keep names out of it, as out of every reference). A disclosure's ground is shown by its
//! kind only (the reference after `:` may name a case); a recipient by its name in the policy's
//! register, or as "not in the register". Every count of subjects' data (records, erasures,
//! requests, disclosures) is an [`anonymised::Cell`](crate::anonymised::Cell): below the
//! policy's `[anonymisation] min_cell` it is withheld, with the same primary and secondary
//! suppression as [`Vault::anonymous_stats`](crate::Vault::anonymous_stats) applied to each group
//! (a row of a table, a month of a chart). Counts of the vault's own machinery (audit entries,
//! verification problems, holds) are shown as they are.
//!
//! Reading the report is audited: a [`AuditOp::Query`](crate::AuditOp::Query) entry noted
//! `report`, written before the report verifies the trail, so the trail the report describes
//! includes it.

mod collect;
pub mod html;

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::anonymised::Cell;
use crate::erasure::{ErasureReport, RetainReason};

/// What a report covers ([`Vault::report`](crate::Vault::report)). Both bounds are optional:
/// without `since`, everything the audit trail still holds; without `until`, up to now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// The start of the period (inclusive).
    pub since: Option<Timestamp>,
    /// The end of the period (exclusive); default: now by the vault clock (included).
    pub until: Option<Timestamp>,
}

impl ReportOptions {
    /// The whole history, up to now.
    pub fn new() -> Self {
        ReportOptions::default()
    }

    /// From `at` on.
    pub fn since(mut self, at: Timestamp) -> Self {
        self.since = Some(at);
        self
    }

    /// Up to `at`.
    pub fn until(mut self, at: Timestamp) -> Self {
        self.until = Some(at);
        self
    }
}

/// Why data was destroyed, as the audit trail records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErasureCause {
    /// An erasure of the subject that answered the subject's open erasure request.
    Request,
    /// The retention sweep: maximum retention passed, or a pending erasure completed.
    RetentionSweep,
    /// Consent was withdrawn with erasure.
    ConsentWithdrawal,
    /// The subject was marked a minor under a policy that erases minors.
    Minor,
    /// An erase call of the host or an operator with no request to answer (a subject, a
    /// category, a record, a delete).
    ErasureCall,
    /// Erasures of the ledger re-applied after a restore.
    LedgerReapplied,
}

impl ErasureCause {
    /// Every cause, in the order the report lists them.
    pub const ALL: [ErasureCause; 6] = [
        ErasureCause::Request,
        ErasureCause::RetentionSweep,
        ErasureCause::ConsentWithdrawal,
        ErasureCause::Minor,
        ErasureCause::ErasureCall,
        ErasureCause::LedgerReapplied,
    ];

    /// The kebab-case name, as the audit trail's notes carry it.
    pub fn name(self) -> &'static str {
        match self {
            ErasureCause::Request => "request",
            ErasureCause::RetentionSweep => "retention-sweep",
            ErasureCause::ConsentWithdrawal => "consent-withdrawal",
            ErasureCause::Minor => "minor",
            ErasureCause::ErasureCall => "erasure-call",
            ErasureCause::LedgerReapplied => "ledger-reapplied",
        }
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            ErasureCause::Request => "the subject's erasure request",
            ErasureCause::RetentionSweep => "the retention sweep",
            ErasureCause::ConsentWithdrawal => "consent withdrawn",
            ErasureCause::Minor => "the subject marked a minor",
            ErasureCause::ErasureCall => "an erase call without a request",
            ErasureCause::LedgerReapplied => "the ledger re-applied after a restore",
        }
    }

    fn from_name(s: &str) -> Option<ErasureCause> {
        ErasureCause::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for ErasureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The note of an erase call's audit entry: what it destroyed and retained, why it retained, and
/// its cause. `erased 2, retained 1 (held 1, minimum retention 0); cause request`.
pub(crate) fn erase_note(cause: ErasureCause, report: &ErasureReport) -> String {
    let held = report
        .retained
        .iter()
        .filter(|r| matches!(r.reason, RetainReason::Held { .. }))
        .count();
    format!(
        "erased {}, retained {} (held {held}, minimum retention {}); cause {cause}",
        report.erased.len(),
        report.retained.len(),
        report.retained.len() - held,
    )
}

/// What an erase entry's note says ([`erase_note`]); `None` for a note in another form (an
/// entry written before causes were recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EraseNote {
    pub(crate) erased: u64,
    pub(crate) held: u64,
    pub(crate) minimum: u64,
    pub(crate) cause: ErasureCause,
}

pub(crate) fn parse_erase_note(note: &str) -> Option<EraseNote> {
    let rest = note.strip_prefix("erased ")?;
    let (erased, rest) = rest.split_once(", retained ")?;
    let (_, rest) = rest.split_once(" (held ")?;
    let (held, rest) = rest.split_once(", minimum retention ")?;
    let (minimum, cause) = rest.split_once("); cause ")?;
    Some(EraseNote {
        erased: erased.parse().ok()?,
        held: held.parse().ok()?,
        minimum: minimum.parse().ok()?,
        cause: ErasureCause::from_name(cause)?,
    })
}

/// The auditor's report ([`Vault::report`](crate::Vault::report)); the rules of what it holds
/// are in this module's documentation. Serializes to the JSON of `pdvault report --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// When it was made (the vault clock).
    pub generated_at: Timestamp,
    /// The period it covers.
    pub period: Period,
    /// The threshold below which counts are withheld (the policy's `[anonymisation] min_cell`).
    pub min_cell: u64,
    /// The policy, in words; `None` for a vault without one.
    pub policy: Option<PolicySummary>,
    /// What the vault holds now, and when it falls due.
    pub holdings: Holdings,
    /// Erasures in the period.
    pub erasures: Erasures,
    /// Data-subject requests received in the period.
    pub requests: Requests,
    /// Legal holds active now, oldest first.
    pub holds: Vec<HoldRow>,
    /// Disclosures in the period, by recipient and ground.
    pub disclosures: Vec<DisclosureRow>,
    /// The verification of the audit trail and of the whole vault.
    pub integrity: Integrity,
}

/// The period of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// The start (inclusive); `None`: as far back as the audit trail goes.
    pub since: Option<Timestamp>,
    /// The end (exclusive).
    pub until: Timestamp,
}

/// The policy, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    /// Its name.
    pub name: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Retention per category, by category name.
    pub categories: Vec<CategoryRule>,
    /// Response deadlines per request kind, in words ("30 days").
    pub request_deadlines: BTreeMap<String, String>,
    /// How long audit entries are kept, in words.
    pub audit_retention: Option<String>,
}

/// One category's retention rule, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CategoryRule {
    /// The category.
    pub category: String,
    /// Its fideslang data-category key, where one fits.
    pub fideslang: Option<String>,
    /// The minimum retention ("5 years"), if any.
    pub minimum: Option<String>,
    /// The maximum retention ("5 years"), if any.
    pub maximum: Option<String>,
    /// What both count from ("the end of the contract").
    pub anchor: String,
    /// The rule in one sentence ("kept at least 5 years and at most 5 years from the end of the
    /// contract").
    pub summary: String,
    /// The policy's own words for the rule, if it has them.
    pub wording: Option<String>,
}

/// What the vault holds now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// Readable records.
    pub records: Cell,
    /// Records per category.
    pub by_category: BTreeMap<String, Cell>,
    /// Records per legal basis.
    pub by_basis: BTreeMap<String, Cell>,
    /// Records falling due (their maximum retention ends) per month, `YYYY-MM` in UTC, for the
    /// 24 months from this one; every month is listed. Held records and records of subjects
    /// with an erasure pending are not counted: nothing falls due while they are protected.
    pub due_by_month: Vec<MonthCount>,
    /// Records past their maximum retention, not held and not pending erasure: the sweep has
    /// not run since they fell due. Should be zero.
    pub past_maximum: Cell,
    /// Whether any record is past its maximum retention (true even when the count is withheld).
    pub past_maximum_flag: bool,
}

/// A count for one month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonthCount {
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// The count.
    pub count: Cell,
}

/// Erasures in the period. An erasure is one erase call (of one subject), or one subject's
/// destruction by one sweep; `destroyed` counts what they destroyed as the trail notes it
/// (records, and whole categories destroyed at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Erasures {
    /// Erasures per cause.
    pub by_cause: BTreeMap<ErasureCause, Cell>,
    /// One row per cause that erased anything in the period.
    pub table: Vec<ErasureRow>,
    /// Erasures per month and cause; every month of the period that the trail covers.
    pub by_month: Vec<ErasureMonth>,
    /// Records retained by erase calls, by reason (`held`, `minimum-retention`).
    pub retained: BTreeMap<String, Cell>,
}

/// One cause's erasures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErasureRow {
    /// The cause.
    pub cause: ErasureCause,
    /// Erasures.
    pub erasures: Cell,
    /// Records and categories destroyed.
    pub destroyed: Cell,
    /// Records retained because a hold covers them.
    pub retained_held: Cell,
    /// Records retained because their minimum retention has not passed.
    pub retained_minimum: Cell,
}

/// One month's erasures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErasureMonth {
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// Erasures per cause (causes with none left out).
    pub by_cause: BTreeMap<ErasureCause, Cell>,
}

/// Data-subject requests received in the period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// Per kind (every kind the policy sets a deadline for, and every kind received).
    pub by_kind: Vec<RequestRow>,
    /// Whether any request received in the period is open past its deadline (true even when
    /// the count is withheld).
    pub overdue_flag: bool,
    /// Answered requests by response time as a share of the deadline (`0-25%`, `25-50%`,
    /// `50-75%`, `75-100%`: on time; `100-150%`, `150-200%`, `over 200%`: late). Requests
    /// without a deadline are left out.
    pub response_times: Vec<ResponseBucket>,
}

/// One kind's requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRow {
    /// The kind.
    pub kind: String,
    /// The deadline the policy sets, in words; `None` without one.
    pub deadline: Option<String>,
    /// Received in the period.
    pub opened: Cell,
    /// Answered by their deadline (or answered, without a deadline).
    pub answered_on_time: Cell,
    /// Answered after their deadline.
    pub answered_late: Cell,
    /// Not answered yet.
    pub open: Cell,
    /// Not answered, and past their deadline.
    pub overdue: Cell,
}

/// Answered requests whose response time falls in one band of their deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResponseBucket {
    /// The band, as a share of the deadline (`"0-25%"`).
    pub band: String,
    /// Whether the band is within the deadline.
    pub on_time: bool,
    /// Requests.
    pub count: Cell,
}

/// A legal hold active now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HoldRow {
    /// The hold's id (an internal reference).
    pub hold: String,
    /// Why it was placed.
    pub reason: String,
    /// Its reference (a case number), as the host gave it.
    pub reference: Option<String>,
    /// What it covers: `subject`, `category NAME` or `record`.
    pub covers: String,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// Its age in whole days.
    pub age_days: i64,
    /// When it ends by itself, if ever.
    pub until: Option<Timestamp>,
}

/// Disclosures to one recipient on one kind of ground.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisclosureRow {
    /// The recipient as the policy's register names it, or `"not in the register"`.
    pub recipient: String,
    /// The kind of the legal ground (`"contract"`, `"subpoena"`), or `"none given"`.
    pub ground: String,
    /// Disclosures.
    pub count: Cell,
}

/// The verification of the audit trail and the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// Audit entries checked.
    pub audit_entries: u64,
    /// The newest entry: its position and the first 16 hex digits of its chain value.
    pub audit_head: Option<String>,
    /// The first bad entry and what is wrong, if any.
    pub audit_first_bad: Option<(u64, String)>,
    /// Whether [`Vault::verify`](crate::Vault::verify) found the vault whole.
    pub vault_whole: bool,
    /// What it found wrong (no personal data).
    pub problems: Vec<String>,
    /// Entries, keys and records it checked.
    pub entries_checked: u64,
    /// Keys it unwrapped.
    pub keys_checked: u64,
    /// Records it decrypted.
    pub records_checked: u64,
    /// The key source's kind (`slot`, `pkcs11`).
    pub key_source: String,
    /// Where it is.
    pub key_source_location: String,
    /// What erasure guarantees with it, in words.
    pub erasure_guarantee: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::{Erased, Retained};
    use crate::ids::RecordId;
    use crate::model::Category;

    #[test]
    fn erase_notes_round_trip() {
        let report = ErasureReport {
            erased: vec![Erased {
                category: Category::Contact,
                record: None,
            }],
            retained: vec![
                Retained {
                    record: RecordId([1; 16]),
                    category: Category::Payment,
                    reason: RetainReason::Held { holds: vec![] },
                },
                Retained {
                    record: RecordId([2; 16]),
                    category: Category::Payment,
                    reason: RetainReason::MinimumRetention { until: None },
                },
            ],
            subject_erased: false,
        };
        for cause in ErasureCause::ALL {
            let note = erase_note(cause, &report);
            assert!(note.starts_with("erased 1, retained 2"), "{note}");
            assert_eq!(
                parse_erase_note(&note),
                Some(EraseNote {
                    erased: 1,
                    held: 1,
                    minimum: 1,
                    cause
                })
            );
        }
        assert_eq!(parse_erase_note("erased 1, retained 0"), None);
        assert_eq!(parse_erase_note(""), None);
    }
}
