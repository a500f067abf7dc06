//! The clients a `ServiceConfig` builds never follow a redirect: the Clerk secret key
//! and the InstantDB admin token must not reach the host a 3xx points to.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use service_config::ServiceArgs;

const PK_TEST: &str = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k";
const APP: &str = "11111111-2222-4333-8444-555555555555";
const SECRET_KEY: &str = "sk_test_hunter2hunter2hunter2";
const ADMIN_TOKEN: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

/// The calls the redirect target received: path and headers.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A target recording every call, and a server answering every call with a 307 to it.
async fn redirect_to_recorder() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let target = serve(Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push((uri.to_string(), headers));
            "{}"
        }
    }))
    .await;
    let redirector = serve(Router::new().fallback(move |uri: Uri| {
        let location = format!("{target}{uri}");
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
    }))
    .await;
    (redirector, seen)
}

fn args(redirector: &str) -> ServiceArgs {
    ServiceArgs {
        clerk_publishable_key: Some(PK_TEST.into()),
        clerk_secret_key: Some(SECRET_KEY.into()),
        clerk_api_url: Some(redirector.into()),
        instant_app_id: Some(APP.into()),
        instant_admin_token: Some(ADMIN_TOKEN.into()),
        instant_api_uri: Some(redirector.into()),
        strategy: Some("admin".into()),
        ..ServiceArgs::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_follows_a_redirect_with_its_credentials() {
    let (redirector, seen) = redirect_to_recorder().await;
    let clients = args(&redirector)
        .resolve()
        .unwrap()
        .build_clients()
        .unwrap();

    let instant = clients
        .instant
        .get_user(&instant_user())
        .await
        .expect_err("a 307 is no answer");
    let clerk = clients
        .clerk
        .expect("a secret key is configured")
        .get_session("sess_123")
        .await
        .expect_err("a 307 is no answer");

    let seen = seen.lock().unwrap();
    assert!(
        seen.is_empty(),
        "the redirect target was called: {:?}",
        seen.iter().map(|(path, _)| path).collect::<Vec<_>>()
    );
    for error in [instant.to_string(), clerk.to_string()] {
        assert!(error.contains("307"), "the status is named: {error}");
        assert!(!error.contains(SECRET_KEY) && !error.contains(ADMIN_TOKEN));
    }
}

/// Control: a client that follows redirects does reach the target through the same
/// redirector, so the empty record above is no accident of the setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_client_reaches_the_target() {
    let (redirector, seen) = redirect_to_recorder().await;
    let following = reqwest::Client::new();
    let clients = args(&redirector)
        .resolve()
        .unwrap()
        .clients(&following)
        .unwrap();
    let _ = clients.instant.get_user(&instant_user()).await;
    let _ = clients.clerk.unwrap().get_session("sess_123").await;
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "both calls were redirected to the target"
    );
}

fn instant_user() -> instant_client::UserRef {
    instant_client::UserRef::Email("a@example.com".into())
}
