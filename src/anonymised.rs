//! Anonymised and aggregated output: counts with small cells withheld, and pseudonymised exports
//! for analysis.
//!
//! # Anonymous statistics ([`Vault::anonymous_stats`])
//!
//! Counts over record metadata only (nothing decrypted): subjects, records, and records per
//! category, per legal basis, per purpose and per month of collection (UTC, `YYYY-MM`). The
//! threshold `k` is the policy's `[anonymisation] min_cell` (default 5). The rule:
//!
//! 1. **Primary suppression.** A count from 1 to `k - 1` is withheld: reported as
//!    [`Cell::Suppressed`] (`"suppressed"` in JSON), never as its number. A count of 0 is not
//!    listed. The totals (`subjects`, `records`) are cells too.
//! 2. **Secondary suppression.** In each group (categories, bases, purposes, months), if exactly
//!    one cell is withheld, the smallest other cell of the group (the first by name among equal
//!    counts) is withheld too, so that the withheld one cannot be had by subtracting the shown
//!    cells from the shown total. A group with one cell has no other: that cell is the total
//!    (for categories, bases and months), which step 1 then withholds too.
//!
//! Two or more withheld cells of a group are shown only as withheld, and their sum (the total
//! less the shown cells) can be derived; no single withheld cell can, since a reader cannot tell
//! which were below `k`. Purposes are counted per record and purpose (a record with two purposes
//! counts in both), so their cells need not add up to the total; the rule is applied to them all
//! the same. What the rule does not protect against: comparing two statistics taken before and
//! after a change (differencing over time), and cross-tabulations, which are not published.
//!
//! # Exports for analysis ([`Vault::export_for_analysis`])
//!
//! JSON lines, one per record of the chosen categories across every subject:
//!
//! ```json
//! {"subject":"3f5c…(32 hex digits)","category":"usage","basis":"consent","purposes":["analytics"],"collected":"2025-03","payload":{"page":"/pricing"}}
//! ```
//!
//! - `subject` is a pseudonym: the first 16 bytes of BLAKE3 keyed with a random key drawn for
//!   this export (and dropped when it ends) of the subject's internal reference. The records of
//!   one subject share it within the export; two exports (of the same data or not) share none,
//!   so they cannot be joined on it. Lines are ordered by pseudonym, which is fresh per export,
//!   so the order does not join them either.
//! - Record ids, versions, sources, exact times and retention dates are dropped; the collection
//!   time is cut to its month (an exact time would match the audit trail's entries).
//! - `payload`: a payload that is a JSON object, with every field the policy's
//!   `[anonymisation] drop_fields` names removed at any depth (in nested objects and in arrays
//!   of objects). Any other payload (text, bytes, a JSON array, string or number) is never
//!   exported: `payload` is `null`. The fields the policy does not name are exported as they are:
//!   naming every field that identifies a person (an email, a name, a phone number, an account
//!   id) is the policy's job.
//!
//! Reads for the analysis purpose the caller names, under the rules of every read
//! ([`rights::access`](crate::rights::access)): a record is exported only if the purpose is among
//! its purposes, the subject consented to it where the record rests on consent, and processing is
//! not restricted. The three purposes that bypass those rules (`storage`, `legal-claims`,
//! `subject-access`) are refused for an analysis export. Subjects with an erasure pending are
//! left out, and credentials are never exported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;

use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::audit::{AuditOp, Draft};
use crate::crypto::{SecretKey, keyed_hash};
use crate::error::{InputError, Result, StorageError};
use crate::ids::{RecordId, SubjectRef, to_hex};
use crate::model::{Category, LegalBasis, Purpose};
use crate::policy::anonymisation::Anonymisation;
use crate::policy::roles::{Operation, Scope};
use crate::rights::access;
use crate::storage::entries::{RecordEntry, StoredRecord, SubjectState};
use crate::storage::layout;
use crate::vault::Vault;

/// One count of [`AnonymousStats`]: its number, or withheld. Serialized as the number, or as
/// the string `"suppressed"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// The count (at least the threshold).
    Count(u64),
    /// Withheld: below the threshold, or withheld so that another withheld count cannot be
    /// derived.
    Suppressed,
}

