//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keep personal data the way a privacy policy promises: encrypted per subject, erased by
/// destroying keys, retained and held by policy, with a tamper-evident audit trail.
#[derive(Parser, Debug)]
#[command(name = "pdvault", version, about)]
pub struct Cli {
    /// The vault directory.
    #[arg(long, env = "PDVAULT_DIR", global = true)]
    pub vault: Option<PathBuf>,
    /// A vault on PostgreSQL instead of a directory: a `postgres://user@host/db` URL or a
    /// `key=value` connection string (a password is better in PGPASSWORD or ~/.pgpass than here).
    /// Usable while services have the vault open. Takes precedence over --vault.
    #[arg(long, env = "PDVAULT_STORE", global = true)]
    pub store: Option<String>,
    /// The PostgreSQL schema of the vault's tables (default: the connection's search_path).
    #[arg(long, env = "PDVAULT_STORE_SCHEMA", global = true, requires = "store")]
    pub store_schema: Option<String>,
    /// Read the passphrase from this file (one trailing newline is ignored). Otherwise it comes
    /// from PDVAULT_PASSPHRASE, or a prompt on a terminal.
    #[arg(long, global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is acting, for the audit trail.
    #[arg(long, global = true, default_value = "pdvault-cli")]
    pub actor: String,
    /// Act as --actor in this role of the vault's policy: every command is checked against the
    /// role's grants (and refused, audited, outside them). Administrative commands (init, policy
    /// show and set, rotate-key, migrate, backup, ledger, restore, import, stats --anonymous,
    /// export-analysis, report) are not available in a role.
    /// Without it, the CLI is the host's administrative access.
    #[arg(long, env = "PDVAULT_ROLE", global = true)]
    pub role: Option<String>,
    /// The PKCS#11 module (the HSM vendor's library) of the token that holds the vault's epoch
    /// keys. Without it, the epoch keys are in the vault's own key-slot file.
    #[arg(long, env = "PDVAULT_PKCS11_MODULE", global = true)]
    pub pkcs11_module: Option<PathBuf>,
    /// The label of that token.
    #[arg(
        long,
        env = "PDVAULT_PKCS11_TOKEN",
        global = true,
        requires = "pkcs11_module"
    )]
    pub pkcs11_token: Option<String>,
    /// Read the token's PIN from this file (one trailing newline is ignored). Otherwise it comes
    /// from PDVAULT_PKCS11_PIN; never from the command line.
    #[arg(long, global = true, requires = "pkcs11_module")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Which records of a subject.
