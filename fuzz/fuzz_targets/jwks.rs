//! Feeds arbitrary bytes to the JWKS parser that `KeySet` and the remote JWKS cache
//! both use (`KeySet::from_jwks_json`): JSON, the key filter, base64url of `n` and `e`,
//! the component checks and the RSA key parse. None of it may panic; an accepted set
//! is non-empty, every `kid` finds its own key, every key is 2048..=8192 bits, and an
//! error's message and source chain render.
#![no_main]

use std::error::Error as _;

use clerk_jwt::{KeySet, MAX_RSA_BITS, MIN_RSA_BITS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match KeySet::from_jwks_json(data) {
        Ok(set) => {
            assert!(!set.is_empty());
            let kids = set.kids();
            assert_eq!(kids.len(), set.len());
            assert!(kids.is_sorted());
            for kid in kids {
                let key = set.get(kid).expect("a listed kid finds its key");
                assert_eq!(key.kid(), Some(kid));
                assert!((MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key.bits()));
            }
            let _ = format!("{set:?}");
        }
        Err(error) => {
            let mut text = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            assert!(!text.is_empty());
        }
    }
});
