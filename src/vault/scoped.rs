//! Handles scoped to a principal: the host authenticates a member of staff, pdvault enforces what
//! the role the policy gives them allows ([`roles`](crate::policy::roles)), and audits every call
//! with the principal and the role, refusals included.
//!
//! A [`ScopedVault`] has only the operations a role can be granted; each asks the role before it
//! does anything, and the reads ask again for each record they open (a record's category is
//! known only once it is read). The role is looked up in the vault's current policy on every
//! call, so a grant withdrawn by a new policy stops at once. The plain [`Vault`] is the host's
//! own administrative access: it is checked against no role.

use std::io::Write;
use std::ops::ControlFlow;

use jiff::Timestamp;

use super::Vault;
use crate::audit::{AuditEntry, AuditOp, AuditReport};
use crate::erasure::ErasureReport;
use crate::error::{AccessError, Result};
use crate::ids::{HoldId, RecordId, RequestId, SubjectId, SubjectRef};
use crate::model::{Category, Purpose, Record, RecordInfo, RecordMeta, check_text};
use crate::policy::holds::{Hold, HoldScope, HoldTarget, NewHold};
use crate::policy::roles::{Operation, Scope};
use crate::policy::{EventKind, RequestKind};
use crate::rights::{Request, RequestFilter, Withdrawal};
use crate::sweep::{SweepOptions, SweepReport};

impl Vault {
    /// A handle for `principal` (a member of staff the host has authenticated) acting in `role`
    /// (a role of the vault's policy). Every call through it is checked against the role's
    /// grants and audited with the principal and the role; a refusal is audited too. Refused
    /// with [`AccessError::UnknownRole`] (and audited) if the policy has no such role.
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::{Category, Policy, Purpose, RecordMeta, SubjectId};
    /// # let dir = tempfile::tempdir()?;
    /// let policy = Policy::from_toml(r#"
    ///     [roles.support]
    ///     grants = [{ ops = ["read"], categories = ["contact"], purposes = ["support"] }]
    /// "#)?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .policy(policy).create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// let alice = SubjectId::new("alice@example.com")?;
    /// let support = Purpose::new("support")?;
    /// let phone = vault.put(&alice, RecordMeta::new(Category::Contact).purpose(support.clone()), b"555-0100")?;
    /// let bob = vault.scoped("bob", "support")?;
    /// assert_eq!(bob.get(&alice, phone, &support)?.payload, b"555-0100");
    /// // Not granted: writing, or reading for another purpose.
    /// assert!(bob.put(&alice, RecordMeta::new(Category::Contact), b"x").is_err());
    /// assert!(bob.get(&alice, phone, &Purpose::new("marketing")?).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn scoped(&self, principal: &str, role: &str) -> Result<ScopedVault> {
        check_text("principal", principal)?;
        check_text("role", role)?;
        let vault = Vault {
            inner: self.inner.clone(),
            actor: principal.into(),
            role: Some(role.into()),
        };
        vault.role_grants()?;
        Ok(ScopedVault { vault })
    }

    /// The role of this handle's principal, if it is scoped and the current policy has it.
    fn role_grants(&self) -> Result<Option<crate::policy::roles::Role>> {
        let Some(role) = &self.role else {
            return Ok(None);
        };
        match self.policy().and_then(|p| p.role(role).cloned()) {
            Some(r) => Ok(Some(r)),
            None => {
                self.note_refusal(None, None, None, format!("no role {role:?} in the policy"))?;
                Err(AccessError::UnknownRole(role.to_string()).into())
            }
        }
    }

    /// Checks `op` on `scope` against this handle's role (nothing to check on the
    /// administrative handle); a refusal is audited with `subject` and `record` if known.
    pub(crate) fn authorize(
        &self,
        op: Operation,
        scope: Scope<'_>,
        subject: Option<SubjectRef>,
        record: Option<RecordId>,
    ) -> Result<()> {
        let Some(role) = self.role_grants()? else {
            return Ok(());
        };
        if role.allows(op, scope) {
            return Ok(());
        }
        let (category, purpose) = match scope {
            Scope::Category(c, p) => (Some(c), p),
            Scope::Everything(p) => (None, p),
        };
        let mut on = match category {
            Some(c) => format!("on category {}", c.name()),
            None => "on every category".to_owned(),
        };
        if let Some(p) = purpose {
            on.push_str(&format!(" for purpose {}", p.as_str()));
        }
        self.note_refusal(
            subject,
            category,
            record,
            format!("{op} not granted to role {} {on}", role.name),
        )?;
        Err(AccessError::NotGranted {
            principal: self.actor.to_string(),
            role: role.name,
            operation: op,
            on,
        }
        .into())
    }

    /// Whether this handle's role (if any) allows `op` on `scope`, without auditing: for the
    /// scans that leave out what the role may not see (and audit that once).
    pub(crate) fn allowed(&self, op: Operation, scope: Scope<'_>) -> Result<bool> {
        Ok(self.role_grants()?.is_none_or(|r| r.allows(op, scope)))
    }

    /// Audits a refusal (buffered with the reads, written with the next commit).
    pub(crate) fn note_refusal(
        &self,
        subject: Option<SubjectRef>,
        category: Option<&Category>,
        record: Option<RecordId>,
        why: String,
    ) -> Result<()> {
        let mut d = self.draft(AuditOp::Refused).note(why);
        if let Some(s) = subject {
            d = d.subject(s);
        }
        if let Some(c) = category {
            d = d.category_of(c);
        }
        if let Some(r) = record {
            d = d.record(r);
        }
        self.inner.trail.note_read(self.store(), d)
    }
}

