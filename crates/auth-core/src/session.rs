//! The broker's vocabulary: how it signs in (`Strategy`, `BrokerConfig`) and what it
//! answers (`ClerkIdentity`, `SignIn`, `SignOut` and its two `Half`s).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clerk_jwt::SessionClaims;
use instant_client::{RefreshToken, User};
use serde::Serialize;

/// How the broker obtains an InstantDB session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Forward the Clerk token to InstantDB's sign-in-with-id-token endpoint, naming the
    /// Clerk client configured in InstantDB (what Clerk's and InstantDB's guides do).
    IdToken {
        /// The client name in the Instant dashboard (e.g. `clerk`).
        client_name: String,
    },
    /// Create a refresh token for the verified email with the admin token: no Clerk
    /// client needed in InstantDB, but the email must be verified.
    Admin,
}

impl Strategy {
    /// `id-token` or `admin`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::IdToken { .. } => "id-token",
            Strategy::Admin => "admin",
        }
    }
}

/// A Clerk token the broker has verified, with who it says the caller is. Only
/// [`SessionBroker::authenticate`](crate::SessionBroker::authenticate) makes one, so a
/// caller that checks the token before reading a request body hands this on and the
/// token is not verified twice.
#[derive(Clone)]
pub struct Verified<'a> {
    pub(crate) token: Cow<'a, str>,
    pub(crate) identity: ClerkIdentity,
}

impl Verified<'_> {
    /// Who the token says the caller is.
    pub fn identity(&self) -> &ClerkIdentity {
        &self.identity
    }

    /// The same, owning its token: for a task that outlives the request it came with,
    /// which then need not verify the token again.
    pub fn into_owned(self) -> Verified<'static> {
        Verified {
            token: Cow::Owned(self.token.into_owned()),
            identity: self.identity,
        }
    }
}

/// The identity only: the token is a credential.
impl fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Who the Clerk token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClerkIdentity {
    /// `sub`: the Clerk user id.
    pub user_id: String,
    /// `sid`: the Clerk session id.
    pub session_id: String,
    /// The `email` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The `email_verified` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The token's `exp` (clock seconds): a signed-out session is refused at least
    /// until then.
    #[serde(skip)]
    pub expires_at: i64,
    /// `act`: who is impersonating the user (Clerk dashboard's "Impersonate user"),
    /// when someone is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<clerk_jwt::Actor>,
}

impl From<&SessionClaims> for ClerkIdentity {
    fn from(claims: &SessionClaims) -> Self {
        ClerkIdentity {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            email: claims.email.clone(),
            email_verified: claims.email_verified,
            expires_at: claims.exp,
            actor: claims.actor.clone(),
        }
    }
}

/// The outcome of a sign-in.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct SignIn {
    /// The Clerk identity.
    pub clerk: ClerkIdentity,
    /// The InstantDB user.
    pub user: Arc<User>,
    /// The InstantDB session: hand it to the client (it is the user's credential).
    pub refresh_token: RefreshToken,
    /// Whether InstantDB created the user for this sign-in.
    pub created: bool,
    /// Whether an existing InstantDB session was reused.
    pub reused: bool,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("clerk", &self.clerk)
            .field("user", &self.user.id)
            .field("refresh_token", &self.refresh_token)
            .field("created", &self.created)
            .field("reused", &self.reused)
            .finish()
    }
}

/// What happened to one half of a sign-out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Half {
    /// Done.
    Done,
    /// Not attempted, and why.
    Skipped(&'static str),
    /// Attempted and failed.
    Failed(HalfError),
}

/// Why one half of a sign-out failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HalfError {
    /// InstantDB's sign-out failed.
    #[error(transparent)]
    Instant(instant_client::Error),
    /// Clerk's revoke failed.
    #[error(transparent)]
    Clerk(clerk_backend::Error),
}

impl HalfError {
    /// Whether retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            HalfError::Instant(e) => e.is_unavailable(),
            HalfError::Clerk(e) => e.is_unavailable(),
        }
    }

    /// Whether the upstream timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            HalfError::Instant(e) => matches!(
                e,
                instant_client::Error::Unavailable {
                    cause: instant_client::Outage::Timeout,
                    ..
                }
            ),
            HalfError::Clerk(e) => e.is_timeout(),
        }
    }
}

