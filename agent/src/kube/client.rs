//! The few Kubernetes API calls a node makes about its own reboot (SPEC §9), as the node itself
//! (the kubelet's kubeconfig): read and cordon its Node, list its pods, evict them, and read and
//! update its reboot group's lock ConfigMap.
//!
//! A small typed client on the agent's HTTP client rather than kube-rs: k8s-openapi (which kube-rs needs) builds
//! its types for one Kubernetes minor version at a time and its current release starts at 1.33,
//! older than the clusters tn-agent configures (SPEC's example is v1.31); the calls here are
//! stable `v1` and `policy/v1` paths that every supported version serves the same; and the whole
//! generated API would cost build time and binary size for six requests. Only the fields read are
//! typed; an object is written back as it was read, so fields this client does not know survive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request};
use serde::Deserialize;
use serde_json::{json, Value};

use super::kubeconfig::Kubeconfig;
use crate::http::{HttpClient, HttpError, Timeouts};

/// How long one request may take, connection included, and its connection.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    request: Duration::from_secs(15),
};

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {why}")]
    Kubeconfig { path: PathBuf, why: String },
    /// The apiserver answered with an error `Status`.
    #[error("{what}: {code} {reason}: {message}")]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{what}: cannot make the request")]
    Request {
        what: String,
        #[source]
        source: http::Error,
    },
    #[error("{what}")]
    Transport {
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("{what}: the reply is not a Kubernetes object: {why}")]
    Reply { what: String, why: String },
}

impl KubeError {
    /// The HTTP status the apiserver answered, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A client of one apiserver, authenticated by a client certificate.
#[derive(Clone)]
pub struct KubeClient {
    http: HttpClient,
    server: String,
}

/// What a node needs to know about its Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// `spec.unschedulable`: cordoned.
    pub unschedulable: bool,
    /// The `Ready` condition is `True`.
    pub ready: bool,
}

