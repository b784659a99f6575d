//! Policy: retention rules per category, request deadlines and audit retention, loaded from
//! TOML and validated; and legal holds ([`holds`]).
//!
//! This module evaluates dates and decides nothing about keys or storage.
//!
//! A policy file:
//!
//! ```toml
//! name = "m-exe.com privacy policy"
//! version = "2025-01"
//! custom_categories = ["loyalty-points"] # the host's own categories, besides the built-ins
//!
//! [retention.transaction]
//! min = "7 years"          # an obligation to keep: erasure is deferred until it passes
//! max = "7 years"          # the sweep erases after it
//!
//! [retention.account]
//! max = "2 years"
//! anchor = "account-closed" # counted from a subject event instead of the collection time
//!
//! [requests]                # due dates of data-subject requests
//! access = "30 days"
//!
//! [audit]
//! retain = "1 year"         # audit entries older than this are pruned by the sweep
//!
//! [subjects]
//! keep_state = "90 days"    # a subject whose last record the sweep destroyed is kept this
//!                           # long (events, consents, disclosures), then finished; without
//!                           # it, finished at once
//!
//! [anonymisation]           # see `anonymisation`
//! min_cell = 5              # anonymous statistics withhold counts below this
//! drop_fields = ["email"]   # analysis exports leave these JSON fields out
//! ```
//!
//! Spans are calendar spans in UTC: "3 months" from 31 January is 30 April.
//!
//! A vault knows the built-in categories and the custom categories its policy declares
//! ([`check_category`]); a record, hold, restriction, erasure or disclosure that names any other
//! category is refused, so that a misspelt name cannot escape the rules written for the right one.

pub mod anonymisation;
pub mod holds;
pub mod recipients;
pub mod roles;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::{Span, Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::error::{InputError, PolicyError};
use crate::model::{Category, LegalBasis, is_kebab};
use recipients::Recipient;
use roles::Role;

/// A subject event that can anchor retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The subject's account was closed.
    AccountClosed,
    /// The subject's contract ended.
    ContractEnded,
}

impl EventKind {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::AccountClosed => "account-closed",
            EventKind::ContractEnded => "contract-ended",
        }
    }
}

impl FromStr for EventKind {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "account-closed" => Ok(EventKind::AccountClosed),
            "contract-ended" => Ok(EventKind::ContractEnded),
            _ => Err(InputError::Field {
                field: "event kind",
                why: "expected account-closed or contract-ended",
            }),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a retention span counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The record's collection time.
    #[default]
    Collected,
    /// A subject event; until it happens, the span has not started.
    #[serde(untagged)]
    Event(EventKind),
}

/// The kinds of data-subject request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// Access: a copy of all data held.
    Access,
    /// Rectification.
    Rectification,
    /// Erasure.
    Erasure,
    /// Restriction of processing.
    Restriction,
    /// Portability.
    Portability,
    /// Objection.
    Objection,
}

impl RequestKind {
    /// Every kind.
    pub const ALL: [RequestKind; 6] = [
        RequestKind::Access,
        RequestKind::Rectification,
        RequestKind::Erasure,
        RequestKind::Restriction,
        RequestKind::Portability,
        RequestKind::Objection,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Rectification => "rectification",
            RequestKind::Erasure => "erasure",
            RequestKind::Restriction => "restriction",
            RequestKind::Portability => "portability",
            RequestKind::Objection => "objection",
        }
    }
}

impl FromStr for RequestKind {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or(InputError::Field { field: "request kind", why: "expected access, rectification, erasure, restriction, portability or objection" })
    }
}

