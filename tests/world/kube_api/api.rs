//! One request from path to answer: authenticate, parse as kube-apiserver's RequestInfo,
//! authorize, then the handler of the resource and verb.

use serde_json::{json, Map, Value};

use super::authz::{self, node_of, RequestInfo, ResourceInfo};
use super::discovery;
use super::patch;
use super::select::{self, field_value, fields_match, parse_fields, parse_query, Labels};
use super::status::{success, Status};
use super::store::{Key, Store};
use super::tls::{Identity, User};
use super::PodRemoval;

/// The request, read whole.
pub(super) struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub accept: String,
    pub body: Vec<u8>,
}

/// The answer.
pub(super) struct Reply {
    pub status: u16,
    /// The verb the request was taken for, for the log.
    pub verb: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub retry_after: Option<u32>,
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply {
        status,
        verb: String::new(),
        content_type: "application/json",
        body: serde_json::to_vec(body).expect("JSON serialises"),
        retry_after: None,
    }
}

fn status_reply(status: &Status) -> Reply {
    Reply {
        retry_after: status.retry_after,
        ..json_reply(status.code, &status.to_json())
    }
}

/// The answer to a body over the limit, whatever the request.
pub(super) fn too_large() -> Reply {
    status_reply(&Status::too_large())
}

pub(super) fn handle(store: &mut Store, identity: &Identity, req: &ApiRequest) -> Reply {
    let query = parse_query(&req.query);
    let info = request_info(req, &query);
    let mut reply = match identity.user() {
        None => status_reply(&Status::unauthorized()),
        Some(user) => match store.fail_next {
            Some((code, left)) => {
                store.fail_next = (left > 1).then_some((code, left - 1));
                status_reply(&Status::injected(code))
            }
            None => authz::authorize(store, user, &info)
                .and_then(|()| dispatch(store, user, &info, &query, req))
                .unwrap_or_else(|status| status_reply(&status)),
        },
    };
    reply.verb = info.verb;
    reply
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// kube-apiserver's RequestInfo: `/api/v1/...` and `/apis/<group>/<version>/...` are resource
/// requests when they name a resource; everything else is a non-resource path.
fn request_info(req: &ApiRequest, query: &[(String, String)]) -> RequestInfo {
    let method = req.method.to_ascii_lowercase();
    let non_resource = RequestInfo {
        verb: method.clone(),
        path: req.path.clone(),
        resource: None,
    };
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return non_resource,
    };
    let mut r = ResourceInfo {
        group: group.into(),
        version: version.into(),
        ..ResourceInfo::default()
    };
    let rest = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => {
            r.namespace = ns.to_string();
            rest
        }
        ["namespaces", ns] => {
            r.resource = "namespaces".into();
            r.name = ns.to_string();
            &[][..]
        }
        rest => rest,
    };
    if let [resource, more @ ..] = rest {
        r.resource = resource.to_string();
        if let [name, more @ ..] = more {
            r.name = name.to_string();
            if let [sub, ..] = more {
                r.subresource = sub.to_string();
            }
        }
    }
    let watch = matches!(query_value(query, "watch"), Some("true" | "1"));
    let verb = match (method.as_str(), r.name.is_empty()) {
        ("get", true) if watch => "watch",
        ("get", true) => "list",
        ("get", false) => "get",
        ("post", _) => "create",
        ("put", _) => "update",
        ("patch", _) => "patch",
        ("delete", true) => "deletecollection",
        ("delete", false) => "delete",
        _ => method.as_str(),
    }
    .to_string();
    if let Some(fields) = query_value(query, "fieldSelector") {
        // The handler answers an unsupported field.
        r.fields = parse_fields(fields, fields_of(&r.resource)).unwrap_or_default();
        if matches!(verb.as_str(), "list" | "watch") {
            if let Some(name) = select::field_equals(&r.fields, "metadata.name") {
                r.name = name.to_string();
            }
        }
    }
    if verb == "create" && r.resource == "configmaps" {
        r.create_name = serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|b| b["metadata"]["name"].as_str().map(str::to_string));
    }
    RequestInfo {
        verb,
        path: req.path.clone(),
        resource: Some(r),
    }
}

