//! Restriction of processing and consent.

use crate::audit::AuditOp;
use crate::erasure::{ErasureReport, Scope};
use crate::error::Result;
use crate::ids::{RecordId, SubjectId};
use crate::model::{Category, LegalBasis, Purpose};
use crate::policy::RequestKind;
use crate::storage::entries::{ConsentState, RecordEntry};
use crate::storage::{Txn, layout};
use crate::vault::Vault;

impl Vault {
    /// Restricts processing of a subject, or of one of its categories: reads for any purpose but
    /// storage, legal claims and the subject's own access are refused until lifted. The category
    /// must be known ([`Vault::known_category`]); the subject need not hold any of it yet.
    pub fn restrict(&self, subject: &SubjectId, category: Option<&Category>) -> Result<()> {
        self.set_restriction(subject, category, true)
    }

    /// Lifts a restriction. The category must be known, or restricted or held by the subject.
    pub fn unrestrict(&self, subject: &SubjectId, category: Option<&Category>) -> Result<()> {
        self.set_restriction(subject, category, false)
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
        let _no_destruction = self.no_destruction()?;
        let ident = self.find_or_create(subject)?;
        self.set_consent(ident, purpose, true, policy_version)
    }

    /// Withdraws consent for a purpose. With `erase`, the records that rest on consent alone and
    /// have no consented purpose left are erased, through the guarded erasure path.
    pub fn withdraw_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        erase: bool,
    ) -> Result<Option<ErasureReport>> {
        let ident = {
            let _no_destruction = self.no_destruction()?;
            let ident = self.find(subject)?.subject;
            self.set_consent(ident, purpose, false, None)?;
            ident
        };
        if !erase {
            return Ok(None);
        }
        let state = self.state(&ident)?;
        let destroyed = self.destroyed_groups(&ident)?;
        let mut victims = std::collections::BTreeSet::<RecordId>::new();
        for r in self
            .store()
            .scan::<RecordEntry>(&layout::records_of(&ident), "record")
        {
            let (k, e) = r?;
            let Some((_, id)) = layout::parse_record(&k) else {
                continue;
            };
            if destroyed.contains(&(e.meta.category.name().to_owned(), e.key_gen))
                || e.meta.basis != LegalBasis::Consent
            {
                continue;
            }
            let consented = e
                .meta
                .purposes
                .iter()
                .any(|p| state.consents.get(p.as_str()).is_some_and(|c| c.granted));
            if e.meta.purposes.contains(purpose) && !consented {
                victims.insert(id);
            }
        }
        if victims.is_empty() {
            return Ok(Some(ErasureReport::default()));
        }
        self.destroy_now(ident, Scope::Records(victims)).map(Some)
    }

    /// Call with [`Vault::no_destruction`] held.
    fn set_consent(
        &self,
        ident: crate::ids::SubjectRef,
        purpose: &Purpose,
        granted: bool,
        version: Option<&str>,
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
        state.consents.insert(
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
            .note(purpose.as_str());
        self.commit_synced(txn, vec![d])
    }
}