impl Half {
    /// `done`, `skipped` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Half::Done => "done",
            Half::Skipped(_) => "skipped",
            Half::Failed(_) => "failed",
        }
    }

    /// Whether this half failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Half::Failed(_))
    }
}

/// The outcome of a sign-out: each half reported, neither hidden.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignOut {
    /// The Clerk identity that signed out.
    pub clerk: ClerkIdentity,
    /// InstantDB: the session's refresh token signed out.
    pub instant: Half,
    /// Clerk: the session revoked through the Backend API.
    pub clerk_session: Half,
}

/// The broker's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// How InstantDB sessions are obtained.
    pub strategy: Strategy,
    /// A stored session is returned without asking InstantDB for at most this long
    /// after InstantDB last confirmed it; after that the sign-in passes the stored
    /// refresh token back to InstantDB (which reuses it) or checks it (admin strategy).
    /// Each Clerk session comes due somewhere between three quarters of this and all of
    /// it, by its id, so sessions signed in together do not all ask InstantDB in the
    /// same second. A query or transaction that succeeds with a session from three
    /// quarters of its window on counts as InstantDB's confirmation and starts the
    /// next window. Zero asks every time. Default 60 s.
    pub revalidate_after: Duration,
    /// How long a stored session is kept. Default 7 days (Clerk's default session
    /// lifetime).
    pub session_ttl: Duration,
    /// How long the Clerk user → InstantDB user link recorded at a sign-in is kept
    /// (renewed by every sign-in that reaches InstantDB). Default 30 days.
    pub user_link_ttl: Duration,
    /// How long an applied webhook message id is remembered. Default 28 hours (Svix's
    /// retries span about 27 hours).
    pub delivery_retention: Duration,
    /// How long a claimed, unfinished webhook message id blocks other deliveries of it
    /// (a claimant that crashed releases it this way). Default 5 minutes.
    pub delivery_lease: Duration,
    /// The longest a sign-in holds its Clerk session's lock (longer than an InstantDB
    /// sign-in takes with its retries); a holder that crashed blocks the session's
    /// other sign-ins this long at most. Default 15 s.
    pub sign_in_lock: Duration,
    /// How long a Clerk session or user stays refused after it was signed out, ended
    /// or deleted, at least: no token accepted by the verifier may outlive it, so set
    /// it to the verifier's maximum token lifetime plus its leeway. A signed-out
    /// session is also refused until the `exp` of the token that signed it out.
    /// Default 90 s (Clerk's 60 s session tokens plus 30 s of leeway).
    pub refuse_for: Duration,
}

impl BrokerConfig {
    /// Settings with the defaults for this strategy.
    pub fn new(strategy: Strategy) -> Self {
        BrokerConfig {
            strategy,
            revalidate_after: Duration::from_secs(60),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            user_link_ttl: Duration::from_secs(30 * 24 * 3600),
            delivery_retention: Duration::from_secs(28 * 3600),
            delivery_lease: Duration::from_secs(5 * 60),
            sign_in_lock: Duration::from_secs(15),
            refuse_for: Duration::from_secs(60 + 30),
        }
    }

    /// Sets the longest a sign-in holds its Clerk session's lock (at least 1 s).
    pub fn sign_in_lock(mut self, lock: Duration) -> Self {
        self.sign_in_lock = lock.max(Duration::from_secs(1));
        self
    }

    /// Sets how long signed-out or ended Clerk sessions (and deleted users) are refused,
    /// at least.
    pub fn refuse_for(mut self, refuse_for: Duration) -> Self {
        self.refuse_for = refuse_for;
        self
    }

    /// Sets how long a stored session is trusted without asking InstantDB.
    pub fn revalidate_after(mut self, after: Duration) -> Self {
        self.revalidate_after = after;
        self
    }

    /// Sets how long a stored session is kept.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Sets how long the Clerk user → InstantDB user link is kept.
    pub fn user_link_ttl(mut self, ttl: Duration) -> Self {
        self.user_link_ttl = ttl;
        self
    }

    /// Sets how long applied webhook message ids are remembered (at least 28 hours
    /// is what Svix's retry span needs).
    pub fn delivery_retention(mut self, retention: Duration) -> Self {
        self.delivery_retention = retention;
        self
    }

    /// Sets how long an unfinished claim on a webhook message id lasts.
    pub fn delivery_lease(mut self, lease: Duration) -> Self {
        self.delivery_lease = lease;
        self
    }
}
