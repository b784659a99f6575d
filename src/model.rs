//! The data model: typed categories, legal bases, purposes and the metadata of a record.
//!
//! This module owns names and validation only; it knows nothing of keys or storage.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InputError;
use crate::ids::RecordId;

/// The longest payload accepted, in bytes (16 MiB).
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

macro_rules! builtin_categories {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $fides:expr;)*) => {
        /// A data category. Built-ins cover every category of the seed policies; hosts add their
        /// own with [`Category::custom`]. Each has a stable kebab-case name, used by the CLI, the
        /// policy files and exports.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Category {
            $($(#[$doc])* $variant,)*
            /// A host-defined category, named in kebab-case.
            Custom(String),
        }

        impl Category {
            /// Every built-in category.
            pub const BUILTIN: &'static [Category] = &[$(Category::$variant),*];

            /// The stable kebab-case name.
            pub fn name(&self) -> &str {
                match self {
                    $(Category::$variant => $name,)*
                    Category::Custom(n) => n,
                }
            }

            /// The name, borrowed for a built-in category (no allocation), owned for a custom one.
            pub(crate) fn name_owned(&self) -> std::borrow::Cow<'static, str> {
                match self {
                    $(Category::$variant => std::borrow::Cow::Borrowed($name),)*
                    Category::Custom(n) => std::borrow::Cow::Owned(n.clone()),
                }
            }

            /// The fideslang data-category key, where one fits: a key of fideslang 3.1.4's default
            /// taxonomy (`tests/fideslang.rs` checks them against its list), `None` for a custom
            /// category and for a built-in the taxonomy has no key for.
            pub fn fideslang_key(&self) -> Option<&'static str> {
                match self {
                    $(Category::$variant => $fides,)*
                    Category::Custom(_) => None,
                }
            }

            fn builtin(name: &str) -> Option<Category> {
                match name {
                    $($name => Some(Category::$variant),)*
                    _ => None,
                }
            }

            /// The built-in category named by `name`'s bytes, found without checking them as
            /// UTF-8 first (a stored record's category is decoded at every read).
            fn builtin_bytes(name: &[u8]) -> Option<Category> {
                $(if name == $name.as_bytes() {
                    return Some(Category::$variant);
                })*
                None
            }
        }
    };
}

builtin_categories! {
    /// Account and registration data: name, email, phone, address, settings. A password is a
    /// [`Category::Credential`].
    Account => "account", Some("user.account");
    /// Profile data: username, picture, bio, interests.
    ///
    /// fideslang: `user.demographic.profile` ("profile or preference information about the data
    /// subject") is the one key for a profile as a whole. `user.content.public` is content the
    /// person published, which a profile need not be; `user.account.username` and
    /// `user.content.self_image` cover one field each.
    Profile => "profile", Some("user.demographic.profile");
    /// Contact details.
    Contact => "contact", Some("user.contact");
    /// Usage data: page views, navigation, clicks, searches.
    ///
    /// fideslang: `user.behavior` ("observed behavior"), the parent of browsing and search
    /// history, since the category holds both.
    Usage => "usage", Some("user.behavior");
    /// Technical and device data: browser, OS, device information.
    Technical => "technical", Some("user.device");
    /// Access logs: IP addresses and system logs of access.
    ///
    /// fideslang: `user.device.ip_address`, the field that makes an access log personal data;
    /// `user.device` is already `technical`'s.
    AccessLog => "access-log", Some("user.device.ip_address");
    /// Communication: correspondence, support tickets, chat histories.
    Communication => "communication", Some("user.content.private");
    /// Transactions: purchase history.
    Transaction => "transaction", Some("user.behavior.purchase_history");
    /// Payment data: payment identifiers, billing details.
    ///
    /// fideslang: `user.payment` ("payment data related to user"), not the broader
    /// `user.financial` (financial data and history, bank accounts, credit cards).
    Payment => "payment", Some("user.payment");
    /// Preferences and consents: marketing and notification settings.
    Preference => "preference", Some("user.privacy_preferences");
    /// Contract and withdrawal records.
    ///
    /// fideslang: none; the taxonomy has no key for contracts or withdrawals.
    Contract => "contract", None;
    /// Complaint and dispute records.
    ///
    /// fideslang: none; the taxonomy has no key for complaints or disputes.
    Complaint => "complaint", None;
    /// Cookies: their identifiers and the data stored in them.
    ///
    /// fideslang: `user.device.cookie` ("data related to a subject, stored within a cookie"), of
    /// which `user.device.cookie_id` is the identifier alone.
    Cookie => "cookie", Some("user.device.cookie");
    /// Data of a minor.
    Minor => "minor", Some("user.childrens");
    /// Credentials: passwords and other secrets a subject authenticates with. Stored only as an
    /// Argon2id hash, written with [`Vault::set_credential`](crate::Vault::set_credential) and
    /// checked with [`Vault::verify_credential`](crate::Vault::verify_credential); no read or
    /// export returns the value or its hash.
    ///
    /// fideslang: `user.authorization.credentials`, the parent of `user.authorization.password`:
    /// the category holds passwords, PINs and recovery codes alike.
    Credential => "credential", Some("user.authorization.credentials");
}

