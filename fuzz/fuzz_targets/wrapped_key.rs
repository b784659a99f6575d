//! Decodes arbitrary bytes with pdvault's `wrapped_key` decoder: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pdvault::__fuzz::wrapped_key(data);
});
