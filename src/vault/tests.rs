//! In-crate tests of the vault that reach the stored bytes through the storage layer.
