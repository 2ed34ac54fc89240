//! Fuzz target `crl_judge`: the body is `certvigil_fuzz::crl_judge` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::crl_judge(data));
