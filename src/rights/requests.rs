//! Data-subject requests and disclosures.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::AuditOp;
use crate::error::{AccessError, DisclosureRefusal, Error, Result};
use crate::ids::{RequestId, SubjectId, SubjectRef};
use crate::model::{Category, Purpose, Redacted, check_text};
use crate::policy::RequestKind;
use crate::policy::recipients::Ground;
use crate::storage::{Txn, layout};
use crate::vault::{StoredDisclosure, Vault};

/// A data-subject request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Its id.
    pub id: RequestId,
    /// The subject, by internal reference.
    pub subject: SubjectRef,
    /// What is asked.
    pub kind: RequestKind,
    /// When it was received.
    pub received_at: Timestamp,
    /// When it is due, from the policy's deadlines (none without a deadline).
    pub due_at: Option<Timestamp>,
    /// When it was answered.
    pub closed_at: Option<Timestamp>,
}

impl Request {
    /// Whether it is open and past its due date at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.closed_at.is_none() && self.due_at.is_some_and(|d| d < now)
    }
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
    pub fn open_request(
        &self,
        subject: &SubjectId,
        kind: RequestKind,
        received_at: Option<Timestamp>,
    ) -> Result<Request> {
        let _no_destruction = self.no_destruction()?;
        let ident = self.find(subject)?.subject;
        let received_at = received_at.unwrap_or_else(|| self.now());
        let due_at = self.policy().and_then(|p| p.request_due(kind, received_at));
        let req = Request {
            id: RequestId::random(),
            subject: ident,
            kind,
            received_at,
            due_at,
            closed_at: None,
        };
        let mut txn = Txn::new();
        txn.put_new(layout::request(&req.id), &req);
        let d = self
            .draft(AuditOp::RequestOpen)
            .subject(ident)
            .note(format!("request {} ({})", req.id, kind.name()));
        self.commit_synced(txn, vec![d])?;
        Ok(req)
    }

    /// Requests, all or only the open ones past their due date.
    pub fn requests(&self, overdue_only: bool) -> Result<Vec<Request>> {
        let now = self.now();
        let mut out = Vec::new();
        for r in self
            .store()
            .scan::<Request>(&layout::table(layout::Table::Request), "request")
        {
            let (_, req) = r?;
            if !overdue_only || req.is_overdue(now) {
                out.push(req);
            }
        }
        out.sort_by_key(|r| r.received_at);
        Ok(out)
    }

    /// Closes a request as answered.
    pub fn close_request(&self, id: RequestId) -> Result<Request> {
        let mut req: Request = self
            .store()
            .get(&layout::request(&id), "request")?
            .ok_or_else(|| Error::RequestNotFound(id.to_string()))?;
        if req.closed_at.is_none() {
            req.closed_at = Some(self.now());
            let mut txn = Txn::new();
            txn.put(layout::request(&id), &req);
            let d = self
                .draft(AuditOp::RequestClose)
                .subject(req.subject)
                .note(format!("request {id}"));
            self.commit_synced(txn, vec![d])?;
        }
        Ok(req)
    }

    /// Whether a subject has a request still open.
    pub(crate) fn has_open_requests(&self, subject: &SubjectRef) -> Result<bool> {
        for r in self
            .store()
            .scan::<Request>(&layout::table(layout::Table::Request), "request")
        {
            let (_, req) = r?;
            if req.subject == *subject && req.closed_at.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Adds to `txn` the closing of a subject's open requests of `kinds` (an answer closes them).
    pub(crate) fn close_requests_in(
        &self,
        txn: &mut Txn,
        subject: &SubjectRef,
        kinds: &[RequestKind],
    ) -> Result<()> {
        let now = self.now();
        for r in self
            .store()
            .scan::<Request>(&layout::table(layout::Table::Request), "request")
        {
            let (k, mut req) = r?;
            if req.subject == *subject && req.closed_at.is_none() && kinds.contains(&req.kind) {
                req.closed_at = Some(now);
                txn.put(k, &req);
            }
        }
        Ok(())
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
        self.flush()?;
        self.inner.trail.verify(self.store())
    }

    /// Audit entries, oldest first: all, or one subject's (while it can still be found), since a time.
    pub fn audit_entries(
        &self,
        subject: Option<&SubjectId>,
        since: Option<Timestamp>,
    ) -> Result<Vec<crate::audit::AuditEntry>> {
        self.flush()?;
        let sref = subject
            .map(|s| self.find(s))
            .transpose()?
            .map(|i| i.subject);
        self.inner.trail.entries(self.store(), sref, since)
    }
}
