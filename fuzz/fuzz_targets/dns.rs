//! Fuzz target `dns`: the body is `certvigil_fuzz::dns` (fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certvigil_fuzz::dns(data));