#[derive(Args, Debug)]
pub struct SubjectArg {
    /// The subject's identifier (an email, a user id).
    #[arg(long)]
    pub subject: String,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a vault (refuses to overwrite one).
    Init {
        /// Argon2id memory in KiB (default 19456).
        #[arg(long)]
        kdf_memory_kib: Option<u32>,
        /// Argon2id passes (default 2).
        #[arg(long)]
        kdf_iterations: Option<u32>,
        /// Argon2id lanes (default 1).
        #[arg(long)]
        kdf_parallelism: Option<u32>,
        /// A retention policy (TOML) to store in the vault.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The fewest characters the passphrase may have.
        #[arg(long, default_value_t = pdvault::DEFAULT_MIN_PASSPHRASE_LEN)]
        min_passphrase_len: usize,
    },
    /// Store a record; prints its id. The payload comes from --file or stdin.
    Put {
        #[command(flatten)]
        subject: SubjectArg,
        /// The category (kebab-case, e.g. contact, access-log).
        #[arg(long)]
        category: String,
        /// A purpose the record may be read for (repeatable).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// The legal basis (consent, contract, legal-obligation, legitimate-interests,
        /// vital-interests, public-task). Default: contract.
        #[arg(long)]
        basis: Option<String>,
        /// Where the data came from (no personal data).
        #[arg(long)]
        source: Option<String>,
        /// When the data was collected, if before now (data migrated into the vault): RFC 3339
        /// or YYYY-MM-DD (midnight UTC). Retention counts from it. Default: now.
        #[arg(long)]
        collected_at: Option<String>,
        /// Read the payload from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write a record's payload to stdout, byte for byte.
    Get {
        #[command(flatten)]
        subject: SubjectArg,
        /// The record id.
        #[arg(long)]
        record: String,
        /// The purpose of the read. Default: subject-access (answering the subject's own
        /// access request).
        #[arg(long, default_value = "subject-access")]
        purpose: String,
    },
    /// Print every record a purpose may read, one JSON object per line: the record's id,
    /// metadata and version, and its payload (UTF-8 text as `{"text": ...}`, other bytes as
    /// `{"base64": ...}`). Streamed: records are printed as they are decrypted.
    Read {
        #[command(flatten)]
        subject: SubjectArg,
        /// The purpose of the read. Default: subject-access.
        #[arg(long, default_value = "subject-access")]
        purpose: String,
    },
    /// Replace a record's payload (from --file or stdin).
    Update {
        #[command(flatten)]
        subject: SubjectArg,
        /// The record id.
        #[arg(long)]
        record: String,
        /// Read the payload from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Rectify a record's payload (from --file or stdin), with a reason.
    Rectify {
        #[command(flatten)]
        subject: SubjectArg,
        /// The record id.
        #[arg(long)]
        record: String,
        /// Read the payload from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Why (recorded in the audit trail; no personal data).
        #[arg(long)]
        reason: String,
    },
    /// Delete one record (refused while a hold or minimum retention protects it).
    Delete {
        #[command(flatten)]
        subject: SubjectArg,
        /// The record id.
        #[arg(long)]
        record: String,
    },
    /// List a subject's records (metadata only).
    List {
        #[command(flatten)]
        subject: SubjectArg,
    },
    /// Counts of subjects and records, nothing decrypted.
    Stats {
        /// Only counts that do not single anyone out: per category, basis, purpose and month
        /// of collection, with counts below the policy's `[anonymisation] min_cell` (default 5)
        /// withheld, and a second count of a group where one alone would be.
        #[arg(long)]
        anonymous: bool,
    },
    /// Check the whole vault; exit 0 only when it is whole.
    Verify,
    /// The auditor's report: the policy in words, what the vault holds and when it falls due,
    /// erasures by cause, requests against their deadlines, holds, disclosures and the
    /// verification, with no personal data (counts below the policy's `[anonymisation]
    /// min_cell` withheld). Written as one self-contained HTML page (--out), or printed as
    /// JSON (--json). Runs a full verify.
    Report {
        /// Write the HTML page here (replaced if it exists).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The start of the period: RFC 3339 or YYYY-MM-DD (midnight UTC). Default: as far back
        /// as the audit trail goes.
        #[arg(long)]
        since: Option<String>,
        /// The end of the period (exclusive), as --since. Default: now.
        #[arg(long)]
        until: Option<String>,
    },
    /// Erase a subject, one of its categories, or one record, by destroying keys.
    Erase {
        #[command(flatten)]
        subject: SubjectArg,
        /// Only this category.
        #[arg(long, conflicts_with = "record")]
        category: Option<String>,
        /// Only this record.
        #[arg(long)]
        record: Option<String>,
    },
    /// Retention policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Legal holds.
    #[command(subcommand)]
    Hold(HoldCmd),
    /// Record a subject event that retention counts from.
    Event {
        #[command(flatten)]
        subject: SubjectArg,
        /// account-closed or contract-ended.
        #[arg(long)]
        kind: String,
        /// When (RFC 3339 or YYYY-MM-DD; default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Destroy what is due; reclaim space; prune the audit trail. Reports, per category, what
    /// was destroyed and why, and what was kept and why.
    Sweep {
        /// Report what would be destroyed, destroying nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: what a sweep at this later time would destroy (RFC 3339 or
        /// YYYY-MM-DD, midnight UTC), if nothing changes meanwhile.
        #[arg(long, requires = "dry_run")]
        at: Option<String>,
    },
    /// Replace the root passphrase (new one from PDVAULT_NEW_PASSPHRASE,
    /// --new-passphrase-file, or a prompt).
    RotateKey {
        /// Read the new passphrase from this file.
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
        /// The fewest characters the new passphrase may have.
        #[arg(long, default_value_t = pdvault::DEFAULT_MIN_PASSPHRASE_LEN)]
        min_passphrase_len: usize,
    },
    /// Copy the vault into another store (a directory into PostgreSQL, or back), with the same
    /// key-source options, then open and verify the copy. The source stays as it was, holding
    /// everything, unless --retire-source destroys its epoch keys once the copy verified.
    Migrate {
        /// Into a new vault directory.
        #[arg(
            long,
            conflicts_with = "to_store",
            required_unless_present = "to_store"
        )]
        to_dir: Option<PathBuf>,
        /// Into a PostgreSQL database that holds no vault (a postgres:// URL).
        #[arg(long)]
        to_store: Option<String>,
        /// The PostgreSQL schema of the copy.
        #[arg(long, requires = "to_store")]
        to_schema: Option<String>,
        /// Once the copy verified, destroy the source's epoch keys: every copy of the source
        /// (its files, a database's history) is then unreadable, as far as its key source
        /// destroys. Irreversible.
        #[arg(long)]
        retire_source: bool,
    },
    /// Write a consistent copy of the vault.
    Backup {
        /// The new directory.
        #[arg(long)]
        out: PathBuf,
        /// Have the sweep destroy the backup's key after this span ("30 days"), so that it can
        /// never be restored after it. Needs the epoch keys on a token (--pkcs11-module).
        #[arg(long)]
        expires: Option<String>,
    },
    /// The erasure ledger.
    #[command(subcommand)]
    Ledger(LedgerCmd),
    /// Restore a backup into a new directory, re-applying the current erasure ledger.
    ///
    /// The ledger is required: it is checked against the backup (same vault, authentic, not
    /// older than the backup) and every erasure in it is re-applied, so nothing erased comes
    /// back.
    Restore {
        /// The backup.
        #[arg(long)]
        from: PathBuf,
        /// The new vault directory.
        #[arg(long)]
        to: PathBuf,
        /// The current erasure ledger of the live vault (from `ledger export`).
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Restore without any ledger: EVERYTHING ERASED AFTER THE BACKUP WAS TAKEN IS READABLE
        /// AGAIN. Only when the ledger is lost for good and bringing the data back is lawful.
        #[arg(long, conflicts_with = "ledger")]
        without_ledger_bring_erased_data_back: bool,
    },
    /// Export everything held about a subject as JSON.
    Export {
        #[command(flatten)]
        subject: SubjectArg,
        /// Write to this new file (mode 0600) instead of stdout; an existing file is refused.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the --out file if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Export the records of some categories across every subject for analysis, pseudonymised:
    /// JSON lines with a pseudonym per subject fresh to this export, no record ids, the month
    /// of collection only, and JSON-object payloads without the policy's `[anonymisation]
    /// drop_fields` (other payloads are left out). Reads for --purpose under the usual
    /// purpose, consent and restriction rules.
    ExportAnalysis {
        /// A category to export (repeatable).
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
        /// The purpose of the analysis (not storage, legal-claims or subject-access).
        #[arg(long)]
        purpose: String,
        /// Write to this new file (mode 0600) instead of stdout; an existing file is refused.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the --out file if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Credentials, stored only as Argon2id hashes.
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Import an export document.
    Import {
        /// The document.
        #[arg(long)]
        file: PathBuf,
    },
    /// Record the subject's objection to processing for a purpose: records on legitimate
    /// interests or a public task are not read for it until lifted.
    Object {
        #[command(flatten)]
        subject: SubjectArg,
        /// The purpose objected to.
        #[arg(long)]
        purpose: String,
        /// Lift the objection instead (compelling legitimate grounds).
        #[arg(long)]
        lift: bool,
    },
    /// Set what the vault knows of a subject's age; marking a minor does what the policy's
    /// [minors] says (erase at once, or require a guardian's consent).
    Age {
        #[command(flatten)]
        subject: SubjectArg,
        /// minor, adult or unknown.
        #[arg(long)]
        status: String,
    },
    /// Restrict processing of a subject or one category.
    Restrict {
        #[command(flatten)]
        subject: SubjectArg,
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
    },
    /// Lift a restriction.
    Unrestrict {
        #[command(flatten)]
        subject: SubjectArg,
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
    },
    /// Consent.
    #[command(subcommand)]
    Consent(ConsentCmd),
    /// Record a disclosure to a third party or authority.
    Disclose {
        #[command(flatten)]
        subject: SubjectArg,
        /// Who received the data.
        #[arg(long)]
        recipient: String,
        /// For what purpose.
        #[arg(long)]
        purpose: String,
        /// Which categories (repeatable).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// The legal ground (e.g. a subpoena reference).
        #[arg(long)]
        ground: Option<String>,
    },
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Data-subject requests.
    #[command(subcommand)]
    Request(RequestCmd),
}

/// Credential commands. The secret comes from --secret-file or stdin (a no-echo prompt on a
/// terminal), never from the command line; one trailing newline is ignored.
#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Store a credential (an Argon2id hash of the secret); prints its record id.
    Set {
        #[command(flatten)]
        subject: SubjectArg,
        /// A purpose the credential serves (repeatable).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// The legal basis. Default: contract.
        #[arg(long)]
        basis: Option<String>,
        /// Where it came from (no personal data).
        #[arg(long)]
        source: Option<String>,
        /// Read the secret from this file instead of stdin.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Check a secret against a credential: exit 0 when it matches, 1 when it does not.
    Verify {
        #[command(flatten)]
        subject: SubjectArg,
        /// The credential's record id.
        #[arg(long)]
        record: String,
        /// Read the secret from this file instead of stdin.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

/// Policy commands.
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Print the vault's policy.
    Show,
    /// Validate a policy file (needs no vault).
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Store a policy in the vault and reschedule every record.
    Set {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Hold commands.
#[derive(Subcommand, Debug)]
pub enum HoldCmd {
    /// Place a hold; prints its id.
    Place {
        #[command(flatten)]
        subject: SubjectArg,
        /// Only this category.
        #[arg(long, conflicts_with = "record")]
        category: Option<String>,
        /// Only this record.
        #[arg(long)]
        record: Option<String>,
        /// legal-obligation, dispute, security-investigation, authority-request or other.
        #[arg(long)]
        reason: String,
        /// A reference such as a case number.
        #[arg(long)]
        reference: Option<String>,
        /// When the hold ends by itself (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
    },
    /// Release a hold.
    Release {
        /// The hold id.
        hold: String,
    },
    /// List holds.
    List {
        /// Only this subject's.
        #[arg(long)]
        subject: Option<String>,
    },
}

/// Ledger commands.
#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// Write the erasure ledger (JSON, no personal data).
    Export {
        /// The file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Consent commands.
#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Grant consent for a purpose.
    Grant {
        #[command(flatten)]
        subject: SubjectArg,
        /// The purpose.
        #[arg(long)]
        purpose: String,
        /// The privacy-policy version consented to.
        #[arg(long)]
        policy_version: Option<String>,
        /// A guardian's consent, for a minor.
        #[arg(long)]
        guardian: bool,
    },
    /// Withdraw consent for a purpose.
    Withdraw {
        #[command(flatten)]
        subject: SubjectArg,
        /// The purpose.
        #[arg(long)]
        purpose: String,
        /// Also erase the records that rest on this consent alone.
        #[arg(long, conflicts_with = "guardian")]
        erase: bool,
        /// A guardian's consent, for a minor.
        #[arg(long)]
        guardian: bool,
    },
}

/// Audit commands.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the chain; exit 0 when intact, else name the first bad entry.
    Verify,
    /// Print entries.
    Show {
        /// Only this subject's.
        #[arg(long)]
        subject: Option<String>,
        /// Only since this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
    },
}

/// Request commands.
#[derive(Subcommand, Debug)]
pub enum RequestCmd {
    /// Record a request received now; its due date comes from the policy.
    Open {
        #[command(flatten)]
        subject: SubjectArg,
        /// access, rectification, erasure, restriction, portability, objection, or a custom kind
        /// the policy declares (custom_requests).
        #[arg(long)]
        kind: String,
    },
    /// Record that the requester's identity was verified (by whom, how); under a policy that
    /// requires it (verify_identity), a request is answered only once verified.
    Verify {
        /// The request id.
        #[arg(long)]
        id: String,
        /// Who verified.
        #[arg(long)]
        by: String,
        /// How (free text, e.g. "passport seen at the counter").
        #[arg(long)]
        method: String,
    },
    /// List requests.
    List {
        /// Only open requests past their due date.
        #[arg(long)]
        overdue: bool,
    },
    /// Close a request as answered (refused while an identity the policy requires verified is
    /// not).
    Close {
        /// The request id.
        id: String,
    },
}
