//! Feeds arbitrary bytes to instant-client's readers of outside JSON: the transaction
//! a browser sends for forwarding (`Transaction::from_json`, and the public
//! `Deserialize` impls of `EntityId`, `LinkTarget` and `UpdateOptions` it shares), the
//! `User` InstantDB answers with, and the error `type` names it answers with
//! (`ErrorType::parse`). None of it may panic. An accepted transaction has at most
//! `MAX_STEPS` steps and round-trips: its serialization parses back to an equal
//! transaction and serializes to the same bytes. A refusal is an `InvalidInput` for
//! `POST /admin/transact` whose message quotes nothing from the body (no `"` other
//! than the `"…"` standing for an elided value).
#![no_main]

use instant_client::{EntityId, Error, ErrorType, LinkTarget, Transaction, UpdateOptions, User};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Transaction::from_json(data) {
        Ok(tx) => {
            assert!(tx.len() <= Transaction::MAX_STEPS);
            let body = serde_json::to_vec(&tx).expect("a transaction serializes");
            let again = Transaction::from_json(&body).expect("a serialized transaction parses");
            assert_eq!(again, tx, "the round trip changed the transaction");
            let body_again = serde_json::to_vec(&again).expect("a transaction serializes");
            assert_eq!(body_again, body, "serialization is not stable");
        }
        Err(error) => {
            let Error::InvalidInput { detail, .. } = &error else {
                panic!("not an input error: {error:?}");
            };
            assert!(!detail.is_empty());
            assert!(
                !detail.replace("\"…\"", "").contains('"'),
                "the message quotes the body: {detail}"
            );
            assert!(
                error.to_string().contains("POST /admin/transact"),
                "{error}"
            );
        }
    }

    // The pieces on their own, as another crate may read them.
    if let Ok(id) = serde_json::from_slice::<EntityId>(data) {
        let body = serde_json::to_vec(&id).expect("an entity id serializes");
        let again = serde_json::from_slice::<EntityId>(&body).expect("it parses back");
        assert_eq!(again, id);
    }
    if let Ok(target) = serde_json::from_slice::<LinkTarget>(data) {
        let body = serde_json::to_vec(&target).expect("a link target serializes");
        let again = serde_json::from_slice::<LinkTarget>(&body).expect("it parses back");
        assert_eq!(again, target);
    }
    if let Ok(opts) = serde_json::from_slice::<UpdateOptions>(data) {
        let body = serde_json::to_vec(&opts).expect("options serialize");
        let again = serde_json::from_slice::<UpdateOptions>(&body).expect("they parse back");
        assert_eq!(again, opts);
    }
    if let Ok(mut user) = serde_json::from_slice::<User>(data) {
        user.refresh_token = None; // read, never written back
        let body = serde_json::to_vec(&user).expect("a user serializes");
        let again = serde_json::from_slice::<User>(&body).expect("it parses back");
        assert_eq!(again, user);
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let parsed = ErrorType::parse(name);
        assert_eq!(ErrorType::parse(parsed.as_str()), parsed);
    }
});
