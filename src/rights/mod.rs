//! Data-subject rights: purpose-bound access, restriction, consent, export and import,
//! disclosures and requests. This module decides who may read what; it never destroys anything
//! itself (erasure goes through [`crate::erasure`]).

pub mod access;
mod consent;
pub mod export;
mod requests;

pub use consent::Withdrawal;
pub use requests::{Disclosure, IdentityVerification, Request, RequestFilter};
