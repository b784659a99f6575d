//! Free text attached to a subject — a hold's reference, a disclosure's recipient and ground, the
//! method by which a request's requester was identified — is stored sealed under the subject's
//! own key, so that it dies with the subject: once the subject is erased its key is destroyed,
//! and neither the current rows nor their stale copies in the store's files can be read. The rest
//! of a hold, a disclosure or a request (scope, dates, purpose, categories, kind, who placed a
//! hold or verified an identity) stays in the clear: the guarded path, deadlines and the
//! statistics need it without keys, and who acted for the controller is what the audit trail
//! records of every operation.

use serde::{Deserialize, Serialize};

use super::Vault;
use crate::crypto::{self, DataKey};
use crate::error::{Error, Result, StorageError};
use crate::ids::SubjectRef;
use crate::keys::SUBJECT_GROUP;
use crate::model::{Category, Purpose};
use crate::policy::holds::Hold;
use crate::rights::{Disclosure, IdentityVerification, Request};
use crate::storage::codec;

/// A hold as stored: the hold with no reference, and the reference sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredHold {
    /// The hold; its `reference` is always `None` here.
    pub(crate) hold: Hold,
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_reference: Option<Vec<u8>>,
}

/// A disclosure as stored: recipient and ground sealed together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredDisclosure {
    pub(crate) purpose: Purpose,
    pub(crate) categories: Vec<Category>,
    pub(crate) retention: Option<String>,
    #[serde(with = "crate::storage::timestamp")]
    pub(crate) at: jiff::Timestamp,
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_text: Vec<u8>,
}

/// A request as stored: the request with no verification, and its verification with the method
/// sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRequest {
    /// The request; its `identity_verified` is always `None` here.
    pub(crate) request: Request,
    pub(crate) verification: Option<StoredVerification>,
}

/// A verification of a requester's identity as stored: who and when in the clear, how sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredVerification {
    pub(crate) by: String,
    #[serde(with = "crate::storage::timestamp")]
    pub(crate) at: jiff::Timestamp,
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_method: Vec<u8>,
}

/// What a disclosure's sealed text holds.
#[derive(Serialize, Deserialize)]
struct DisclosureText {
    recipient: String,
    ground: Option<String>,
}

/// What was shown for a recipient whose subject has been erased.
const ERASED: &str = "(erased with the subject)";

impl Vault {
    /// The subject's own key, or `None` once the subject is erased.
    fn subject_key(&self, subject: &SubjectRef) -> Result<Option<std::sync::Arc<DataKey>>> {
        self.keys()
            .data_key_gen(self.store(), subject, SUBJECT_GROUP, 0)
    }

    /// The associated data of a sealed text: the vault, the row it belongs to, what it is.
    fn text_ad(&self, row: &[u8], what: &str) -> Vec<u8> {
        let mut ad = b"pdvault/text/".to_vec();
        ad.extend_from_slice(self.keys().ring().vault_id());
        ad.extend_from_slice(what.as_bytes());
        ad.push(0);
        ad.extend_from_slice(row);
        ad
    }

    fn seal_text(
        &self,
        subject: &SubjectRef,
        row: &[u8],
        what: &str,
        text: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self
            .subject_key(subject)?
            .ok_or(StorageError::Malformed("missing subject key"))?;
        Ok(crypto::seal(&key, &self.text_ad(row, what), text))
    }

    /// Opens a sealed text; `None` once the subject is erased.
    fn open_text(
        &self,
        subject: &SubjectRef,
        row: &[u8],
        what: &str,
        sealed: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let Some(key) = self.subject_key(subject)? else {
            return Ok(None);
        };
        Ok(Some(zeroize::Zeroizing::new(crypto::open(
            &key,
            &self.text_ad(row, what),
            sealed,
        )?)))
    }

