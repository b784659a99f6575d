//! Restriction of processing, objection, consent (the subject's and, for a minor, a
//! guardian's) and a subject's age status.

use crate::audit::AuditOp;
use crate::erasure::{ErasureReport, Scope};
use crate::error::Result;
use crate::ids::{RecordId, SubjectId};
use crate::model::{Category, LegalBasis, Purpose};
use crate::policy::MinorRule;
use crate::policy::RequestKind;
use crate::storage::entries::{AgeStatus, ConsentState};
use crate::storage::{Txn, layout};
use crate::vault::Vault;

/// What a consent withdrawal does to the records that rested on the consent
/// ([`Vault::withdraw_consent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawal {
    /// The records stay; reads for the purpose are refused from now on.
    KeepRecords,
    /// The records that rest on consent alone and have no consented purpose left are erased.
    EraseRecords,
}

impl Vault {
    /// Restricts processing of a subject, or of one of its categories: reads for any purpose but
    /// storage, legal claims and the subject's own access are refused until lifted. The category
    /// must be known ([`Vault::known_category`]); the subject need not hold any of it yet.
    pub fn restrict(&self, subject: &SubjectId, category: Option<&Category>) -> Result<()> {
        self.operation("restrict", || self.set_restriction(subject, category, true))
    }

    /// Lifts a restriction. The category must be known, or restricted or held by the subject.
    pub fn unrestrict(&self, subject: &SubjectId, category: Option<&Category>) -> Result<()> {
        self.operation("unrestrict", || {
            self.set_restriction(subject, category, false)
        })
    }

    fn set_restriction(
        &self,
        subject: &SubjectId,
        category: Option<&Category>,
        on: bool,
    ) -> Result<()> {
        let _no_destruction = self.no_destruction()?;
        let ident = self.find(subject)?.subject;
        match category {
            Some(c) if on => self.known_category(c)?,
            Some(c) => self.known_or_held_category(&ident, c)?,
            None => {}
        }
        let _g = self.lock_subject(&ident)?;
        let mut state = self.state_to_change(&ident)?;
        match category {
            None => state.restricted = on,
            Some(c) if on => {
                state.restricted_categories.insert(c.name().to_owned());
            }
            Some(c) => {
                state.restricted_categories.remove(c.name());
            }
        }
        let mut txn = Txn::new();
        txn.put(layout::subject(&ident), &state);
        let mut d = self
            .draft(if on {
                AuditOp::Restrict
            } else {
                AuditOp::Unrestrict
            })
            .subject(ident);
        if let Some(c) = category {
            d = d.category_of(c);
        }
        if on {
            self.close_requests_in(&mut txn, &ident, &[RequestKind::Restriction])?;
        }
        self.commit_synced(txn, vec![d])
    }