/// The retention rule of one category.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Minimum retention: erasure is deferred until it has passed.
    pub min: Option<Span>,
    /// Maximum retention: the sweep erases after it.
    pub max: Option<Span>,
    /// What both spans count from.
    pub anchor: Anchor,
}

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// A name for people.
    pub name: Option<String>,
    /// The policy's version (recorded with consents).
    pub version: Option<String>,
    /// Retention per category name.
    pub retention: BTreeMap<String, Rule>,
    /// Response deadlines per request kind.
    pub requests: BTreeMap<RequestKind, Span>,
    /// How long audit entries are kept.
    pub audit_retention: Option<Span>,
    /// How long a subject's state (events, consents, disclosures, its identity) is kept after the
    /// sweep destroyed its last record (`[subjects] keep_state`). Without it the subject is
    /// finished at once, like an erased one, when nothing is pending for it.
    pub keep_subject_state: Option<Span>,
    /// Categories that are neither collected nor processed (`not_collected = [...]`): every
    /// write, hold, restriction or disclosure naming one is refused.
    pub not_collected: Vec<String>,
    /// The legal bases each category may rest on (`[bases]`); a category not named may rest on
    /// any basis.
    pub bases: BTreeMap<String, Vec<LegalBasis>>,
    /// The roles staff act in (`[roles.NAME]`, [`roles`]).
    pub roles: BTreeMap<String, Role>,
    /// The recipients register (`[recipients.NAME]`, [`recipients`]).
    pub recipients: BTreeMap<String, Recipient>,
    /// What anonymised output withholds (`[anonymisation]`, [`anonymisation`]).
    pub anonymisation: anonymisation::Anonymisation,
    custom_categories: Vec<String>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    custom_categories: Vec<String>,
    #[serde(default)]
    retention: BTreeMap<String, RawRule>,
    #[serde(default)]
    requests: BTreeMap<String, String>,
    audit: Option<RawAudit>,
    subjects: Option<RawSubjects>,
    #[serde(default)]
    not_collected: Vec<String>,
    #[serde(default)]
    bases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    roles: BTreeMap<String, roles::RawRole>,
    #[serde(default)]
    recipients: BTreeMap<String, recipients::RawRecipient>,
    anonymisation: Option<anonymisation::RawAnonymisation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubjects {
    keep_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    min: Option<String>,
    max: Option<String>,
    anchor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retain: Option<String>,
}

fn entry_err(entry: &str, why: impl Into<String>) -> PolicyError {
    PolicyError::Entry {
        entry: entry.to_owned(),
        why: why.into(),
    }
}

fn parse_span(entry: &str, field: &str, s: &str) -> Result<Span, PolicyError> {
    let span: Span = s
        .parse()
        .map_err(|e| entry_err(entry, format!("{field} {s:?} is not a span ({e})")))?;
    if span.is_negative() {
        return Err(entry_err(entry, format!("{field} {s:?} is negative")));
    }
    if span.get_hours() != 0
        || span.get_minutes() != 0
        || span.get_seconds() != 0
        || span.get_milliseconds() != 0
        || span.get_microseconds() != 0
        || span.get_nanoseconds() != 0
    {
        return Err(entry_err(
            entry,
            format!("{field} {s:?}: use days, weeks, months or years"),
        ));
    }
    // A span has to be applicable to a date (years bounded by jiff's range).
    if Timestamp::UNIX_EPOCH
        .to_zoned(TimeZone::UTC)
        .checked_add(span)
        .is_err()
    {
        return Err(entry_err(entry, format!("{field} {s:?} is out of range")));
    }
    Ok(span)
}

