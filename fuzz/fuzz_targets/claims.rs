//! Feeds arbitrary bytes to the claims payload scanner (the verifier's hot path) and to
//! the serde_json parser it replaces: when the scanner accepts, both must read the same
//! slots and the same typed claims; when serde_json accepts a payload of ordinary depth,
//! the scanner must too. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        clerk_jwt::__fuzz::claims_agree(text);
    }
});
