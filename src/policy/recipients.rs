//! The recipients register: who may receive which data, for what, on which ground, and how
//! long they keep it (`[recipients.NAME]` in the policy).
//!
//! ```toml
//! [recipients.payment-processor]
//! kind = "processor"                 # processor, third-party or authority
//! categories = ["payment", "transaction"]
//! purposes = ["billing"]             # leave out: any purpose
//! retention = "7 years"              # how long the recipient keeps what it receives
//! grounds = ["contract"]             # the grounds a disclosure to it may rest on
//!
//! [recipients.police]
//! kind = "authority"
//! categories = ["account", "access-log"]
//! retention = "as the investigation requires"
//! grounds = ["subpoena", "investigation-letter"]
//! ```
//!
//! Under a policy, a disclosure is to a declared recipient, of categories declared for it, for
//! a purpose declared for it, on one of its grounds, given as `"kind"` or `"kind: reference"`
//! (`"subpoena: case 2025-17"`); a disclosure on consent needs the subject's consent for the
//! purpose. A policy with no recipients allows no disclosure. This module decides; the vault
//! records the disclosure with the recipient's retention period. It knows nothing of keys or
//! storage.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DisclosureRefusal, InputError, PolicyError};
use crate::model::{Category, Purpose, is_kebab};

/// What kind of recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecipientKind {
    /// A processor acting on the controller's instructions.
    Processor,
    /// A third party that uses the data for its own purposes.
    ThirdParty,
    /// A public authority (police, a regulator, a court).
    Authority,
}

/// A ground a disclosure rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Ground {
    /// The subject's consent for the purpose.
    Consent,
    /// Performance of a contract with the subject.
    Contract,
    /// A legal obligation of the controller.
    LegalObligation,
    /// Legitimate interests.
    LegitimateInterests,
    /// A subpoena.
    Subpoena,
    /// An investigation letter of an authority.
    InvestigationLetter,
    /// A court order.
    CourtOrder,
}

impl Ground {
    /// Every ground.
    pub const ALL: [Ground; 7] = [
        Ground::Consent,
        Ground::Contract,
        Ground::LegalObligation,
        Ground::LegitimateInterests,
        Ground::Subpoena,
        Ground::InvestigationLetter,
        Ground::CourtOrder,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Ground::Consent => "consent",
            Ground::Contract => "contract",
            Ground::LegalObligation => "legal-obligation",
            Ground::LegitimateInterests => "legitimate-interests",
            Ground::Subpoena => "subpoena",
            Ground::InvestigationLetter => "investigation-letter",
            Ground::CourtOrder => "court-order",
        }
    }

    /// The ground of a disclosure's ground text, `"kind"` or `"kind: reference"`.
    pub fn of_text(text: &str) -> Option<Ground> {
        let kind = text.split_once(':').map_or(text, |(k, _)| k).trim();
        kind.parse().ok()
    }
}

impl FromStr for Ground {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ground::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or(InputError::Field {
                field: "ground",
                why: "expected consent, contract, legal-obligation, legitimate-interests, subpoena, investigation-letter or court-order",
            })
    }
}

impl fmt::Display for Ground {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A declared recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Its name in the register.
    pub name: String,
    /// What kind of recipient it is.
    pub kind: RecipientKind,
    /// The categories it may receive.
    pub categories: BTreeSet<String>,
    /// The purposes it may receive them for (`None`: any).
    pub purposes: Option<BTreeSet<String>>,
    /// How long it keeps what it receives, in the policy's words.
    pub retention: String,
    /// The grounds a disclosure to it may rest on.
    pub grounds: BTreeSet<Ground>,
}