/// A handle scoped to a principal acting in a role of the policy ([`Vault::scoped`]). Cheap to
/// clone. It offers only the operations a role can be granted, each checked against the role
/// on every call; every call is audited with the principal and the role, and so is every
/// refusal ([`AccessError::NotGranted`]).
///
/// Scans ([`ScopedVault::read_all`], [`ScopedVault::read_each`], [`ScopedVault::list`]) leave
/// out the records of categories the role may not see, and audit that they did. Operations on a
/// whole subject (export, a subject's erasure, a hold or restriction of the whole subject) need
/// a grant on every category.
#[derive(Clone, Debug)]
pub struct ScopedVault {
    vault: Vault,
}

impl ScopedVault {
    /// The principal this handle acts for.
    pub fn principal(&self) -> &str {
        self.vault.actor()
    }

    /// The role the principal acts in.
    pub fn role(&self) -> &str {
        self.vault.role.as_deref().unwrap_or_default()
    }

    fn check(&self, op: Operation, scope: Scope<'_>) -> Result<()> {
        self.vault.authorize(op, scope, None, None)
    }

    fn check_write(&self, meta: &RecordMeta) -> Result<()> {
        if meta.purposes.is_empty() {
            return self.check(Operation::Write, Scope::Category(&meta.category, None));
        }
        for p in &meta.purposes {
            self.check(Operation::Write, Scope::Category(&meta.category, Some(p)))?;
        }
        Ok(())
    }

    fn check_record(&self, op: Operation, subject: &SubjectId, record: RecordId) -> Result<()> {
        let (ident, category) = self.vault.record_category(subject, record)?;
        self.vault.authorize(
            op,
            Scope::Category(&category, None),
            Some(ident),
            Some(record),
        )
    }

    /// [`Vault::put`], with `write` granted on the record's category for each of its purposes.
    pub fn put(&self, subject: &SubjectId, meta: RecordMeta, payload: &[u8]) -> Result<RecordId> {
        self.vault.operation("put", || {
            self.check_write(&meta)?;
            self.vault.put(subject, meta, payload)
        })
    }

    /// [`Vault::put_many`], with `write` granted for every item (nothing is written otherwise).
    pub fn put_many<'a, I>(&self, items: I) -> Result<Vec<RecordId>>
    where
        I: IntoIterator<Item = (&'a SubjectId, RecordMeta, &'a [u8])>,
    {
        self.vault.operation("put_many", || {
            let items: Vec<_> = items.into_iter().collect();
            for (_, meta, _) in &items {
                self.check_write(meta)?;
            }
            self.vault.put_many(items)
        })
    }

