//! `cargo fuzz run endpoint_server`: see fuzz/README.md, and fuzz/harness.rs for the harness.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::endpoint_server(data));
