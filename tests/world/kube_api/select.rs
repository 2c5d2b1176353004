//! Query strings, field selectors and label selectors, with the apiserver's syntax.

use serde_json::Value;

use crate::form::decode;

/// `key=value` pairs of a query string, percent-decoded (`+` is a space).
pub(super) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// One requirement of a field selector: `field=value`, `field==value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldReq {
    pub field: String,
    pub equal: bool,
    pub value: String,
}

/// Parses a field selector, allowing only `fields` (else the registry's message).
pub(super) fn parse_fields(selector: &str, fields: &[&str]) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, true, v)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{selector}'; can't understand '{term}'"
            ));
        };
        let field = field.trim();
        if !fields.contains(&field) {
            return Err(format!("field label not supported: {field}"));
        }
        reqs.push(FieldReq {
            field: field.into(),
            equal,
            value: value.trim().into(),
        });
    }
    Ok(reqs)
}

/// Whether `object` meets every requirement; `value_of` gives a field's value as a string.
pub(super) fn fields_match(reqs: &[FieldReq], value_of: impl Fn(&str) -> String) -> bool {
    reqs.iter()
        .all(|r| (value_of(&r.field) == r.value) == r.equal)
}

/// The value `field=value` (or `==`) asks for, if the selector has one.
pub(super) fn field_equals<'a>(reqs: &'a [FieldReq], field: &str) -> Option<&'a str> {
    reqs.iter()
        .find(|r| r.field == field && r.equal)
        .map(|r| r.value.as_str())
}

/// A field of an object as a field selector compares it: a missing string is "", a bool is
/// "true"/"false".
pub(super) fn field_value(object: &Value, field: &str) -> String {
    let mut v = object;
    for part in field.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => match field {
            "spec.unschedulable" | "spec.hostNetwork" => "false".into(),
            _ => String::new(),
        },
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Labels(Vec<LabelReq>);

impl Labels {
    pub fn parse(selector: &str) -> Result<Labels, String> {
        let mut reqs = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        let mut terms = Vec::new();
        for (i, c) in selector.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    terms.push(&selector[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        terms.push(&selector[start..]);
        let bad = |term: &str| format!("unable to parse requirement: {term:?}");
        for term in terms.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
            let set = |rest: &str| -> Option<Vec<String>> {
                let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
                Some(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let req = if let Some(key) = term.strip_prefix('!') {
                LabelReq::NotExists(key.trim().into())
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                LabelReq::NotIn(k.trim().into(), set(rest).ok_or_else(|| bad(term))?)
            } else if let Some((k, rest)) = term.split_once(" in ") {
                LabelReq::In(k.trim().into(), set(rest).ok_or_else(|| bad(term))?)
            } else if let Some((k, v)) = term.split_once("!=") {
                LabelReq::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                LabelReq::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                LabelReq::Equals(k.trim().into(), v.trim().into())
            } else if term.contains(char::is_whitespace) {
                return Err(bad(term));
            } else {
                LabelReq::Exists(term.into())
            };
            reqs.push(req);
        }
        Ok(Labels(reqs))
    }

    /// Whether an object's `metadata.labels` meet every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels[k].as_str();
        self.0.iter().all(|req| match req {
            LabelReq::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}
