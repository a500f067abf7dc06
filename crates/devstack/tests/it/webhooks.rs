//! Webhooks as Svix delivers them: signed headers, Clerk's envelope, retries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use devstack::clerk::{DeliveryState, WebhookEndpoint, WebhookOptions, sign_webhook};
use devstack::{ClerkConfig, LocalClerk, NewUser, WebhookSecret};
use http::HeaderMap;
use serde_json::Value;
use tokio::sync::mpsc;

/// One request the receiver got.
struct Received {
    id: String,
    timestamp: i64,
    signature: String,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Receiver {
    url: String,
    requests: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

/// A webhook endpoint answering with `statuses` in turn, then 200.
async fn receiver(statuses: &[u16]) -> Receiver {
    type Shared = (Arc<Mutex<VecDeque<u16>>>, mpsc::UnboundedSender<Received>);
    async fn handle(
        State((statuses, sender)): State<Shared>,
        headers: HeaderMap,
        body: Bytes,
    ) -> http::StatusCode {
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/json");
        let _ = sender.send(Received {
            id: header("svix-id"),
            timestamp: header("svix-timestamp").parse().unwrap(),
            signature: header("svix-signature"),
            body,
        });
        let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
        http::StatusCode::from_u16(status).unwrap()
    }
    let (sender, requests) = mpsc::unbounded_channel();
    let state: Shared = (
        Arc::new(Mutex::new(statuses.iter().copied().collect())),
        sender,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/clerk", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/webhooks/clerk", post(handle))
        .with_state(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        url,
        requests,
        task,
    }
}

async fn clerk_sending_to(receiver: &Receiver, secret: &WebhookSecret) -> LocalClerk {
    LocalClerk::start(
        ClerkConfig::default()
            .webhook(WebhookEndpoint::new(receiver.url.clone(), secret.clone()))
            .webhook_options(WebhookOptions::default().retry_scale(0.0)),
    )
    .await
    .unwrap()
}

fn assert_signed(request: &Received, secret: &WebhookSecret) {
    assert!(request.id.starts_with("msg_"), "{}", request.id);
    assert_eq!(
        request.signature,
        sign_webhook(secret, &request.id, request.timestamp, &request.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_and_enveloped_like_clerks() {
    let mut receiver = receiver(&[]).await;
    let secret = WebhookSecret::generate();
    let clerk = clerk_sending_to(&receiver, &secret).await;

    let user = clerk
        .create_user(NewUser::with_email("alice@example.com"))
        .unwrap();
    let created = receiver.requests.recv().await.unwrap();
    assert_signed(&created, &secret);
    assert!((created.timestamp - clerk.now()).abs() <= 5);
    let event = created.json();
    assert_eq!(event["type"], "user.created");
    assert_eq!(event["object"], "event");
    assert_eq!(event["instance_id"], clerk.kid());
    assert!(
        event["timestamp"].as_i64().unwrap() > 1_000_000_000_000,
        "milliseconds"
    );
    assert_eq!(event["data"]["id"], user.id.as_str());
    assert_eq!(
        event["data"]["email_addresses"][0]["email_address"],
        "alice@example.com"
    );

    let session = clerk.create_session(&user.id).unwrap();
    clerk.revoke_session(&session.id).unwrap();
    let other = clerk.create_session(&user.id).unwrap();
    clerk.end_session(&other.id).unwrap();
    let third = clerk.create_session(&user.id).unwrap();
    clerk.remove_session(&third.id).unwrap();
    clerk.delete_user(&user.id).unwrap();
    let mut types = Vec::new();
    for _ in 0..7 {
        let request = receiver.requests.recv().await.unwrap();
        assert_signed(&request, &secret);
        let event = request.json();
        if event["type"] == "session.revoked" {
            assert_eq!(event["data"]["id"], session.id.as_str());
            assert_eq!(event["data"]["status"], "revoked");
            assert_eq!(event["data"]["user"]["id"], user.id.as_str());
        }
        if event["type"] == "user.deleted" {
            assert_eq!(
                event["data"],
                serde_json::json!({"object": "user", "id": user.id, "deleted": true})
            );
        }
        types.push(event["type"].as_str().unwrap().to_owned());
    }
    // Delivery is unordered in general; these went out one by one.
    types.sort();
    assert_eq!(
        types,
        [
            "session.created",
            "session.created",
            "session.created",
            "session.ended",
            "session.removed",
            "session.revoked",
            "user.deleted"
        ]
    );
    clerk.shutdown().await;
    receiver.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_the_same_message_id() {
    let mut receiver = receiver(&[500, 503]).await;
    let secret = WebhookSecret::generate();
    let clerk = clerk_sending_to(&receiver, &secret).await;
    let message = clerk
        .webhooks()
        .send("user.updated", &serde_json::json!({"id": "user_x"}))
        .unwrap();
    for _ in 0..3 {
        let request = receiver.requests.recv().await.unwrap();
        assert_eq!(request.id, message);
        assert_signed(&request, &secret);
    }
    clerk.webhooks().idle().await;
    let deliveries = clerk.webhooks().deliveries();
    assert_eq!(deliveries.len(), 1);
    let statuses: Vec<Option<u16>> = deliveries[0].attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(200)]);
    assert_eq!(deliveries[0].state, DeliveryState::Succeeded);
    clerk.shutdown().await;
    receiver.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_gets_svixs_eight_attempts() {
    let mut receiver = receiver(&[500; 8]).await;
    let secret = WebhookSecret::generate();
    let clerk = clerk_sending_to(&receiver, &secret).await;
    clerk
        .webhooks()
        .send("session.ended", &serde_json::json!({"id": "sess_x"}));
    clerk.webhooks().idle().await;
    let delivery = &clerk.webhooks().deliveries()[0];
    assert_eq!(
        delivery.attempts.len(),
        devstack::clerk::SVIX_RETRY_SCHEDULE.len()
    );
    assert_eq!(delivery.state, DeliveryState::Failed);
    let mut ids = Vec::new();
    while let Ok(request) = receiver.requests.try_recv() {
        ids.push(request.id);
    }
    assert_eq!(ids.len(), 8);
    assert!(ids.iter().all(|id| *id == delivery.message_id));
    clerk.shutdown().await;
    receiver.task.abort();
}
