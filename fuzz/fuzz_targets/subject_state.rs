//! Decodes arbitrary bytes with pdvault's `subject_state` decoder: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pdvault::__fuzz::subject_state(data);
});
