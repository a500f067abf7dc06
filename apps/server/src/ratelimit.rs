//! Rate limits, each a token bucket (GCRA: one instant per key, no timer per key):
//!
//! - per client address, on every `/v1/*` route ([`Route::is_rate_limited`]);
//! - per Clerk session (`sid`, once its token verified), on sign-in;
//! - rejected Clerk tokens per client address, on the routes that take one
//!   ([`Route::takes_clerk_token`]): every 401 for a token that failed verification
//!   counts, and past the limit the address gets 429 before its token is looked at, so
//!   a flood of forged tokens costs no signature check.
//!
//! Every limit answers 429 `rate-limited` with `Retry-After` and is counted in
//! `clerk_instant_rate_limited_total{limit}`. The client address is the peer address;
//! a forwarded header is believed only from a peer in [`TrustedProxies`], and then its
//! rightmost hop that is not itself a trusted proxy is the client. IPv6 clients are
//! keyed by their /64, which one host usually holds whole.
//!
//! The limits are kept in this process: with several replicas each counts alone, so a
//! client gets up to the limit times the replica count. Keys whose bucket is full again
//! are forgotten every [`FORGET_EVERY`]; a limiter holds at most [`MAX_KEYS`] keys, and
//! a new key beyond that goes unlimited until the next forgetting (the limits protect
//! the server's work, never its memory).
//!
//! Hand-written rather than `governor`: the bad-token gate must ask whether a key has
//! room without taking it, which `governor` does not offer, and the whole algorithm is
//! the few lines of `Bucket`.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code};
use crate::metrics::Metrics;
use crate::routes::Route;
use crate::state::AppState;

/// How often keys whose bucket is full again are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(10);

/// The most keys one limiter tracks.
pub const MAX_KEYS: usize = 100_000;

/// A token bucket: `burst` requests at once, one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// How many requests fit at once.
    pub burst: NonZeroU32,
    /// How often one request's room comes back.
    pub every: Duration,
}

impl Quota {
    /// `rate` requests per `period`, `burst` at once; `None` (no limit) when `rate` is
    /// 0. A `burst` of 0 is taken as 1.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Option<Quota> {
        let rate = NonZeroU32::new(rate)?;
        Some(Quota {
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            every: (period / rate.get()).max(Duration::from_nanos(1)),
        })
    }

    /// How long the bucket takes to fill from empty.
    fn window(self) -> Duration {
        self.every.saturating_mul(self.burst.get())
    }
}

/// Which forwarded header a trusted proxy sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// The setting's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// A [`ForwardedHeader`] setting that names neither header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be x-forwarded-for or forwarded")]
pub struct UnknownHeader;

impl FromStr for ForwardedHeader {
    type Err = UnknownHeader;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded]
            .into_iter()
            .find(|header| header.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or(UnknownHeader)
    }
}

/// One trusted address or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    network: IpAddr,
    prefix: u8,
}

