//! Feeds arbitrary `POST /admin/query` bodies to the InstantDB emulator's InstaQL
//! reader and evaluator (devstack's `QueryStore`: the route's body reading, then
//! `where` with dotted link paths, `and`/`or` and operators, nested links, `limit`,
//! `offset`, `order`, `fields`) over a small store whose links form cycles. None of it
//! may panic, overflow the stack or run unbounded. An answer is an object with one
//! array per namespace asked for, every row carries its `id`, a top-level `limit`
//! holds; a refusal is a 400 with InstantDB's `type` and `message`.
#![no_main]

use std::sync::OnceLock;

use devstack::instant::QueryStore;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const G1: &str = "00000000-0000-4000-8000-0000000000a1";
const G2: &str = "00000000-0000-4000-8000-0000000000a2";
const T1: &str = "00000000-0000-4000-8000-0000000000b1";
const T2: &str = "00000000-0000-4000-8000-0000000000b2";
const T3: &str = "00000000-0000-4000-8000-0000000000b3";
const P1: &str = "00000000-0000-4000-8000-0000000000c1";
const P2: &str = "00000000-0000-4000-8000-0000000000c2";

fn store() -> &'static QueryStore {
    static STORE: OnceLock<QueryStore> = OnceLock::new();
    STORE.get_or_init(|| {
        QueryStore::new(&json!([
            ["update", "goals", G1, {"title": "Get fit", "n": 1, "meta": {"a": 1, "b": {"c": 2}}}],
            ["update", "goals", G2, {"title": "Read", "n": 2.5, "done": true, "note": null}],
            ["create", "todos", T1, {"title": "run", "n": 2}],
            ["create", "todos", T2, {"title": "swim", "n": 5, "tags": ["a", "b"]}],
            ["create", "todos", T3, {"title": "", "n": -1, "done": false}],
            ["update", "profiles", P1, {"handle": "al", "email": "al@example.com"}],
            ["update", "profiles", P2, {"handle": "bo"}],
            ["link", "goals", G1, {"todos": [T1, T2, T3], "owner": P1}],
            ["link", "goals", G2, {"todos": [T1, T2], "owner": P2}],
            ["link", "todos", T1, {"assignees": [P1, P2]}],
            ["link", "todos", T2, {"assignees": [P1, P2]}],
            ["link", "profiles", P1, {"friends": [P2]}],
        ]))
        .expect("the store's steps apply")
    })
}

fuzz_target!(|data: &[u8]| {
    match store().query(data) {
        Ok(Value::Object(result)) => {
            let asked: Value = serde_json::from_slice(data).expect("an answered body is json");
            let query = asked["query"]
                .as_object()
                .expect("an answered query is an object");
            for (ns, rows) in &result {
                assert!(query.contains_key(ns), "{ns} was not asked for");
                let rows = rows.as_array().expect("a namespace answers an array");
                for row in rows {
                    assert!(row["id"].is_string(), "a row without its id");
                }
                if let Some(limit) = query[ns]["$"]["limit"].as_u64() {
                    assert!(rows.len() as u64 <= limit, "{ns}: limit {limit} not held");
                }
            }
            for ns in query.keys().filter(|ns| !ns.starts_with("$$")) {
                assert!(
                    result.contains_key(ns),
                    "{ns} was asked for but not answered"
                );
            }
        }
        Ok(other) => panic!("an answer that is not an object: {other}"),
        Err((status, body)) => {
            assert_eq!(status, 400, "{body}");
            assert!(body["type"].is_string(), "{body}");
            assert!(body["message"].is_string(), "{body}");
        }
    }
});