impl Category {
    /// A host-defined category. The name must be kebab-case (`a-z`, `0-9`, `-`, starting with a
    /// letter, at most 64 bytes); a built-in name gives the built-in category.
    pub fn custom(name: &str) -> Result<Category, InputError> {
        name.parse()
    }

    /// Whether this is a built-in category.
    pub fn is_builtin(&self) -> bool {
        !matches!(self, Category::Custom(_))
    }
}

pub(crate) fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Category {
    /// The category named by stored bytes, if they name one (what reading a string and parsing
    /// it accept): a built-in name is matched by its bytes, any other checked as text first.
    pub(crate) fn from_stored(name: &[u8]) -> Option<Category> {
        Category::builtin_bytes(name).or_else(|| std::str::from_utf8(name).ok()?.parse().ok())
    }
}

impl FromStr for Category {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(c) = Category::builtin(s) {
            return Ok(c);
        }
        if is_kebab(s) {
            Ok(Category::Custom(s.to_owned()))
        } else {
            Err(InputError::Category(s.chars().take(80).collect()))
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Category({})", self.name())
    }
}

impl Serialize for Category {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Parses the name where it lies: a built-in category allocates nothing.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Category;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a kebab-case category name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Category, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

/// The legal basis a record is processed on.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum LegalBasis {
    /// The subject's consent (withdrawable at any time).
    Consent,
    /// Performance of a contract with the subject. The default.
    #[default]
    Contract,
    /// A legal obligation of the controller.
    LegalObligation,
    /// Legitimate interests of the controller or a third party.
    LegitimateInterests,
    /// Vital interests of the subject or another person.
    VitalInterests,
    /// A task in the public interest.
    PublicTask,
}

impl LegalBasis {
    /// Every legal basis.
    pub const ALL: [LegalBasis; 6] = [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::LegitimateInterests,
        LegalBasis::VitalInterests,
        LegalBasis::PublicTask,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal-obligation",
            LegalBasis::LegitimateInterests => "legitimate-interests",
            LegalBasis::VitalInterests => "vital-interests",
            LegalBasis::PublicTask => "public-task",
        }
    }
}

impl FromStr for LegalBasis {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LegalBasis::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| InputError::LegalBasis(s.chars().take(80).collect()))
    }
}

impl fmt::Display for LegalBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A purpose of processing, named by the host (for example `billing`, `marketing`).
///
/// Three purposes have a fixed meaning for restriction of processing: [`Purpose::STORAGE`],
/// [`Purpose::LEGAL_CLAIMS`] and [`Purpose::SUBJECT_ACCESS`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Purpose(SharedText);

/// Serialized as its name, borrowed (`serde(into)` would clone it per serialization).
impl Serialize for Purpose {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Purpose {
    /// Keeping the data, nothing more; allowed under restriction.
    pub const STORAGE: Purpose = Purpose(SharedText::Static("storage"));
    /// Establishing, exercising or defending legal claims; allowed under restriction.
    pub const LEGAL_CLAIMS: Purpose = Purpose(SharedText::Static("legal-claims"));
    /// Answering the subject's own access request; allowed under restriction and without consent.
    pub const SUBJECT_ACCESS: Purpose = Purpose(SharedText::Static("subject-access"));

    /// Validates a purpose name: 1 to 64 characters, no control characters.
    pub fn new(name: impl Into<String>) -> Result<Self, InputError> {
        let name = name.into();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(InputError::Purpose(name.chars().take(80).collect()));
        }
        Ok(Purpose(SharedText::from(name)))
    }