    /// [`Vault::get`], with `read` granted on the record's category for `purpose`.
    pub fn get(&self, subject: &SubjectId, record: RecordId, purpose: &Purpose) -> Result<Record> {
        self.vault
            .operation("get", || self.vault.get(subject, record, purpose))
    }

    /// [`Vault::read_all`], leaving out the categories the role may not read for `purpose`.
    pub fn read_all(&self, subject: &SubjectId, purpose: &Purpose) -> Result<Vec<Record>> {
        self.vault
            .operation("read_all", || self.vault.read_all(subject, purpose))
    }

    /// [`Vault::read_each`], leaving out the categories the role may not read for `purpose`.
    pub fn read_each(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        each: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.vault
            .operation("read_each", || self.vault.read_each(subject, purpose, each))
    }

    /// [`Vault::list`], leaving out the categories the role may not `list`.
    pub fn list(&self, subject: &SubjectId) -> Result<Vec<RecordInfo>> {
        self.vault.operation("list", || self.vault.list(subject))
    }

    /// [`Vault::update`], with `write` granted on the record's category.
    pub fn update(&self, subject: &SubjectId, record: RecordId, payload: &[u8]) -> Result<()> {
        self.vault.operation("update", || {
            self.check_record(Operation::Write, subject, record)?;
            self.vault.update(subject, record, payload)
        })
    }

    /// [`Vault::rectify`], with `write` granted on the record's category and, for new metadata,
    /// on its new category.
    pub fn rectify(
        &self,
        subject: &SubjectId,
        record: RecordId,
        meta: Option<RecordMeta>,
        payload: Option<&[u8]>,
        reason: &str,
    ) -> Result<()> {
        self.vault.operation("rectify", || {
            self.check_record(Operation::Write, subject, record)?;
            if let Some(m) = &meta {
                self.check_write(m)?;
            }
            self.vault.rectify(subject, record, meta, payload, reason)
        })
    }

    /// [`Vault::erase_subject`], with `erase` granted on every category.
    pub fn erase_subject(&self, subject: &SubjectId) -> Result<ErasureReport> {
        self.vault.operation("erase_subject", || {
            self.check(Operation::Erase, Scope::Everything(None))?;
            self.vault.erase_subject(subject)
        })
    }

    /// [`Vault::erase_category`], with `erase` granted on the category.
    pub fn erase_category(
        &self,
        subject: &SubjectId,
        category: &Category,
    ) -> Result<ErasureReport> {
        self.vault.operation("erase_category", || {
            self.check(Operation::Erase, Scope::Category(category, None))?;
            self.vault.erase_category(subject, category)
        })
    }

    /// [`Vault::erase_record`], with `erase` granted on the record's category.
    pub fn erase_record(&self, subject: &SubjectId, record: RecordId) -> Result<ErasureReport> {
        self.vault.operation("erase_record", || {
            self.check_record(Operation::Erase, subject, record)?;
            self.vault.erase_record(subject, record)
        })
    }

    /// [`Vault::place_hold`], with `hold` granted on what the hold covers (a whole subject:
    /// every category).
    pub fn place_hold(&self, subject: &SubjectId, hold: NewHold) -> Result<HoldId> {
        self.vault.operation("place_hold", || {
            match hold.target() {
                HoldTarget::Subject => self.check(Operation::Hold, Scope::Everything(None))?,
                HoldTarget::Category(c) => self.check(Operation::Hold, Scope::Category(c, None))?,
                HoldTarget::Record(r) => self.check_record(Operation::Hold, subject, *r)?,
            }
            self.vault.place_hold(subject, hold)
        })
    }

