//! Fuzz target `ocsp`: the body is `certvigil_fuzz::ocsp` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::ocsp(data));