    /// The stored form of a hold; `row` is its address in the store.
    pub(crate) fn seal_hold(&self, mut hold: Hold, row: &[u8]) -> Result<StoredHold> {
        let sealed_reference = match hold.reference.take() {
            Some(r) => Some(self.seal_text(&hold.subject, row, "hold", r.as_bytes())?),
            None => None,
        };
        Ok(StoredHold {
            hold,
            sealed_reference,
        })
    }

    /// A stored hold with its reference opened (none once its subject is erased).
    pub(crate) fn open_hold(&self, stored: StoredHold, row: &[u8]) -> Result<Hold> {
        let mut hold = stored.hold;
        if let Some(sealed) = &stored.sealed_reference {
            hold.reference = match self.open_text(&hold.subject, row, "hold", sealed)? {
                Some(text) => Some(
                    String::from_utf8(text.to_vec())
                        .map_err(|_| StorageError::Malformed("hold reference"))?,
                ),
                None => Some(ERASED.to_owned()),
            };
        }
        Ok(hold)
    }

    /// The stored form of a disclosure of `subject`; `row` is its address in the store.
    pub(crate) fn seal_disclosure(
        &self,
        subject: &SubjectRef,
        d: &Disclosure,
        row: &[u8],
    ) -> Result<StoredDisclosure> {
        let text = zeroize::Zeroizing::new(codec::encode(&DisclosureText {
            recipient: d.recipient.clone(),
            ground: d.ground.clone(),
        }));
        Ok(StoredDisclosure {
            purpose: d.purpose.clone(),
            categories: d.categories.clone(),
            retention: d.retention.clone(),
            at: d.at,
            sealed_text: self.seal_text(subject, row, "disclosure", &text)?,
        })
    }

    /// A stored disclosure with its text opened.
    pub(crate) fn open_disclosure(
        &self,
        subject: &SubjectRef,
        stored: StoredDisclosure,
        row: &[u8],
    ) -> Result<Disclosure> {
        let text = match self.open_text(subject, row, "disclosure", &stored.sealed_text)? {
            Some(t) => codec::decode::<DisclosureText>(&t, "disclosure text")?,
            None => DisclosureText {
                recipient: ERASED.to_owned(),
                ground: None,
            },
        };
        Ok(Disclosure {
            recipient: text.recipient,
            purpose: stored.purpose,
            categories: stored.categories,
            retention: stored.retention,
            ground: text.ground,
            at: stored.at,
        })
    }

    /// The stored form of a request; `row` is its address in the store. Its verification's
    /// method is sealed under the subject's key: `SubjectNotFound` once the subject is erased.
    pub(crate) fn seal_request(&self, mut request: Request, row: &[u8]) -> Result<StoredRequest> {
        let verification = match request.identity_verified.take() {
            None => None,
            Some(v) => {
                if self.subject_key(&request.subject)?.is_none() {
                    return Err(Error::SubjectNotFound);
                }
                Some(StoredVerification {
                    sealed_method: self.seal_text(
                        &request.subject,
                        row,
                        "request-verification",
                        v.method.as_bytes(),
                    )?,
                    by: v.by,
                    at: v.at,
                })
            }
        };
        Ok(StoredRequest {
            request,
            verification,
        })
    }

    /// A stored request with its verification's method opened (shown as erased once its
    /// subject is erased).
    pub(crate) fn unseal_request(&self, stored: StoredRequest, row: &[u8]) -> Result<Request> {
        let mut request = stored.request;
        if let Some(v) = stored.verification {
            let subject = request.subject;
            let method =
                match self.open_text(&subject, row, "request-verification", &v.sealed_method)? {
                    Some(text) => String::from_utf8(text.to_vec())
                        .map_err(|_| StorageError::Malformed("verification method"))?,
                    None => ERASED.to_owned(),
                };
            request.identity_verified = Some(IdentityVerification {
                by: v.by,
                method,
                at: v.at,
            });
        }
        Ok(request)
    }
}
