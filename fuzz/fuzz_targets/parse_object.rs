//! Fuzz target `parse_object`: the body is `certvigil_fuzz::parse_object` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::parse_object(data));