    /// Grants consent for a purpose, under a policy version (default: the retention policy's
    /// version, or `unspecified`).
    pub fn grant_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        policy_version: Option<&str>,
    ) -> Result<()> {
        self.operation("grant_consent", || {
            let _no_destruction = self.no_destruction()?;
            let ident = self.find_or_create(subject)?;
            self.set_consent(ident, purpose, true, policy_version, Giver::Subject)
        })
    }

    /// Grants a guardian's consent for a purpose, for a subject who is a minor, under a policy
    /// version (default: the policy's). Under a policy whose `[minors] on_marked` is
    /// `require-guardian-consent`, a minor's consent-based records are read for a purpose only
    /// with both the subject's and a guardian's consent.
    pub fn grant_guardian_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        policy_version: Option<&str>,
    ) -> Result<()> {
        self.operation("grant_guardian_consent", || {
            let _no_destruction = self.no_destruction()?;
            let ident = self.find_or_create(subject)?;
            self.set_consent(ident, purpose, true, policy_version, Giver::Guardian)
        })
    }

    /// Withdraws a guardian's consent for a purpose.
    pub fn withdraw_guardian_consent(&self, subject: &SubjectId, purpose: &Purpose) -> Result<()> {
        self.operation("withdraw_guardian_consent", || {
            let _no_destruction = self.no_destruction()?;
            let ident = self.find(subject)?.subject;
            self.set_consent(ident, purpose, false, None, Giver::Guardian)
        })
    }

    /// Records the subject's objection to processing for `purpose`: from now on, records resting
    /// on legitimate interests or a public task are not read for it
    /// ([`AccessError::Objected`](crate::AccessError::Objected)) until the host lifts the
    /// objection ([`Vault::lift_objection`], for compelling legitimate grounds). Answers the
    /// subject's open objection requests.
    pub fn object(&self, subject: &SubjectId, purpose: &Purpose) -> Result<()> {
        self.operation("object", || self.set_objection(subject, purpose, true))
    }

    /// Lifts an objection ([`Vault::object`]).
    pub fn lift_objection(&self, subject: &SubjectId, purpose: &Purpose) -> Result<()> {
        self.operation("lift_objection", || {
            self.set_objection(subject, purpose, false)
        })
    }

    fn set_objection(&self, subject: &SubjectId, purpose: &Purpose, on: bool) -> Result<()> {
        let _no_destruction = self.no_destruction()?;
        let ident = self.find(subject)?.subject;
        let _g = self.lock_subject(&ident)?;
        let mut state = self.state_to_change(&ident)?;
        if on {
            state.objections.insert(purpose.as_str().to_owned());
        } else {
            state.objections.remove(purpose.as_str());
        }
        let mut txn = Txn::new();
        txn.put(layout::subject(&ident), &state);
        if on {
            self.close_requests_in(&mut txn, &ident, &[RequestKind::Objection])?;
        }
        let op = if on {
            AuditOp::Object
        } else {
            AuditOp::LiftObjection
        };
        let d = self.draft(op).subject(ident).note(purpose.as_str());
        self.commit_synced(txn, vec![d])
    }

    /// Sets what the vault knows of the subject's age. Marking a subject a minor under a policy
    /// whose `[minors] on_marked` is `erase` erases the subject at once through the guarded
    /// erasure path (holds and minimum retention still apply: the report says what was kept);
    /// under `require-guardian-consent`, consent-based reads then need a guardian's consent
    /// ([`Vault::grant_guardian_consent`]).
    pub fn set_age_status(
        &self,
        subject: &SubjectId,
        status: AgeStatus,
    ) -> Result<Option<ErasureReport>> {
        self.operation("set_age_status", || {
            let ident = {
                let _no_destruction = self.no_destruction()?;
                let ident = self.find(subject)?.subject;
                let _g = self.lock_subject(&ident)?;
                let mut state = self.state_to_change(&ident)?;
                state.age = status;
                let mut txn = Txn::new();
                txn.put(layout::subject(&ident), &state);
                let d = self
                    .draft(AuditOp::AgeStatus)
                    .subject(ident)
                    .note(status.name());
                self.commit_synced(txn, vec![d])?;
                ident
            };
            let erase = status == AgeStatus::Minor
                && self
                    .policy()
                    .is_some_and(|p| p.minors == Some(MinorRule::Erase));
            if !erase {
                return Ok(None);
            }
            self.destroy_now(ident, Scope::Subject, crate::report::ErasureCause::Minor)
                .map(Some)
        })
    }

    /// Withdraws consent for a purpose. With [`Withdrawal::EraseRecords`], the records that rest
    /// on consent alone and have no consented purpose left are erased, through the guarded
    /// erasure path, and the report says what was erased and retained; with
    /// [`Withdrawal::KeepRecords`] (`None` is returned) they stay, unreadable for the purpose.
    pub fn withdraw_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        then: Withdrawal,
    ) -> Result<Option<ErasureReport>> {
        self.operation("withdraw_consent", || {
            let ident = {
                let _no_destruction = self.no_destruction()?;
                let ident = self.find(subject)?.subject;
                self.set_consent(ident, purpose, false, None, Giver::Subject)?;
                ident
            };
            if then == Withdrawal::KeepRecords {
                return Ok(None);
            }
            let state = self.state(&ident)?;
            let policy = self.policy();
            let destroyed = self.destroyed_groups(&ident)?;
            let mut victims = std::collections::BTreeSet::<RecordId>::new();
            for r in self.stored_records(&ident) {
                let (id, e) = r?;
                if destroyed.contains(&(e.meta.category.name().to_owned(), e.key_gen))
                    || e.meta.basis != LegalBasis::Consent
                {
                    continue;
                }
                let consented = e
                    .meta
                    .purposes
                    .iter()
                    .any(|p| crate::rights::access::has_consent(&state, p, policy.as_deref()));
                if e.meta.purposes.contains(purpose) && !consented {
                    victims.insert(id);
                }
            }
            if victims.is_empty() {
                return Ok(Some(ErasureReport::default()));
            }
            self.destroy_now(
                ident,
                Scope::Records(victims),
                crate::report::ErasureCause::ConsentWithdrawal,
            )
            .map(Some)
        })
    }

    /// Call with [`Vault::no_destruction`] held.
    fn set_consent(
        &self,
        ident: crate::ids::SubjectRef,
        purpose: &Purpose,
        granted: bool,
        version: Option<&str>,
        giver: Giver,
    ) -> Result<()> {
        if let Some(v) = version {
            crate::model::check_text("policy version", v)?;
        }
        let _g = self.lock_subject(&ident)?;
        let mut state = self.state_to_change(&ident)?;
        let policy_version = version
            .map(str::to_owned)
            .or_else(|| self.policy().and_then(|p| p.version.clone()))
            .unwrap_or_else(|| "unspecified".to_owned());
        let consents = match giver {
            Giver::Subject => &mut state.consents,
            Giver::Guardian => &mut state.guardian_consents,
        };
        consents.insert(
            purpose.as_str().to_owned(),
            ConsentState {
                granted,
                at: self.now(),
                policy_version,
            },
        );
        let mut txn = Txn::new();
        txn.put(layout::subject(&ident), &state);
        let d = self
            .draft(if granted {
                AuditOp::ConsentGrant
            } else {
                AuditOp::ConsentWithdraw
            })
            .subject(ident)
            .note(match giver {
                Giver::Subject => purpose.as_str().to_owned(),
                Giver::Guardian => format!("{} (a guardian's)", purpose.as_str()),
            });
        self.commit_synced(txn, vec![d])
    }
}

/// Whose consent.
#[derive(Clone, Copy)]
enum Giver {
    Subject,
    Guardian,
}
