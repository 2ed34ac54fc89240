//! Fuzz target `acme`: the body is `certvigil_fuzz::acme` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::acme(data));
