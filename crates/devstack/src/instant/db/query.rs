//! InstaQL queries on the store: `where` (equality, dotted link paths, `and`/`or`,
//! operators), nested links, `limit`, `offset`, `order` and `fields`.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Db, Entity};
use crate::instant::error::ApiError;

/// The most rows (entities, nested ones included) one answer may hold. Nested links
/// multiply: `{"goals": {"todos": {"goals": …}}}` over linked entities grows
/// exponentially with the depth, and the emulator refuses that rather than spend
/// minutes and gigabytes building it.
pub(crate) const MAX_ANSWER_ROWS: usize = 10_000;

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        _ => None,
    }
}

fn query_error(query: &Value, message: &str) -> ApiError {
    ApiError::validation_message("query", query.clone(), message)
}

impl Db {
    /// Runs an InstaQL query. `$$ruleParams` is accepted and ignored.
    pub(crate) fn query(&self, query: &Value) -> Result<Value, ApiError> {
        let Some(map) = query.as_object() else {
            return Err(ApiError::param_malformed(&["body", "query"], query));
        };
        let mut out = Map::new();
        let mut budget = MAX_ANSWER_ROWS;
        for (ns, node) in map {
            if ns.starts_with("$$") {
                continue;
            }
            let Some(node) = node.as_object() else {
                return Err(query_error(query, &format!("{ns} must be an object")));
            };
            let ids: Vec<String> = self
                .entities(ns)
                .into_iter()
                .map(|(id, _)| id.clone())
                .collect();
            out.insert(
                ns.clone(),
                Value::Array(self.query_node(ns, node, ids, query, &mut budget)?),
            );
        }
        Ok(Value::Object(out))
    }

