//! PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch without directives (for
//! Node and ConfigMap fields the same as a merge patch: their lists have no merge keys outside
//! `status`, which the main resource ignores), and JSON patch (RFC 6902).

use serde_json::Value;

use super::status::Status;

/// The media types a PATCH may carry (as the apiserver lists them).
const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, \
                           application/apply-patch+yaml, application/strategic-merge-patch+json";

/// Applies the PATCH `body` of `content_type` to `target`.
pub(super) fn apply(
    target: &mut Value,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), Status> {
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let parse = || -> Result<Value, Status> {
        serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))
    };
    match media.as_str() {
        "application/merge-patch+json" => {
            merge(target, &parse()?);
            Ok(())
        }
        "application/strategic-merge-patch+json" => {
            let patch = parse()?;
            if let Some(key) = directive(&patch) {
                return Err(Status::bad_request(format!(
                    "the fake apiserver does not implement strategic merge patch directives: {key}"
                )));
            }
            merge(target, &patch);
            Ok(())
        }
        "application/json-patch+json" => json_patch(target, &parse()?),
        "application/apply-patch+yaml" => Err(Status::unsupported_media_type(
            "server-side apply is not implemented by the fake apiserver",
        )),
        _ => Err(Status::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             {PATCH_TYPES}"
        ))),
    }
}

/// RFC 7386: objects merge, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let object = target.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The first `$` key (a strategic merge patch directive) in `patch`.
fn directive(patch: &Value) -> Option<String> {
    match patch {
        Value::Object(o) => o.iter().find_map(|(k, v)| {
            if k.starts_with('$') {
                Some(k.clone())
            } else {
                directive(v)
            }
        }),
        Value::Array(a) => a.iter().find_map(directive),
        _ => None,
    }
}

fn unprocessable(message: String) -> Status {
    Status {
        code: 422,
        reason: "Invalid",
        message,
        details: None,
        retry_after: None,
    }
}

/// RFC 6902: add, remove, replace, move, copy, test.
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), Status> {
    let ops = ops
        .as_array()
        .ok_or_else(|| Status::bad_request("a JSON patch is an array of operations"))?;
    let mut doc = target.clone();
    for op in ops {
        let name = op["op"].as_str().unwrap_or("");
        let path = op["path"]
            .as_str()
            .ok_or_else(|| unprocessable(format!("JSON patch operation without a path: {op}")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| unprocessable(format!("JSON patch {name} without a value: {op}")))
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| unprocessable(format!("JSON patch {name} without from: {op}")))
        };
        match name {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| missing(from().unwrap_or("")))?;
                add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(unprocessable(format!(
                        "the server rejected our request due to an error in our request: \
                         testing value {path} failed"
                    )));
                }
            }
            other => return Err(unprocessable(format!("Unexpected kind: {other}"))),
        }
    }
    *target = doc;
    Ok(())
}

fn missing(path: &str) -> Status {
    unprocessable(format!(
        "the server rejected our request due to an error in our request: missing value at {path}"
    ))
}

/// The parent of `path` and its last token, unescaped.
fn split(path: &str) -> Result<(&str, String), Status> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| missing(path))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), Status> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.insert(key, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let at = if key == "-" {
                a.len()
            } else {
                key.parse::<usize>().map_err(|_| missing(path))?
            };
            if at > a.len() {
                return Err(missing(path));
            }
            a.insert(at, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, Status> {
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(o)) => o.remove(&key).ok_or_else(|| missing(path)),
        Some(Value::Array(a)) => {
            let at = key.parse::<usize>().map_err(|_| missing(path))?;
            if at >= a.len() {
                return Err(missing(path));
            }
            Ok(a.remove(at))
        }
        _ => Err(missing(path)),
    }
}