impl Cell {
    /// The count, if shown.
    pub fn count(self) -> Option<u64> {
        match self {
            Cell::Count(n) => Some(n),
            Cell::Suppressed => None,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Count(n) => write!(f, "{n}"),
            Cell::Suppressed => f.write_str("suppressed"),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Count(n) => s.serialize_u64(*n),
            Cell::Suppressed => s.serialize_str("suppressed"),
        }
    }
}

/// Counts over record metadata with small cells withheld ([`Vault::anonymous_stats`]; the rule
/// is in this module's documentation). Holds no count below the threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnonymousStats {
    /// The threshold: counts below it are withheld (the policy's `[anonymisation] min_cell`).
    pub min_cell: u64,
    /// Subjects in the vault.
    pub subjects: Cell,
    /// Readable records.
    pub records: Cell,
    /// Records per category name.
    pub by_category: BTreeMap<String, Cell>,
    /// Records per legal basis.
    pub by_basis: BTreeMap<String, Cell>,
    /// Records per purpose (a record counts once for each of its purposes).
    pub by_purpose: BTreeMap<String, Cell>,
    /// Records per month of collection, `YYYY-MM` in UTC.
    pub by_month: BTreeMap<String, Cell>,
}

/// A single count, withheld below `k`.
pub(crate) fn cell(n: u64, k: u64) -> Cell {
    if n < k {
        Cell::Suppressed
    } else {
        Cell::Count(n)
    }
}

/// Applies primary and secondary suppression to one group of counts (zeros are left out).
pub(crate) fn suppress(counts: BTreeMap<String, u64>, k: u64) -> BTreeMap<String, Cell> {
    let counts: BTreeMap<String, u64> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    let primary = counts.values().filter(|n| **n < k).count();
    let secondary = if primary == 1 {
        counts
            .iter()
            .filter(|(_, n)| **n >= k)
            .min_by_key(|(name, n)| (**n, (*name).clone()))
            .map(|(name, _)| name.clone())
    } else {
        None
    };
    counts
        .into_iter()
        .map(|(name, n)| {
            let c = if secondary.as_deref() == Some(name.as_str()) {
                Cell::Suppressed
            } else {
                cell(n, k)
            };
            (name, c)
        })
        .collect()
}

/// The month of a time, `YYYY-MM` in UTC.
pub(crate) fn month(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m").to_string()
}

/// One line of an analysis export.
#[derive(Serialize)]
struct AnalysisLine<'a> {
    subject: &'a str,
    category: &'a Category,
    basis: LegalBasis,
    purposes: &'a [Purpose],
    collected: String,
    payload: Option<serde_json::Value>,
}

/// Removes the named fields from a JSON value, at any depth.
fn drop_fields(v: &mut serde_json::Value, fields: &[String]) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !fields.iter().any(|f| f == k));
            for x in map.values_mut() {
                drop_fields(x, fields);
            }
        }
        serde_json::Value::Array(items) => {
            for x in items {
                drop_fields(x, fields);
            }
        }
        _ => {}
    }
}

/// The payload as an analysis export carries it: a JSON object without the dropped fields, or
/// nothing.
fn analysis_payload(payload: &[u8], a: &Anonymisation) -> Option<serde_json::Value> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(mut v @ serde_json::Value::Object(_)) => {
            drop_fields(&mut v, &a.drop_fields);
            Some(v)
        }
        _ => None,
    }
}

/// What an analysis export read, per subject and category, for the audit trail: noted when the
/// export ends, however it ends (buffered for the next commit if it fails or unwinds). Kept in
/// subject-reference order, not the export's, so the trail's order says nothing of the lines'.
struct AnalysisTally<'a> {
    vault: &'a Vault,
    purpose: &'a Purpose,
    read: BTreeSet<(SubjectRef, String)>,
    records: u64,
    noted: bool,
}

impl AnalysisTally<'_> {
    fn drafts(&mut self, outcome: &str) -> Vec<Draft> {
        self.noted = true;
        let purpose = self.purpose.as_str();
        let subjects = {
            let mut s: Vec<&SubjectRef> = self.read.iter().map(|(s, _)| s).collect();
            s.dedup();
            s.len()
        };
        let mut out: Vec<Draft> = std::mem::take(&mut self.read)
            .into_iter()
            .map(|(subject, category)| {
                self.vault
                    .draft(AuditOp::Read)
                    .subject(subject)
                    .category(&category)
                    .note(format!("{purpose}; analysis export, pseudonymised"))
            })
            .collect();
        out.push(self.vault.draft(AuditOp::Export).note(format!(
            "analysis export for purpose {purpose}: {} records of {subjects} subjects, pseudonymised{outcome}",
            self.records
        )));
        out
    }
}

