//! The InstantDB endpoints this crate calls, and how each one is sent.

use std::fmt;

use reqwest::Method;

/// One InstantDB endpoint: named in errors and in `tracing` spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /runtime/oauth/id_token`: sign in with an id token.
    SignInWithIdToken,
    /// `POST /runtime/signout`: delete one refresh token.
    SignOut,
    /// `POST /runtime/auth/verify_refresh_token`: the user behind a refresh token.
    VerifyRefreshToken,
    /// `POST /admin/query`: an InstaQL query.
    Query,
    /// `POST /admin/transact`: a transaction.
    Transact,
    /// `POST /admin/refresh_tokens`: a new refresh token for a user.
    CreateToken,
    /// `GET /admin/users`: look a user up.
    GetUser,
    /// `DELETE /admin/users`: delete a user.
    DeleteUser,
    /// `POST /admin/sign_out`: sign a user out.
    SignOutUser,
}

/// Which official SDK's request shape an endpoint follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `@instantdb/core`: `content-type` and `accept` only; the app id in the body.
    Runtime,
    /// `@instantdb/admin`: `app-id`, `authorization`, version headers, `?app_id=`.
    Admin,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 9] = [
        Endpoint::SignInWithIdToken,
        Endpoint::SignOut,
        Endpoint::VerifyRefreshToken,
        Endpoint::Query,
        Endpoint::Transact,
        Endpoint::CreateToken,
        Endpoint::GetUser,
        Endpoint::DeleteUser,
        Endpoint::SignOutUser,
    ];

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Endpoint::GetUser => Method::GET,
            Endpoint::DeleteUser => Method::DELETE,
            Endpoint::SignInWithIdToken
            | Endpoint::SignOut
            | Endpoint::VerifyRefreshToken
            | Endpoint::Query
            | Endpoint::Transact
            | Endpoint::CreateToken
            | Endpoint::SignOutUser => Method::POST,
        }
    }

    /// The path, below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::SignInWithIdToken => "/runtime/oauth/id_token",
            Endpoint::SignOut => "/runtime/signout",
            Endpoint::VerifyRefreshToken => "/runtime/auth/verify_refresh_token",
            Endpoint::Query => "/admin/query",
            Endpoint::Transact => "/admin/transact",
            Endpoint::CreateToken => "/admin/refresh_tokens",
            Endpoint::GetUser | Endpoint::DeleteUser => "/admin/users",
            Endpoint::SignOutUser => "/admin/sign_out",
        }
    }

    /// Whether repeating the call cannot change anything on the server, so it is
    /// retried by default (query, get user, verify refresh token).
    pub fn is_idempotent_read(self) -> bool {
        matches!(
            self,
            Endpoint::Query | Endpoint::GetUser | Endpoint::VerifyRefreshToken
        )
    }

    pub(crate) fn flavor(self) -> Flavor {
        match self {
            Endpoint::SignInWithIdToken | Endpoint::SignOut | Endpoint::VerifyRefreshToken => {
                Flavor::Runtime
            }
            _ => Flavor::Admin,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_endpoint_at_its_index() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e}");
        }
        assert_eq!(Endpoint::GetUser.to_string(), "GET /admin/users");
    }
}
