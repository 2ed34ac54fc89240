//! Fuzz target `config`: the body is `certvigil_fuzz::config` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::config(data));
