//! `Status` objects: the errors (and a few successes) the apiserver answers, with the messages,
//! reasons and details of k8s.io/apimachinery's `errors` package.

use serde_json::{json, Value};

/// A failure to answer as a `Status` object.
#[derive(Debug, Clone)]
pub(super) struct Status {
    pub code: u16,
    /// Empty: no reason (as the eviction's 500 for several budgets).
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// `details.retryAfterSeconds` and the `Retry-After` header.
    pub retry_after: Option<u32>,
}

/// `resource` or `resource.group`, as `GroupResource.String()`.
pub(super) fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut d = json!({});
    if !name.is_empty() {
        d["name"] = name.into();
    }
    if !group.is_empty() {
        d["group"] = group.into();
    }
    if !kind.is_empty() {
        d["kind"] = kind.into();
    }
    d
}

impl Status {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Status {
        Status {
            code,
            reason,
            message,
            details,
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Status {
        Status::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Status {
        Status::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(group, resource)),
            Some(details(group, resource, name)),
        )
    }

    /// A path nothing serves.
    pub fn no_such_path() -> Status {
        Status::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Status {
        Status::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(group, resource)),
            Some(details(group, resource, name)),
        )
    }

    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Status {
        Status::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(group, resource)
            ),
            Some(details(group, resource, name)),
        )
    }

    /// The optimistic-concurrency conflict of an update with a stale resourceVersion.
    pub fn modified(group: &str, resource: &str, name: &str) -> Status {
        Status::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and \
             try again",
        )
    }

    /// `errors.NewForbidden`: `<resource> "<name>" is forbidden: <why>`.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Status {
        let message = if resource.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{} is forbidden: {why}", qualified(group, resource))
        } else {
            format!(
                "{} {name:?} is forbidden: {why}",
                qualified(group, resource)
            )
        };
        Status::new(
            403,
            "Forbidden",
            message,
            Some(details(group, resource, name)),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::new(400, "BadRequest", message.into(), None)
    }

    /// `errors.NewInvalid` with one cause: `<Kind> "<name>" is invalid: <field>: <detail>`.
    pub fn invalid(kind: &str, name: &str, field: &str, cause: &str, detail: &str) -> Status {
        Status::new(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {field}: {detail}"),
            Some(json!({
                "name": name,
                "kind": kind,
                "causes": [{"reason": cause, "message": detail, "field": field}],
            })),
        )
    }

    pub fn method_not_allowed() -> Status {
        Status::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Status {
        Status::new(415, "UnsupportedMediaType", message.into(), None)
    }

    /// `errors.NewTooManyRequests` with the causes given as (type, message).
    pub fn too_many_requests(message: &str, retry_after: u32, causes: &[(&str, String)]) -> Status {
        let mut d = json!({});
        if retry_after > 0 {
            d["retryAfterSeconds"] = retry_after.into();
        }
        if !causes.is_empty() {
            d["causes"] = causes
                .iter()
                .map(|(t, m)| json!({"reason": t, "message": m}))
                .collect();
        }
        Status {
            retry_after: (retry_after > 0).then_some(retry_after),
            ..Status::new(429, "TooManyRequests", message.into(), Some(d))
        }
    }

    pub fn too_large() -> Status {
        Status::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728".into(),
            None,
        )
    }

    pub fn internal(message: &str) -> Status {
        Status::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        )
    }

    /// What [`super::KubeApi::fail_next`] answers.
    pub fn injected(code: u16) -> Status {
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "the server has received too many requests",
            ),
            500 => (
                "InternalError",
                "an error on the server has prevented the request",
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted",
            ),
            _ => ("", "injected failure"),
        };
        Status {
            retry_after: matches!(code, 429 | 503).then_some(1),
            ..Status::new(code, reason, message.into(), Some(json!({})))
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if !self.reason.is_empty() {
            v["reason"] = self.reason.into();
        }
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v["code"] = self.code.into();
        v
    }
}

/// The `Success` Status of an eviction (`code` 201, as the create handler fills it in) or of a
/// delete (no code, the deleted object's details).
pub(super) fn success(code: Option<u16>, details: Option<Value>) -> Value {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        v["details"] = d;
    }
    if let Some(code) = code {
        v["code"] = code.into();
    }
    v
}
