//! The clients: each takes a free user, does one thing as that user (sign in, query,
//! transact, sign out, revoke the Clerk session or delete the user through Clerk's
//! Backend API, send an expired or forged token, or give up on a sign-in a few
//! milliseconds in) and puts the user back. One client per user at a time, so a
//! user's session and the refresh tokens it was handed are never raced.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use devstack::{DevStack, MintOptions, NewUser, RefreshToken, SigningKey};
use serde_json::{Value, json};

use super::faults::since;
use super::report::{Log, Span};

/// A token is minted again after this long (Clerk's live 60 s; clients resend one).
const REMINT_AFTER: Duration = Duration::from_secs(45);

/// A small deterministic generator (SplitMix64), with no dependency: each client's
/// choices follow from the seed the report gives (their timing still varies).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }
}

/// A Clerk session a client holds, with the refresh tokens the server handed for it.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) session_id: String,
    token: String,
    minted: Instant,
    pub(crate) handed: Vec<String>,
}

/// One user of the local Clerk.
#[derive(Debug)]
pub(crate) struct User {
    index: usize,
    generation: u32,
    clerk_id: String,
    pub(crate) session: Option<Held>,
}

fn email(index: usize, generation: u32) -> String {
    format!("soak-{index}-g{generation}@soak.test")
}

impl User {
    /// The user's address, which also names it in the report.
    fn email(&self) -> String {
        email(self.index, self.generation)
    }
}

/// What every client shares.
pub(crate) struct World {
    pub(crate) stack: Arc<DevStack>,
    /// `http://127.0.0.1:<port>` of each replica of the server under test; requests
    /// go to each in turn, so one user's calls land on every replica.
    servers: Vec<String>,
    next_server: AtomicUsize,
    pub(crate) http: reqwest::Client,
    pub(crate) origin: Instant,
    /// Signs with a key Clerk never had, under the instance's `kid`.
    forged_same_kid: SigningKey,
    /// Signs with a key Clerk never had, under a `kid` nobody publishes.
    forged_other_kid: SigningKey,
    free: Mutex<Vec<User>>,
    pub(crate) log: Mutex<Log>,
    /// Refresh tokens handed for sessions the clients let go of (signed out, revoked
    /// or whose user was deleted), with the user and why: the end checks none is
    /// still alive.
    pub(crate) released: Mutex<Vec<Released>>,
    /// What happened to each user (by address), to explain a leak.
    pub(crate) histories: Mutex<HashMap<String, Vec<String>>>,
    /// The addresses of users with a sign-in their client abandoned, to tell leaks
    /// apart.
    pub(crate) abandoned: Mutex<BTreeSet<String>>,
    /// Whether clients abandon some sign-ins.
    abandon: bool,
}

/// A refresh token whose session a client let go of.
#[derive(Debug)]
pub(crate) struct Released {
    pub(crate) token: String,
    pub(crate) email: String,
    pub(crate) why: &'static str,
}

/// An answer of the server: status and JSON body, or no answer.
struct Answer {
    status: Option<u16>,
    body: Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    /// Creates `users` Clerk users and the forged keys.
    pub(crate) fn new(
        stack: Arc<DevStack>,
        servers: Vec<String>,
        users: usize,
        abandon: bool,
        origin: Instant,
    ) -> anyhow::Result<World> {
        let mut free = Vec::with_capacity(users);
        for index in 0..users {
            let user = stack
                .clerk
                .create_user(NewUser::with_email(email(index, 0)))?;
            free.push(User {
                index,
                generation: 0,
                clerk_id: user.id,
                session: None,
            });
        }
        let forged_same_kid = SigningKey::generate(stack.clerk.kid());
        let forged_other_kid = SigningKey::generate("ins_soakforgedkey");
        Ok(World {
            stack,
            servers,
            next_server: AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            origin,
            forged_same_kid,
            forged_other_kid,
            free: Mutex::new(free),
            log: Mutex::default(),
            released: Mutex::default(),
            histories: Mutex::default(),
            abandoned: Mutex::default(),
            abandon,
        })
    }

    /// The replica the next request goes to.
    fn server(&self) -> &str {
        let turn = self.next_server.fetch_add(1, Ordering::Relaxed);
        &self.servers[turn % self.servers.len()]
    }

    fn take(&self, rng: &mut Rng) -> Option<User> {
        let mut free = lock(&self.free);
        if free.is_empty() {
            return None;
        }
        let at = rng.below(free.len());
        Some(free.swap_remove(at))
    }

    fn put(&self, user: User) {
        lock(&self.free).push(user);
    }

    /// Every user, once the clients have stopped.
    pub(crate) fn drain_users(&self) -> Vec<User> {
        std::mem::take(&mut *lock(&self.free))
    }

    fn act(&self, action: &'static str) {
        lock(&self.log).act(action);
    }