    fn query_node(
        &self,
        ns: &str,
        node: &Map<String, Value>,
        ids: Vec<String>,
        query: &Value,
        budget: &mut usize,
    ) -> Result<Vec<Value>, ApiError> {
        let options = match node.get("$") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(options)) => options.clone(),
            Some(_) => return Err(query_error(query, "$ must be an object")),
        };
        let mut rows: Vec<(String, &Entity)> = ids
            .into_iter()
            .filter_map(|id| self.entity(ns, &id).map(|e| (id, e)))
            .collect();
        if let Some(filter) = options.get("where") {
            let Some(filter) = filter.as_object() else {
                return Err(query_error(query, "where must be an object"));
            };
            let mut kept = Vec::new();
            for (id, entity) in rows {
                if self.matches(ns, &id, filter, query)? {
                    kept.push((id, entity));
                }
            }
            rows = kept;
        }
        if let Some(order) = options.get("order").and_then(Value::as_object)
            && let Some((key, direction)) = order.iter().next()
        {
            let descending = direction.as_str() == Some("desc");
            rows.sort_by(|(_, a), (_, b)| {
                let ordering = if key == "serverCreatedAt" {
                    a.seq.cmp(&b.seq)
                } else {
                    let null = Value::Null;
                    compare(
                        a.attrs.get(key).unwrap_or(&null),
                        b.attrs.get(key).unwrap_or(&null),
                    )
                    .unwrap_or(Ordering::Equal)
                };
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let as_count = |key: &str| -> Result<Option<usize>, ApiError> {
            match options.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        query_error(query, &format!("{key} must be a non-negative integer"))
                    }),
            }
        };
        let offset = as_count("offset")?.unwrap_or(0);
        let limit = as_count("limit")?;
        let fields: Option<Vec<&str>> = options
            .get("fields")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect());
        let mut out = Vec::new();
        for (id, entity) in rows
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
        {
            *budget = budget.checked_sub(1).ok_or_else(|| {
                query_error(
                    query,
                    &format!(
                        "the answer is too large: the emulator returns at most {MAX_ANSWER_ROWS} rows per query"
                    ),
                )
            })?;
            let mut object = Map::new();
            object.insert("id".into(), Value::String(id.clone()));
            for (key, value) in &entity.attrs {
                if fields.as_ref().is_none_or(|f| f.contains(&key.as_str())) {
                    object.insert(key.clone(), value.clone());
                }
            }
            for (label, child) in node {
                if label == "$" {
                    continue;
                }
                let Some(child) = child.as_object() else {
                    return Err(query_error(query, &format!("{label} must be an object")));
                };
                let children = match self.linked(ns, &id, label) {
                    Some((target_ns, ids)) => {
                        self.query_node(&target_ns, child, ids, query, budget)?
                    }
                    None => Vec::new(),
                };
                object.insert(label.clone(), Value::Array(children));
            }
            out.push(Value::Object(object));
        }
        Ok(out)
    }

    /// The values at a where path (`title`, `id`, `todos`, `todos.title`, `owner.id`).
    /// Each hop reaches a set of entities, as in InstantDB: a path that goes round a
    /// cycle of links (`todos.goals.todos…`) stays as large as the store, not
    /// exponential in its length.
    fn path_values(&self, ns: &str, id: &str, path: &str) -> Vec<Value> {
        let segments: Vec<&str> = path.split('.').collect();
        let Some((last, hops)) = segments.split_last() else {
            return Vec::new();
        };
        let mut current = BTreeSet::from([(ns.to_owned(), id.to_owned())]);
        for hop in hops {
            current = current
                .iter()
                .filter_map(|(ns, id)| self.linked(ns, id, hop))
                .flat_map(|(target_ns, ids)| ids.into_iter().map(move |id| (target_ns.clone(), id)))
                .collect();
        }
        let mut values = Vec::new();
        for (ns, id) in current {
            if *last == "id" {
                values.push(Value::String(id));
            } else if let Some(value) = self.entity(&ns, &id).and_then(|e| e.attrs.get(*last)) {
                values.push(value.clone());
            } else if let Some((_, ids)) = self.linked(&ns, &id, last) {
                values.extend(ids.into_iter().map(Value::String));
            }
        }
        values
    }

    fn matches(
        &self,
        ns: &str,
        id: &str,
        filter: &Map<String, Value>,
        query: &Value,
    ) -> Result<bool, ApiError> {
        for (key, condition) in filter {
            let ok = match key.as_str() {
                "and" | "or" => {
                    let Some(clauses) = condition.as_array() else {
                        return Err(query_error(
                            query,
                            &format!("{key} must be a list of where clauses"),
                        ));
                    };
                    let mut results = Vec::new();
                    for clause in clauses {
                        let Some(clause) = clause.as_object() else {
                            return Err(query_error(
                                query,
                                &format!("{key} must be a list of where clauses"),
                            ));
                        };
                        results.push(self.matches(ns, id, clause, query)?);
                    }
                    if key == "and" {
                        results.iter().all(|r| *r)
                    } else {
                        results.iter().any(|r| *r)
                    }
                }
                path => {
                    let values = self.path_values(ns, id, path);
                    match condition {
                        Value::Object(ops)
                            if !ops.is_empty() && ops.keys().all(|k| k.starts_with('$')) =>
                        {
                            let mut all = true;
                            for (op, operand) in ops {
                                all &= Db::operator(op, operand, &values, query)?;
                            }
                            all
                        }
                        _ => values.iter().any(|v| v == condition),
                    }
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn operator(
        op: &str,
        operand: &Value,
        values: &[Value],
        query: &Value,
    ) -> Result<bool, ApiError> {
        let ordered = |want: &[Ordering]| {
            values
                .iter()
                .any(|v| compare(v, operand).is_some_and(|o| want.contains(&o)) && !v.is_null())
        };
        Ok(match op {
            "$in" => {
                let Some(options) = operand.as_array() else {
                    return Err(query_error(query, "$in must be a list"));
                };
                values.iter().any(|v| options.contains(v))
            }
            "$ne" | "$not" => !values.iter().any(|v| v == operand),
            "$isNull" => {
                let is_null = values.iter().all(Value::is_null);
                operand.as_bool() == Some(is_null)
            }
            "$gt" => ordered(&[Ordering::Greater]),
            "$gte" => ordered(&[Ordering::Greater, Ordering::Equal]),
            "$lt" => ordered(&[Ordering::Less]),
            "$lte" => ordered(&[Ordering::Less, Ordering::Equal]),
            other => {
                return Err(query_error(
                    query,
                    &format!("the emulator does not support the where operator {other}"),
                ));
            }
        })
    }
}