    /// [`Vault::release_hold`], with `hold` granted on what the hold covers.
    pub fn release_hold(&self, id: HoldId) -> Result<Hold> {
        self.vault.operation("release_hold", || {
            let hold = self.vault.hold(id)?;
            let scope = match &hold.scope {
                HoldScope::Category(c) => Scope::Category(c, None),
                HoldScope::Subject | HoldScope::Record(_) => Scope::Everything(None),
            };
            self.vault
                .authorize(Operation::Hold, scope, Some(hold.subject), None)?;
            self.vault.release_hold(id)
        })
    }

    /// [`Vault::holds`], with `hold` granted on every category.
    pub fn holds(&self, subject: Option<&SubjectId>) -> Result<Vec<Hold>> {
        self.vault.operation("holds", || {
            self.check(Operation::Hold, Scope::Everything(None))?;
            let holds = self.vault.holds(subject)?;
            self.queried("holds")?;
            Ok(holds)
        })
    }

    /// [`Vault::restrict`], with `restrict` granted on the category (none: every category).
    pub fn restrict(&self, subject: &SubjectId, category: Option<&Category>) -> Result<()> {
        self.vault.operation("restrict", || {
            self.check(Operation::Restrict, restriction_scope(category))?;
            self.vault.restrict(subject, category)
        })
    }

    /// [`Vault::unrestrict`], with `restrict` granted on the category (none: every category).
    pub fn unrestrict(&self, subject: &SubjectId, category: Option<&Category>) -> Result<()> {
        self.vault.operation("unrestrict", || {
            self.check(Operation::Restrict, restriction_scope(category))?;
            self.vault.unrestrict(subject, category)
        })
    }