    /// Adds a line to a user's history.
    fn note(&self, who: &str, what: impl FnOnce() -> String) {
        let line = format!("{} ms: {}", since(self.origin), what());
        lock(&self.histories)
            .entry(who.to_owned())
            .or_default()
            .push(line);
    }

    /// Sends a request to the server for `who` and records its outcome under `route`.
    async fn call(
        &self,
        who: &str,
        route: &'static str,
        token: &str,
        body: Option<&Value>,
    ) -> Answer {
        let (method, path) = route.split_once(' ').unwrap_or(("GET", route));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let start_ms = since(self.origin);
        let started = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                Answer {
                    status: Some(status),
                    body,
                }
            }
            Err(_) => Answer {
                status: None,
                body: Value::Null,
            },
        };
        let latency = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let span = Span {
            start_ms,
            end_ms: since(self.origin),
        };
        lock(&self.log).record(route, answer.status, answer.code(), span, latency);
        self.note(who, || {
            let mut line = format!(
                "{route} -> {:?} {}",
                answer.status,
                answer.code().unwrap_or("")
            );
            if let Some(instant) = answer.body["instant"]["status"].as_str() {
                let clerk = answer.body["clerk_session"]["status"]
                    .as_str()
                    .unwrap_or("");
                line.push_str(&format!(" (instant {instant}, clerk {clerk})"));
            }
            if answer.body["refresh_token"].is_string() {
                line.push_str(" (refresh token handed)");
            }
            line
        });
        answer
    }

    /// A call to the local Clerk's Backend API, as a Clerk dashboard or backend would
    /// make it; `true` when it succeeded.
    async fn clerk_api(&self, who: &str, route: &'static str, path: &str) -> bool {
        // `route` is "clerk <METHOD> <path pattern>".
        let method = route.split(' ').nth(1).unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let started = Instant::now();
        let result = self
            .http
            .request(method, format!("{}{path}", self.stack.clerk.url()))
            .bearer_auth(self.stack.clerk.secret_key().expose())
            .send()
            .await;
        let (status, code) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                (
                    Some(status),
                    body["errors"][0]["code"].as_str().map(str::to_owned),
                )
            }
            Err(_) => (None, None),
        };
        let latency = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        // Kept apart from the server's routes: these answers are the local Clerk's.
        let mut log = lock(&self.log);
        let stats = log.routes.entry(route).or_default();
        let outcome = match (status, &code) {
            (None, _) => "no answer".to_owned(),
            (Some(s), Some(c)) => format!("{s} {c}"),
            (Some(s), None) => s.to_string(),
        };
        *stats.outcomes.entry(outcome.clone()).or_default() += 1;
        stats.latencies_us.push(latency);
        drop(log);
        self.note(who, || format!("{route} -> {outcome}"));
        status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The user's session, opened at the local Clerk when there is none.
    fn session<'u>(&self, user: &'u mut User) -> anyhow::Result<&'u mut Held> {
        let stale = user
            .session
            .as_ref()
            .is_some_and(|held| held.minted.elapsed() > REMINT_AFTER);
        if stale && let Some(held) = &mut user.session {
            held.token = self.stack.clerk.mint(&held.session_id)?;
            held.minted = Instant::now();
        }
        if user.session.is_none() {
            let session = self.stack.clerk.create_session(&user.clerk_id)?;
            let token = self.stack.clerk.mint(&session.id)?;
            self.note(&user.email(), || {
                format!("opened Clerk session {}", session.id)
            });
            user.session = Some(Held {
                session_id: session.id,
                token,
                minted: Instant::now(),
                handed: Vec::new(),
            });
        }
        user.session
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no session"))
    }

    /// Forgets the user's session; its refresh tokens must now die.
    fn release(&self, user: &mut User, why: &'static str) {
        let email = user.email();
        if let Some(held) = user.session.take() {
            self.note(&email, || {
                format!(
                    "let go of {} ({why}), {} refresh token(s) handed",
                    held.session_id,
                    held.handed.len()
                )
            });
            lock(&self.released).extend(held.handed.into_iter().map(|token| Released {
                token,
                email: email.clone(),
                why,
            }));
        }
    }

    /// Whether InstantDB still accepts this refresh token.
    pub(crate) fn alive(&self, token: &str) -> bool {
        self.stack
            .instant
            .refresh_token_user(&self.stack.app.id, &RefreshToken::new(token))
            .is_ok_and(|user| user.is_some())
    }

    /// One client: users, one action at a time, until the deadline.
    pub(crate) async fn client(self: Arc<Self>, mut rng: Rng, deadline: Instant) {
        while Instant::now() < deadline {
            let Some(mut user) = self.take(&mut rng) else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            if self.one_action(&mut user, &mut rng).await.is_err() {
                // The local Clerk would not mint: the session ended there (a sign-out
                // whose InstantDB half failed still revoked it; the webhook ends the
                // rest). Start the user over.
                self.act("session-ended-at-clerk");
                self.release(&mut user, "the local Clerk would not mint");
            }
            self.put(user);
        }
    }

    async fn one_action(&self, user: &mut User, rng: &mut Rng) -> anyhow::Result<()> {
        match rng.below(100) {
            0..25 => self.sign_in(user).await,
            25..35 => {
                self.act("me");
                let token = self.session(user)?.token.clone();
                let answer = self.call(&user.email(), "GET /v1/me", &token, None).await;
                self.after_other(user, &answer);
                Ok(())
            }
            35..55 => {
                self.act("query");
                let token = self.session(user)?.token.clone();
                let body = json!({"query": {"goals": {}}});
                let answer = self
                    .call(&user.email(), "POST /v1/query", &token, Some(&body))
                    .await;
                self.after_other(user, &answer);
                Ok(())
            }
            55..70 => {
                self.act("transact");
                let token = self.session(user)?.token.clone();
                let id = uuid_like(rng);
                let body = json!({"steps": [["update", "goals", id, {"title": "soak", "by": user.index}]]});
                let answer = self
                    .call(&user.email(), "POST /v1/transact", &token, Some(&body))
                    .await;
                self.after_other(user, &answer);
                Ok(())
            }
            70..82 => self.sign_out(user, "sign-out").await.map(|_| ()),
            82..87 => self.revoke(user).await,
            87..89 => self.delete_user(user).await,
            89..94 => self.expired(user, rng).await,
            98.. if self.abandon => self.abandoned_sign_in(user, rng).await,
            _ => self.forged(user, rng).await,
        }
    }

    async fn sign_in(&self, user: &mut User) -> anyhow::Result<()> {
        self.act("sign-in");
        let token = self.session(user)?.token.clone();
        let answer = self
            .call(&user.email(), "POST /v1/session", &token, None)
            .await;
        if answer.ok() {
            if let (Some(refresh), Some(held)) =
                (answer.body["refresh_token"].as_str(), &mut user.session)
                && !held.handed.iter().any(|t| t == refresh)
            {
                held.handed.push(refresh.to_owned());
            }
        } else {
            self.after_other(user, &answer);
        }
        Ok(())
    }

    /// A sign-in the client gives up on after a few milliseconds (a closed tab, a
    /// mobile client losing its network): the server may already have InstantDB's
    /// token, which it must store (the final sign-out ends it) or sign out.
    async fn abandoned_sign_in(&self, user: &mut User, rng: &mut Rng) -> anyhow::Result<()> {
        self.act("abandoned-sign-in");
        lock(&self.abandoned).insert(email(user.index, user.generation));
        let token = self.session(user)?.token.clone();
        let patience = Duration::from_millis(5 + u64::try_from(rng.below(60)).unwrap_or(0));
        let start_ms = since(self.origin);
        let started = Instant::now();
        let answer = self
            .http
            .post(format!("{}/v1/session", self.server()))
            .bearer_auth(&token)
            .timeout(patience)
            .send()
            .await;
        let (status, body) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                (
                    Some(status),
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
            Err(_) => (None, Value::Null),
        };
        let refresh = body["refresh_token"].as_str().map(str::to_owned);
        let latency = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.note(&user.email(), || {
            format!(
                "POST /v1/session, abandoned after {} ms -> {status:?}",
                patience.as_millis()
            )
        });
        let mut log = lock(&self.log);
        match status {
            Some(status) => log.record(
                "POST /v1/session (abandoned)",
                Some(status),
                body["error"]["code"].as_str(),
                Span {
                    start_ms,
                    end_ms: since(self.origin),
                },
                latency,
            ),
            // Given up on by the client: not the server's failure.
            None => {
                let stats = log
                    .routes
                    .entry("POST /v1/session (abandoned)")
                    .or_default();
                *stats.outcomes.entry("abandoned".to_owned()).or_default() += 1;
                stats.latencies_us.push(latency);
            }
        }
        drop(log);
        if let (Some(refresh), Some(held)) = (refresh, &mut user.session)
            && !held.handed.contains(&refresh)
        {
            held.handed.push(refresh);
        }
        Ok(())
    }

    /// After any call: a session the server now refuses is let go.
    fn after_other(&self, user: &mut User, answer: &Answer) {
        if answer.status == Some(401) && answer.code() == Some("session-signed-out") {
            self.act("session-found-signed-out");
            self.release(user, "the server answered session-signed-out");
        }
    }

    /// `DELETE /v1/session`; `Ok(true)` when the session is over.
    pub(crate) async fn sign_out(
        &self,
        user: &mut User,
        action: &'static str,
    ) -> anyhow::Result<bool> {
        if user.session.is_none() {
            // Nothing to sign out: sign in instead, so the mix stays as weighted.
            return self.sign_in(user).await.map(|()| false);
        }
        self.act(action);
        let token = self.session(user)?.token.clone();
        let answer = self
            .call(&user.email(), "DELETE /v1/session", &token, None)
            .await;
        let instant = answer.body["instant"]["status"].as_str();
        if instant == Some("done")
            && let Some(held) = &user.session
        {
            for refresh in &held.handed {
                if self.alive(refresh) {
                    lock(&self.log).done_but_alive.push(json!({
                        "session_id": held.session_id,
                        "status": answer.status,
                        "at_ms": since(self.origin),
                    }));
                }
            }
        }
        // Over when InstantDB's half is done or had nothing to do (the Clerk half may
        // still have failed: that session is Clerk's to end, not a token of ours),
        // or when the server already refuses the session.
        let over = matches!(instant, Some("done" | "skipped"))
            || answer.code() == Some("session-signed-out");
        if over {
            self.release(user, "signed out");
        }
        Ok(over)
    }

    /// Revokes the session through the Backend API; Clerk's `session.revoked` webhook
    /// must then sign its InstantDB session out.
    async fn revoke(&self, user: &mut User) -> anyhow::Result<()> {
        let Some(held) = &user.session else {
            return self.sign_in(user).await;
        };
        self.act("revoke-session");
        let path = format!("/v1/sessions/{}/revoke", held.session_id);
        if self
            .clerk_api(&user.email(), "clerk POST /v1/sessions/{id}/revoke", &path)
            .await
        {
            self.release(user, "revoked at Clerk");
        }
        Ok(())
    }

    /// Deletes the user through the Backend API (`user.deleted` follows); a new user
    /// with a new address takes its place.
    async fn delete_user(&self, user: &mut User) -> anyhow::Result<()> {
        if user.session.is_none() {
            // Sign in first, so the deletion has an InstantDB user to reach.
            return self.sign_in(user).await;
        }
        self.act("delete-user");
        let path = format!("/v1/users/{}", user.clerk_id);
        if self
            .clerk_api(&user.email(), "clerk DELETE /v1/users/{id}", &path)
            .await
        {
            self.release(user, "user deleted at Clerk");
            user.generation += 1;
            let created = self
                .stack
                .clerk
                .create_user(NewUser::with_email(email(user.index, user.generation)))?;
            user.clerk_id = created.id;
        }
        Ok(())
    }

    /// A token that expired ten minutes ago: must be refused.
    async fn expired(&self, user: &mut User, rng: &mut Rng) -> anyhow::Result<()> {
        self.act("expired-token");
        let session_id = self.session(user)?.session_id.clone();
        let iat = self.stack.clerk.now() - 600;
        let token = self
            .stack
            .clerk
            .mint_with(&session_id, &MintOptions::new().issued_at(iat))?;
        self.bad_token(&user.email(), &token, "expired", rng).await;
        Ok(())
    }

    /// A token signed by a key Clerk never had: must be refused.
    async fn forged(&self, user: &mut User, rng: &mut Rng) -> anyhow::Result<()> {
        self.act("forged-token");
        let session_id = self.session(user)?.session_id.clone();
        let draft = self
            .stack
            .clerk
            .token_builder(&session_id, &MintOptions::new())?;
        let token = if rng.below(2) == 0 {
            draft.sign_with(&self.forged_same_kid)
        } else {
            draft
                .header("kid", self.forged_other_kid.kid())
                .sign_with(&self.forged_other_kid)
        };
        self.bad_token(&user.email(), &token, "forged", rng).await;
        Ok(())
    }

    async fn bad_token(&self, who: &str, token: &str, what: &'static str, rng: &mut Rng) {
        let body = json!({"query": {"goals": {}}});
        let (route, body) = match rng.below(3) {
            0 => ("POST /v1/session", None),
            1 => ("GET /v1/me", None),
            _ => ("POST /v1/query", Some(&body)),
        };
        let answer = self.call(who, route, token, body).await;
        if answer.ok() {
            lock(&self.log).bad_tokens_accepted.push(json!({
                "token": what,
                "route": route,
                "status": answer.status,
            }));
        }
    }
}

/// A random UUID-shaped id for a transaction's entity.
fn uuid_like(rng: &mut Rng) -> String {
    let a = rng.next();
    let b = rng.next();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let drawn: Vec<usize> = (0..1000).map(|_| a.below(10)).collect();
        assert!(drawn.iter().all(|n| *n < 10));
        assert_eq!(drawn, (0..1000).map(|_| b.below(10)).collect::<Vec<_>>());
        // Every value comes up.
        assert!((0..10).all(|n| drawn.contains(&n)));
    }

    #[test]
    fn entity_ids_are_uuid_shaped() {
        let id = uuid_like(&mut Rng::new(1));
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "{id}"
        );
    }
}
