//! The kubelet's config file (`kubelet.config.k8s.io/v1beta1` KubeletConfiguration), typed:
//! the fields tn-agent sets, nothing else. The values are chosen in `render`.

use serde::{Deserialize, Serialize};

/// A KubeletConfiguration. Field order is the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    pub authentication: Authentication,
    pub authorization: Authorization,
    pub cgroup_driver: String,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// 0 turns the read-only port off.
    pub read_only_port: u16,
    pub rotate_certificates: bool,
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: bool,
    /// Masters only: where the control plane's static pods are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_pod_path: Option<String>,
    pub tls_min_version: String,
}

/// Who may call the kubelet's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub anonymous: Enabled,
    pub webhook: WebhookAuthentication,
    pub x509: X509Authentication,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAuthentication {
    pub enabled: bool,
    /// A Go duration, e.g. `2m0s`.
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct X509Authentication {
    /// The CA that client certificates are checked against.
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: String,
}

/// What callers may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub mode: String,
    pub webhook: WebhookAuthorization,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAuthorization {
    /// Go durations, e.g. `5m0s`.
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: String,
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: String,
}

impl KubeletConfiguration {
    /// The file's text, YAML.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("a KubeletConfiguration serialises as YAML")
    }
}