impl Recipient {
    /// Checks a disclosure to this recipient against its entry: categories, purpose and ground.
    /// Whether consent is granted, for a disclosure on consent, is the caller's to check.
    pub fn check(
        &self,
        purpose: &Purpose,
        categories: &[Category],
        ground: Option<&str>,
    ) -> Result<Ground, DisclosureRefusal> {
        if let Some(c) = categories
            .iter()
            .find(|c| !self.categories.contains(c.name()))
        {
            return Err(DisclosureRefusal::CategoryNotDeclared(c.name().to_owned()));
        }
        if let Some(ps) = &self.purposes
            && !ps.contains(purpose.as_str())
        {
            return Err(DisclosureRefusal::PurposeNotDeclared(
                purpose.as_str().to_owned(),
            ));
        }
        let Some(text) = ground else {
            return Err(DisclosureRefusal::GroundRequired);
        };
        let g = Ground::of_text(text).ok_or(DisclosureRefusal::UnknownGround)?;
        if !self.grounds.contains(&g) {
            return Err(DisclosureRefusal::GroundNotDeclared(g));
        }
        Ok(g)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecipient {
    kind: String,
    categories: Vec<String>,
    purposes: Option<Vec<String>>,
    retention: String,
    grounds: Vec<String>,
}

/// Validates a recipient of the policy; `known` tells whether a category name is one the
/// policy knows.
pub(super) fn parse_recipient(
    name: &str,
    raw: RawRecipient,
    known: &dyn Fn(&str) -> bool,
) -> Result<Recipient, PolicyError> {
    let entry = format!("recipients.{name}");
    let err = |why: String| PolicyError::Entry {
        entry: entry.clone(),
        why,
    };
    if !is_kebab(name) {
        return Err(err("recipient names are kebab-case".into()));
    }
    let kind = match raw.kind.as_str() {
        "processor" => RecipientKind::Processor,
        "third-party" => RecipientKind::ThirdParty,
        "authority" => RecipientKind::Authority,
        other => {
            return Err(err(format!(
                "kind {other:?}: expected processor, third-party or authority"
            )));
        }
    };
    if raw.categories.is_empty() {
        return Err(err("no categories".into()));
    }
    for c in &raw.categories {
        if !known(c) {
            return Err(err(format!("unknown category {c:?}")));
        }
    }
    let purposes = match raw.purposes {
        None => None,
        Some(ps) if ps.is_empty() => {
            return Err(err(
                "empty purposes (leave the key out to allow any purpose)".into(),
            ));
        }
        Some(ps) => {
            for p in &ps {
                Purpose::new(p).map_err(|e| err(format!("purpose {p:?}: {e}")))?;
            }
            Some(ps.into_iter().collect())
        }
    };
    let retention = raw.retention.trim().to_owned();
    if retention.is_empty() || retention.chars().count() > 200 || retention.contains('\n') {
        return Err(err(
            "retention: how long the recipient keeps the data, one line of at most 200 characters"
                .into(),
        ));
    }
    if raw.grounds.is_empty() {
        return Err(err("no grounds".into()));
    }
    let mut grounds = BTreeSet::new();
    for g in &raw.grounds {
        grounds.insert(
            g.parse::<Ground>()
                .map_err(|e| err(format!("ground {g:?}: {e}")))?,
        );
    }
    Ok(Recipient {
        name: name.to_owned(),
        kind,
        categories: raw.categories.into_iter().collect(),
        purposes,
        retention,
        grounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(text: &str) -> Result<Recipient, PolicyError> {
        let raw: RawRecipient = toml::from_str(text).unwrap();
        parse_recipient("processor-x", raw, &|c| c != "nonsense")
    }

    const PROCESSOR: &str = r#"kind = "processor"
categories = ["payment"]
purposes = ["billing"]
retention = "7 years"
grounds = ["contract", "subpoena"]"#;

    #[test]
    fn a_disclosure_must_match_the_entry() {
        let r = recipient(PROCESSOR).unwrap();
        let billing = Purpose::new("billing").unwrap();
        let resale = Purpose::new("resale").unwrap();
        assert_eq!(
            r.check(&billing, &[Category::Payment], Some("contract")),
            Ok(Ground::Contract)
        );
        assert_eq!(
            r.check(&billing, &[Category::Payment], Some("subpoena: case 17")),
            Ok(Ground::Subpoena)
        );
        assert_eq!(
            r.check(
                &billing,
                &[Category::Payment, Category::Usage],
                Some("contract")
            ),
            Err(DisclosureRefusal::CategoryNotDeclared("usage".into()))
        );
        assert_eq!(
            r.check(&resale, &[Category::Payment], Some("contract")),
            Err(DisclosureRefusal::PurposeNotDeclared("resale".into()))
        );
        assert_eq!(
            r.check(&billing, &[Category::Payment], None),
            Err(DisclosureRefusal::GroundRequired)
        );
        assert_eq!(
            r.check(&billing, &[Category::Payment], Some("a friend asked")),
            Err(DisclosureRefusal::UnknownGround)
        );
        assert_eq!(
            r.check(&billing, &[Category::Payment], Some("consent")),
            Err(DisclosureRefusal::GroundNotDeclared(Ground::Consent))
        );
    }

    #[test]
    fn malformed_recipients_are_refused_with_the_entry_named() {
        for (change, needle) in [
            (("processor", "broker"), "kind"),
            (("[\"payment\"]", "[]"), "no categories"),
            (("[\"payment\"]", "[\"nonsense\"]"), "unknown category"),
            (("[\"billing\"]", "[]"), "empty purposes"),
            (("\"7 years\"", "\"\""), "retention"),
            (("[\"contract\", \"subpoena\"]", "[]"), "no grounds"),
            (("[\"contract\", \"subpoena\"]", "[\"rumour\"]"), "rumour"),
        ] {
            let text = PROCESSOR.replacen(change.0, change.1, 1);
            let e = recipient(&text).unwrap_err().to_string();
            assert!(
                e.contains("recipients.processor-x") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }
}
