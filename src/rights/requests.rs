//! Data-subject requests and disclosures.
//!
//! A request is answered when it is closed: by [`Vault::close_request`], or by the operation
//! that answers it, which closes the subject's open requests of its kinds: an export closes
//! access and portability requests, an erasure of the subject erasure requests, a restriction
//! restriction requests. Where the policy requires the requester's identity verified before a
//! kind is answered (`[requests] verify_identity`), a request not yet verified
//! ([`Vault::verify_request_identity`]) is never closed:
//!
//! - [`Vault::close_request`] refuses it ([`RequestError::IdentityNotVerified`]);
//! - an export and an erasure of the subject, whose answer cannot be taken back (the data has
//!   left the vault, or is destroyed), are refused before they act, naming the request, and
//!   nothing changes;
//! - a restriction, which protects the subject and can be lifted, goes ahead, and the
//!   unverified restriction request stays open, to be closed once verified.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::AuditOp;
use crate::error::{AccessError, DisclosureRefusal, Error, RequestError, Result};
use crate::ids::{RequestId, SubjectId, SubjectRef};
use crate::model::{Category, Purpose, Redacted, check_text};
use crate::policy::recipients::Ground;
use crate::policy::{RequestKind, check_request_kind};
use crate::storage::{Txn, layout};
use crate::vault::{StoredDisclosure, StoredRequest, Vault};

/// A data-subject request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Its id.
    pub id: RequestId,
    /// The subject, by internal reference.
    pub subject: SubjectRef,
    /// What is asked: a built-in kind, or a custom kind the policy declares.
    pub kind: RequestKind,
    /// When it was received.
    pub received_at: Timestamp,
    /// When it is due, from the policy's deadlines (none without a deadline).
    pub due_at: Option<Timestamp>,
    /// When it was answered.
    pub closed_at: Option<Timestamp>,
    /// That the requester's identity was verified, once it was
    /// ([`Vault::verify_request_identity`]).
    pub identity_verified: Option<IdentityVerification>,
}

/// Which requests [`Vault::requests`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFilter {
    /// Every request, answered or not.
    All,
    /// The requests not yet answered.
    Open,
    /// The open requests past their due date.
    Overdue,
}

impl Request {
    /// Whether it is open and past its due date at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.closed_at.is_none() && self.due_at.is_some_and(|d| d < now)
    }
}

/// That a request's requester was identified: who verified, how, and when it was recorded. Its
/// `Debug` shows the method by length only: free text that may describe the subject's documents.
///
/// The method is stored sealed under the subject's key, like a hold's reference, so that it dies
/// with the subject (it then reads "(erased with the subject)"); who verified and when stay in
/// the clear, like who placed a hold: they name the controller's staff, not the subject, and
/// account for the answer after the subject is gone.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityVerification {
    /// Who verified, as the host names them.
    pub by: String,
    /// How, in free text (`"passport seen at the counter"`).
    pub method: String,
    /// When it was recorded (the vault clock).
    pub at: Timestamp,
}

impl fmt::Debug for IdentityVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityVerification")
            .field("by", &self.by)
            .field("method", &Redacted(self.method.len()))
            .field("at", &self.at)
            .finish()
    }
}

/// What an operation that answers requests does with the open ones it would answer whose
/// requester's identity the policy requires verified and that are not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unverified {
    /// Refuses: the operation must not go ahead ([`RequestError::IdentityNotVerified`]).
    Refuse,
    /// Leaves them open: the operation went ahead, and answered only the others.
    LeaveOpen,
}

/// A disclosure of a subject's data to a third party or an authority. Its `Debug` shows the
/// recipient and the ground by length only: they are free text that may name people.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    /// Who received it.
    pub recipient: String,
    /// For what purpose.
    pub purpose: Purpose,
    /// Which categories.
    pub categories: Vec<Category>,
    /// The legal ground: its kind, and a reference if given (`"subpoena: case 17"`).
    pub ground: Option<String>,
    /// How long the recipient keeps what it received, as the policy's register states it
    /// (`None` for a disclosure recorded without a policy).
    #[serde(default)]
    pub retention: Option<String>,
    /// When.
    pub at: Timestamp,
}

impl fmt::Debug for Disclosure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disclosure")
            .field("recipient", &Redacted(self.recipient.len()))
            .field("purpose", &self.purpose)
            .field("categories", &self.categories)
            .field("ground", &Redacted::of_option(&self.ground))
            .field("retention", &self.retention)
            .field("at", &self.at)
            .finish()
    }
}