/// The fields a kind's field selectors may use (its registry's `GetAttrs`).
fn fields_of(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "nodes" => &["metadata.name", "spec.unschedulable"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

fn dispatch(
    store: &mut Store,
    user: &User,
    info: &RequestInfo,
    query: &[(String, String)],
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let Some(r) = &info.resource else {
        return non_resource(store, info);
    };
    let served = matches!(
        (r.group.as_str(), r.resource.as_str()),
        ("", "nodes" | "pods" | "configmaps") | ("policy", "poddisruptionbudgets")
    );
    let cluster_scoped = r.resource == "nodes";
    if !served || r.version != "v1" || (cluster_scoped && !r.namespace.is_empty()) {
        return Err(Status::no_such_path());
    }
    let named = !r.name.is_empty() && (r.resource == "nodes" || !r.namespace.is_empty());
    match (
        r.resource.as_str(),
        r.subresource.as_str(),
        info.verb.as_str(),
    ) {
        (_, "", "get") if named => get(store, r, query, req),
        (_, "", "list") => list(store, r, query, req),
        ("nodes", "", "patch") => patch_node(store, user, r, req),
        ("pods", "", "delete") if named => delete_pod(store, user, r, query, req),
        ("pods", "eviction", "create") if named => evict(store, user, r, query, req),
        ("configmaps", "", "create") if !r.namespace.is_empty() => create_configmap(store, r, req),
        ("configmaps", "", "update") if named => {
            let body = parse_body(req)?;
            let cm = update_configmap(store, r, &body)?;
            Ok(json_reply(200, &cm))
        }
        ("configmaps", "", "patch") if named => {
            let key = key_of(r);
            let mut body = store
                .configmaps
                .get(&key)
                .cloned()
                .ok_or_else(|| Status::not_found("", "configmaps", &r.name))?;
            patch::apply(&mut body, req.content_type.as_deref(), &req.body)?;
            let cm = update_configmap(store, r, &body)?;
            Ok(json_reply(200, &cm))
        }
        ("configmaps", "", "delete") if named => delete_configmap(store, r, req),
        (_, "", _) => Err(Status::method_not_allowed()),
        _ => Err(Status::no_such_path()),
    }
}

fn non_resource(store: &Store, info: &RequestInfo) -> Result<Reply, Status> {
    let path = info.path.as_str();
    if matches!(path, "/healthz" | "/livez" | "/readyz") {
        return Ok(Reply {
            content_type: "text/plain; charset=utf-8",
            body: b"ok".to_vec(),
            ..json_reply(200, &Value::Null)
        });
    }
    match discovery::document(store, path) {
        Some(_) if info.verb != "get" => Err(Status::method_not_allowed()),
        Some(doc) => Ok(json_reply(200, &doc)),
        // `/openapi/v2` and `/openapi/v3` too: kubectl goes on without them.
        None => Err(Status::no_such_path()),
    }
}

fn key_of(r: &ResourceInfo) -> Key {
    (r.namespace.clone(), r.name.clone())
}

fn parse_body(req: &ApiRequest) -> Result<Value, Status> {
    serde_json::from_slice(&req.body).map_err(|e| {
        Status::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

/// The objects of `r`'s kind in its namespace (all namespaces when none), as served.
fn objects(store: &Store, r: &ResourceInfo) -> Vec<Value> {
    let in_ns = |(ns, _): &Key| r.namespace.is_empty() || *ns == r.namespace;
    match r.resource.as_str() {
        "nodes" => store.nodes.values().cloned().collect(),
        "pods" => store
            .pods
            .iter()
            .filter(|(k, _)| in_ns(k))
            .map(|(_, v)| v.clone())
            .collect(),
        "configmaps" => store
            .configmaps
            .iter()
            .filter(|(k, _)| in_ns(k))
            .map(|(_, v)| v.clone())
            .collect(),
        _ => store
            .pdbs
            .iter()
            .filter(|(k, _)| in_ns(k))
            .map(|(_, p)| store.pdb_object(p))
            .collect(),
    }
}

fn find(store: &Store, r: &ResourceInfo) -> Option<Value> {
    let key = key_of(r);
    match r.resource.as_str() {
        "nodes" => store.nodes.get(&r.name).cloned(),
        "pods" => store.pods.get(&key).cloned(),
        "configmaps" => store.configmaps.get(&key).cloned(),
        _ => store.pdbs.get(&key).map(|p| store.pdb_object(p)),
    }
}

/// The object, or a Table of it when asked.
fn served(
    store: &Store,
    r: &ResourceInfo,
    query: &[(String, String)],
    req: &ApiRequest,
    objects: Vec<Value>,
    list: bool,
) -> Reply {
    if discovery::wants_table(&req.accept) {
        let include = query_value(query, "includeObject").unwrap_or("Metadata");
        return json_reply(
            200,
            &discovery::table(store, &r.resource, &objects, include),
        );
    }
    if !list {
        return json_reply(200, &objects[0]);
    }
    let (kind, api_version) = match r.resource.as_str() {
        "nodes" => ("NodeList", "v1"),
        "pods" => ("PodList", "v1"),
        "configmaps" => ("ConfigMapList", "v1"),
        _ => ("PodDisruptionBudgetList", "policy/v1"),
    };
    // The items of a list carry no kind and apiVersion.
    let items: Vec<Value> = objects
        .into_iter()
        .map(|mut o| {
            if let Some(o) = o.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            o
        })
        .collect();
    json_reply(
        200,
        &json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": store.current_rv()},
            "items": items,
        }),
    )
}

fn get(
    store: &Store,
    r: &ResourceInfo,
    query: &[(String, String)],
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let object = find(store, r).ok_or_else(|| Status::not_found(&r.group, &r.resource, &r.name))?;
    Ok(served(store, r, query, req, vec![object], false))
}

fn list(
    store: &Store,
    r: &ResourceInfo,
    query: &[(String, String)],
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let fields = match query_value(query, "fieldSelector") {
        Some(f) => parse_fields(f, fields_of(&r.resource)).map_err(Status::bad_request)?,
        None => Vec::new(),
    };
    let labels = Labels::parse(query_value(query, "labelSelector").unwrap_or(""))
        .map_err(Status::bad_request)?;
    let items: Vec<Value> = objects(store, r)
        .into_iter()
        .filter(|o| fields_match(&fields, |f| field_value(o, f)) && labels.matches(o))
        .collect();
    Ok(served(store, r, query, req, items, true))
}

/// The resourceVersion a write carries; empty: none (an unconditional write).
fn rv_of(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

fn patch_node(
    store: &mut Store,
    user: &User,
    r: &ResourceInfo,
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let name = r.name.as_str();
    let old = store
        .nodes
        .get(name)
        .cloned()
        .ok_or_else(|| Status::not_found("", "nodes", name))?;
    let mut new = old.clone();
    patch::apply(&mut new, req.content_type.as_deref(), &req.body)?;
    let sent_rv = rv_of(&new);
    if !sent_rv.is_empty() && sent_rv != rv_of(&old) {
        return Err(Status::modified("", "nodes", name));
    }
    match &new["spec"]["unschedulable"] {
        Value::Bool(false) => {
            // omitempty: false is not written.
            new["spec"]
                .as_object_mut()
                .map(|s| s.remove("unschedulable"));
        }
        Value::Bool(true) | Value::Null => {}
        other => {
            return Err(Status::bad_request(format!(
                "json: cannot unmarshal {other} into Go struct field NodeSpec.spec.unschedulable \
                 of type bool"
            )))
        }
    }
    // The main resource ignores status and keeps identity.
    new["status"] = old["status"].clone();
    new["kind"] = old["kind"].clone();
    new["apiVersion"] = old["apiVersion"].clone();
    for field in ["name", "uid", "creationTimestamp", "resourceVersion"] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    if let Some(node) = node_of(user) {
        authz::admit_node_update(node, name, &old, &new)?;
    }
    if new == old {
        return Ok(json_reply(200, &old));
    }
    new["metadata"]["resourceVersion"] = store.next_rv().into();
    store.nodes.insert(name.to_string(), new.clone());
    Ok(json_reply(200, &new))
}

/// A delete's or an eviction's grace period: the request's, else the pod's.
fn grace_seconds(pod: &Value, options: &Value, query: &[(String, String)]) -> i64 {
    options["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| query_value(query, "gracePeriodSeconds").and_then(|g| g.parse().ok()))
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
}

fn removal(r: &ResourceInfo, pod: &Value, user: &User) -> PodRemoval {
    PodRemoval {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        node: pod["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
        user: user.name.clone(),
    }
}

fn delete_pod(
    store: &mut Store,
    user: &User,
    r: &ResourceInfo,
    query: &[(String, String)],
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let key = key_of(r);
    let pod = store
        .pods
        .get(&key)
        .cloned()
        .ok_or_else(|| Status::not_found("", "pods", &r.name))?;
    if let Some(node) = node_of(user) {
        authz::admit_pod_delete(node, &r.name, &pod)?;
    }
    let options: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    if query_value(query, "dryRun") != Some("All") {
        store.remove_pod(&key, grace_seconds(&pod, &options, query));
        store.deletions.push(removal(r, &pod, user));
    }
    let answer = store.pods.get(&key).cloned().unwrap_or(pod);
    Ok(json_reply(200, &answer))
}

/// `POST .../pods/{name}/eviction`, as the eviction REST does it.
fn evict(
    store: &mut Store,
    user: &User,
    r: &ResourceInfo,
    query: &[(String, String)],
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let body = parse_body(req)?;
    let (kind, api_version) = (
        body["kind"].as_str().unwrap_or(""),
        body["apiVersion"].as_str().unwrap_or(""),
    );
    if kind != "Eviction" || !matches!(api_version, "policy/v1" | "policy/v1beta1") {
        return Err(Status::bad_request(format!(
            "not a policy/v1 Eviction: kind {kind:?}, apiVersion {api_version:?}"
        )));
    }
    let body_ns = body["metadata"]["namespace"].as_str().unwrap_or("");
    if !body_ns.is_empty() && body_ns != r.namespace {
        return Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the \
             request",
        ));
    }
    if body["metadata"]["name"].as_str() != Some(r.name.as_str()) {
        return Err(Status::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let key = key_of(r);
    let pod = store
        .pods
        .get(&key)
        .cloned()
        .ok_or_else(|| Status::not_found("", "pods", &r.name))?;
    if let Some(node) = node_of(user) {
        authz::admit_pod_eviction(node, &r.name, &pod)?;
    }
    let options = &body["deleteOptions"];
    let dry_run = query_value(query, "dryRun") == Some("All")
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
    // Terminal, Pending and terminating pods go without a budget check.
    if !matches!(phase, "Succeeded" | "Failed" | "Pending") && !terminating {
        let budgets = store.pdbs_for(&pod);
        if budgets.len() > 1 {
            let status = Status {
                code: 500,
                reason: "",
                message: "This pod has more than one PodDisruptionBudget, which the eviction \
                          subresource does not support."
                    .into(),
                details: None,
                retry_after: None,
            };
            return Ok(status_reply(&status));
        }
        if let Some(pdb) = budgets.first() {
            let s = store.pdb_status(pdb);
            let unready_but_enough = !super::store::pod_ready(&pod)
                && s.current_healthy >= s.desired_healthy
                && s.desired_healthy > 0;
            if !unready_but_enough && s.disruptions_allowed <= 0 {
                let name = pdb.object["metadata"]["name"].as_str().unwrap_or("");
                return Err(Status::too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    0,
                    &[(
                        "DisruptionBudget",
                        format!(
                            "The disruption budget {name} needs {} healthy pods and has {} \
                             currently",
                            s.desired_healthy, s.current_healthy
                        ),
                    )],
                ));
            }
        }
    }
    if !dry_run {
        store.remove_pod(&key, grace_seconds(&pod, options, query));
        store.evictions.push(removal(r, &pod, user));
    }
    Ok(json_reply(201, &success(Some(201), None)))
}

/// A ConfigMap as stored from a request's body: the fields a ConfigMap has, checked.
fn configmap_from(body: &Value, namespace: &str, name: &str) -> Result<Value, Status> {
    if let Some(kind) = body["kind"].as_str() {
        if kind != "ConfigMap" {
            return Err(Status::bad_request(format!(
                "the object is a {kind}, not a ConfigMap"
            )));
        }
    }
    let body_ns = body["metadata"]["namespace"].as_str().unwrap_or("");
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the \
             request",
        ));
    }
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    meta.insert("namespace".into(), namespace.into());
    for field in ["labels", "annotations", "ownerReferences"] {
        let v = &body["metadata"][field];
        if !v.is_null() {
            meta.insert(field.into(), v.clone());
        }
    }
    let mut cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta});
    for field in ["data", "binaryData"] {
        match &body[field] {
            Value::Null => {}
            Value::Object(entries) => {
                for (key, value) in entries {
                    if !value.is_string() {
                        return Err(Status::bad_request(format!(
                            "json: cannot unmarshal {value} into Go struct field ConfigMap.{field} \
                             of type string"
                        )));
                    }
                    let valid = !key.is_empty()
                        && key.len() <= 253
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if !valid {
                        return Err(Status::invalid(
                            "ConfigMap",
                            name,
                            &format!("{field}[{key}]"),
                            "FieldValueInvalid",
                            &format!(
                                "Invalid value: {key:?}: a valid config key must consist of \
                                 alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or \
                                 'KEY_NAME',  or 'key-name', regex used for validation is \
                                 '[-._a-zA-Z0-9]+')"
                            ),
                        ));
                    }
                }
                cm[field] = body[field].clone();
            }
            other => {
                return Err(Status::bad_request(format!(
                    "json: cannot unmarshal {other} into Go struct field ConfigMap.{field} of \
                     type map[string]string"
                )))
            }
        }
    }
    match &body["immutable"] {
        Value::Null => {}
        Value::Bool(b) => cm["immutable"] = (*b).into(),
        other => {
            return Err(Status::bad_request(format!(
                "json: cannot unmarshal {other} into Go struct field ConfigMap.immutable of type \
                 bool"
            )))
        }
    }
    Ok(cm)
}

