//! Roles and grants: which operations a role may perform, on which categories, for which
//! purposes (`[roles.NAME]` in the policy).
//!
//! ```toml
//! [roles.support]
//! grants = [
//!   # read and list account and contact records, for the purpose "support" only
//!   { ops = ["read", "list"], categories = ["account", "contact"], purposes = ["support"] },
//!   # write communication records (with any purpose)
//!   { ops = ["write"], categories = ["communication"] },
//! ]
//!
//! [roles.privacy-officer]
//! grants = [{ ops = ["read", "list", "erase", "hold", "restrict", "request", "export", "disclose"] }]
//! ```
//!
//! A grant without `categories` covers every category, and one without `purposes` every
//! purpose. Purposes bound only what is done for a purpose (a read, a disclosure, a consent, a
//! write of a record with purposes); a listing, an erasure or a hold has none. An operation on a whole subject (an export, a subject's erasure, a hold or restriction
//! of the whole subject) needs a grant that covers every category. This module decides; the
//! vault's scoped handle ([`ScopedVault`](crate::ScopedVault)) asks, refuses and audits. It knows
//! nothing of keys or storage.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{InputError, PolicyError};
use crate::model::{Category, Purpose, is_kebab};

/// An operation a role can be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// Read records (decrypted) for a purpose.
    Read,
    /// List records' metadata (nothing decrypted).
    List,
    /// Write records: put, update, rectify.
    Write,
    /// Erase subjects, categories or records.
    Erase,
    /// Place, release and list legal holds.
    Hold,
    /// Restrict processing and lift restrictions.
    Restrict,
    /// Record consents given and withdrawn.
    Consent,
    /// Open, close and list data-subject requests, and record identity verification.
    Request,
    /// Export a subject's data.
    Export,
    /// Disclose data to a recipient.
    Disclose,
    /// Record subject events (an account closed, a contract ended).
    Event,
    /// Run the sweep, verify the vault and read the audit trail, counts and policy.
    Administer,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 12] = [
        Operation::Read,
        Operation::List,
        Operation::Write,
        Operation::Erase,
        Operation::Hold,
        Operation::Restrict,
        Operation::Consent,
        Operation::Request,
        Operation::Export,
        Operation::Disclose,
        Operation::Event,
        Operation::Administer,
    ];

    /// The kebab-case name used in policies and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Write => "write",
            Operation::Erase => "erase",
            Operation::Hold => "hold",
            Operation::Restrict => "restrict",
            Operation::Consent => "consent",
            Operation::Request => "request",
            Operation::Export => "export",
            Operation::Disclose => "disclose",
            Operation::Event => "event",
            Operation::Administer => "administer",
        }
    }
}

impl FromStr for Operation {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or(InputError::Field {
                field: "operation",
                why: "expected read, list, write, erase, hold, restrict, consent, request, export, disclose, event or administer",
            })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One grant of a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The operations granted.
    pub ops: BTreeSet<Operation>,
    /// The categories they are granted on (`None`: every category).
    pub categories: Option<BTreeSet<String>>,
    /// The purposes they are granted for (`None`: every purpose).
    pub purposes: Option<BTreeSet<String>>,
}

/// A named role: the union of its grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Its grants.
    pub grants: Vec<Grant>,
}

/// What an operation touches, for the grant check.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// One category (and, where the operation has one, a purpose).
    Category(&'a Category, Option<&'a Purpose>),
    /// Every category of a subject (an export, a subject's erasure), or none in particular
    /// (a request, the sweep): only a grant that covers every category allows it.
    Everything(Option<&'a Purpose>),
}

