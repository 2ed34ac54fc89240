//! Fuzz target `http_api`: the body is `certvigil_fuzz::http_api` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::http_api(data));
