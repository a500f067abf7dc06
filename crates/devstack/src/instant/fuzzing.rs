//! The `/admin/query` route's reading and evaluation of a body, without HTTP or
//! authentication, for the `instaql` fuzz target (`fuzz/`): the store and its InstaQL
//! evaluator are private to the crate, and a fuzz target is another crate. Hidden from
//! the docs; not part of the API.

use serde_json::Value;

use super::db::Db;
use super::error::ApiError;
use super::routes::{json_map, query_param};

/// An emulator store to run `/admin/query` bodies on (for fuzzing only).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct QueryStore {
    db: Db,
}

fn parts(error: ApiError) -> (u16, Value) {
    (error.status, error.body)
}

impl QueryStore {
    /// A store holding what `steps` (an `/admin/transact` body's `steps`) write; or
    /// the emulator's error status and body.
    pub fn new(steps: &Value) -> Result<Self, (u16, Value)> {
        let mut db = Db::new();
        db.transact(steps, false, 0).map_err(parts)?;
        Ok(QueryStore { db })
    }

    /// What `POST /admin/query` answers for an authenticated JSON `body`: the result,
    /// or the error's status and body.
    pub fn query(&self, body: &[u8]) -> Result<Value, (u16, Value)> {
        let body = json_map(body).map_err(parts)?;
        let query = query_param(&body).map_err(parts)?;
        self.db.query(query).map_err(parts)
    }
}
