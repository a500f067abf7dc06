//! InstaQL queries for `POST /admin/query`.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// The key rule params take inside the query object.
const RULE_PARAMS_KEY: &str = "$$ruleParams";

/// An InstaQL query, with the values its permission rules read as `ruleParams`.
///
/// ```
/// use instant_client::Query;
/// use serde_json::json;
///
/// let query = Query::new(json!({"goals": {"$": {"where": {"title": "x"}}, "todos": {}}}))
///     .rule_param("secret", "s3")
///     .inference(false);
/// assert_eq!(
///     serde_json::to_string(&query)?,
///     r#"{"query":{"goals":{"$":{"where":{"title":"x"}},"todos":{}},"$$ruleParams":{"secret":"s3"}},"inference?":false}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    query: Value,
    rule_params: Option<Map<String, Value>>,
    inference: bool,
}

impl Query {
    /// A query: a JSON object of namespaces, as in the JS SDK.
    pub fn new(query: Value) -> Self {
        Query {
            query,
            rule_params: None,
            inference: false,
        }
    }

    /// Sets all rule params (sent inside the query as `$$ruleParams`).
    pub fn rule_params(mut self, params: Map<String, Value>) -> Self {
        self.rule_params = Some(params);
        self
    }

    /// Adds one rule param.
    pub fn rule_param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.rule_params
            .get_or_insert_with(Map::new)
            .insert(name.into(), value.into());
        self
    }

    /// `inference?`: whether InstantDB infers types of returned values. Default
    /// `false`, as the JS SDK sends.
    pub fn inference(mut self, inference: bool) -> Self {
        self.inference = inference;
        self
    }

    /// The query object.
    pub fn query(&self) -> &Value {
        &self.query
    }

    pub(crate) fn is_object(&self) -> bool {
        self.query.is_object()
    }
}

impl From<Value> for Query {
    fn from(query: Value) -> Self {
        Query::new(query)
    }
}

/// The query object with `$$ruleParams` added, without copying the query.
struct WithRuleParams<'a> {
    query: &'a Value,
    params: Option<&'a Map<String, Value>>,
}

impl Serialize for WithRuleParams<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.query, self.params) {
            (Value::Object(query), Some(params)) => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in query.iter().filter(|(k, _)| *k != RULE_PARAMS_KEY) {
                    map.serialize_entry(k, v)?;
                }
                map.serialize_entry(RULE_PARAMS_KEY, params)?;
                map.end()
            }
            (query, _) => query.serialize(s),
        }
    }
}

impl Serialize for Query {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut body = s.serialize_struct("Query", 2)?;
        body.serialize_field(
            "query",
            &WithRuleParams {
                query: &self.query,
                params: self.rule_params.as_ref(),
            },
        )?;
        body.serialize_field("inference?", &self.inference)?;
        body.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_params_replace_any_in_the_query() {
        let q = Query::new(json!({"$$ruleParams": {"old": 1}, "goals": {}})).rule_param("k", "v");
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"query": {"goals": {}, "$$ruleParams": {"k": "v"}}, "inference?": false})
        );
        let plain = Query::new(json!({"goals": {}})).inference(true);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"query":{"goals":{}},"inference?":true}"#
        );
    }
}