/// A pod bound to the node, as far as a drain cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    /// The kind of its controller (`metadata.ownerReferences` with `controller: true`).
    pub controller_kind: Option<String>,
    /// A static pod's mirror (annotation `kubernetes.io/config.mirror`).
    pub mirror: bool,
    /// `status.phase`.
    pub phase: String,
    /// Has a `deletionTimestamp`: on its way out.
    pub terminating: bool,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.annotations` (a mirror pod carries its static pod's).
    pub annotations: BTreeMap<String, String>,
}

impl PodView {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Succeeded or Failed: nothing runs any more.
    pub fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }
}

/// What an eviction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// Accepted: the pod is being deleted.
    Started,
    /// 429: a PodDisruptionBudget does not allow it now; the apiserver's message.
    Refused(String),
    /// 404: the pod is gone already.
    Gone,
}

/// A ConfigMap as read: the whole object (written back as it was, but for `data`) and its
/// `resourceVersion`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMap {
    pub object: Value,
    pub resource_version: String,
    pub data: BTreeMap<String, String>,
}

impl KubeClient {
    /// A client from a kubeconfig's current context: the server, the CA (embedded or a file)
    /// and the client certificate and key (embedded or files; one file may hold both, as the
    /// kubelet's `kubelet-client-current.pem` does). Relative paths are taken from the
    /// kubeconfig's directory, as kubectl does.
    pub fn from_kubeconfig(path: &Path) -> Result<KubeClient, KubeError> {
        let bad = |why: String| KubeError::Kubeconfig {
            path: path.to_path_buf(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let config: Kubeconfig =
            yaml_serde::from_str(&text).map_err(|e| bad(format!("not a kubeconfig: {e}")))?;
        let context = config
            .contexts
            .iter()
            .find(|c| c.name == config.current_context)
            .ok_or_else(|| bad(format!("no context {:?}", config.current_context)))?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == context.context.cluster)
            .ok_or_else(|| bad(format!("no cluster {:?}", context.context.cluster)))?;
        let user = config
            .users
            .iter()
            .find(|u| u.name == context.context.user)
            .ok_or_else(|| bad(format!("no user {:?}", context.context.user)))?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let read = |data: &Option<String>, file: &Option<String>, what: &str| match (data, file) {
            (Some(b64), _) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("{what} data is not base64: {e}"))),
            (None, Some(file)) => {
                let file = dir.join(file);
                std::fs::read(&file)
                    .map_err(|e| bad(format!("cannot read {what} {}: {e}", file.display())))
            }
            (None, None) => Err(bad(format!("no {what}"))),
        };
        let cluster = &cluster.cluster;
        let ca = read(
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
            "certificate authority",
        )?;
        let user = &user.user;
        let mut identity = read(
            &user.client_certificate_data,
            &user.client_certificate,
            "client certificate",
        )?;
        if user.client_key_data.is_some() || user.client_key != user.client_certificate {
            identity.push(b'\n');
            identity.extend(read(&user.client_key_data, &user.client_key, "client key")?);
        }
        let server = cluster.server.trim_end_matches('/');
        match server.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
            _ => return Err(bad(format!("server {server:?} is not an https:// URL"))),
        }
        let http = HttpClient::tls(&ca, Some(&identity), TIMEOUTS)
            .map_err(|e| bad(crate::exit::one_line(&e)))?;
        Ok(KubeClient {
            http,
            server: server.to_string(),
        })
    }

    /// The same credentials against another apiserver (`https://host:port`).
    pub fn with_server(&self, server: &str) -> KubeClient {
        KubeClient {
            http: self.http.clone(),
            server: server.trim_end_matches('/').to_string(),
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// The Node `name`.
    pub async fn node(&self, name: &str) -> Result<NodeView, KubeError> {
        let path = format!("/api/v1/nodes/{name}");
        let what = format!("reading Node {name}");
        let node: Value = self.call(Method::GET, &path, None, &what).await?;
        let unschedulable = node["spec"]["unschedulable"].as_bool().unwrap_or(false);
        let ready = node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        Ok(NodeView {
            unschedulable,
            ready,
        })
    }

    /// Cordons (`true`) or uncordons the Node `name`: `spec.unschedulable` and nothing else,
    /// by merge patch (uncordon removes the field, as kubectl does).
    pub async fn set_unschedulable(&self, name: &str, on: bool) -> Result<(), KubeError> {
        let path = format!("/api/v1/nodes/{name}");
        let (what, patch) = match on {
            true => (
                format!("cordoning Node {name}"),
                json!({"spec": {"unschedulable": true}}),
            ),
            false => (
                format!("uncordoning Node {name}"),
                json!({"spec": {"unschedulable": null}}),
            ),
        };
        let body = ("application/merge-patch+json", patch.to_string());
        let _: Value = self.call(Method::PATCH, &path, Some(body), &what).await?;
        Ok(())
    }

    /// The pods bound to Node `node` (the field selector a node's credentials are allowed).
    pub async fn pods_on(&self, node: &str) -> Result<Vec<PodView>, KubeError> {
        let path = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}");
        let what = format!("listing the pods of Node {node}");
        let list: Value = self.call(Method::GET, &path, None, &what).await?;
        let items = list["items"].as_array().ok_or_else(|| KubeError::Reply {
            what: what.clone(),
            why: "no items".into(),
        })?;
        items.iter().map(|p| pod_view(p, &what)).collect()
    }

    /// Asks the Eviction API to evict a pod (policy/v1): PodDisruptionBudgets are respected.
    pub async fn evict(&self, namespace: &str, name: &str) -> Result<Eviction, KubeError> {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction");
        let what = format!("evicting pod {namespace}/{name}");
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        });
        let body = ("application/json", body.to_string());
        match self
            .call::<Value>(Method::POST, &path, Some(body), &what)
            .await
        {
            Ok(_) => Ok(Eviction::Started),
            Err(KubeError::Api {
                code: 429, message, ..
            }) => Ok(Eviction::Refused(message)),
            Err(KubeError::Api { code: 404, .. }) => Ok(Eviction::Gone),
            Err(e) => Err(e),
        }
    }

    /// The ConfigMap `namespace/name`; `None` when there is none.
    pub async fn configmap(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, KubeError> {
        let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
        let what = format!("reading ConfigMap {namespace}/{name}");
        let object: Value = match self.call(Method::GET, &path, None, &what).await {
            Ok(v) => v,
            Err(KubeError::Api { code: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let reply = |why: &str| KubeError::Reply {
            what: what.clone(),
            why: why.to_string(),
        };
        let resource_version = object["metadata"]["resourceVersion"]
            .as_str()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| reply("no metadata.resourceVersion"))?
            .to_string();
        let data = match &object["data"] {
            Value::Null => BTreeMap::new(),
            d => BTreeMap::<String, String>::deserialize(d)
                .map_err(|e| reply(&format!("data: {e}")))?,
        };
        Ok(Some(ConfigMap {
            object,
            resource_version,
            data,
        }))
    }

    /// Writes `data` into the ConfigMap as it was read, by update with its `resourceVersion`
    /// (always sent: without it an update of a ConfigMap is unconditional). `Ok(false)` when
    /// someone changed it since (409 Conflict).
    pub async fn update_configmap(
        &self,
        read: &ConfigMap,
        data: BTreeMap<String, String>,
    ) -> Result<bool, KubeError> {
        let namespace = read.object["metadata"]["namespace"].as_str().unwrap_or("");
        let name = read.object["metadata"]["name"].as_str().unwrap_or("");
        let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
        let what = format!("updating ConfigMap {namespace}/{name}");
        let mut object = read.object.clone();
        object["metadata"]["resourceVersion"] = json!(read.resource_version);
        object["data"] = json!(data);
        let body = ("application/json", object.to_string());
        match self
            .call::<Value>(Method::PUT, &path, Some(body), &what)
            .await
        {
            Ok(_) => Ok(true),
            Err(KubeError::Api { code: 409, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /readyz`: `Ok(())` when the apiserver says it is ready.
    pub async fn ready(&self) -> Result<(), KubeError> {
        let what = format!("asking {} whether it is ready", self.server);
        let resp = self
            .http
            .get(&format!("{}/readyz", self.server))
            .await
            .map_err(|source| KubeError::Transport {
                what: what.clone(),
                source,
            })?;
        let code = resp.status();
        if code.is_success() {
            return Ok(());
        }
        let body = String::from_utf8_lossy(resp.body());
        Err(KubeError::Api {
            what,
            code: code.as_u16(),
            reason: code.canonical_reason().unwrap_or("").to_string(),
            message: body.trim().lines().last().unwrap_or("").to_string(),
        })
    }

    /// One request; a reply other than 2xx becomes [`KubeError::Api`] with the `Status`'s
    /// reason and message.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        what: &str,
    ) -> Result<T, KubeError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.server))
            .header("accept", "application/json");
        let body = match body {
            Some((content_type, body)) => {
                req = req.header("content-type", content_type);
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        let req = req.body(body).map_err(|source| KubeError::Request {
            what: what.to_string(),
            source,
        })?;
        let resp = self
            .http
            .send(req)
            .await
            .map_err(|source| KubeError::Transport {
                what: what.to_string(),
                source,
            })?;
        let code = resp.status();
        let bytes = resp.into_body();
        if !code.is_success() {
            let status: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let text = |key: &str| status[key].as_str().unwrap_or("").to_string();
            let mut message = text("message");
            if message.is_empty() {
                message = String::from_utf8_lossy(&bytes)
                    .trim()
                    .chars()
                    .take(200)
                    .collect();
            }
            let mut reason = text("reason");
            if reason.is_empty() {
                reason = code.canonical_reason().unwrap_or("").to_string();
            }
            return Err(KubeError::Api {
                what: what.to_string(),
                code: code.as_u16(),
                reason,
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| KubeError::Reply {
            what: what.to_string(),
            why: e.to_string(),
        })
    }
}

fn pod_view(pod: &Value, what: &str) -> Result<PodView, KubeError> {
    let meta = &pod["metadata"];
    let field = |v: &Value, name: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| KubeError::Reply {
                what: what.to_string(),
                why: format!("a pod without {name}"),
            })
    };
    Ok(PodView {
        namespace: field(&meta["namespace"], "metadata.namespace")?,
        name: field(&meta["name"], "metadata.name")?,
        controller_kind: meta["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["controller"] == true)
            .and_then(|o| o["kind"].as_str())
            .map(str::to_string),
        mirror: meta["annotations"]["kubernetes.io/config.mirror"].is_string(),
        phase: pod["status"]["phase"].as_str().unwrap_or("").to_string(),
        terminating: meta["deletionTimestamp"].is_string(),
        ready: pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        annotations: meta["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_as_a_drain_sees_them() {
        let pod = json!({
            "metadata": {
                "namespace": "default", "name": "web-1",
                "ownerReferences": [
                    {"kind": "Foo", "controller": false},
                    {"kind": "ReplicaSet", "controller": true}
                ],
                "deletionTimestamp": "2026-12-03T00:00:00Z"
            },
            "status": {"phase": "Running"}
        });
        let p = pod_view(&pod, "x").unwrap();
        assert_eq!(p.key(), "default/web-1");
        assert_eq!(p.controller_kind.as_deref(), Some("ReplicaSet"));
        assert!(p.terminating && !p.mirror && !p.finished());
        let mirror = json!({
            "metadata": {"namespace": "kube-system", "name": "kube-apiserver-n1",
                         "annotations": {"kubernetes.io/config.mirror": "abc"}},
            "status": {"phase": "Succeeded"}
        });
        let p = pod_view(&mirror, "x").unwrap();
        assert!(p.mirror && p.finished() && p.controller_kind.is_none());
        let err = pod_view(&json!({"metadata": {}}), "listing").unwrap_err();
        assert!(
            err.to_string().contains("a pod without metadata.namespace"),
            "{err}"
        );
    }

    #[test]
    fn kubeconfigs_the_kubelet_writes_and_bootstrap_writes() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::pki::Ca::generate("test-ca").unwrap();
        let leaf = ca
            .issue(&crate::pki::LeafRequest {
                common_name: "system:node:n1".into(),
                organization: Some("system:nodes".into()),
                dns_names: vec![],
                ips: vec![],
                usages: vec![crate::pki::Usage::ClientAuth],
            })
            .unwrap();
        // The kubelet's: files, cert and key in one, relative to the kubeconfig.
        std::fs::write(dir.path().join("ca.crt"), ca.cert_pem()).unwrap();
        std::fs::write(
            dir.path().join("client.pem"),
            format!("{}{}", leaf.cert_pem, leaf.key_pem),
        )
        .unwrap();
        let by_file = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443/\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n    client-certificate: client.pem\n    client-key: client.pem\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
        let path = dir.path().join("kubelet.conf");
        std::fs::write(&path, by_file).unwrap();
        let client = KubeClient::from_kubeconfig(&path).unwrap();
        assert_eq!(client.server(), "https://127.0.0.1:6443");
        // Bootstrap's: embedded.
        let embedded = Kubeconfig::embedded(
            "c",
            "https://10.0.0.1:443",
            ca.cert_pem(),
            "u",
            super::super::kubeconfig::Credentials::Cert {
                cert_pem: &leaf.cert_pem,
                key_pem: &leaf.key_pem,
            },
        );
        std::fs::write(&path, embedded.to_yaml()).unwrap();
        assert!(KubeClient::from_kubeconfig(&path).is_ok());
        // A missing file is named.
        std::fs::write(&path, by_file.replace("client.pem", "gone.pem")).unwrap();
        let err = KubeClient::from_kubeconfig(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot read client certificate") && err.contains("gone.pem"),
            "{err}"
        );
        std::fs::write(&path, "current-context: [").unwrap();
        let err = KubeClient::from_kubeconfig(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a kubeconfig"), "{err}");
    }
}
