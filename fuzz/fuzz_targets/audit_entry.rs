//! Decodes arbitrary bytes with pdvault's `audit_entry` decoder: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pdvault::__fuzz::audit_entry(data);
});