    /// [`Vault::grant_consent`], with `consent` granted for the purpose.
    pub fn grant_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        policy_version: Option<&str>,
    ) -> Result<()> {
        self.vault.operation("grant_consent", || {
            self.check(Operation::Consent, Scope::Everything(Some(purpose)))?;
            self.vault.grant_consent(subject, purpose, policy_version)
        })
    }

    /// [`Vault::withdraw_consent`], with `consent` granted for the purpose (and `erase` on every
    /// category when the records are to be erased).
    pub fn withdraw_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        then: Withdrawal,
    ) -> Result<Option<ErasureReport>> {
        self.vault.operation("withdraw_consent", || {
            self.check(Operation::Consent, Scope::Everything(Some(purpose)))?;
            if then == Withdrawal::EraseRecords {
                self.check(Operation::Erase, Scope::Everything(None))?;
            }
            self.vault.withdraw_consent(subject, purpose, then)
        })
    }

    /// [`Vault::grant_guardian_consent`], with `consent` granted for the purpose.
    pub fn grant_guardian_consent(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        policy_version: Option<&str>,
    ) -> Result<()> {
        self.vault.operation("grant_guardian_consent", || {
            self.check(Operation::Consent, Scope::Everything(Some(purpose)))?;
            self.vault
                .grant_guardian_consent(subject, purpose, policy_version)
        })
    }

    /// [`Vault::withdraw_guardian_consent`], with `consent` granted for the purpose.
    pub fn withdraw_guardian_consent(&self, subject: &SubjectId, purpose: &Purpose) -> Result<()> {
        self.vault.operation("withdraw_guardian_consent", || {
            self.check(Operation::Consent, Scope::Everything(Some(purpose)))?;
            self.vault.withdraw_guardian_consent(subject, purpose)
        })
    }

    /// [`Vault::object`], with `restrict` granted on every category for the purpose.
    pub fn object(&self, subject: &SubjectId, purpose: &Purpose) -> Result<()> {
        self.vault.operation("object", || {
            self.check(Operation::Restrict, Scope::Everything(Some(purpose)))?;
            self.vault.object(subject, purpose)
        })
    }

    /// [`Vault::lift_objection`], with `restrict` granted on every category for the purpose.
    pub fn lift_objection(&self, subject: &SubjectId, purpose: &Purpose) -> Result<()> {
        self.vault.operation("lift_objection", || {
            self.check(Operation::Restrict, Scope::Everything(Some(purpose)))?;
            self.vault.lift_objection(subject, purpose)
        })
    }

    /// [`Vault::set_age_status`], with `event` granted (and `erase` on every category, where
    /// marking a minor erases).
    pub fn set_age_status(
        &self,
        subject: &SubjectId,
        status: crate::AgeStatus,
    ) -> Result<Option<ErasureReport>> {
        self.vault.operation("set_age_status", || {
            self.check(Operation::Event, Scope::Everything(None))?;
            if status == crate::AgeStatus::Minor
                && self
                    .vault
                    .policy()
                    .is_some_and(|p| p.minors == Some(crate::policy::MinorRule::Erase))
            {
                self.check(Operation::Erase, Scope::Everything(None))?;
            }
            self.vault.set_age_status(subject, status)
        })
    }

    /// [`Vault::open_request`], with `request` granted.
    pub fn open_request(
        &self,
        subject: &SubjectId,
        kind: RequestKind,
        received_at: Option<Timestamp>,
    ) -> Result<Request> {
        self.vault.operation("open_request", || {
            self.check(Operation::Request, Scope::Everything(None))?;
            self.vault.open_request(subject, kind, received_at)
        })
    }

    /// [`Vault::verify_request_identity`], with `request` granted.
    pub fn verify_request_identity(
        &self,
        id: RequestId,
        by: &str,
        method: &str,
    ) -> Result<Request> {
        self.vault.operation("verify_request_identity", || {
            self.check(Operation::Request, Scope::Everything(None))?;
            self.vault.verify_request_identity(id, by, method)
        })
    }

    /// [`Vault::close_request`], with `request` granted.
    pub fn close_request(&self, id: RequestId) -> Result<Request> {
        self.vault.operation("close_request", || {
            self.check(Operation::Request, Scope::Everything(None))?;
            self.vault.close_request(id)
        })
    }

    /// [`Vault::requests`], with `request` granted.
    pub fn requests(&self, filter: RequestFilter) -> Result<Vec<Request>> {
        self.vault.operation("requests", || {
            self.check(Operation::Request, Scope::Everything(None))?;
            let requests = self.vault.requests(filter)?;
            self.queried("requests")?;
            Ok(requests)
        })
    }

    /// [`Vault::disclose`], with `disclose` granted on each category for the purpose.
    pub fn disclose(
        &self,
        subject: &SubjectId,
        recipient: &str,
        purpose: &Purpose,
        categories: &[Category],
        ground: Option<&str>,
    ) -> Result<()> {
        self.vault.operation("disclose", || {
            if categories.is_empty() {
                self.check(Operation::Disclose, Scope::Everything(Some(purpose)))?;
            }
            for c in categories {
                self.check(Operation::Disclose, Scope::Category(c, Some(purpose)))?;
            }
            self.vault
                .disclose(subject, recipient, purpose, categories, ground)
        })
    }

    /// [`Vault::export`], with `export` granted on every category.
    pub fn export(&self, subject: &SubjectId, out: &mut dyn Write) -> Result<u64> {
        self.vault.operation("export", || {
            self.check(Operation::Export, Scope::Everything(None))?;
            self.vault.export(subject, out)
        })
    }

    /// [`Vault::record_event`], with `event` granted.
    pub fn record_event(&self, subject: &SubjectId, kind: EventKind, at: Timestamp) -> Result<()> {
        self.vault.operation("record_event", || {
            self.check(Operation::Event, Scope::Everything(None))?;
            self.vault.record_event(subject, kind, at)
        })
    }

    /// [`Vault::delete`], with `erase` granted on the record's category.
    pub fn delete(&self, subject: &SubjectId, record: RecordId) -> Result<()> {
        self.vault.operation("delete", || {
            self.check_record(Operation::Erase, subject, record)?;
            self.vault.delete(subject, record)
        })
    }

    /// The vault clock's time ([`Vault::now`]).
    pub fn now(&self) -> Timestamp {
        self.vault.now()
    }

    /// [`Vault::sweep_with`], with `administer` granted.
    pub fn sweep_with(&self, options: SweepOptions<'_>) -> Result<SweepReport> {
        self.vault.operation(options.operation_name(), || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            self.vault.sweep_with(options)
        })
    }

    /// [`Vault::sweep`], with `administer` granted.
    pub fn sweep(&self) -> Result<SweepReport> {
        self.vault.operation("sweep", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            self.vault.sweep()
        })
    }

    /// [`Vault::sweep_dry_run`], with `administer` granted.
    pub fn sweep_dry_run(&self) -> Result<SweepReport> {
        self.vault.operation("sweep_dry_run", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            self.vault.sweep_dry_run()
        })
    }

    /// [`Vault::stats`], with `administer` granted.
    pub fn stats(&self) -> Result<super::Stats> {
        self.vault.operation("stats", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            let stats = self.vault.stats()?;
            self.queried("stats")?;
            Ok(stats)
        })
    }

    /// [`Vault::verify`], with `administer` granted.
    pub fn verify(&self) -> Result<super::VerifyReport> {
        self.vault.operation("verify", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            self.queried("verify")?;
            self.vault.verify()
        })
    }

    /// [`Vault::audit_verify`], with `administer` granted.
    pub fn audit_verify(&self) -> Result<AuditReport> {
        self.vault.operation("audit_verify", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            self.queried("audit verify")?;
            self.vault.audit_verify()
        })
    }

    /// [`Vault::audit_entries`], with `administer` granted.
    pub fn audit_entries(
        &self,
        subject: Option<&SubjectId>,
        since: Option<Timestamp>,
    ) -> Result<Vec<AuditEntry>> {
        self.vault.operation("audit_entries", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            self.queried("audit entries")?;
            self.vault.audit_entries(subject, since)
        })
    }

    /// [`Vault::anonymous_stats`], with `administer` granted.
    pub fn anonymous_stats(&self) -> Result<crate::anonymised::AnonymousStats> {
        self.vault.operation("anonymous_stats", || {
            self.check(Operation::Administer, Scope::Everything(None))?;
            let stats = self.vault.anonymous_stats()?;
            self.queried("anonymous stats")?;
            Ok(stats)
        })
    }

    /// [`Vault::export_for_analysis`], with `export` granted on each category for the purpose.
    pub fn export_for_analysis(
        &self,
        categories: &[Category],
        purpose: &Purpose,
        out: &mut dyn Write,
    ) -> Result<u64> {
        self.vault.operation("export_for_analysis", || {
            for c in categories {
                self.check(Operation::Export, Scope::Category(c, Some(purpose)))?;
            }
            self.vault.export_for_analysis(categories, purpose, out)
        })
    }

    /// [`Vault::set_credential`], with `write` granted on the credential category.
    pub fn set_credential(
        &self,
        subject: &SubjectId,
        meta: RecordMeta,
        secret: &[u8],
    ) -> Result<RecordId> {
        self.vault.operation("set_credential", || {
            self.check(
                Operation::Write,
                Scope::Category(&Category::Credential, None),
            )?;
            self.vault.set_credential(subject, meta, secret)
        })
    }

    /// [`Vault::verify_credential`], with `read` granted on the credential category.
    pub fn verify_credential(
        &self,
        subject: &SubjectId,
        record: RecordId,
        candidate: &[u8],
    ) -> Result<bool> {
        self.vault.operation("verify_credential", || {
            self.check(
                Operation::Read,
                Scope::Category(&Category::Credential, None),
            )?;
            self.vault.verify_credential(subject, record, candidate)
        })
    }

    /// Audits a read of what the vault holds about itself (the calls that do not audit
    /// themselves), so that every call of a scoped handle leaves an entry.
    fn queried(&self, what: &str) -> Result<()> {
        let d = self.vault.draft(AuditOp::Query).note(what);
        self.vault.inner.trail.note_read(self.vault.store(), d)
    }

    /// Writes buffered audit entries ([`Vault::flush`]).
    pub fn flush(&self) -> Result<()> {
        self.vault.operation("flush", || self.vault.flush())
    }
}

fn restriction_scope(category: Option<&Category>) -> Scope<'_> {
    match category {
        Some(c) => Scope::Category(c, None),
        None => Scope::Everything(None),
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<ScopedVault>();
}