impl Role {
    /// Whether the role allows `op` on `scope`.
    pub fn allows(&self, op: Operation, scope: Scope<'_>) -> bool {
        self.grants.iter().any(|g| {
            if !g.ops.contains(&op) {
                return false;
            }
            let (category_ok, purpose) = match scope {
                Scope::Category(c, p) => (
                    g.categories.as_ref().is_none_or(|cs| cs.contains(c.name())),
                    p,
                ),
                Scope::Everything(p) => (g.categories.is_none(), p),
            };
            let purpose_ok = match (purpose, &g.purposes) {
                (_, None) => true,
                (Some(p), Some(ps)) => ps.contains(p.as_str()),
                // Purposes bound what is done for a purpose; a listing, an erasure or a hold is
                // done for none.
                (None, Some(_)) => true,
            };
            category_ok && purpose_ok
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    grants: Vec<RawGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    ops: Vec<String>,
    categories: Option<Vec<String>>,
    purposes: Option<Vec<String>>,
}

/// Validates a role of the policy; `known` tells whether a category name is one the policy
/// knows.
pub(super) fn parse_role(
    name: &str,
    raw: RawRole,
    known: &dyn Fn(&str) -> bool,
) -> Result<Role, PolicyError> {
    let entry = format!("roles.{name}");
    let err = |why: String| PolicyError::Entry {
        entry: entry.clone(),
        why,
    };
    if !is_kebab(name) {
        return Err(err("role names are kebab-case".into()));
    }
    if raw.grants.is_empty() {
        return Err(err("a role needs at least one grant".into()));
    }
    let mut grants = Vec::new();
    for (i, g) in raw.grants.into_iter().enumerate() {
        let n = i + 1;
        if g.ops.is_empty() {
            return Err(err(format!("grant {n}: no operations")));
        }
        let mut ops = BTreeSet::new();
        for o in &g.ops {
            ops.insert(
                o.parse::<Operation>()
                    .map_err(|e| err(format!("grant {n}: operation {o:?}: {e}")))?,
            );
        }
        let categories = match g.categories {
            None => None,
            Some(cs) if cs.is_empty() => {
                return Err(err(format!(
                    "grant {n}: empty categories (leave the key out to grant every category)"
                )));
            }
            Some(cs) => {
                for c in &cs {
                    if !known(c) {
                        return Err(err(format!("grant {n}: unknown category {c:?}")));
                    }
                }
                Some(cs.into_iter().collect())
            }
        };
        let purposes = match g.purposes {
            None => None,
            Some(ps) if ps.is_empty() => {
                return Err(err(format!(
                    "grant {n}: empty purposes (leave the key out to grant every purpose)"
                )));
            }
            Some(ps) => {
                for p in &ps {
                    Purpose::new(p).map_err(|e| err(format!("grant {n}: purpose {p:?}: {e}")))?;
                }
                Some(ps.into_iter().collect())
            }
        };
        grants.push(Grant {
            ops,
            categories,
            purposes,
        });
    }
    Ok(Role {
        name: name.to_owned(),
        grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(toml_grants: &str) -> Result<Role, PolicyError> {
        let raw: RawRole = toml::from_str(toml_grants).unwrap();
        parse_role("support", raw, &|c| c != "nonsense")
    }

    #[test]
    fn a_grant_covers_its_categories_and_purposes_only() {
        let r = role(
            r#"grants = [{ ops = ["read"], categories = ["contact"], purposes = ["support"] },
                         { ops = ["write", "erase"] }]"#,
        )
        .unwrap();
        let support = Purpose::new("support").unwrap();
        let billing = Purpose::new("billing").unwrap();
        let contact = Scope::Category(&Category::Contact, Some(&support));
        assert!(r.allows(Operation::Read, contact));
        assert!(!r.allows(
            Operation::Read,
            Scope::Category(&Category::Contact, Some(&billing))
        ));
        assert!(!r.allows(
            Operation::Read,
            Scope::Category(&Category::Account, Some(&support))
        ));
        assert!(!r.allows(Operation::Read, Scope::Everything(Some(&support))));
        assert!(!r.allows(Operation::List, contact));
        assert!(r.allows(Operation::Write, contact));
        assert!(r.allows(Operation::Erase, Scope::Everything(None)));
        assert!(!r.allows(Operation::Export, Scope::Everything(None)));
    }

    #[test]
    fn malformed_grants_are_refused_with_the_entry_named() {
        for (text, needle) in [
            (r#"grants = []"#, "at least one grant"),
            (r#"grants = [{ ops = [] }]"#, "no operations"),
            (r#"grants = [{ ops = ["reed"] }]"#, "\"reed\""),
            (
                r#"grants = [{ ops = ["read"], categories = ["nonsense"] }]"#,
                "unknown category",
            ),
            (
                r#"grants = [{ ops = ["read"], categories = [] }]"#,
                "empty categories",
            ),
            (
                r#"grants = [{ ops = ["read"], purposes = [""] }]"#,
                "purpose",
            ),
        ] {
            let e = role(text).unwrap_err().to_string();
            assert!(
                e.contains("roles.support") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }
}