impl Block {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(net)), self.prefix, 32)
                    == mask(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), self.prefix, 128) == mask(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `bits`-wide address.
fn mask(address: u128, prefix: u8, bits: u8) -> u128 {
    let drop = u32::from(bits.saturating_sub(prefix));
    address.checked_shr(drop).unwrap_or(0)
}

/// The proxies whose forwarded header is believed: addresses and CIDR blocks. Empty
/// (the default): no forwarded header is believed, the peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Block>);

/// A [`TrustedProxies`] entry that is not an address or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an IP address or a CIDR block such as 10.0.0.0/8 or fd00::/8")]
pub struct BadProxy {
    /// The entry.
    pub entry: String,
}

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Addresses and CIDR blocks separated by commas or whitespace.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let bad = || BadProxy {
                    entry: entry.to_owned(),
                };
                let (address, prefix) = match entry.split_once('/') {
                    Some((address, prefix)) => (address, Some(prefix)),
                    None => (entry, None),
                };
                let network = address.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
                let bits = if network.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    None => bits,
                    Some(prefix) => prefix
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= bits)
                        .ok_or_else(bad)?,
                };
                Ok(Block { network, prefix })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|block| block.contains(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a request from `peer`: the peer itself unless it is a trusted
    /// proxy; then the rightmost hop of `header` that is not a trusted proxy (hops are
    /// appended on the right, so everything left of the last untrusted hop may be made
    /// up by the client). A hop that cannot be read stops the walk at the hop after it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap, header: ForwardedHeader) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let values = match header {
            ForwardedHeader::XForwardedFor => headers.get_all("x-forwarded-for"),
            ForwardedHeader::Forwarded => headers.get_all("forwarded"),
        };
        let hops: Vec<&str> = values
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.into_iter().rev() {
            let address = match header {
                ForwardedHeader::XForwardedFor => Some(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            };
            match address.and_then(hop_address) {
                Some(hop) => client = hop.to_canonical(),
                None => return client,
            }
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// The `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The address of a hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1` or `[2001:db8::1]:80`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(inside) = hop.strip_prefix('[') {
        let (address, _) = inside.split_once(']')?;
        return address.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    hop.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

/// What a client is counted as: its address, or its /64 for IPv6.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// The rate limit settings (see the `RATE_LIMIT_*` and `TRUSTED_PROXY*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Requests per client address on the `/v1/*` routes.
    pub per_ip: Option<Quota>,
    /// Sign-ins per Clerk session.
    pub per_session: Option<Quota>,
    /// Rejected tokens per client address.
    pub bad_tokens: Option<Quota>,
    /// The proxies whose forwarded header is believed.
    pub trusted_proxies: TrustedProxies,
    /// The header they set.
    pub forwarded_header: ForwardedHeader,
}

impl RateLimitSettings {
    /// Every limit off.
    pub fn off() -> RateLimitSettings {
        RateLimitSettings {
            per_ip: None,
            per_session: None,
            bad_tokens: None,
            trusted_proxies: TrustedProxies::default(),
            forwarded_header: ForwardedHeader::default(),
        }
    }
}

/// Which limit refused a request: its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Requests per client address.
    Ip,
    /// Sign-ins per Clerk session.
    Session,
    /// Rejected tokens per client address.
    BadToken,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 3] = [Limit::Ip, Limit::Session, Limit::BadToken];

    /// The `limit` label of `clerk_instant_rate_limited_total`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::Ip => "ip",
            Limit::Session => "session",
            Limit::BadToken => "bad-token",
        }
    }

    /// The 429 answer, with `Retry-After`.
    fn refuse(self, wait: Duration) -> ApiError {
        let message = match self {
            Limit::Ip => "too many requests from this client; retry after Retry-After seconds",
            Limit::Session => {
                "too many sign-ins for this Clerk session; keep the refresh token of the last sign-in, or retry after Retry-After seconds"
            }
            Limit::BadToken => {
                "too many rejected tokens from this client; its requests are refused for Retry-After seconds"
            }
        };
        let mut error = ApiError::new(Code::RateLimited, message);
        error.retry_after = Some(wait);
        error
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keyed token buckets. Each key holds the instant its bucket is full again (GCRA's
/// "theoretical arrival time"); a key whose instant has passed is the same as none.
struct Bucket<K> {
    quota: Quota,
    full_at: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq> Bucket<K> {
    fn new(quota: Quota) -> Self {
        Bucket {
            quota,
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// Where `key`'s bucket would be after one more request at `now`: `Ok(full_at)`
    /// when there is room, else how long until there is.
    fn next(&self, full_at: Option<Instant>, now: Instant) -> Result<Instant, Duration> {
        let from = full_at.map_or(now, |at| at.max(now));
        let after = from + self.quota.every;
        let ahead = after.saturating_duration_since(now);
        if ahead <= self.quota.window() {
            Ok(after)
        } else {
            Err(ahead - self.quota.window())
        }
    }

    /// Takes room for one request, or says how long until there is.
    fn take<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut map = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let after = self.next(map.get(key).copied(), now)?;
        if let Some(at) = map.get_mut(key) {
            *at = after;
        } else if map.len() < MAX_KEYS {
            map.insert(key.to_owned(), after);
        }
        Ok(())
    }

    /// Whether there is room for one request, without taking it.
    fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        self.next(map.get(key).copied(), now).map(|_| ())
    }

    /// Forgets the keys whose bucket is full again at `now`; returns how many.
    fn forget(&self, now: Instant) -> usize {
        let mut map = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, full_at| *full_at > now);
        before - map.len()
    }

    fn len(&self) -> usize {
        self.full_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

struct Limiters {
    per_ip: Option<Bucket<IpAddr>>,
    per_session: Option<Bucket<String>>,
    bad_tokens: Option<Bucket<IpAddr>>,
    trusted_proxies: TrustedProxies,
    forwarded_header: ForwardedHeader,
    metrics: Arc<Metrics>,
}

impl Limiters {
    fn forget(&self, now: Instant) -> usize {
        self.per_ip.as_ref().map_or(0, |b| b.forget(now))
            + self.per_session.as_ref().map_or(0, |b| b.forget(now))
            + self.bad_tokens.as_ref().map_or(0, |b| b.forget(now))
    }

    fn keys(&self) -> usize {
        self.per_ip.as_ref().map_or(0, Bucket::len)
            + self.per_session.as_ref().map_or(0, Bucket::len)
            + self.bad_tokens.as_ref().map_or(0, Bucket::len)
    }

    fn refuse(&self, limit: Limit, wait: Duration) -> ApiError {
        self.metrics.rate_limited(limit);
        limit.refuse(wait)
    }
}

/// The server's rate limiters. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RateLimits(Arc<Limiters>);

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("keys", &self.0.keys())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// The limiters of `settings`, counting refusals in `metrics`. Inside a Tokio
    /// runtime, a task forgets idle keys every [`FORGET_EVERY`] until the limiters are
    /// dropped.
    pub(crate) fn new(settings: &RateLimitSettings, metrics: Arc<Metrics>) -> RateLimits {
        let limits = RateLimits(Arc::new(Limiters {
            per_ip: settings.per_ip.map(Bucket::new),
            per_session: settings.per_session.map(Bucket::new),
            bad_tokens: settings.bad_tokens.map(Bucket::new),
            trusted_proxies: settings.trusted_proxies.clone(),
            forwarded_header: settings.forwarded_header,
            metrics,
        }));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(forget_idle(Arc::downgrade(&limits.0)));
        }
        limits
    }

    /// The client of a request from `peer`.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.0
            .trusted_proxies
            .client(peer, headers, self.0.forwarded_header)
    }

    /// Takes one sign-in of the Clerk session `sid`, or 429.
    pub(crate) fn sign_in(&self, sid: &str, now: Instant) -> Result<(), ApiError> {
        match &self.0.per_session {
            Some(bucket) => bucket
                .take(sid, now)
                .map_err(|wait| self.0.refuse(Limit::Session, wait)),
            None => Ok(()),
        }
    }

    /// Admits a request of `client` before it is handled, or 429: first the rejected
    /// tokens (when the route takes one: checked, not taken), then the request itself.
    fn admit(&self, client: IpAddr, takes_token: bool, now: Instant) -> Result<(), ApiError> {
        let key = client_key(client);
        if takes_token && let Some(bucket) = &self.0.bad_tokens {
            bucket
                .check(&key, now)
                .map_err(|wait| self.0.refuse(Limit::BadToken, wait))?;
        }
        match &self.0.per_ip {
            Some(bucket) => bucket
                .take(&key, now)
                .map_err(|wait| self.0.refuse(Limit::Ip, wait)),
            None => Ok(()),
        }
    }

    /// Counts a rejected token of `client`.
    fn rejected_token(&self, client: IpAddr, now: Instant) {
        if let Some(bucket) = &self.0.bad_tokens {
            // Over the limit already: the next request is refused by `admit` anyway.
            let _ = bucket.take(&client_key(client), now);
        }
    }
}

/// Forgets idle keys every [`FORGET_EVERY`] while the limiters live.
async fn forget_idle(limits: Weak<Limiters>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        limits.forget(Instant::now());
    }
}