impl Drop for AnalysisTally<'_> {
    fn drop(&mut self) {
        if !self.noted {
            for d in self.drafts("; interrupted") {
                self.vault.inner.trail.defer_read(d);
            }
        }
    }
}

impl Vault {
    /// Calls `f` with the metadata of every readable record (metadata only, nothing decrypted):
    /// the rows of groups destroyed and not yet reclaimed are no records.
    pub(crate) fn each_readable_record(
        &self,
        mut f: impl FnMut(SubjectRef, RecordId, &RecordEntry),
    ) -> Result<()> {
        let mut reclaim = std::collections::HashSet::new();
        for key in self
            .store()
            .scan_keys(&layout::table(layout::Table::Reclaim))
        {
            if let Some(x) = layout::parse_reclaim(&key?) {
                reclaim.insert(x);
            }
        }
        for r in self
            .store()
            .scan::<RecordEntry>(&layout::table(layout::Table::Record), "record")
        {
            let (key, e) = r?;
            let (sref, id) =
                layout::parse_record(&key).ok_or(StorageError::Malformed("record key"))?;
            if !reclaim.contains(&(sref, e.meta.category.name().to_owned(), e.key_gen)) {
                f(sref, id, &e);
            }
        }
        Ok(())
    }

    /// Counts over record metadata (nothing decrypted) with small cells withheld: subjects,
    /// records, and records per category, legal basis, purpose and month of collection. A count
    /// below the policy's `[anonymisation] min_cell` (default 5) is [`Cell::Suppressed`], and so
    /// is a second cell of a group where one alone would be (the rule in full is in
    /// [`anonymised`](crate::anonymised)'s documentation).
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::{Category, RecordMeta, SubjectId, anonymised::Cell};
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// for i in 0..6 {
    ///     let s = SubjectId::new(format!("user-{i}"))?;
    ///     vault.put(&s, RecordMeta::new(Category::Usage), b"clicks")?;
    /// }
    /// vault.put(&SubjectId::new("user-0")?, RecordMeta::new(Category::Contact), b"phone")?;
    /// let stats = vault.anonymous_stats()?;
    /// assert_eq!(stats.records, Cell::Count(7));
    /// assert_eq!(stats.by_category["contact"], Cell::Suppressed); // 1 < 5
    /// assert_eq!(stats.by_category["usage"], Cell::Suppressed); // else 7 - 6 gives contact's
    /// # Ok(())
    /// # }
    /// ```
    pub fn anonymous_stats(&self) -> Result<AnonymousStats> {
        self.operation("anonymous_stats", || {
            let k = self
                .policy()
                .map_or_else(Anonymisation::default, |p| p.anonymisation.clone())
                .min_cell;
            let mut subjects = 0u64;
            for key in self
                .store()
                .scan_keys(&layout::table(layout::Table::Subject))
            {
                key?;
                subjects += 1;
            }
            let mut records = 0u64;
            let (mut by_category, mut by_basis, mut by_purpose, mut by_month) = (
                BTreeMap::<String, u64>::new(),
                BTreeMap::<String, u64>::new(),
                BTreeMap::<String, u64>::new(),
                BTreeMap::<String, u64>::new(),
            );
            self.each_readable_record(|_, _, e| {
                records += 1;
                *by_category
                    .entry(e.meta.category.name().to_owned())
                    .or_default() += 1;
                *by_basis.entry(e.meta.basis.name().to_owned()).or_default() += 1;
                for p in &e.meta.purposes {
                    *by_purpose.entry(p.as_str().to_owned()).or_default() += 1;
                }
                *by_month.entry(month(e.meta.collected_at)).or_default() += 1;
            })?;
            Ok(AnonymousStats {
                min_cell: k,
                subjects: cell(subjects, k),
                records: cell(records, k),
                by_category: suppress(by_category, k),
                by_basis: suppress(by_basis, k),
                by_purpose: suppress(by_purpose, k),
                by_month: suppress(by_month, k),
            })
        })
    }

