//! The purpose, consent and restriction matrix that every read passes.
//!
//! | purpose asked | restricted | allowed when |
//! |---|---|---|
//! | `subject-access` | either | always (the subject's own access request) |
//! | `storage`, `legal-claims` | either | always (the processing that restriction still permits) |
//! | any other | yes | never: [`AccessError::Restricted`] |
//! | any other | no | the purpose is among the record's purposes ([`AccessError::PurposeNotAllowed`]) and, if the record rests on consent, consent for that purpose is granted and not withdrawn ([`AccessError::NoConsent`]) |

use crate::error::AccessError;
use crate::ids::RecordId;
use crate::model::{LegalBasis, Purpose, RecordMeta};
use crate::storage::entries::SubjectState;

/// Decides whether `record` may be read for `purpose`.
pub(crate) fn check(
    record: RecordId,
    meta: &RecordMeta,
    state: &SubjectState,
    purpose: &Purpose,
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
    if meta.basis == LegalBasis::Consent
        && !state
            .consents
            .get(purpose.as_str())
            .is_some_and(|c| c.granted)
    {
        return Err(AccessError::NoConsent {
            purpose: purpose.to_string(),
            record,
        });
    }
    Ok(())
}
