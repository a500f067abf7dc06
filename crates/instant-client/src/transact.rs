//! Typed InstaML transactions: steps built in Rust, serialized exactly as the official
//! SDKs send them to `POST /admin/transact`, or parsed from that JSON (`parse`).

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::endpoint::Endpoint;
use crate::error::Error;

mod parse;

/// An entity: its UUID, or a lookup by a unique attribute (`[attr, value]` on the
/// wire).
///
/// ```
/// use instant_client::EntityId;
///
/// let by_id = EntityId::from(instant_client::Uuid::nil());
/// let by_email = EntityId::lookup("email", "alice@example.com");
/// assert_eq!(serde_json::to_string(&by_email)?, r#"["email","alice@example.com"]"#);
/// # let _ = by_id;
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EntityId {
    /// The entity's id.
    Id(Uuid),
    /// The entity whose unique attribute `attr` equals `value`.
    Lookup {
        /// The attribute (unique and indexed in the schema).
        attr: String,
        /// Its value.
        value: Value,
    },
}

impl EntityId {
    /// A lookup by a unique attribute.
    pub fn lookup(attr: impl Into<String>, value: impl Into<Value>) -> Self {
        EntityId::Lookup {
            attr: attr.into(),
            value: value.into(),
        }
    }

    /// A new random (v4) id, for creating an entity.
    pub fn random() -> Self {
        EntityId::Id(Uuid::new_v4())
    }

    /// The JSON it serializes to.
    fn into_value(self) -> Value {
        match self {
            EntityId::Id(id) => Value::String(id.to_string()),
            EntityId::Lookup { attr, value } => Value::Array(vec![Value::String(attr), value]),
        }
    }
}

impl From<Uuid> for EntityId {
    fn from(id: Uuid) -> Self {
        EntityId::Id(id)
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EntityId::Id(id) => id.serialize(s),
            EntityId::Lookup { attr, value } => (attr, value).serialize(s),
        }
    }
}

/// One entity or several, as the target of a link.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LinkTarget {
    /// One entity (sent as a single id).
    One(EntityId),
    /// Several entities (sent as an array).
    Many(Vec<EntityId>),
}

impl Serialize for LinkTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LinkTarget::One(id) => id.serialize(s),
            LinkTarget::Many(ids) => ids.serialize(s),
        }
    }
}

impl LinkTarget {
    /// The JSON it serializes to.
    fn into_value(self) -> Value {
        match self {
            LinkTarget::One(id) => id.into_value(),
            LinkTarget::Many(ids) => {
                Value::Array(ids.into_iter().map(EntityId::into_value).collect())
            }
        }
    }
}

impl From<EntityId> for LinkTarget {
    fn from(id: EntityId) -> Self {
        LinkTarget::One(id)
    }
}

impl From<Uuid> for LinkTarget {
    fn from(id: Uuid) -> Self {
        LinkTarget::One(id.into())
    }
}

impl From<Vec<EntityId>> for LinkTarget {
    fn from(ids: Vec<EntityId>) -> Self {
        LinkTarget::Many(ids)
    }
}

impl From<Vec<Uuid>> for LinkTarget {
    fn from(ids: Vec<Uuid>) -> Self {
        LinkTarget::Many(ids.into_iter().map(EntityId::Id).collect())
    }
}

/// Options of `update` and `merge`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// `Some(false)`: fail rather than create the entity when it does not exist.
    /// Unset: InstantDB's default (create it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upsert: Option<bool>,
}

impl UpdateOptions {
    /// Sets `upsert`.
    pub fn upsert(mut self, upsert: bool) -> Self {
        self.upsert = Some(upsert);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Merge,
    Delete,
    Link,
    Unlink,
    RuleParams,
}

impl Action {
    const ALL: [Action; 7] = [
        Action::Create,
        Action::Update,
        Action::Merge,
        Action::Delete,
        Action::Link,
        Action::Unlink,
        Action::RuleParams,
    ];

    fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Merge => "merge",
            Action::Delete => "delete",
            Action::Link => "link",
            Action::Unlink => "unlink",
            Action::RuleParams => "ruleParams",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    action: Action,
    etype: String,
    id: EntityId,
    /// Attributes, links or params; `None` for delete (sent as `null`, as the JS SDK
    /// does).
    args: Option<Value>,
    opts: Option<UpdateOptions>,
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 4 + usize::from(self.opts.is_some());
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(self.action.as_str())?;
        seq.serialize_element(&self.etype)?;
        seq.serialize_element(&self.id)?;
        seq.serialize_element(&self.args)?;
        if let Some(opts) = &self.opts {
            seq.serialize_element(opts)?;
        }
        seq.end()
    }
}