    /// The name, shared with this purpose (a clone that copies no text).
    pub(crate) fn shared_name(&self) -> SharedText {
        self.0.clone()
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this purpose is allowed while processing is restricted.
    pub fn allowed_under_restriction(&self) -> bool {
        [Self::STORAGE, Self::LEGAL_CLAIMS, Self::SUBJECT_ACCESS].contains(self)
    }
}

impl TryFrom<String> for Purpose {
    type Error = InputError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Purpose::new(s)
    }
}

impl From<Purpose> for String {
    fn from(p: Purpose) -> String {
        p.0.to_string()
    }
}

impl FromStr for Purpose {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::new(s)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Purpose({})", self.as_str())
    }
}

/// Text that clones without copying: a `'static` string, or one on the heap shared by reference
/// count. Compared, ordered and hashed as its text (a purpose's name, an audit entry's note:
/// cloned at every read).
#[derive(Clone)]
pub(crate) enum SharedText {
    Static(&'static str),
    Shared(std::sync::Arc<str>),
}

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            SharedText::Static(s) => s,
            SharedText::Shared(s) => s,
        }
    }
}

impl From<String> for SharedText {
    fn from(s: String) -> Self {
        SharedText::Shared(s.into())
    }
}

impl From<&str> for SharedText {
    fn from(s: &str) -> Self {
        SharedText::Shared(s.into())
    }
}

impl From<&Purpose> for SharedText {
    fn from(p: &Purpose) -> Self {
        p.shared_name()
    }
}

impl PartialEq for SharedText {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SharedText {}

impl PartialOrd for SharedText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::hash::Hash for SharedText {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl fmt::Debug for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Validates a short free-text field (source, actor, reason, reference, recipient).
pub(crate) fn check_text(field: &'static str, s: &str) -> Result<(), InputError> {
    if s.is_empty() {
        return Err(InputError::Field {
            field,
            why: "empty",
        });
    }
    if s.len() > 256 {
        return Err(InputError::Field {
            field,
            why: "longer than 256 bytes",
        });
    }
    if s.chars().any(char::is_control) {
        return Err(InputError::Field {
            field,
            why: "contains control characters",
        });
    }
    Ok(())
}

/// The metadata of a record: what it is, why it is held and on what basis. Stored unencrypted
/// (but authenticated with the payload) so that listing and retention need no decryption; it
/// must therefore not contain personal data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The data category.
    pub category: Category,
    /// The purposes the record may be read for.
    pub purposes: Vec<Purpose>,
    /// The legal basis of processing.
    pub basis: LegalBasis,
    /// Where the data came from (for example `signup-form`). Not personal data.
    pub source: Option<String>,
    /// When the data was collected. Unless set with [`RecordMeta::collected_at`], the vault sets
    /// it when the record is written: its clock's time then (a rectification keeps the record's).
    #[serde(with = "crate::storage::timestamp")]
    pub collected_at: Timestamp,
    /// Whether `collected_at` is still the placeholder of [`RecordMeta::new`], for the vault to
    /// set at the write.
    #[serde(skip)]
    pub(crate) collected_at_unset: bool,
}

impl PartialEq for RecordMeta {
    fn eq(&self, other: &Self) -> bool {
        self.category == other.category
            && self.purposes == other.purposes
            && self.basis == other.basis
            && self.source == other.source
            && self.collected_at == other.collected_at
    }
}

impl Eq for RecordMeta {}

impl RecordMeta {
    /// Metadata for a record of `category`, with no purposes, no source, collected when the vault
    /// writes it (by the vault's clock), and the legal basis [`LegalBasis::Contract`] unless
    /// [`RecordMeta::basis`] states another. State the basis for anything not processed under a
    /// contract: under a policy with `[bases]`, a record whose basis the policy does not allow
    /// for its category is refused ([`InputError::BasisNotAllowed`]), so a forgotten basis is
    /// caught at the write rather than recorded wrongly.
    pub fn new(category: Category) -> Self {
        RecordMeta {
            category,
            purposes: Vec::new(),
            basis: LegalBasis::default(),
            source: None,
            collected_at: Timestamp::now(),
            collected_at_unset: true,
        }
    }

    /// Fills in the collection time the caller left to the vault.
    pub(crate) fn collected_by_default(mut self, at: Timestamp) -> Self {
        if self.collected_at_unset {
            self.collected_at = at;
            self.collected_at_unset = false;
        }
        self
    }