/// The limits around every request: 429 before the handler runs when the client is
/// over its request limit or (on a route taking a Clerk token) its rejected-token
/// limit; afterwards, a rejected token is counted against the client.
pub(crate) async fn limit(state: &AppState, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(Route::of)
        .filter(|route| route.is_rate_limited());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    // A server always has its peer; a router driven without one is not limited.
    let (Some(route), Some(peer)) = (route, peer) else {
        return next.run(request).await;
    };
    let limits = &state.inner.limits;
    let client = limits.client(peer, request.headers());
    let takes_token = route.takes_clerk_token();
    if let Err(refused) = limits.admit(client, takes_token, Instant::now()) {
        return refused.into_response();
    }
    let response = next.run(request).await;
    if takes_token
        && response
            .extensions()
            .get::<Code>()
            .is_some_and(|code| code.is_token_rejection())
    {
        limits.rejected_token(client, Instant::now());
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn quota(burst: u32, every_secs: u64) -> Quota {
        Quota::new(1, Duration::from_secs(every_secs), burst).unwrap()
    }

    #[test]
    fn a_bucket_takes_its_burst_then_refuses_until_room_comes_back() {
        let bucket = Bucket::<IpAddr>::new(quota(3, 10));
        let t0 = Instant::now();
        let key = ip("192.0.2.1");
        for _ in 0..3 {
            bucket.take(&key, t0).unwrap();
        }
        assert_eq!(bucket.take(&key, t0), Err(Duration::from_secs(10)));
        assert_eq!(bucket.check(&key, t0), Err(Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(4);
        assert_eq!(bucket.take(&key, later), Err(Duration::from_secs(6)));
        // Another key has its own bucket.
        bucket.take(&ip("192.0.2.2"), t0).unwrap();
        // One request's room is back after `every`, and only one.
        let back = t0 + Duration::from_secs(10);
        bucket.check(&key, back).unwrap();
        bucket.take(&key, back).unwrap();
        assert!(bucket.take(&key, back).is_err());
    }

    #[test]
    fn checking_takes_nothing() {
        let bucket = Bucket::<IpAddr>::new(quota(1, 60));
        let t0 = Instant::now();
        let key = ip("192.0.2.1");
        for _ in 0..5 {
            bucket.check(&key, t0).unwrap();
        }
        bucket.take(&key, t0).unwrap();
        assert!(bucket.check(&key, t0).is_err());
        assert_eq!(bucket.len(), 1);
    }

    #[test]
    fn idle_keys_are_forgotten_and_busy_ones_kept() {
        let bucket = Bucket::<IpAddr>::new(quota(2, 1));
        let t0 = Instant::now();
        for n in 0..50u8 {
            bucket.take(&IpAddr::from([198, 51, 100, n]), t0).unwrap();
        }
        let busy = ip("192.0.2.9");
        bucket.take(&busy, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(bucket.len(), 51);
        assert_eq!(bucket.forget(t0), 0, "nothing is idle yet");
        assert_eq!(bucket.forget(t0 + Duration::from_secs(5)), 50);
        assert_eq!(bucket.len(), 1);
        assert_eq!(bucket.forget(t0 + Duration::from_secs(6)), 1);
        assert_eq!(bucket.len(), 0);
    }

    #[test]
    fn the_limiters_forget_idle_keys_of_every_limit() {
        let settings = RateLimitSettings {
            per_ip: Some(quota(5, 1)),
            per_session: Some(quota(5, 1)),
            bad_tokens: Some(quota(5, 1)),
            ..RateLimitSettings::off()
        };
        let limits = RateLimits::new(&settings, Arc::new(Metrics::default()));
        let t0 = Instant::now();
        for n in 0..20u8 {
            let client = IpAddr::from([198, 51, 100, n]);
            limits.admit(client, true, t0).unwrap();
            limits.rejected_token(client, t0);
            limits.sign_in(&format!("sess_{n}"), t0).unwrap();
        }
        assert_eq!(limits.0.keys(), 60);
        assert_eq!(limits.0.forget(t0 + Duration::from_secs(2)), 60);
        assert_eq!(limits.0.keys(), 0);
    }

    #[test]
    fn a_full_limiter_lets_new_keys_through_untracked() {
        let bucket = Bucket::<u32>::new(quota(1, 60));
        let t0 = Instant::now();
        for key in 0..u32::try_from(MAX_KEYS).unwrap() {
            bucket.take(&key, t0).unwrap();
        }
        let beyond = u32::MAX;
        bucket.take(&beyond, t0).unwrap();
        bucket.take(&beyond, t0).unwrap();
        assert_eq!(bucket.len(), MAX_KEYS);
        assert!(bucket.take(&0, t0).is_err(), "tracked keys stay limited");
    }

    #[test]
    fn a_rate_of_zero_is_no_limit_and_the_rate_sets_the_interval() {
        assert_eq!(Quota::new(0, Duration::from_secs(1), 10), None);
        let quota = Quota::new(50, Duration::from_secs(1), 0).unwrap();
        assert_eq!(quota.every, Duration::from_millis(20));
        assert_eq!(quota.burst.get(), 1);
        let per_minute = Quota::new(10, Duration::from_secs(60), 5).unwrap();
        assert_eq!(per_minute.every, Duration::from_secs(6));
        assert_eq!(per_minute.window(), Duration::from_secs(30));
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_blocks() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.7 fd00::/8,::1".parse().unwrap();
        assert!(proxies.contains(ip("10.1.2.3")));
        assert!(proxies.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!proxies.contains(ip("11.0.0.1")));
        assert!(proxies.contains(ip("192.0.2.7")));
        assert!(!proxies.contains(ip("192.0.2.8")));
        assert!(proxies.contains(ip("fd12::1")));
        assert!(proxies.contains(ip("::1")));
        assert!(!proxies.contains(ip("2001:db8::1")));
        let everything: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.1")));
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "example.com",
            "10.0.0/8",
            "::1/129",
            "10.0.0.1/x",
        ] {
            let error = bad.parse::<TrustedProxies>().unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_forwarded_header_is_believed_only_from_a_trusted_peer() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let xff = ForwardedHeader::XForwardedFor;
        let spoofed = headers("x-forwarded-for", &["198.51.100.1"]);
        // An untrusted peer is the client, whatever it sends.
        assert_eq!(
            proxies.client(ip("203.0.113.5"), &spoofed, xff),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &spoofed, xff),
            ip("10.0.0.1")
        );
        // A trusted peer: the rightmost hop that is not a trusted proxy.
        let chain = headers("x-forwarded-for", &["198.51.100.1, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &chain, xff),
            ip("203.0.113.9")
        );
        // The same across several header lines, and with ports.
        let lines = headers("x-forwarded-for", &["198.51.100.1", "[2001:db8::5]:4711"]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &lines, xff),
            ip("2001:db8::5")
        );
        // An unreadable hop stops the walk at the trusted hop to its right.
        let garbage = headers("x-forwarded-for", &["198.51.100.1, garbage, 10.0.0.2"]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &garbage, xff),
            ip("10.0.0.2")
        );
        // No header from a trusted peer: the peer.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &HeaderMap::new(), xff),
            ip("10.0.0.1")
        );
        // The other header is not read.
        let other = headers("forwarded", &["for=198.51.100.1"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &other, xff), ip("10.0.0.1"));
    }

    #[test]
    fn the_forwarded_header_is_read_by_its_for_parameters() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let forwarded = headers(
            "forwarded",
            &[
                "for=198.51.100.1;proto=https",
                "for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.3, For=10.0.0.2",
            ],
        );
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &forwarded, ForwardedHeader::Forwarded),
            ip("2001:db8:cafe::17")
        );
        let obfuscated = headers("forwarded", &["for=_hidden, for=10.0.0.2"]);
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &obfuscated, ForwardedHeader::Forwarded),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn the_header_setting_names_one_of_two_headers() {
        assert_eq!(
            "X-Forwarded-For".parse::<ForwardedHeader>(),
            Ok(ForwardedHeader::XForwardedFor)
        );
        assert_eq!(
            "forwarded".parse::<ForwardedHeader>(),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }
}
