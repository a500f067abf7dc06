//! Every error prints each cause once along its `source()` chain (as anyhow's `{:#}`
//! does), and names no environment variable: the applications add that context.

use std::time::Duration;

use instant_client::{AdminToken, Client, Error, Query, UserRef};
use serde_json::json;

use crate::support::{
    Reply, Server, anonymous_client, app_id, builder, client, refused_url, user_id,
};

/// Each message of an error's `source()` chain, outermost first.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

fn assert_printed_once(err: &Error) {
    let chain = chain(err);
    for pair in chain.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{:?} prints its cause {:?} again",
            pair[0],
            pair[1]
        );
    }
    let all = chain.join(": ");
    assert!(!all.contains("INSTANT_"), "{all}");
    assert!(!all.contains("CLERK_"), "{all}");
}

#[tokio::test]
async fn every_cause_is_printed_once() {
    let goals = Query::new(json!({"goals": {}}));
    let server = Server::scripted([
        Reply::Json(
            400,
            json!({"type": "param-missing", "message": "Missing parameter"}),
        ),
        Reply::Json(500, json!({"type": "unknown", "message": "bug"})),
        Reply::TooManyRequests("120"),
        Reply::Raw(200, "text/html", "<html/>"),
    ])
    .await;
    let client = client(&server.url());
    let hanging = Server::always(Reply::Hang).await;
    let mut errors = vec![
        client.query(&goals).await.unwrap_err(),
        client.query(&goals).await.unwrap_err(),
        client.query(&goals).await.unwrap_err(),
        client.query(&goals).await.unwrap_err(),
        builder(&hanging.url())
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap()
            .transact(&instant_client::Transaction::new().delete("goals", user_id()))
            .await
            .unwrap_err(),
        crate::support::client(&refused_url().await)
            .get_user(&UserRef::Id(user_id()))
            .await
            .unwrap_err(),
        anonymous_client(&server.url())
            .get_user(&UserRef::Id(user_id()))
            .await
            .unwrap_err(),
        Client::builder(app_id())
            .base_url("ftp://example.com")
            .build()
            .unwrap_err(),
        Error::from(AdminToken::new(" ").unwrap_err()),
    ];
    for err in &errors {
        assert_printed_once(err);
    }
    // The transport failures keep their source; the configuration ones say so.
    assert!(std::error::Error::source(&errors[5]).is_some());
    let config = errors.split_off(6);
    for err in &config {
        assert!(err.is_config(), "{err}");
    }
    assert!(
        config[1]
            .to_string()
            .starts_with("invalid instant client configuration"),
        "{}",
        config[1]
    );
}
