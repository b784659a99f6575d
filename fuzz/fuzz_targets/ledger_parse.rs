//! Parses arbitrary bytes as an erasure ledger document (the JSON of `Vault::export_ledger`):
//! it must never panic, and a document that parses serializes and parses again to the same
//! document (vault id, entries and authentication code).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pdvault::Vault;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let Ok(ledger) = Vault::parse_ledger(&mut input) else {
        return;
    };
    let text = serde_json::to_vec(&ledger).expect("a parsed ledger serializes");
    let again = Vault::parse_ledger(&mut text.as_slice()).expect("a serialized ledger parses");
    assert_eq!(again, ledger);
    let mut pretty = Vec::new();
    ledger
        .write_json(&mut pretty)
        .expect("a parsed ledger writes");
    let again = Vault::parse_ledger(&mut pretty.as_slice()).expect("a written ledger parses");
    assert_eq!(again, ledger);
});