impl Vault {
    /// Records a request received now (or at `received_at`); its due date comes from the policy.
    /// The kind must be built in or declared by the policy's `custom_requests`
    /// ([`RequestError::UnknownKind`] otherwise).
    pub fn open_request(
        &self,
        subject: &SubjectId,
        kind: RequestKind,
        received_at: Option<Timestamp>,
    ) -> Result<Request> {
        self.operation("open_request", || {
            let policy = self.policy();
            check_request_kind(policy.as_deref(), &kind)?;
            let _no_destruction = self.no_destruction()?;
            let ident = self.find(subject)?.subject;
            let received_at = received_at.unwrap_or_else(|| self.now());
            let due_at = policy.and_then(|p| p.request_due(&kind, received_at));
            let req = Request {
                id: RequestId::random(),
                subject: ident,
                kind,
                received_at,
                due_at,
                closed_at: None,
                identity_verified: None,
            };
            let mut txn = Txn::new();
            let row = layout::request(&req.id);
            txn.put_new(row.clone(), &self.seal_request(req.clone(), &row)?);
            let d = self
                .draft(AuditOp::RequestOpen)
                .subject(ident)
                .note(format!("request {} ({})", req.id, req.kind));
            self.commit_synced(txn, vec![d])?;
            Ok(req)
        })
    }

    /// Records that the identity of a request's requester was verified: `by` whom (as the host
    /// names them) and how (`method`, free text such as `"passport seen at the counter"`), now
    /// by the vault clock. The vault records the verification; it is the host's to perform.
    /// Audited ([`AuditOp::RequestVerify`], with who verified; never the method, which may
    /// describe the subject's documents and is sealed under the subject's key).
    ///
    /// Where the policy requires it (`[requests] verify_identity`), a request is answered only
    /// once it is verified ([`Vault::close_request`]). Refused, changing nothing, for a closed
    /// request ([`RequestError::Closed`]), one already verified ([`RequestError::AlreadyVerified`])
    /// and one whose subject has been erased (`SubjectNotFound`).
    pub fn verify_request_identity(
        &self,
        id: RequestId,
        by: &str,
        method: &str,
    ) -> Result<Request> {
        self.operation("verify_request_identity", || {
            check_text("verified by", by)?;
            check_text("verification method", method)?;
            // Ordered with destruction: the method is sealed under the subject's key.
            let _no_destruction = self.no_destruction()?;
            let row = layout::request(&id);
            let subject = self.stored_request(&row, id)?.request.subject;
            // Against a close (or another verification) between the read and the write.
            let _g = self.lock_subject(&subject)?;
            let stored = self.stored_request(&row, id)?;
            if stored.request.closed_at.is_some() {
                return Err(RequestError::Closed(id).into());
            }
            if stored.verification.is_some() {
                return Err(RequestError::AlreadyVerified(id).into());
            }
            let mut req = stored.request;
            req.identity_verified = Some(IdentityVerification {
                by: by.to_owned(),
                method: method.to_owned(),
                at: self.now(),
            });
            let mut txn = Txn::new();
            txn.put(row.clone(), &self.seal_request(req.clone(), &row)?);
            let d = self
                .draft(AuditOp::RequestVerify)
                .subject(req.subject)
                .note(format!(
                    "request {id} ({}): identity verified by {by}",
                    req.kind
                ));
            self.commit_synced(txn, vec![d])?;
            Ok(req)
        })
    }

    /// The requests `filter` selects, oldest first.
    pub fn requests(&self, filter: RequestFilter) -> Result<Vec<Request>> {
        self.operation("requests", || {
            self.checked_read(|| self.requests_unchecked(filter))
        })
    }

    fn requests_unchecked(&self, filter: RequestFilter) -> Result<Vec<Request>> {
        let now = self.now();
        let mut out = Vec::new();
        for r in self
            .store()
            .scan::<StoredRequest>(&layout::table(layout::Table::Request), "request")
        {
            let (row, stored) = r?;
            let selected = match filter {
                RequestFilter::All => true,
                RequestFilter::Open => stored.request.closed_at.is_none(),
                RequestFilter::Overdue => stored.request.is_overdue(now),
            };
            if selected {
                out.push(self.unseal_request(stored, &row)?);
            }
        }
        out.sort_by_key(|r| r.received_at);
        Ok(out)
    }

