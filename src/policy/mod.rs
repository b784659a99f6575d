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
//! custom_requests = ["inquiry"]           # the host's own request kinds, besides the built-ins
//!
//! [retention.transaction]
//! min = "7 years"          # an obligation to keep: erasure is deferred until it passes
//! max = "7 years"          # the sweep erases after it
//!
//! [retention.account]
//! max = "2 years"
//! anchor = "account-closed" # counted from a subject event instead of the collection time
//! wording = "while the account is open, then 2 years" # the policy's words (optional)
//!
//! [requests]                # due dates of data-subject requests, per kind
//! access = "30 days"
//! inquiry = "48 hours"      # a declared custom kind; deadlines may count hours
//! verify_identity = true    # answer no request before the requester's identity is verified
//!                           # (or a list of kinds: ["access", "portability", "erasure"])
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
//! Spans are calendar spans in UTC: "3 months" from 31 January is 30 April. Retention, audit
//! and subject-state spans count days, weeks, months or years; a request deadline may also count
//! hours ("48 hours" is 48 hours after the request was received, "2 days" the same time two days
//! later).
//!
//! Request kinds are the six built-in ones (access, rectification, erasure, restriction,
//! portability, objection) and the custom ones the policy declares in `custom_requests`
//! (kebab-case names). Under `[requests]`, each key is a kind (kebab-case) and its value the
//! deadline; the one other key, `verify_identity` (snake_case, so that no kind can be named so),
//! says which kinds need the requester's identity verified
//! ([`Vault::verify_request_identity`](crate::Vault::verify_request_identity)) before they are
//! answered: `true` for every kind, `false` (the default) for none, or a list of kinds. A kind
//! named anywhere that is neither built in nor declared is refused, with the entry named; so is
//! a request of such a kind ([`check_request_kind`]).
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

use crate::error::{InputError, PolicyError, RequestError};
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

/// The kinds of data-subject request: six built in, and the custom kinds a policy declares
/// (`custom_requests`), named in kebab-case. Serialized as the kebab-case name.
///
/// A vault knows the built-in kinds and the custom kinds its policy declares
/// ([`Policy::check_request_kind`]); a request of any other kind is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
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
    /// A host-defined kind that the policy declares (`custom_requests`), named in kebab-case.
    Custom(String),
}

impl RequestKind {
    /// Every built-in kind.
    pub const BUILTIN: &'static [RequestKind] = &[
        RequestKind::Access,
        RequestKind::Rectification,
        RequestKind::Erasure,
        RequestKind::Restriction,
        RequestKind::Portability,
        RequestKind::Objection,
    ];

    /// A host-defined kind. The name must be kebab-case (`a-z`, `0-9`, `-`, starting with a
    /// letter, at most 64 bytes); a built-in name gives the built-in kind.
    pub fn custom(name: &str) -> Result<RequestKind, InputError> {
        name.parse()
    }

    /// The kebab-case name.
    pub fn name(&self) -> &str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Rectification => "rectification",
            RequestKind::Erasure => "erasure",
            RequestKind::Restriction => "restriction",
            RequestKind::Portability => "portability",
            RequestKind::Objection => "objection",
            RequestKind::Custom(n) => n,
        }
    }

    /// Whether this is a built-in kind.
    pub fn is_builtin(&self) -> bool {
        !matches!(self, RequestKind::Custom(_))
    }
}

