//! Request bodies built by the transaction builder and the query type, as sent,
//! snapshotted with `insta`.

use instant_client::{EntityId, Query, Transaction, UpdateOptions, Uuid};
use serde_json::{Value, json};

use crate::support::{Server, client};

fn id(n: u8) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
}

/// Sends `tx` and returns the body the server received.
async fn sent_transaction(tx: &Transaction) -> Value {
    let server = Server::start().await;
    client(&server.url()).transact(tx).await.unwrap();
    server.take_one().json()
}

async fn sent_query(query: &Query) -> Value {
    let server = Server::start().await;
    client(&server.url()).query(query).await.unwrap();
    server.take_one().json()
}

#[tokio::test]
async fn every_step_kind() {
    let params = json!({"inviteCode": "c0de", "level": 3});
    let tx = Transaction::new()
        .create("goals", id(1), json!({"title": "Get fit", "priority": 1}))
        .update("goals", id(1), json!({"done": false, "tags": ["a", "b"]}))
        .update_with(
            "goals",
            id(2),
            json!({"title": "only if present"}),
            UpdateOptions::default().upsert(false),
        )
        .merge("goals", id(1), json!({"meta": {"nested": {"x": 1}}}))
        .merge_with(
            "goals",
            id(1),
            json!({"meta": {"y": null}}),
            UpdateOptions::default().upsert(true),
        )
        .link("goals", id(1), "todos", id(10))
        .link("goals", id(1), "todos", vec![id(11), id(12)])
        .unlink("goals", id(1), "todos", id(10))
        .rule_params("goals", id(1), params.as_object().unwrap().clone())
        .delete("todos", id(12));
    insta::assert_json_snapshot!(sent_transaction(&tx).await);
}

#[tokio::test]
async fn lookups_as_entities_and_link_targets() {
    let tx = Transaction::new()
        .update(
            "profiles",
            EntityId::lookup("email", "alice@example.com"),
            json!({"name": "Alice"}),
        )
        .update(
            "profiles",
            EntityId::lookup("handle", 42),
            json!({"name": "Numbered"}),
        )
        .link(
            "goals",
            id(1),
            "owner",
            EntityId::lookup("email", "alice@example.com"),
        )
        .link(
            "goals",
            id(1),
            "watchers",
            vec![EntityId::lookup("handle", "bob"), EntityId::from(id(3))],
        )
        .delete("profiles", EntityId::lookup("handle", "gone"))
        .throw_on_missing_attrs(true);
    insta::assert_json_snapshot!(sent_transaction(&tx).await);
}

#[tokio::test]
async fn an_empty_transaction() {
    insta::assert_json_snapshot!(sent_transaction(&Transaction::new()).await, @r#"
    {
      "steps": [],
      "throw-on-missing-attrs?": false
    }
    "#);
}

#[tokio::test]
async fn queries_with_rule_params_and_inference() {
    let query = Query::new(json!({
        "goals": {"$": {"where": {"owner.id": id(5).to_string()}, "limit": 10, "order": {"serverCreatedAt": "desc"}}, "todos": {}},
        "$$ruleParams": {"stale": true}
    }))
    .rule_param("inviteCode", "c0de")
    .rule_param("level", 3)
    .inference(true);
    insta::assert_json_snapshot!(sent_query(&query).await);
}