/// An RFC 1123 subdomain, as object names must be.
fn valid_name(name: &str) -> bool {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(ok_label)
}

fn create_configmap(
    store: &mut Store,
    r: &ResourceInfo,
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let body = parse_body(req)?;
    let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(Status::invalid(
            "ConfigMap",
            "",
            "metadata.name",
            "FieldValueRequired",
            "Required value: name or generateName is required",
        ));
    }
    let mut cm = configmap_from(&body, &r.namespace, &name)?;
    if !valid_name(&name) {
        return Err(Status::invalid(
            "ConfigMap",
            &name,
            "metadata.name",
            "FieldValueInvalid",
            &format!(
                "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower \
                 case alphanumeric characters, '-' or '.', and must start and end with an \
                 alphanumeric character (e.g. 'example.com', regex used for validation is \
                 '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    let key = (r.namespace.clone(), name.clone());
    if store.configmaps.contains_key(&key) {
        return Err(Status::already_exists("", "configmaps", &name));
    }
    if !rv_of(&body).is_empty() {
        // The storage layer's answer.
        return Err(Status::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let meta = store.new_meta(&name, Some(&r.namespace));
    let target = cm["metadata"].as_object_mut().expect("metadata");
    for (k, v) in meta {
        target.insert(k, v);
    }
    store.configmaps.insert(key, cm.clone());
    Ok(json_reply(201, &cm))
}

/// An update (PUT, or a patch's result) of the ConfigMap `r` names to `body`.
fn update_configmap(store: &mut Store, r: &ResourceInfo, body: &Value) -> Result<Value, Status> {
    let key = key_of(r);
    let name = r.name.as_str();
    let body_name = body["metadata"]["name"].as_str().unwrap_or("");
    if body_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let old = store
        .configmaps
        .get(&key)
        .cloned()
        .ok_or_else(|| Status::not_found("", "configmaps", name))?;
    let mut new = configmap_from(body, &r.namespace, name)?;
    let sent_rv = rv_of(body);
    // No resourceVersion: an unconditional update, which ConfigMaps allow.
    if !sent_rv.is_empty() && sent_rv != rv_of(&old) {
        return Err(Status::modified("", "configmaps", name));
    }
    let old_uid = old["metadata"]["uid"].as_str().unwrap_or("");
    if let Some(uid) = body["metadata"]["uid"].as_str().filter(|u| !u.is_empty()) {
        if uid != old_uid {
            return Err(Status::conflict(
                "",
                "configmaps",
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
                ),
            ));
        }
    }
    if old["immutable"] == true {
        let immutable = |field: &str| {
            Status::invalid(
                "ConfigMap",
                name,
                field,
                "FieldValueForbidden",
                "Forbidden: field is immutable when `immutable` is set",
            )
        };
        if new["data"] != old["data"] || new["binaryData"] != old["binaryData"] {
            return Err(immutable("data"));
        }
        if new["immutable"] != true {
            return Err(immutable("immutable"));
        }
    }
    for field in ["uid", "creationTimestamp", "resourceVersion"] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    if new == old {
        return Ok(old);
    }
    new["metadata"]["resourceVersion"] = store.next_rv().into();
    store.configmaps.insert(key, new.clone());
    Ok(new)
}

fn delete_configmap(
    store: &mut Store,
    r: &ResourceInfo,
    req: &ApiRequest,
) -> Result<Reply, Status> {
    let key = key_of(r);
    let old = store
        .configmaps
        .get(&key)
        .cloned()
        .ok_or_else(|| Status::not_found("", "configmaps", &r.name))?;
    let options: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let pre = &options["preconditions"];
    let (rv, uid) = (rv_of(&old), old["metadata"]["uid"].as_str().unwrap_or(""));
    if let Some(want) = pre["resourceVersion"].as_str() {
        if want != rv {
            return Err(Status::conflict(
                "",
                "configmaps",
                &r.name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, \
                     ResourceVersion in object meta: {rv}"
                ),
            ));
        }
    }
    if let Some(want) = pre["uid"].as_str() {
        if want != uid {
            return Err(Status::conflict(
                "",
                "configmaps",
                &r.name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
    }
    store.configmaps.remove(&key);
    Ok(json_reply(
        200,
        &success(
            None,
            Some(json!({"name": r.name, "kind": "configmaps", "uid": uid})),
        ),
    ))
}