impl FromStr for RequestKind {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(k) = RequestKind::BUILTIN.iter().find(|k| k.name() == s) {
            return Ok(k.clone());
        }
        if is_kebab(s) {
            Ok(RequestKind::Custom(s.to_owned()))
        } else {
            Err(InputError::Field {
                field: "request kind",
                why: "expected access, rectification, erasure, restriction, portability, \
                      objection or a kebab-case custom kind",
            })
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for RequestKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RequestKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Parses the name where it lies: a built-in kind allocates nothing.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = RequestKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a kebab-case request kind")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RequestKind, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

/// Which request kinds may be answered only once the requester's identity has been verified
/// (`[requests] verify_identity`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum VerifyIdentity {
    /// None (no `verify_identity`, or `false`).
    #[default]
    None,
    /// Every kind, built in or custom (`true`).
    Every,
    /// The kinds listed.
    Kinds(Vec<RequestKind>),
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
    /// The policy's own words for this rule, for people (`wording = "..."`, optional): what the
    /// privacy policy promises, quoted in the auditor's report ([`Vault::report`](crate::Vault::report)).
    pub wording: Option<String>,
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
    /// Response deadlines per request kind (`[requests]`): calendar spans that may also count
    /// hours (`"48 hours"`).
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
    /// The policy's earlier versions, oldest first (`version_history = [...]`): the order in
    /// which a consent's policy version is compared with a purpose's `min_version`.
    pub version_history: Vec<String>,
    /// Per purpose, the oldest policy version whose consent still counts (`[consent.PURPOSE]
    /// min_version = "V"`, or `"current"`: only consent given under this version).
    pub consent_min_version: BTreeMap<String, String>,
    /// What marking a subject a minor does (`[minors] on_marked = ...`).
    pub minors: Option<MinorRule>,
    /// What anonymised output withholds (`[anonymisation]`, [`anonymisation`]).
    pub anonymisation: anonymisation::Anonymisation,
    custom_categories: Vec<String>,
    custom_requests: Vec<String>,
    verify_identity: VerifyIdentity,
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
    custom_requests: Vec<String>,
    #[serde(default)]
    requests: BTreeMap<String, toml::Value>,
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
    #[serde(default)]
    version_history: Vec<String>,
    #[serde(default)]
    consent: BTreeMap<String, RawConsent>,
    minors: Option<RawMinors>,
    anonymisation: Option<anonymisation::RawAnonymisation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    min_version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinors {
    on_marked: String,
}

/// What marking a subject a minor does (`[minors] on_marked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MinorRule {
    /// `"erase"`: the subject is erased at once, through the guarded erasure path (holds and
    /// minimum retention still apply).
    Erase,
    /// `"require-guardian-consent"`: every consent-based read needs a guardian's consent for
    /// the purpose as well.
    RequireGuardianConsent,
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
    wording: Option<String>,
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

/// The smallest unit a span may count in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SmallestUnit {
    /// Days: a calendar span (retention, audit, subject state).
    Day,
    /// Hours: a request deadline (`"48 hours"`).
    Hour,
}

/// A calendar span: days, weeks, months or years.
fn parse_span(entry: &str, field: &str, s: &str) -> Result<Span, PolicyError> {
    parse_span_down_to(entry, field, s, SmallestUnit::Day)
}

/// A request deadline: a calendar span that may also count hours.
fn parse_deadline(entry: &str, s: &str) -> Result<Span, PolicyError> {
    parse_span_down_to(entry, "deadline", s, SmallestUnit::Hour)
}

fn parse_span_down_to(
    entry: &str,
    field: &str,
    s: &str,
    smallest: SmallestUnit,
) -> Result<Span, PolicyError> {
    let span: Span = s
        .parse()
        .map_err(|e| entry_err(entry, format!("{field} {s:?} is not a span ({e})")))?;
    if span.is_negative() {
        return Err(entry_err(entry, format!("{field} {s:?} is negative")));
    }
    let finer_than_hours = span.get_minutes() != 0
        || span.get_seconds() != 0
        || span.get_milliseconds() != 0
        || span.get_microseconds() != 0
        || span.get_nanoseconds() != 0;
    if finer_than_hours || (smallest == SmallestUnit::Day && span.get_hours() != 0) {
        let units = match smallest {
            SmallestUnit::Day => "days, weeks, months or years",
            SmallestUnit::Hour => "hours, days, weeks, months or years",
        };
        return Err(entry_err(entry, format!("{field} {s:?}: use {units}")));
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

/// The `[requests]` table: a deadline per kind, and `verify_identity`.
fn parse_requests(
    table: BTreeMap<String, toml::Value>,
    custom: &[String],
) -> Result<(BTreeMap<RequestKind, Span>, VerifyIdentity), PolicyError> {
    let mut requests = BTreeMap::new();
    let mut verify = VerifyIdentity::None;
    for (key, value) in table {
        let entry = format!("requests.{key}");
        if key == VERIFY_IDENTITY {
            verify = parse_verify_identity(&entry, value, custom)?;
            continue;
        }
        let kind = known_request_kind(&entry, &key, custom)?;
        let toml::Value::String(span) = value else {
            return Err(entry_err(
                &entry,
                "a deadline is a string such as \"30 days\" or \"48 hours\"",
            ));
        };
        requests.insert(kind, parse_deadline(&entry, &span)?);
    }
    Ok((requests, verify))
}

/// The key of `[requests]` that is not a kind (snake_case: no kind name can be it).
const VERIFY_IDENTITY: &str = "verify_identity";

fn parse_verify_identity(
    entry: &str,
    value: toml::Value,
    custom: &[String],
) -> Result<VerifyIdentity, PolicyError> {
    match value {
        toml::Value::Boolean(true) => Ok(VerifyIdentity::Every),
        toml::Value::Boolean(false) => Ok(VerifyIdentity::None),
        toml::Value::Array(items) => {
            let mut kinds = Vec::new();
            for item in items {
                let toml::Value::String(name) = item else {
                    return Err(entry_err(entry, "lists request kinds by name"));
                };
                let kind = known_request_kind(entry, &name, custom)?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            Ok(if kinds.is_empty() {
                VerifyIdentity::None
            } else {
                VerifyIdentity::Kinds(kinds)
            })
        }
        _ => Err(entry_err(
            entry,
            "is true (every kind), false, or a list of request kinds",
        )),
    }
}

/// A request kind named in the policy: built in, or declared in `custom_requests`.
fn known_request_kind(
    entry: &str,
    name: &str,
    custom: &[String],
) -> Result<RequestKind, PolicyError> {
    match name.parse::<RequestKind>() {
        Ok(k) if k.is_builtin() || custom.iter().any(|c| c == name) => Ok(k),
        _ => {
            let hint = match nearest_request_kind(name, custom) {
                Some(n) => format!(" — did you mean {n:?}?"),
                None => String::new(),
            };
            Err(entry_err(
                entry,
                format!(
                    "unknown request kind {:?} (declare custom ones in custom_requests){hint}",
                    name.chars().take(80).collect::<String>()
                ),
            ))
        }
    }
}

/// The known request kind nearest to `name`, within two edits.
fn nearest_request_kind(name: &str, custom: &[String]) -> Option<String> {
    RequestKind::BUILTIN
        .iter()
        .map(RequestKind::name)
        .chain(custom.iter().map(String::as_str))
        .filter(|known| *known != name)
        .map(|known| (edit_distance(name, known), known))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known.to_owned())
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
        let mut known_versions: Vec<&str> =
            raw.version_history.iter().map(String::as_str).collect();
        if let Some(v) = &raw.version {
            known_versions.push(v);
        }
        for (i, v) in raw.version_history.iter().enumerate() {
            crate::model::check_text("policy version", v)
                .map_err(|e| entry_err("version_history", e.to_string()))?;
            if raw.version_history[..i].contains(v) || raw.version.as_ref() == Some(v) {
                return Err(entry_err(
                    "version_history",
                    format!("{v:?} is listed twice"),
                ));
            }
        }
        let mut consent_min_version = BTreeMap::new();
        for (purpose, rule) in raw.consent {
            let entry = format!("consent.{purpose}");
            crate::model::Purpose::new(&purpose).map_err(|e| entry_err(&entry, e.to_string()))?;
            let min = if rule.min_version == "current" {
                raw.version.clone().ok_or_else(|| {
                    entry_err(
                        &entry,
                        "min_version = \"current\" needs the policy's version",
                    )
                })?
            } else {
                rule.min_version
            };
            if !known_versions.contains(&min.as_str()) {
                return Err(entry_err(
                    &entry,
                    format!(
                        "min_version {min:?} is neither the policy's version nor in version_history"
                    ),
                ));
            }
            consent_min_version.insert(purpose, min);
        }
        let minors = match raw.minors {
            None => None,
            Some(m) => Some(match m.on_marked.as_str() {
                "erase" => MinorRule::Erase,
                "require-guardian-consent" => MinorRule::RequireGuardianConsent,
                other => {
                    return Err(entry_err(
                        "minors",
                        format!("on_marked {other:?}: expected erase or require-guardian-consent"),
                    ));
                }
            }),
        };
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
            if let Some(w) = &rule.wording {
                crate::model::check_text("wording", w)
                    .map_err(|e| entry_err(&cat, e.to_string()))?;
            }
            retention.insert(
                cat,
                Rule {
                    min,
                    max,
                    anchor,
                    wording: rule.wording,
                },
            );
        }
        for k in &raw.custom_requests {
            if !is_kebab(k) {
                return Err(entry_err(k, "custom request kinds are kebab-case"));
            }
            if RequestKind::BUILTIN.iter().any(|b| b.name() == k) {
                return Err(entry_err(k, "is a built-in request kind, not a custom one"));
            }
        }
        let (requests, verify_identity) = parse_requests(raw.requests, &raw.custom_requests)?;
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
            version_history: raw.version_history,
            consent_min_version,
            minors,
            anonymisation,
            custom_categories: raw.custom_categories,
            custom_requests: raw.custom_requests,
            verify_identity,
            source: text.to_owned(),
        })
    }

    /// The custom categories the policy declares (`custom_categories = [...]`).
    pub fn custom_categories(&self) -> &[String] {
        &self.custom_categories
    }

    /// The custom request kinds the policy declares (`custom_requests = [...]`).
    pub fn custom_requests(&self) -> &[String] {
        &self.custom_requests
    }

    /// Checks that a request kind is known: built in, or declared by `custom_requests`. The
    /// error names the nearest known kind when one is within two edits.
    pub fn check_request_kind(&self, kind: &RequestKind) -> Result<(), RequestError> {
        check_request_kind(Some(self), kind)
    }

    /// Whether a request of `kind` may be answered only once the requester's identity has been
    /// verified (`[requests] verify_identity`).
    pub fn requires_identity_verification(&self, kind: &RequestKind) -> bool {
        match &self.verify_identity {
            VerifyIdentity::None => false,
            VerifyIdentity::Every => true,
            VerifyIdentity::Kinds(kinds) => kinds.contains(kind),
        }
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

    /// Whether consent given under policy version `given` still counts for `purpose`: the
    /// purpose names no `min_version`, or `given` is that version or a later one (in the order
    /// of `version_history`, then the policy's `version`).
    pub fn consent_is_current(&self, purpose: &crate::model::Purpose, given: &str) -> bool {
        let Some(min) = self.consent_min_version.get(purpose.as_str()) else {
            return true;
        };
        let order = |v: &str| {
            self.version_history
                .iter()
                .map(String::as_str)
                .chain(self.version.as_deref())
                .position(|k| k == v)
        };
        match (order(given), order(min)) {
            (Some(g), Some(m)) => g >= m,
            _ => false,
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
    pub fn request_due(&self, kind: &RequestKind, received: Timestamp) -> Option<Timestamp> {
        self.requests.get(kind).map(|s| add_span(received, *s))
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

/// Checks that a request kind is known: built in, or declared by the policy's `custom_requests`
/// (with no policy, only the built-ins are known).
pub fn check_request_kind(policy: Option<&Policy>, kind: &RequestKind) -> Result<(), RequestError> {
    let declared = policy.map_or(&[][..], |p| p.custom_requests());
    if kind.is_builtin() || declared.iter().any(|k| k == kind.name()) {
        return Ok(());
    }
    Err(RequestError::UnknownKind {
        name: kind.name().chars().take(80).collect(),
        suggestion: nearest_request_kind(kind.name(), declared),
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
            "policies/seed-002-cmeo-max.toml",
            "policies/seed-003-communication-platform.toml",
            "policies/seed-004-generic-platform.toml",
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

    // Guards the `[requests]` entries: each malformed one is refused with the entry named.
    #[test]
    fn request_entries_errors_name_the_entry() {
        let cases = [
            // A kind neither built in nor declared (and the nearest known one suggested).
            ("[requests]\ninquiry = \"48 hours\"", "requests.inquiry"),
            (
                "custom_requests = [\"inquiry\"]\n[requests]\ninquiri = \"48 hours\"",
                "did you mean \"inquiry\"",
            ),
            ("custom_requests = [\"Inquiry\"]", "\"Inquiry\""),
            ("custom_requests = [\"access\"]", "built-in request kind"),
            ("[requests]\naccess = 30", "requests.access"),
            ("[requests]\naccess = \"30 minutes\"", "requests.access"),
            ("[requests]\naccess = \"-2 hours\"", "requests.access"),
            ("[requests]\naccess = \"soon\"", "requests.access"),
            (
                "[requests]\nverify_identity = \"yes\"",
                "requests.verify_identity",
            ),
            (
                "[requests]\nverify_identity = [1]",
                "requests.verify_identity",
            ),
            ("[requests]\nverify_identity = [\"acess\"]", "\"acess\""),
            ("[requests]\nverify_identy = true", "requests.verify_identy"),
        ];
        for (text, needle) in cases {
            let err = Policy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn deadlines_count_hours_and_retention_does_not() {
        let p = Policy::from_toml(
            "custom_requests = [\"inquiry\"]\n[requests]\ninquiry = \"48 hours\"\n\
             access = \"1 month\"\nrestriction = \"2 days 12 hours\"",
        )
        .unwrap();
        let inquiry = RequestKind::custom("inquiry").unwrap();
        let at = ts("2025-01-31T10:15:00Z");
        assert_eq!(
            p.request_due(&inquiry, at),
            Some(ts("2025-02-02T10:15:00Z"))
        );
        assert_eq!(
            p.request_due(&RequestKind::Access, at),
            Some(ts("2025-02-28T10:15:00Z"))
        );
        assert_eq!(
            p.request_due(&RequestKind::Restriction, at),
            Some(ts("2025-02-02T22:15:00Z"))
        );
        assert_eq!(p.request_due(&RequestKind::Erasure, at), None);
        assert_eq!(p.custom_requests(), ["inquiry"]);
        for text in [
            "[retention.usage]\nmax = \"48 hours\"",
            "[audit]\nretain = \"12 hours\"",
            "[subjects]\nkeep_state = \"1 day 1 hour\"",
        ] {
            let err = Policy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains("use days, weeks, months or years"), "{err}");
        }
    }

    #[test]
    fn verify_identity_names_the_kinds_that_need_it() {
        let every = Policy::from_toml(
            "custom_requests = [\"inquiry\"]\n[requests]\nverify_identity = true",
        )
        .unwrap();
        let some = Policy::from_toml(
            "[requests]\nverify_identity = [\"access\", \"erasure\", \"access\"]",
        )
        .unwrap();
        let none = Policy::from_toml("[requests]\naccess = \"30 days\"").unwrap();
        let off = Policy::from_toml("[requests]\nverify_identity = false").unwrap();
        let inquiry = RequestKind::custom("inquiry").unwrap();
        for k in RequestKind::BUILTIN.iter().chain([&inquiry]) {
            assert!(every.requires_identity_verification(k), "{k}");
            assert!(!none.requires_identity_verification(k), "{k}");
            assert!(!off.requires_identity_verification(k), "{k}");
            assert_eq!(
                some.requires_identity_verification(k),
                matches!(k, RequestKind::Access | RequestKind::Erasure),
                "{k}"
            );
        }
        // Not a deadline: the key is no kind.
        assert!(every.requests.is_empty());
    }

    #[test]
    fn request_kinds_are_built_in_or_custom_by_name() {
        assert_eq!(
            "access".parse::<RequestKind>().unwrap(),
            RequestKind::Access
        );
        assert_eq!(
            RequestKind::custom("inquiry").unwrap(),
            RequestKind::Custom("inquiry".into())
        );
        assert!(RequestKind::custom("Inquiry").is_err());
        assert!(RequestKind::custom("verify_identity").is_err());
        for k in [
            RequestKind::Portability,
            RequestKind::Custom("inquiry".into()),
        ] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<RequestKind>(&json).unwrap(), k);
        }
        let p = Policy::from_toml("custom_requests = [\"inquiry\"]").unwrap();
        assert!(
            p.check_request_kind(&RequestKind::custom("inquiry").unwrap())
                .is_ok()
        );
        assert!(check_request_kind(None, &RequestKind::Objection).is_ok());
        match check_request_kind(None, &RequestKind::custom("inquiry").unwrap()) {
            Err(RequestError::UnknownKind { name, suggestion }) => {
                assert_eq!((name.as_str(), suggestion), ("inquiry", None));
            }
            other => panic!("{other:?}"),
        }
        let msg = p
            .check_request_kind(&RequestKind::custom("inquiri").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "unknown request kind `inquiri` — did you mean `inquiry`?"
        );
    }
}
