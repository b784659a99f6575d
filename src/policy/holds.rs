//! Legal holds: on a whole subject, one of its categories, or one record. While any active hold
//! covers a record, nothing destroys it.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::ids::{HoldId, RecordId, SubjectRef};
use crate::model::Category;

/// Why a hold was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldReason {
    /// A legal obligation to keep the data.
    LegalObligation,
    /// A dispute.
    Dispute,
    /// A security investigation.
    SecurityInvestigation,
    /// A request from an authority.
    AuthorityRequest,
    /// Anything else (say what in the reference).
    Other,
}

impl HoldReason {
    /// Every reason.
    pub const ALL: [HoldReason; 5] = [
        HoldReason::LegalObligation,
        HoldReason::Dispute,
        HoldReason::SecurityInvestigation,
        HoldReason::AuthorityRequest,
        HoldReason::Other,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            HoldReason::LegalObligation => "legal-obligation",
            HoldReason::Dispute => "dispute",
            HoldReason::SecurityInvestigation => "security-investigation",
            HoldReason::AuthorityRequest => "authority-request",
            HoldReason::Other => "other",
        }
    }
}

impl FromStr for HoldReason {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HoldReason::ALL.into_iter().find(|r| r.name() == s).ok_or(InputError::Field {
            field: "hold reason",
            why: "expected legal-obligation, dispute, security-investigation, authority-request or other",
        })
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hold covers, within one subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldScope {
    /// Every record of the subject.
    Subject,
    /// Every record of one category.
    Category(Category),
    /// One record.
    Record(RecordId),
}

/// The release of a hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// When.
    pub at: Timestamp,
    /// By whom.
    pub by: String,
}

/// A legal hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Its id.
    pub id: HoldId,
    /// The subject, by internal reference.
    pub subject: SubjectRef,
    /// What it covers.
    pub scope: HoldScope,
    /// Why.
    pub reason: HoldReason,
    /// A reference such as a case number.
    pub reference: Option<String>,
    /// Who placed it.
    pub placed_by: String,
    /// When.
    pub placed_at: Timestamp,
    /// When it ends by itself, if ever.
    pub until: Option<Timestamp>,
    /// Its release, once released.
    pub released: Option<Release>,
}

impl Hold {
    /// Whether the hold stands at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.released.is_none() && self.until.is_none_or(|u| now < u)
    }

    /// Whether the hold covers a record of `category` with id `record`.
    pub fn covers(&self, category: &Category, record: &RecordId) -> bool {
        match &self.scope {
            HoldScope::Subject => true,
            HoldScope::Category(c) => c == category,
            HoldScope::Record(r) => r == record,
        }
    }

    /// Whether the hold covers every record of `category`.
    pub fn covers_category(&self, category: &Category) -> bool {
        match &self.scope {
            HoldScope::Subject => true,
            HoldScope::Category(c) => c == category,
            HoldScope::Record(_) => false,
        }
    }
}

/// A hold to place ([`Vault::place_hold`](crate::Vault::place_hold)): what it covers and why,
/// and optionally the case it is for and when it ends by itself.
///
/// ```
/// use pdvault::{HoldReason, HoldTarget, NewHold};
/// let hold = NewHold::new(HoldTarget::Subject, HoldReason::Dispute).reference("case 2026-17");
/// # drop(hold);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHold {
    pub(crate) target: HoldTarget,
    pub(crate) reason: HoldReason,
    pub(crate) reference: Option<String>,
    pub(crate) until: Option<Timestamp>,
}

impl NewHold {
    /// A hold on `target` for `reason`, with no reference, standing until released.
    pub fn new(target: HoldTarget, reason: HoldReason) -> Self {
        NewHold {
            target,
            reason,
            reference: None,
            until: None,
        }
    }

    /// The case, ticket or order the hold is for (no personal data: it is kept in the clear in
    /// the audit trail's notes and hold listings).
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Ends the hold by itself at `until` (it can still be released before).
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    /// What the hold covers.
    pub fn target(&self) -> &HoldTarget {
        &self.target
    }
}

/// Where to place a hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldTarget {
    /// The whole subject.
    Subject,
    /// One category.
    Category(Category),
    /// One record.
    Record(RecordId),
}
