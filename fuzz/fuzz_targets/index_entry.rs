//! Decodes arbitrary bytes with pdvault's `index_entry` decoder: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pdvault::__fuzz::index_entry(data);
});
