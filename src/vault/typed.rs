//! The typed layer over the vault's byte API: values of any `serde` type stored as JSON
//! payloads, and read back into that type. It owns only the encoding; every rule (purpose,
//! retention, restriction, audit) is the byte API's, which each method calls once.

use std::ops::ControlFlow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Vault;
use crate::error::{InputError, Result};
use crate::ids::{RecordId, SubjectId};
use crate::model::{Purpose, RecordInfo, RecordMeta};

/// A value's JSON payload.
fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| InputError::Encoding(crate::error::json_error(&e)).into())
}

/// A payload's value; an error names the encoding problem, never the payload.
fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    serde_json::from_slice(payload)
        .map_err(|e| InputError::Encoding(crate::error::json_error(&e)).into())
}

impl Vault {
    /// Stores a typed value (serialized as JSON) as a record ([`Vault::put`]).
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        subject: &SubjectId,
        meta: RecordMeta,
        value: &T,
    ) -> Result<RecordId> {
        self.operation("put_value", || self.put(subject, meta, &encode(value)?))
    }

    /// Stores typed values in one commit ([`Vault::put_many`]): all or none.
    pub fn put_many_values<'a, T, I>(&self, items: I) -> Result<Vec<RecordId>>
    where
        T: Serialize + ?Sized + 'a,
        I: IntoIterator<Item = (&'a SubjectId, RecordMeta, &'a T)>,
    {
        self.operation("put_many_values", || {
            let (mut records, mut payloads) = (Vec::new(), Vec::new());
            for (subject, meta, value) in items {
                payloads.push(encode(value)?);
                records.push((subject, meta));
            }
            self.put_many(
                records
                    .into_iter()
                    .zip(&payloads)
                    .map(|((s, m), p)| (s, m, p.as_slice())),
            )
        })
    }

    /// Reads a typed value stored with [`Vault::put_value`] ([`Vault::get`]).
    pub fn get_value<T: DeserializeOwned>(
        &self,
        subject: &SubjectId,
        record: RecordId,
        purpose: &Purpose,
    ) -> Result<T> {
        self.operation("get_value", || {
            decode(&self.get(subject, record, purpose)?.payload)
        })
    }

    /// Replaces a record's value ([`Vault::update`]).
    pub fn update_value<T: Serialize + ?Sized>(
        &self,
        subject: &SubjectId,
        record: RecordId,
        value: &T,
    ) -> Result<()> {
        self.operation("update_value", || {
            self.update(subject, record, &encode(value)?)
        })
    }

    /// Reads every record of the subject that `purpose` may read, as typed values
    /// ([`Vault::read_all`]); fails if one of them is not a `T`.
    pub fn read_all_values<T: DeserializeOwned>(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
    ) -> Result<Vec<(RecordInfo, T)>> {
        self.operation("read_all_values", || {
            let mut out = Vec::new();
            self.read_each_value(subject, purpose, |info, value| {
                out.push((info, value));
                ControlFlow::Continue(())
            })?;
            Ok(out)
        })
    }

    /// Hands `each` the subject's records that `purpose` may read, one at a time, as typed
    /// values ([`Vault::read_each`]): the scan stops when `each` breaks, or at the first record
    /// that is not a `T` (that error is returned). Returns how many records `each` was handed.
    pub fn read_each_value<T: DeserializeOwned>(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        mut each: impl FnMut(RecordInfo, T) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.operation("read_each_value", || {
            let mut failed = None;
            let mut handed = 0;
            self.read_each(subject, purpose, |record| match decode(&record.payload) {
                Ok(value) => {
                    handed += 1;
                    each(record.info, value)
                }
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            })?;
            match failed {
                Some(e) => Err(e),
                None => Ok(handed),
            }
        })
    }
}
