//! The local Clerk's users and sessions: creating, changing and listing them, and the
//! webhook each change sends.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use serde_json::{Value, json};

use super::{Inner, NewUser, Session, SessionState, User, UserUpdate};
use crate::util::clerk_id;
use crate::{Error, Result};

#[derive(Debug, Default)]
pub(super) struct Store {
    pub(super) users: BTreeMap<String, User>,
    pub(super) sessions: BTreeMap<String, Session>,
}

pub(super) fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Store> {
    inner.store.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn now_ms(&self) -> i64 {
        self.clock.now().saturating_mul(1000)
    }

    pub(super) fn user_by_email(&self, email: &str) -> Option<User> {
        let email = email.trim();
        lock(self)
            .users
            .values()
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
    }

    fn check_email(&self, store: &Store, email: &str, except: Option<&str>) -> Result<String> {
        let email = email.trim().to_owned();
        if crate::util::coerce_email(&email).is_none() {
            return Err(Error::invalid(
                "email address",
                format!("{email:?} is not an email address"),
            ));
        }
        let taken = store.users.values().any(|u| {
            Some(u.id.as_str()) != except
                && u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&email))
        });
        if taken {
            return Err(Error::invalid(
                "email address",
                format!("{email} is taken by another user"),
            ));
        }
        Ok(email)
    }

    pub(crate) fn create_user(&self, new: NewUser) -> Result<User> {
        let now = self.now_ms();
        let user = {
            let mut store = lock(self);
            let email = match &new.email {
                Some(email) => Some(self.check_email(&store, email, None)?),
                None => None,
            };
            let metadata = new.public_metadata.unwrap_or_else(|| json!({}));
            if !metadata.is_object() {
                return Err(Error::invalid("public_metadata", "must be a JSON object"));
            }
            let user = User {
                id: clerk_id("user"),
                email_id: email.as_ref().map(|_| clerk_id("idn")),
                email,
                email_verified: new.email_verified,
                first_name: new.first_name,
                last_name: new.last_name,
                username: new.username,
                public_metadata: metadata,
                created_at: now,
                updated_at: now,
            };
            store.users.insert(user.id.clone(), user.clone());
            user
        };
        self.webhooks.send("user.created", &user.to_json());
        Ok(user)
    }

    pub(crate) fn update_user(&self, id: &str, update: UserUpdate) -> Result<User> {
        let now = self.now_ms();
        let user = {
            let mut store = lock(self);
            let email = match &update.email {
                Some(Some(email)) => Some(Some(self.check_email(&store, email, Some(id))?)),
                Some(None) => Some(None),
                None => None,
            };
            if update
                .public_metadata
                .as_ref()
                .is_some_and(|m| !m.is_object())
            {
                return Err(Error::invalid("public_metadata", "must be a JSON object"));
            }
            let user = store
                .users
                .get_mut(id)
                .ok_or_else(|| Error::not_found("user", id))?;
            if let Some(email) = email {
                user.email_id = email.as_ref().map(|_| clerk_id("idn"));
                user.email = email;
                user.email_verified = true;
            }
            if let Some(verified) = update.email_verified {
                user.email_verified = verified;
            }
            if let Some(name) = update.first_name {
                user.first_name = Some(name);
            }
            if let Some(name) = update.last_name {
                user.last_name = Some(name);
            }
            if let Some(metadata) = update.public_metadata {
                user.public_metadata = metadata;
            }
            user.updated_at = now;
            user.clone()
        };
        self.webhooks.send("user.updated", &user.to_json());
        Ok(user)
    }

    pub(crate) fn delete_user(&self, id: &str) -> Result<()> {
        let now = self.now_ms();
        {
            let mut store = lock(self);
            if store.users.remove(id).is_none() {
                return Err(Error::not_found("user", id));
            }
            for session in store.sessions.values_mut().filter(|s| s.user_id == id) {
                if session.status.mints_tokens() {
                    session.status = SessionState::Removed;
                    session.updated_at = now;
                }
            }
        }
        self.webhooks.send(
            "user.deleted",
            &json!({"object": "user", "id": id, "deleted": true}),
        );
        Ok(())
    }

    pub(crate) fn create_session(&self, user_id: &str, status: SessionState) -> Result<Session> {
        let now = self.now_ms();
        let (session, user) = {
            let mut store = lock(self);
            let user = store
                .users
                .get(user_id)
                .cloned()
                .ok_or_else(|| Error::not_found("user", user_id))?;
            let session = Session {
                id: clerk_id("sess"),
                user_id: user_id.to_owned(),
                client_id: clerk_id("client"),
                status,
                created_at: now,
                updated_at: now,
            };
            store.sessions.insert(session.id.clone(), session.clone());
            (session, user)
        };
        self.send_session_event("session.created", &session, &user);
        Ok(session)
    }

    fn send_session_event(&self, event: &str, session: &Session, user: &User) {
        let mut data = session.to_json();
        if let Value::Object(map) = &mut data {
            map.insert("user".into(), user.to_json());
        }
        self.webhooks.send(event, &data);
    }

    pub(crate) fn set_session_state(&self, id: &str, status: SessionState) -> Result<Session> {
        let now = self.now_ms();
        let (session, user) = {
            let mut store = lock(self);
            let session = store
                .sessions
                .get_mut(id)
                .ok_or_else(|| Error::not_found("session", id))?;
            session.status = status;
            session.updated_at = now;
            let session = session.clone();
            let user = store.users.get(&session.user_id).cloned();
            (session, user)
        };
        let event = match status {
            SessionState::Revoked => Some("session.revoked"),
            SessionState::Ended => Some("session.ended"),
            SessionState::Removed => Some("session.removed"),
            SessionState::Active | SessionState::Pending => None,
        };
        if let (Some(event), Some(user)) = (event, user) {
            self.send_session_event(event, &session, &user);
        }
        Ok(session)
    }

    pub(crate) fn sessions(
        &self,
        user_id: Option<&str>,
        status: Option<SessionState>,
    ) -> Vec<Session> {
        let mut sessions: Vec<Session> = lock(self)
            .sessions
            .values()
            .filter(|s| user_id.is_none_or(|u| s.user_id == u))
            .filter(|s| status.is_none_or(|st| s.status == st))
            .cloned()
            .collect();
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        sessions
    }

    pub(crate) fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = lock(self).users.values().cloned().collect();
        users.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        users
    }
}
