//! Fuzz target `crl`: the body is `certvigil_fuzz::crl` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::crl(data));
