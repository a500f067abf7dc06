//! The HTTP plumbing both services share: a loopback listener, graceful shutdown, and
//! fault injection (the next N calls to a route fail, stall, or lose their connection).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::Error;

/// How long shutdown waits for requests in flight before cutting connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What an injected fault does to a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status instead of handling the call. With no body, the service's
    /// own error body for that status is sent (InstantDB: `rate-limited` for 429,
    /// `unknown` for 5xx; Clerk: its `errors` array).
    Status {
        /// The HTTP status.
        status: u16,
        /// The JSON body, if not the service's default.
        body: Option<Value>,
        /// Extra response headers, e.g. `Retry-After`.
        headers: Vec<(String, String)>,
    },
    /// Wait this long, then handle the call normally (to exercise client timeouts).
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

impl Fault {
    /// Answer with `status` and the service's default error body.
    pub fn status(status: u16) -> Self {
        Fault::Status {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Wait, then handle the call.
    pub fn delay(delay: Duration) -> Self {
        Fault::Delay(delay)
    }

    /// Close the connection without answering.
    pub fn drop_connection() -> Self {
        Fault::Drop
    }

    /// Sets the body of a [`Fault::Status`] (no effect on other faults).
    #[must_use]
    pub fn with_body(mut self, json: Value) -> Self {
        if let Fault::Status { body, .. } = &mut self {
            *body = Some(json);
        }
        self
    }

    /// Adds a response header to a [`Fault::Status`] (no effect on other faults).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Fault::Status { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// A route pattern: an optional method, then a path whose `*` segments match any one
/// segment. `"/runtime/oauth/id_token"`, `"POST /v1/sessions/*/tokens"`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    method: Option<Method>,
    segments: Vec<String>,
}

impl Route {
    fn parse(text: &str) -> Result<Route, Error> {
        let text = text.trim();
        let (method, path) = match text.split_once(' ') {
            Some((method, path)) => {
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| Error::invalid("route", format!("bad method in {text:?}")))?;
                (Some(method), path.trim())
            }
            None => (None, text),
        };
        if !path.starts_with('/') {
            return Err(Error::invalid(
                "route",
                format!("{text:?} must be [METHOD ]/path, e.g. \"POST /admin/query\""),
            ));
        }
        Ok(Route {
            method,
            segments: path.split('/').skip(1).map(str::to_owned).collect(),
        })
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut segments = path.split('/').skip(1);
        for want in &self.segments {
            match segments.next() {
                Some(got) if want == "*" || want == got => {}
                _ => return false,
            }
        }
        segments.next().is_none()
    }
}

#[derive(Debug)]
struct Rule {
    route: Route,
    fault: Fault,
    remaining: u32,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<Rule>,
    hits: HashMap<(Method, String), u64>,
}

/// The fault plan and call counts of one server. Cheap to clone; clones share state.
///
/// ```no_run
/// # async fn example(clerk: &devstack::LocalClerk) -> devstack::Result<()> {
/// use devstack::Fault;
/// // The next two JWKS fetches fail with 503, the third succeeds.
/// clerk.faults().inject("GET /.well-known/jwks.json", Fault::status(503), 2)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Faults")
            .field("rules", &state.rules)
            .finish_non_exhaustive()
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next `times` calls matching `route` suffer `fault`. `route` is
    /// `[METHOD ]/path`, where a `*` path segment matches any one segment. Rules apply
    /// in the order they were added; each call consumes at most one.
    pub fn inject(&self, route: &str, fault: Fault, times: u32) -> crate::Result<()> {
        let route = Route::parse(route)?;
        self.lock().rules.push(Rule {
            route,
            fault,
            remaining: times,
        });
        Ok(())
    }

    /// Removes every pending fault.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many injected faults matching `route` exactly (same pattern) are still
    /// pending.
    pub fn pending(&self, route: &str) -> u32 {
        let Ok(route) = Route::parse(route) else {
            return 0;
        };
        self.lock()
            .rules
            .iter()
            .filter(|rule| rule.route == route)
            .map(|rule| rule.remaining)
            .sum()
    }

    /// How many calls matching `route` arrived, faulted or not.
    pub fn hits(&self, route: &str) -> u64 {
        let Ok(route) = Route::parse(route) else {
            return 0;
        };
        self.lock()
            .hits
            .iter()
            .filter(|((method, path), _)| route.matches(method, path))
            .map(|(_, count)| count)
            .sum()
    }