    /// Writes the records of `categories`, across every subject, to `out` as pseudonymised JSON
    /// lines for analysis; returns how many records it wrote. Subjects appear under pseudonyms
    /// fresh to this export (two exports cannot be joined on them), record ids and exact times
    /// are dropped, and payloads are reduced to JSON objects without the fields the policy's
    /// `[anonymisation] drop_fields` names; the format and its rules are in
    /// [`anonymised`](crate::anonymised)'s documentation.
    ///
    /// Reads for `purpose`, under the rules of every read: only records with that purpose, with
    /// consent where they rest on it, and not restricted (the others are left out). Refused
    /// before anything is read: no category, the credential category, and the purposes
    /// `storage`, `legal-claims` and `subject-access`, which bypass consent and restriction
    /// ([`InputError::Field`]); a category the vault does not know
    /// ([`InputError::UnknownCategory`], or [`InputError::NotCollected`]). On a scoped handle each category needs a `read` grant
    /// for the purpose. Audited: a read entry per subject and category (no counts, in subject
    /// order) and one export entry with the totals, also when the export fails half-way.
    pub fn export_for_analysis(
        &self,
        categories: &[Category],
        purpose: &Purpose,
        out: &mut dyn Write,
    ) -> Result<u64> {
        self.operation("export_for_analysis", || {
            if categories.is_empty() {
                return Err(InputError::Field {
                    field: "categories",
                    why: "none given",
                }
                .into());
            }
            let mut chosen: Vec<&Category> = Vec::with_capacity(categories.len());
            for c in categories {
                if *c == Category::Credential {
                    return Err(InputError::Field {
                        field: "categories",
                        why: "credentials are never exported",
                    }
                    .into());
                }
                self.known_category(c)?;
                if !chosen.contains(&c) {
                    chosen.push(c);
                }
            }
            if purpose.allowed_under_restriction() {
                return Err(InputError::Field {
                    field: "purpose",
                    why: "storage, legal-claims and subject-access bypass consent and restriction: name the analysis purpose",
                }
                .into());
            }
            for c in &chosen {
                self.authorize(
                    Operation::Read,
                    Scope::Category(c, Some(purpose)),
                    None,
                    None,
                )?;
            }
            // What was written out cannot be taken back: on a shared store, no destruction runs in
            // any process until the export ends.
            let _no_destruction = self.shared_lock(
                crate::storage::engine::SharedLock::Destruction,
                crate::storage::engine::LockMode::Shared,
            )?;
            let anonymisation = self
                .policy()
                .map_or_else(Anonymisation::default, |p| p.anonymisation.clone());
            // The pseudonym key is drawn for this export alone and wiped once the pseudonyms are made.
            let key = SecretKey::random();
            let mut subjects: Vec<(String, SubjectRef)> = Vec::new();
            for k in self
                .store()
                .scan_keys(&layout::table(layout::Table::Subject))
            {
                let k = k?;
                let sref = k
                    .get(1..)
                    .and_then(SubjectRef::from_slice)
                    .ok_or(StorageError::Malformed("subject key"))?;
                let tag = keyed_hash(&key, &[b"pdvault/analysis-pseudonym", sref.as_bytes()]);
                subjects.push((to_hex(&tag[..16]), sref));
            }
            drop(key);
            subjects.sort_unstable();
            let mut tally = AnalysisTally {
                vault: self,
                purpose,
                read: BTreeSet::new(),
                records: 0,
                noted: false,
            };
            for (pseudonym, sref) in &subjects {
                let state = self.state(sref)?;
                if state.pending_erasure.is_some() {
                    continue;
                }
                self.write_analysis_subject(
                    pseudonym,
                    sref,
                    &state,
                    &chosen,
                    purpose,
                    &anonymisation,
                    out,
                    &mut tally,
                )?;
            }
            out.flush()?;
            let mut drafts = tally.drafts("");
            let summary = drafts.pop().ok_or(StorageError::Malformed("audit"))?;
            for d in drafts {
                self.inner.trail.note_read(self.store(), d)?;
            }
            self.commit(crate::storage::Txn::new(), vec![summary])?;
            Ok(tally.records)
        })
    }

