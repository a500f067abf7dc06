//! Feeds arbitrary bytes to the token parser: splitting, base64url, the strict JSON
//! parse (typed slots and display objects, which must agree), the header rules and the
//! claim typing. None of it may panic, and a token accepted by the header rules must
//! have come through the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if clerk_jwt::__fuzz::parse_and_check_header(text) {
            assert!(text.len() <= clerk_jwt::MAX_TOKEN_BYTES);
        }
        let _ = clerk_jwt::inspect(text);
    }
});