    /// Closes a request as answered. Where the policy requires the requester's identity verified
    /// before a request of its kind is answered (`[requests] verify_identity`), a request not yet
    /// verified ([`Vault::verify_request_identity`]) is refused
    /// ([`RequestError::IdentityNotVerified`]) and stays open. Closing a closed request changes
    /// nothing.
    pub fn close_request(&self, id: RequestId) -> Result<Request> {
        self.operation("close_request", || {
            let row = layout::request(&id);
            let subject = self.stored_request(&row, id)?.request.subject;
            let _g = self.lock_subject(&subject)?;
            let mut stored = self.stored_request(&row, id)?;
            if stored.request.closed_at.is_none() {
                self.may_answer(&stored)?;
                stored.request.closed_at = Some(self.now());
                let mut txn = Txn::new();
                txn.put(row.clone(), &stored);
                let d = self
                    .draft(AuditOp::RequestClose)
                    .subject(stored.request.subject)
                    .note(format!("request {id}"));
                self.commit_synced(txn, vec![d])?;
            }
            self.unseal_request(stored, &row)
        })
    }

    /// A stored request, or `RequestNotFound`.
    fn stored_request(&self, row: &[u8], id: RequestId) -> Result<StoredRequest> {
        self.store()
            .get(row, "request")?
            .ok_or(Error::RequestNotFound(id))
    }