    /// Writes one subject's lines of an analysis export.
    #[allow(clippy::too_many_arguments)]
    fn write_analysis_subject(
        &self,
        pseudonym: &str,
        sref: &SubjectRef,
        state: &SubjectState,
        categories: &[&Category],
        purpose: &Purpose,
        anonymisation: &Anonymisation,
        out: &mut dyn Write,
        tally: &mut AnalysisTally<'_>,
    ) -> Result<()> {
        let destroyed = self.destroyed_groups(sref)?;
        let policy = self.policy();
        for category in categories {
            let prefix = layout::members_of_group(sref, category.name());
            // Member chunks, then a point read per record (as `export`: a long scan's pages stay
            // resident in sled 0.34).
            for (_, generation, id) in self.store().members(&prefix)? {
                if destroyed.contains(&(category.name().to_owned(), generation)) {
                    continue;
                }
                let Some(stored) = self
                    .store()
                    .get_with(&layout::record(sref, &id), StoredRecord::decode)?
                else {
                    continue;
                };
                let meta = &stored.head.meta;
                if meta.category != **category
                    || access::check(id, meta, state, purpose, policy.as_deref()).is_err()
                {
                    continue;
                }
                let Some(key) = self.keys().data_key_gen(
                    self.store(),
                    sref,
                    category.name(),
                    stored.head.key_gen,
                )?
                else {
                    continue;
                };
                let payload = Zeroizing::new(self.open_record(&key, sref, id, &stored)?);
                let line = AnalysisLine {
                    subject: pseudonym,
                    category: &meta.category,
                    basis: meta.basis,
                    purposes: &meta.purposes,
                    collected: month(meta.collected_at),
                    payload: analysis_payload(&payload, anonymisation),
                };
                tally.read.insert((*sref, category.name().to_owned()));
                tally.records += 1;
                serde_json::to_writer(&mut *out, &line)
                    .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(cells: &[(&str, u64)]) -> BTreeMap<String, u64> {
        cells.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    fn shown(g: &BTreeMap<String, Cell>) -> Vec<(&str, Option<u64>)> {
        g.iter().map(|(k, c)| (k.as_str(), c.count())).collect()
    }

    #[test]
    fn small_cells_are_withheld_and_one_alone_takes_a_second_with_it() {
        // Nothing small: everything shown, zeros left out.
        let g = suppress(group(&[("a", 5), ("b", 9), ("z", 0)]), 5);
        assert_eq!(shown(&g), [("a", Some(5)), ("b", Some(9))]);
        // One small cell: the smallest other one goes too (the first by name among equals).
        let g = suppress(group(&[("a", 3), ("b", 9), ("c", 6), ("d", 6)]), 5);
        assert_eq!(
            shown(&g),
            [("a", None), ("b", Some(9)), ("c", None), ("d", Some(6))]
        );
        // Two small cells: no secondary suppression needed.
        let g = suppress(group(&[("a", 3), ("b", 1), ("c", 6)]), 5);
        assert_eq!(shown(&g), [("a", None), ("b", None), ("c", Some(6))]);
        // One cell only, and small.
        let g = suppress(group(&[("a", 3)]), 5);
        assert_eq!(shown(&g), [("a", None)]);
    }

    #[test]
    fn payloads_keep_json_objects_without_the_dropped_fields() {
        let a = Anonymisation {
            min_cell: 5,
            drop_fields: vec!["email".into(), "name".into()],
        };
        let p = br#"{"email":"a@example.com","plan":"pro","nested":{"name":"Alice","n":1},"list":[{"email":"x"},2]}"#;
        let v = analysis_payload(p, &a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"plan":"pro","nested":{"n":1},"list":[{},2]})
        );
        for not_an_object in [&b"plain text"[..], b"[1,2]", b"\"s\"", b"7", b"\xff\xfe"] {
            assert_eq!(analysis_payload(not_an_object, &a), None);
        }
    }

    #[test]
    fn cells_serialize_as_numbers_or_suppressed() {
        assert_eq!(serde_json::to_string(&Cell::Count(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&Cell::Suppressed).unwrap(),
            "\"suppressed\""
        );
    }
}