/// Adds a calendar span to a time, in UTC; saturates at the end of time.
pub(crate) fn add_span(at: Timestamp, span: Span) -> Timestamp {
    at.to_zoned(TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// Subtracts a calendar span from a time, in UTC; saturates at the start of time.
pub(crate) fn sub_span(at: Timestamp, span: Span) -> Timestamp {
    at.to_zoned(TimeZone::UTC)
        .checked_sub(span)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// Compares two spans by what they add to `at`.
fn span_longer(a: Span, b: Span) -> bool {
    let at = Timestamp::UNIX_EPOCH;
    add_span(at, a) > add_span(at, b)
}

impl Policy {
    /// Parses and validates a policy from TOML. Errors name the entry.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| PolicyError::Parse(e.message().to_owned()))?;
        for c in &raw.custom_categories {
            if !is_kebab(c) {
                return Err(entry_err(c, "custom category names are kebab-case"));
            }
            if Category::BUILTIN.iter().any(|b| b.name() == c) {
                return Err(entry_err(c, "is a built-in category, not a custom one"));
            }
        }
        let custom = raw.custom_categories.clone();
        let known = |c: &str| {
            Category::BUILTIN.iter().any(|b| b.name() == c) || custom.iter().any(|k| k == c)
        };
        let mut not_collected = Vec::new();
        for c in raw.not_collected {
            if !is_kebab(&c) {
                return Err(entry_err(
                    &c,
                    "not_collected names are kebab-case categories",
                ));
            }
            if custom.contains(&c) {
                return Err(entry_err(&c, "is both a custom category and not collected"));
            }
            if raw.retention.contains_key(&c) || raw.bases.contains_key(&c) {
                return Err(entry_err(
                    &c,
                    "is not collected, so it has no retention or bases",
                ));
            }
            if !not_collected.contains(&c) {
                not_collected.push(c);
            }
        }
        let mut bases = BTreeMap::new();
        for (cat, names) in raw.bases {
            let entry = format!("bases.{cat}");
            if !known(&cat) {
                return Err(entry_err(
                    &entry,
                    "unknown category (declare custom ones in custom_categories)",
                ));
            }
            if names.is_empty() {
                return Err(entry_err(
                    &entry,
                    "no bases (leave the category out to allow any)",
                ));
            }
            let mut list = Vec::new();
            for n in &names {
                let b: LegalBasis = n
                    .parse()
                    .map_err(|_| entry_err(&entry, format!("unknown legal basis {n:?}")))?;
                if !list.contains(&b) {
                    list.push(b);
                }
            }
            bases.insert(cat, list);
        }
        let mut roles = BTreeMap::new();
        for (name, raw_role) in raw.roles {
            let role = roles::parse_role(&name, raw_role, &known)?;
            roles.insert(name, role);
        }
        let mut recipients = BTreeMap::new();
        for (name, raw_recipient) in raw.recipients {
            let r = recipients::parse_recipient(&name, raw_recipient, &known)?;
            recipients.insert(name, r);
        }
        let mut retention = BTreeMap::new();
        for (cat, rule) in raw.retention {
            if !known(&cat) {
                return Err(entry_err(
                    &cat,
                    "unknown category (declare custom ones in custom_categories)",
                ));
            }
            let min = rule
                .min
                .as_deref()
                .map(|s| parse_span(&cat, "min", s))
                .transpose()?;
            let max = rule
                .max
                .as_deref()
                .map(|s| parse_span(&cat, "max", s))
                .transpose()?;
            if let (Some(lo), Some(hi)) = (min, max)
                && span_longer(lo, hi)
            {
                return Err(entry_err(&cat, "min is longer than max"));
            }
            let anchor = match rule.anchor.as_deref() {
                None | Some("collected") => Anchor::Collected,
                Some(s) => Anchor::Event(s.parse().map_err(|_| {
                    entry_err(
                        &cat,
                        format!(
                            "unknown anchor {s:?} (collected, account-closed or contract-ended)"
                        ),
                    )
                })?),
            };
            retention.insert(cat, Rule { min, max, anchor });
        }
        let mut requests = BTreeMap::new();
        for (kind, span) in raw.requests {
            let k: RequestKind = kind
                .parse()
                .map_err(|_| entry_err(&format!("requests.{kind}"), "unknown request kind"))?;
            requests.insert(
                k,
                parse_span(&format!("requests.{kind}"), "deadline", &span)?,
            );
        }
        let audit_retention = raw
            .audit
            .and_then(|a| a.retain)
            .map(|s| parse_span("audit", "retain", &s))
            .transpose()?;
        let keep_subject_state = raw
            .subjects
            .and_then(|s| s.keep_state)
            .map(|s| parse_span("subjects", "keep_state", &s))
            .transpose()?;
        let anonymisation = anonymisation::parse(raw.anonymisation)?;
        Ok(Policy {
            name: raw.name,
            version: raw.version,
            retention,
            requests,
            audit_retention,
            keep_subject_state,
            not_collected,
            bases,
            roles,
            recipients,
            anonymisation,
            custom_categories: raw.custom_categories,
            source: text.to_owned(),
        })
    }

    /// The custom categories the policy declares (`custom_categories = [...]`).
    pub fn custom_categories(&self) -> &[String] {
        &self.custom_categories
    }

    /// The TOML text the policy was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the policy says a category is neither collected nor processed.
    pub fn is_not_collected(&self, category: &Category) -> bool {
        self.not_collected.iter().any(|c| c == category.name())
    }

    /// Checks that a record of `category` may rest on `basis` (`[bases]`).
    pub fn check_basis(&self, category: &Category, basis: LegalBasis) -> Result<(), InputError> {
        match self.bases.get(category.name()) {
            Some(allowed) if !allowed.contains(&basis) => Err(InputError::BasisNotAllowed {
                category: category.name().to_owned(),
                basis,
                allowed: allowed
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            _ => Ok(()),
        }
    }

    /// The role of that name, if the policy declares it.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// The recipient of that name, if the register declares it.
    pub fn recipient(&self, name: &str) -> Option<&Recipient> {
        self.recipients.get(name)
    }

    /// The rule of a category, if any.
    pub fn rule(&self, category: &Category) -> Option<&Rule> {
        self.retention.get(category.name())
    }

    /// When a record's maximum retention ends (`None`: not scheduled, or its anchor event has
    /// not happened).
    pub fn expires_at(
        &self,
        category: &Category,
        collected_at: Timestamp,
        events: &BTreeMap<String, Timestamp>,
    ) -> Option<Timestamp> {
        let rule = self.rule(category)?;
        Some(add_span(
            anchor_time(rule.anchor, collected_at, events)?,
            rule.max?,
        ))
    }

    /// Until when a record must be kept (`None`: no obligation). `Some(Timestamp::MAX)` while the
    /// anchor event has not happened.
    pub fn retained_until(
        &self,
        category: &Category,
        collected_at: Timestamp,
        events: &BTreeMap<String, Timestamp>,
    ) -> Option<Timestamp> {
        let rule = self.rule(category)?;
        let min = rule.min?;
        Some(match anchor_time(rule.anchor, collected_at, events) {
            Some(t) => add_span(t, min),
            None => Timestamp::MAX,
        })
    }

    /// The due date of a request received at `received`.
    pub fn request_due(&self, kind: RequestKind, received: Timestamp) -> Option<Timestamp> {
        self.requests.get(&kind).map(|s| add_span(received, *s))
    }
}

/// Checks that a category is known: built in, or declared by the policy's `custom_categories`
/// (with no policy, only the built-ins are known). The error names the nearest known category
/// when one is within two edits.
pub fn check_category(policy: Option<&Policy>, category: &Category) -> Result<(), InputError> {
    if let Some(p) = policy
        && p.is_not_collected(category)
    {
        return Err(InputError::NotCollected(category.name().to_owned()));
    }
    let declared = policy.map_or(&[][..], |p| p.custom_categories());
    if category.is_builtin() || declared.iter().any(|c| c == category.name()) {
        return Ok(());
    }
    let name = category.name();
    let suggestion = Category::BUILTIN
        .iter()
        .map(Category::name)
        .chain(declared.iter().map(String::as_str))
        .filter(|known| *known != name)
        .map(|known| (edit_distance(name, known), known))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known.to_owned());
    Err(InputError::UnknownCategory {
        name: name.chars().take(80).collect(),
        suggestion,
    })
}

/// The optimal-string-alignment distance (Damerau–Levenshtein without repeated edits of one
/// substring) between two names: insertions, deletions, substitutions and transpositions of
/// adjacent characters. Quadratic: for category names (at most 64 bytes when valid; longer ones
/// are cut at 80 characters first).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(80).collect();
    let b: Vec<char> = b.chars().take(80).collect();
    // Three rows: the one before the previous (for transpositions), the previous, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn anchor_time(
    anchor: Anchor,
    collected_at: Timestamp,
    events: &BTreeMap<String, Timestamp>,
) -> Option<Timestamp> {
    match anchor {
        Anchor::Collected => Some(collected_at),
        Anchor::Event(e) => events.get(e.name()).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn shipped_policies_parse() {
        for f in [
            "policies/seed-000-cmcendpoint.toml",
            "policies/seed-001-m-exe.toml",
        ] {
            let text =
                std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + f)
                    .unwrap();
            Policy::from_toml(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn calendar_months() {
        let p = Policy::from_toml("[retention.access-log]\nmax = \"3 months\"").unwrap();
        let e = BTreeMap::new();
        assert_eq!(
            p.expires_at(&Category::AccessLog, ts("2025-01-31T10:00:00Z"), &e),
            Some(ts("2025-04-30T10:00:00Z"))
        );
        assert_eq!(
            p.expires_at(&Category::AccessLog, ts("2024-11-30T00:00:00Z"), &e),
            Some(ts("2025-02-28T00:00:00Z"))
        );
    }

    #[test]
    fn event_anchor() {
        let p = Policy::from_toml(
            "[retention.account]\nmax = \"2 years\"\nmin = \"1 year\"\nanchor = \"account-closed\"",
        )
        .unwrap();
        let mut e = BTreeMap::new();
        assert_eq!(
            p.expires_at(&Category::Account, ts("2020-01-01T00:00:00Z"), &e),
            None
        );
        assert_eq!(
            p.retained_until(&Category::Account, ts("2020-01-01T00:00:00Z"), &e),
            Some(Timestamp::MAX)
        );
        e.insert("account-closed".into(), ts("2024-02-29T00:00:00Z"));
        assert_eq!(
            p.expires_at(&Category::Account, ts("2020-01-01T00:00:00Z"), &e),
            Some(ts("2026-02-28T00:00:00Z"))
        );
    }

    #[test]
    fn errors_name_the_entry() {
        let cases = [
            ("[retention.acess-log]\nmax = \"3 months\"", "acess-log"),
            (
                "[retention.payment]\nmin = \"6 years\"\nmax = \"5 years\"",
                "min is longer",
            ),
            ("[retention.payment]\nmax = \"five years\"", "payment"),
            ("[retention.payment]\nmax = \"5 hours\"", "payment"),
            (
                "[retention.payment]\nmax = \"5 years\"\nanchor = \"birthday\"",
                "birthday",
            ),
            ("[requests]\naccesss = \"30 days\"", "accesss"),
            ("[retention.payment]\nmaximum = \"5 years\"", "maximum"),
            ("not toml at all [", ""),
        ];
        for (text, needle) in cases {
            let err = Policy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }

    // Guards against misspelt categories being taken for new custom ones: only the built-ins
    // and the declared custom categories are known, and the error suggests the nearest.
    #[test]
    fn categories_are_known_only_when_built_in_or_declared() {
        let p = Policy::from_toml("custom_categories = [\"loyalty-points\"]").unwrap();
        assert_eq!(p.custom_categories(), ["loyalty-points"]);
        let loyalty = Category::custom("loyalty-points").unwrap();
        assert!(check_category(Some(&p), &loyalty).is_ok());
        assert!(check_category(Some(&p), &Category::Account).is_ok());
        assert!(check_category(None, &Category::Account).is_ok());
        let cases: [(&str, Option<&Policy>, Option<&str>); 6] = [
            ("acount", Some(&p), Some("account")),
            ("acount", None, Some("account")),
            ("comunication", None, Some("communication")),
            ("paymnet", None, Some("payment")),
            ("loyalty-ponits", Some(&p), Some("loyalty-points")),
            ("loyalty-points", None, None),
        ];
        for (name, policy, want) in cases {
            let c = Category::custom(name).unwrap();
            match check_category(policy, &c) {
                Err(InputError::UnknownCategory {
                    name: n,
                    suggestion,
                }) => {
                    assert_eq!(n, name);
                    assert_eq!(suggestion.as_deref(), want, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let msg = check_category(None, &Category::custom("acount").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "unknown category `acount` — did you mean `account`?");
        // A name that is no built-in's, wrapped as a custom one by hand, is not a custom category.
        assert!(check_category(None, &Category::Custom("account".into())).is_err());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("acount", "account"), 1);
        assert_eq!(edit_distance("paymnet", "payment"), 1);
        assert_eq!(edit_distance("usage", "usage"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("contact", "contract"), 1);
        assert_eq!(edit_distance("xyz", "account"), 7);
    }

    #[test]
    fn twelve_months_equals_a_year() {
        let p =
            Policy::from_toml("[retention.usage]\nmin = \"12 months\"\nmax = \"1 year\"").unwrap();
        assert!(p.rule(&Category::Usage).is_some());
    }
}
