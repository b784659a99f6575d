//! Decodes arbitrary bytes with pdvault's `key_layout` decoder: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pdvault::__fuzz::key_layout(data);
});