/// A transaction for `POST /admin/transact`: steps applied atomically, in order.
///
/// Serializes to the request body, `{"steps": [...], "throw-on-missing-attrs?": …}`,
/// and deserializes from it, strictly (see [`Transaction::from_json`]).
///
/// ```
/// use instant_client::{EntityId, Transaction, UpdateOptions, Uuid};
/// use serde_json::json;
///
/// let goal = Uuid::new_v4();
/// let todo = Uuid::new_v4();
/// let tx = Transaction::new()
///     .update("goals", goal, json!({"title": "Get fit"}))
///     .create("todos", todo, json!({"title": "run"}))
///     .link("goals", goal, "todos", todo)
///     .merge_with("goals", goal, json!({"meta": {"a": 1}}), UpdateOptions::default().upsert(false))
///     .update("profiles", EntityId::lookup("email", "alice@example.com"), json!({"name": "Alice"}));
/// assert_eq!(tx.len(), 5);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    steps: Vec<Step>,
    throw_on_missing_attrs: bool,
}

impl Transaction {
    /// The most steps a parsed transaction may have ([`Transaction::from_json`] and
    /// `Deserialize`). The builder does not enforce it.
    pub const MAX_STEPS: usize = 1000;

    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a transaction in InstantDB's wire format, as a browser using the
    /// official SDK would send it to a server that forwards it:
    /// `{"steps": [...], "throw-on-missing-attrs?": bool}` (the flag optional, default
    /// `false`), at most [`Transaction::MAX_STEPS`] steps, each one of
    ///
    /// - `["create" | "update" | "merge", etype, eid, {attrs}]`, optionally followed by
    ///   options `{"upsert": bool}`;
    /// - `["link" | "unlink", etype, eid, {label: eid | [eid, ...], ...}]` (at least
    ///   one label, none empty);
    /// - `["delete", etype, eid]` or `["delete", etype, eid, null]`;
    /// - `["ruleParams", etype, eid, {params}]`;
    ///
    /// where `etype` is a non-empty string and `eid` a UUID in its hyphenated form or
    /// an `[attr, value]` lookup. Anything else is refused, including an entity id
    /// that is a string but not a UUID (InstantDB refuses those too) and keys other
    /// than these two.
    ///
    /// Serializing the result gives back the same JSON, except that UUIDs are written
    /// in lowercase, a delete always carries its `null`, the flag is always present,
    /// object keys are sorted and numbers are reprinted by `serde_json`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (for [`Endpoint::Transact`]) whose `detail` names the
    /// step (counted from 1) and what is wrong with it — positions and JSON kinds,
    /// never a value from the body, so it can be shown to whoever sent it (e.g. as a
    /// 400 answer).
    ///
    /// ```
    /// use instant_client::{Error, Transaction};
    ///
    /// let body = br#"{"steps": [["update", "goals", "00000000-0000-4000-8000-000000000001", {"title": "Get fit"}]]}"#;
    /// let tx = Transaction::from_json(body)?;
    /// assert_eq!(tx.len(), 1);
    ///
    /// let bad = br#"{"steps": [["delete", "goals", "00000000-0000-4000-8000-000000000001"], ["link", "goals", "00000000-0000-4000-8000-000000000001", {"owner": 5}]]}"#;
    /// match Transaction::from_json(bad) {
    ///     Err(Error::InvalidInput { detail, .. }) => assert_eq!(
    ///         detail,
    ///         "step 2: link targets must be entity ids (a uuid or an [attribute, value] lookup, or an array of these), got a number"
    ///     ),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body).map_err(|err| Error::InvalidInput {
            endpoint: Endpoint::Transact,
            detail: parse::describe(&err),
        })
    }

    fn push(
        mut self,
        action: Action,
        etype: impl Into<String>,
        id: impl Into<EntityId>,
        args: Option<Value>,
        opts: Option<UpdateOptions>,
    ) -> Self {
        self.steps.push(Step {
            action,
            etype: etype.into(),
            id: id.into(),
            args,
            opts,
        });
        self
    }

    /// `create`: a new entity with `attrs` (a JSON object); fails if it exists.
    pub fn create(self, etype: impl Into<String>, id: impl Into<EntityId>, attrs: Value) -> Self {
        self.push(Action::Create, etype, id, Some(attrs), None)
    }

    /// `update`: sets `attrs` (a JSON object), creating the entity if missing.
    pub fn update(self, etype: impl Into<String>, id: impl Into<EntityId>, attrs: Value) -> Self {
        self.push(Action::Update, etype, id, Some(attrs), None)
    }

    /// `update` with options (e.g. `upsert: false`).
    pub fn update_with(
        self,
        etype: impl Into<String>,
        id: impl Into<EntityId>,
        attrs: Value,
        opts: UpdateOptions,
    ) -> Self {
        self.push(Action::Update, etype, id, Some(attrs), Some(opts))
    }

    /// `merge`: deep-merges `attrs` (a JSON object) into the entity's objects.
    pub fn merge(self, etype: impl Into<String>, id: impl Into<EntityId>, attrs: Value) -> Self {
        self.push(Action::Merge, etype, id, Some(attrs), None)
    }

    /// `merge` with options (e.g. `upsert: false`).
    pub fn merge_with(
        self,
        etype: impl Into<String>,
        id: impl Into<EntityId>,
        attrs: Value,
        opts: UpdateOptions,
    ) -> Self {
        self.push(Action::Merge, etype, id, Some(attrs), Some(opts))
    }

    /// `delete`: removes the entity.
    pub fn delete(self, etype: impl Into<String>, id: impl Into<EntityId>) -> Self {
        self.push(Action::Delete, etype, id, None, None)
    }

    /// `link`: links the entity to `target` through the link `label`.
    pub fn link(
        self,
        etype: impl Into<String>,
        id: impl Into<EntityId>,
        label: impl Into<String>,
        target: impl Into<LinkTarget>,
    ) -> Self {
        let links = link_args(label.into(), target.into());
        self.push(Action::Link, etype, id, Some(links), None)
    }

    /// `unlink`: removes the link `label` to `target`.
    pub fn unlink(
        self,
        etype: impl Into<String>,
        id: impl Into<EntityId>,
        label: impl Into<String>,
        target: impl Into<LinkTarget>,
    ) -> Self {
        let links = link_args(label.into(), target.into());
        self.push(Action::Unlink, etype, id, Some(links), None)
    }

    /// `ruleParams`: values for the permission rules' `ruleParams` on this entity.
    pub fn rule_params(
        self,
        etype: impl Into<String>,
        id: impl Into<EntityId>,
        params: Map<String, Value>,
    ) -> Self {
        self.push(
            Action::RuleParams,
            etype,
            id,
            Some(Value::Object(params)),
            None,
        )
    }

    /// `throw-on-missing-attrs?`: when `true`, attributes missing from the schema fail
    /// the transaction instead of being created. Default `false`, as the JS SDK sends.
    pub fn throw_on_missing_attrs(mut self, throw: bool) -> Self {
        self.throw_on_missing_attrs = throw;
        self
    }

    /// How many steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The first step whose attributes are not a JSON object, described.
    pub(crate) fn invalid_step(&self) -> Option<String> {
        self.steps.iter().enumerate().find_map(|(i, step)| {
            let bad = step.action != Action::Delete && !matches!(step.args, Some(Value::Object(_)));
            bad.then(|| {
                format!(
                    "step {} ({} {}): attributes must be a json object",
                    i + 1,
                    step.action.as_str(),
                    step.etype
                )
            })
        })
    }
}

fn link_args(label: String, target: LinkTarget) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(label, target.into_value());
    Value::Object(map)
}

impl Serialize for Transaction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut body = s.serialize_struct("Transaction", 2)?;
        body.serialize_field("steps", &self.steps)?;
        body.serialize_field("throw-on-missing-attrs?", &self.throw_on_missing_attrs)?;
        body.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delete_sends_null_arguments_like_the_js_sdk() {
        let id = Uuid::nil();
        let body = serde_json::to_string(&Transaction::new().delete("todos", id)).unwrap();
        assert_eq!(
            body,
            r#"{"steps":[["delete","todos","00000000-0000-0000-0000-000000000000",null]],"throw-on-missing-attrs?":false}"#
        );
    }

    #[test]
    fn non_object_attributes_are_found_before_sending() {
        let tx = Transaction::new()
            .update("goals", Uuid::nil(), json!({"ok": true}))
            .create("goals", Uuid::nil(), json!("title"));
        assert_eq!(
            tx.invalid_step().as_deref(),
            Some("step 2 (create goals): attributes must be a json object")
        );
        assert_eq!(
            Transaction::new().delete("g", Uuid::nil()).invalid_step(),
            None
        );
    }
}