    /// Whether a request may be answered: refused when the policy requires its requester's
    /// identity verified and it is not.
    fn may_answer(&self, stored: &StoredRequest) -> Result<()> {
        let required = self
            .policy()
            .is_some_and(|p| p.requires_identity_verification(&stored.request.kind));
        if required && stored.verification.is_none() {
            return Err(RequestError::IdentityNotVerified {
                request: stored.request.id,
                kind: stored.request.kind.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// Whether a subject has a request still open.
    pub(crate) fn has_open_requests(&self, subject: &SubjectRef) -> Result<bool> {
        for r in self
            .store()
            .scan::<StoredRequest>(&layout::table(layout::Table::Request), "request")
        {
            let (_, stored) = r?;
            if stored.request.subject == *subject && stored.request.closed_at.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks that an operation may answer a subject's open requests of `kinds`: refused,
    /// naming the first, when one of them needs its requester's identity verified and is not.
    /// For an operation whose answer cannot be taken back (an export, an erasure of the
    /// subject), before it acts.
    pub(crate) fn check_answerable(
        &self,
        subject: &SubjectRef,
        kinds: &[RequestKind],
    ) -> Result<()> {
        self.requests_answered(subject, kinds, Unverified::Refuse)
            .map(drop)
    }

    /// Adds to `txn` the closing of a subject's open requests of `kinds` (an answer closes them).
    /// Those whose requester's identity the policy requires verified and that are not stay open:
    /// the operation was no answer to them ([`Vault::check_answerable`] refuses it instead).
    pub(crate) fn close_requests_in(
        &self,
        txn: &mut Txn,
        subject: &SubjectRef,
        kinds: &[RequestKind],
    ) -> Result<()> {
        self.close_answered_in(txn, subject, kinds, Unverified::LeaveOpen)
    }

    /// [`Vault::check_answerable`] and [`Vault::close_requests_in`] in one read of the
    /// requests: refused as the first does, or every open request of `kinds` closed in `txn`.
    pub(crate) fn answer_requests_in(
        &self,
        txn: &mut Txn,
        subject: &SubjectRef,
        kinds: &[RequestKind],
    ) -> Result<()> {
        self.close_answered_in(txn, subject, kinds, Unverified::Refuse)
    }

    fn close_answered_in(
        &self,
        txn: &mut Txn,
        subject: &SubjectRef,
        kinds: &[RequestKind],
        unverified: Unverified,
    ) -> Result<()> {
        let now = self.now();
        for (row, mut stored) in self.requests_answered(subject, kinds, unverified)? {
            stored.request.closed_at = Some(now);
            txn.put(row, &stored);
        }
        Ok(())
    }

    /// A subject's open requests of `kinds` that may be answered; the others refused or left
    /// out, as `unverified` says.
    fn requests_answered(
        &self,
        subject: &SubjectRef,
        kinds: &[RequestKind],
        unverified: Unverified,
    ) -> Result<Vec<(Vec<u8>, StoredRequest)>> {
        let mut out = Vec::new();
        for r in self
            .store()
            .scan::<StoredRequest>(&layout::table(layout::Table::Request), "request")
        {
            let (row, stored) = r?;
            let req = &stored.request;
            if req.subject != *subject || req.closed_at.is_some() || !kinds.contains(&req.kind) {
                continue;
            }
            match self.may_answer(&stored) {
                Ok(()) => out.push((row, stored)),
                Err(e) if unverified == Unverified::Refuse => return Err(e),
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// Records a disclosure of a subject's data to `recipient`: for `purpose`, of `categories`,
    /// on `ground` (`"kind"` or `"kind: reference"`, e.g. `"subpoena: case 17"`).
    ///
    /// Under a policy the disclosure must match the policy's recipients register
    /// ([`recipients`](crate::policy::recipients)): a declared recipient, categories and purpose
    /// declared for it, one of its grounds, and, on consent, the subject's consent for the
    /// purpose; otherwise it is refused ([`AccessError::DisclosureRefused`](crate::AccessError))
    /// and the refusal audited. The record keeps the recipient's retention period. Without a
    /// policy, nothing was promised: the disclosure is recorded as given.
    pub fn disclose(
        &self,
        subject: &SubjectId,
        recipient: &str,
        purpose: &Purpose,
        categories: &[Category],
        ground: Option<&str>,
    ) -> Result<()> {
        self.operation("disclose", || {
            check_text("recipient", recipient)?;
            if let Some(g) = ground {
                check_text("ground", g)?;
            }
            for c in categories {
                self.known_category(c)?;
            }
            let _no_destruction = self.no_destruction()?;
            let ident = self.find(subject)?.subject;
            let retention = match self.policy() {
                None => None,
                Some(policy) => {
                    let checked = match policy.recipient(recipient) {
                        None => Err(DisclosureRefusal::UndeclaredRecipient),
                        Some(r) => match r.check(purpose, categories, ground) {
                            Ok(Ground::Consent)
                                if !crate::rights::access::has_consent(
                                    &*self.state(&ident)?,
                                    purpose,
                                    Some(&policy),
                                ) =>
                            {
                                Err(DisclosureRefusal::NoConsent(purpose.as_str().to_owned()))
                            }
                            Ok(_) => Ok(r.retention.clone()),
                            Err(e) => Err(e),
                        },
                    };
                    match checked {
                        Ok(retention) => Some(retention),
                        Err(reason) => {
                            // The recipient's name may be free text: the trail has the reason only.
                            self.note_refusal(
                                Some(ident),
                                None,
                                None,
                                format!(
                                    "disclosure for purpose {} refused: {reason}",
                                    purpose.as_str()
                                ),
                            )?;
                            return Err(AccessError::DisclosureRefused {
                                recipient: recipient.to_owned(),
                                reason,
                            }
                            .into());
                        }
                    }
                }
            };
            let now = self.now();
            let disclosure = Disclosure {
                recipient: recipient.to_owned(),
                purpose: purpose.clone(),
                categories: categories.to_vec(),
                ground: ground.map(str::to_owned),
                retention,
                at: now,
            };
            let mut seq = crate::storage::layout::time_to_key(now);
            while self.store().contains(&layout::disclosure(&ident, seq))? {
                seq += 1;
            }
            let mut txn = Txn::new();
            let row = layout::disclosure(&ident, seq);
            txn.put(
                row.clone(),
                &self.seal_disclosure(&ident, &disclosure, &row)?,
            );
            let d = self
                .draft(AuditOp::Disclosure)
                .subject(ident)
                .note(purpose.as_str());
            self.commit_synced(txn, vec![d])
        })
    }

    /// A subject's disclosures, oldest first.
    pub(crate) fn disclosures_of(&self, subject: &SubjectRef) -> Result<Vec<Disclosure>> {
        self.store()
            .scan::<StoredDisclosure>(&layout::disclosures_of(subject), "disclosure")
            .map(|r| {
                let (row, d) = r?;
                self.open_disclosure(subject, d, &row)
            })
            .collect()
    }

    /// Checks the audit trail; names the first bad entry.
    pub fn audit_verify(&self) -> Result<crate::audit::AuditReport> {
        self.operation("audit_verify", || {
            self.flush()?;
            self.inner.trail.verify(self.store())
        })
    }

    /// Audit entries, oldest first: all, or one subject's (while it can still be found), since a time.
    pub fn audit_entries(
        &self,
        subject: Option<&SubjectId>,
        since: Option<Timestamp>,
    ) -> Result<Vec<crate::audit::AuditEntry>> {
        self.operation("audit_entries", || {
            self.flush()?;
            let sref = subject
                .map(|s| self.find(s))
                .transpose()?
                .map(|i| i.subject);
            self.inner.trail.entries(self.store(), sref, since)
        })
    }
}
