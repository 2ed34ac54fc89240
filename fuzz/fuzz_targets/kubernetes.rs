//! Fuzz target `kubernetes`: the body is `certvigil_fuzz::kubernetes` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::kubernetes(data));
