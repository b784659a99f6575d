//! The purpose, consent, restriction, objection and age matrix that every read passes.
//!
//! | purpose asked | restricted | allowed when |
//! |---|---|---|
//! | `subject-access` | either | always (the subject's own access request) |
//! | `storage`, `legal-claims` | either | always (the processing that restriction still permits) |
//! | any other | yes | never: [`AccessError::Restricted`] |
//! | any other | no | the purpose is among the record's purposes ([`AccessError::PurposeNotAllowed`]); the subject has not objected to it, if the record rests on legitimate interests or a public task ([`AccessError::Objected`]); and, if the record rests on consent, consent for that purpose counts ([`AccessError::NoConsent`]) and, for a minor under a policy that asks for it, a guardian's consent too ([`AccessError::NoGuardianConsent`]) |
//!
//! Consent counts when it is granted, not withdrawn, and given under a policy version the
//! policy still accepts for the purpose ([`Policy::consent_is_current`]).

use crate::error::AccessError;
use crate::ids::RecordId;
use crate::model::{LegalBasis, Purpose, RecordMeta};
use crate::policy::{MinorRule, Policy};
use crate::storage::entries::{AgeStatus, ConsentState, SubjectState};

/// Decides whether `record` may be read for `purpose`.
pub(crate) fn check(
    record: RecordId,
    meta: &RecordMeta,
    state: &SubjectState,
    purpose: &Purpose,
    policy: Option<&Policy>,
) -> Result<(), AccessError> {
    if purpose.allowed_under_restriction() {
        return Ok(());
    }
    if state.restricted || state.restricted_categories.contains(meta.category.name()) {
        return Err(AccessError::Restricted { record });
    }
    if !meta.purposes.contains(purpose) {
        return Err(AccessError::PurposeNotAllowed {
            purpose: purpose.to_string(),
            record,
        });
    }
    if matches!(
        meta.basis,
        LegalBasis::LegitimateInterests | LegalBasis::PublicTask
    ) && state.objections.contains(purpose.as_str())
    {
        return Err(AccessError::Objected {
            purpose: purpose.to_string(),
            record,
        });
    }
    if meta.basis == LegalBasis::Consent {
        if !counts(state.consents.get(purpose.as_str()), purpose, policy) {
            return Err(AccessError::NoConsent {
                purpose: purpose.to_string(),
                record,
            });
        }
        if needs_guardian(state, policy)
            && !counts(
                state.guardian_consents.get(purpose.as_str()),
                purpose,
                policy,
            )
        {
            return Err(AccessError::NoGuardianConsent {
                purpose: purpose.to_string(),
                record,
            });
        }
    }
    Ok(())
}

/// Whether the subject's consent for `purpose` counts: granted, not withdrawn, under a policy
/// version the policy accepts for it (and, for a minor under a policy that asks for it, a
/// guardian's consent too).
pub(crate) fn has_consent(
    state: &SubjectState,
    purpose: &Purpose,
    policy: Option<&Policy>,
) -> bool {
    counts(state.consents.get(purpose.as_str()), purpose, policy)
        && (!needs_guardian(state, policy)
            || counts(
                state.guardian_consents.get(purpose.as_str()),
                purpose,
                policy,
            ))
}

fn counts(consent: Option<&ConsentState>, purpose: &Purpose, policy: Option<&Policy>) -> bool {
    consent.is_some_and(|c| {
        c.granted && policy.is_none_or(|p| p.consent_is_current(purpose, &c.policy_version))
    })
}

fn needs_guardian(state: &SubjectState, policy: Option<&Policy>) -> bool {
    state.age == AgeStatus::Minor
        && policy.is_some_and(|p| p.minors == Some(MinorRule::RequireGuardianConsent))
}