    /// Counts the call and takes the fault it must suffer, if any.
    fn take(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut state = self.lock();
        *state
            .hits
            .entry((method.clone(), path.to_owned()))
            .or_default() += 1;
        let rule = state
            .rules
            .iter_mut()
            .find(|rule| rule.remaining > 0 && rule.route.matches(method, path))?;
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        state.rules.retain(|rule| rule.remaining > 0);
        Some(fault)
    }
}

/// The service's JSON error body for a status (used by [`Fault::Status`] without body).
pub(crate) type DefaultBody = fn(u16) -> Value;

/// A server running on loopback until [`HttpServer::shutdown`] or drop.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Listens on `127.0.0.1:port` (0: any free port).
    pub(crate) async fn bind(port: u16) -> crate::Result<TcpListener> {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| Error::Bind { port, source })
    }

    /// Serves `router` on `listener` in a background task.
    pub(crate) fn spawn(
        listener: TcpListener,
        router: Router,
        faults: Faults,
        default_body: DefaultBody,
    ) -> crate::Result<HttpServer> {
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { port: 0, source })?;
        let (shutdown, signal) = watch::channel(false);
        let shared = Arc::new(Shared {
            router,
            faults,
            default_body,
        });
        let task = tokio::spawn(accept_loop(listener, shared, signal));
        Ok(HttpServer {
            addr,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (for at most 5 s), closes every
    /// connection and waits until the port is released.
    pub(crate) async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

struct Shared {
    router: Router,
    faults: Faults,
    default_body: DefaultBody,
}

async fn stopped(signal: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: stop too.
    let _ = signal.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut signal: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut signal) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), signal.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("requests still running after the drain timeout; closing their connections");
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut signal: watch::Receiver<bool>,
) {
    let kill = Arc::new(Notify::new());
    let service = {
        let kill = Arc::clone(&kill);
        let signal = signal.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(
                request,
                Arc::clone(&shared),
                Arc::clone(&kill),
                signal.clone(),
            )
        })
    };
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        () = kill.notified() => {
            tracing::debug!("dropping a connection (injected fault)");
        }
        () = stopped(&mut signal) => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                () = kill.notified() => {}
            }
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    mut signal: watch::Receiver<bool>,
) -> Result<Response<Body>, Infallible> {
    let fault = shared.faults.take(request.method(), request.uri().path());
    match fault {
        None => {}
        Some(Fault::Drop) => {
            kill.notify_one();
            std::future::pending::<()>().await;
        }
        Some(Fault::Delay(delay)) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut signal) => {
                    return Ok(json_response(503, &(shared.default_body)(503), &[]));
                }
            }
        }
        Some(Fault::Status {
            status,
            body,
            headers,
        }) => {
            let body = body.unwrap_or_else(|| (shared.default_body)(status));
            return Ok(json_response(status, &body, &headers));
        }
    }
    let response = shared.router.clone().oneshot(request.map(Body::new)).await;
    Ok(match response {
        Ok(response) => response,
        Err(never) => match never {},
    })
}

/// A JSON response with extra headers.
pub(crate) fn json_response(
    status: u16,
    body: &Value,
    headers: &[(String, String)],
) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    map.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_method_and_segments() {
        let route = Route::parse("POST /v1/sessions/*/tokens").unwrap();
        assert!(route.matches(&Method::POST, "/v1/sessions/sess_1/tokens"));
        assert!(!route.matches(&Method::GET, "/v1/sessions/sess_1/tokens"));
        assert!(!route.matches(&Method::POST, "/v1/sessions/sess_1"));
        assert!(!route.matches(&Method::POST, "/v1/sessions/sess_1/tokens/x"));
        let any = Route::parse("/runtime/signout").unwrap();
        assert!(any.matches(&Method::POST, "/runtime/signout"));
        assert!(Route::parse("runtime").is_err());
        assert!(Route::parse("P@ST /x").is_err());
    }

    #[test]
    fn faults_are_consumed_in_order_and_counted() {
        let faults = Faults::default();
        faults.inject("/a", Fault::status(503), 2).unwrap();
        faults.inject("GET /a", Fault::Drop, 1).unwrap();
        assert_eq!(faults.pending("/a"), 2);
        assert_eq!(faults.take(&Method::GET, "/a"), Some(Fault::status(503)));
        assert_eq!(faults.take(&Method::GET, "/a"), Some(Fault::status(503)));
        assert_eq!(faults.take(&Method::GET, "/a"), Some(Fault::Drop));
        assert_eq!(faults.take(&Method::GET, "/a"), None);
        assert_eq!(faults.take(&Method::GET, "/b"), None);
        assert_eq!(faults.hits("/a"), 4);
        assert_eq!(faults.hits("GET /*"), 5);
        assert_eq!(faults.pending("/a"), 0);
    }
}