    /// Adds a purpose.
    pub fn purpose(mut self, purpose: Purpose) -> Self {
        if !self.purposes.contains(&purpose) {
            self.purposes.push(purpose);
        }
        self
    }

    /// Sets the legal basis.
    pub fn basis(mut self, basis: LegalBasis) -> Self {
        self.basis = basis;
        self
    }

    /// Sets the source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the collection time (for data collected before it is written to the vault: its
    /// retention counts from this time). A time after the vault clock's now is refused by every
    /// write ([`InputError::CollectedInFuture`]).
    pub fn collected_at(mut self, at: Timestamp) -> Self {
        self.collected_at = at;
        self.collected_at_unset = false;
        self
    }

    /// Checks the metadata as every write takes it: `now` is the vault clock's time, which a
    /// collection time set by the caller must not be after.
    pub(crate) fn validate(&self, now: Timestamp) -> Result<(), InputError> {
        if !self.collected_at_unset && self.collected_at > now {
            return Err(InputError::CollectedInFuture {
                collected_at: self.collected_at,
                now,
            });
        }
        if let Some(s) = &self.source {
            check_text("source", s)?;
        }
        if self.purposes.len() > 64 {
            return Err(InputError::Field {
                field: "purposes",
                why: "more than 64",
            });
        }
        Ok(())
    }
}

/// A record's metadata as listed, with its id and version. Nothing here is decrypted.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RecordInfo {
    /// The record id.
    pub record: RecordId,
    /// The metadata.
    #[serde(flatten)]
    pub meta: RecordMeta,
    /// The version: 1 when written, incremented by every update.
    pub version: u32,
    /// When the record was last written.
    pub updated_at: Timestamp,
}

/// A decrypted record.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// The id, metadata and version.
    pub info: RecordInfo,
    /// The payload.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("info", &self.info)
            .field("payload", &Redacted(self.payload.len()))
            .finish()
    }
}

/// Stands in a `Debug` for personal data (a payload, an identifier, free text about a person):
/// prints its length in bytes only.
pub(crate) struct Redacted(pub(crate) usize);

impl Redacted {
    /// The stand-in for an optional text.
    pub(crate) fn of_option(s: &Option<String>) -> Option<Redacted> {
        s.as_ref().map(|s| Redacted(s.len()))
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_roundtrip_and_are_kebab() {
        for c in Category::BUILTIN {
            assert!(is_kebab(c.name()), "{}", c.name());
            assert_eq!(&c.name().parse::<Category>().unwrap(), c);
            assert_eq!(Category::from_stored(c.name().as_bytes()).as_ref(), Some(c));
        }
        // Stored bytes are read as parsing their text reads them.
        assert_eq!(
            Category::from_stored(b"loyalty-points"),
            Some(Category::Custom("loyalty-points".into()))
        );
        assert_eq!(Category::from_stored(b"Loyalty"), None);
        assert_eq!(Category::from_stored(b"contact\xff"), None);
        assert_eq!(Category::from_stored(b"\xff\xfe"), None);
        assert_eq!(Category::from_stored(b""), None);
        assert_eq!(Category::Contact.fideslang_key(), Some("user.contact"));
        assert_eq!(Category::Payment.fideslang_key(), Some("user.payment"));
        assert_eq!(
            Category::Custom("loyalty-points".into()).fideslang_key(),
            None
        );
        assert_eq!(
            Category::custom("loyalty-points").unwrap(),
            Category::Custom("loyalty-points".into())
        );
        assert!(Category::custom("Loyalty").is_err());
        assert!(Category::custom("a--b").is_err());
    }

    #[test]
    fn bases_roundtrip() {
        for b in LegalBasis::ALL {
            assert_eq!(b.name().parse::<LegalBasis>().unwrap(), b);
            assert_eq!(
                serde_json::to_string(&b).unwrap(),
                format!("\"{}\"", b.name())
            );
        }
    }

    #[test]
    fn record_debug_hides_payload() {
        let r = Record {
            info: RecordInfo {
                record: RecordId([0; 16]),
                meta: RecordMeta::new(Category::Account),
                version: 1,
                updated_at: Timestamp::UNIX_EPOCH,
            },
            payload: b"secret-marker".to_vec(),
        };
        assert!(!format!("{r:?}").contains("secret-marker"));
    }
}
