//! Kubeconfig files (`apiVersion: v1`, `kind: Config`), typed: one home for their shape, used
//! for the node's kubeconfigs and for the operator's admin kubeconfig from `pki init`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A kubeconfig. Field order is the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub clusters: Vec<NamedCluster>,
    pub users: Vec<NamedUser>,
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context")]
    pub current_context: String,
    #[serde(default)]
    pub preferences: Preferences,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

/// Where the API server is and which CA it is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub server: String,
    /// The CA certificate PEM, base64.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    /// The CA certificate's path.
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

/// How the user authenticates: a client certificate and key (embedded or by path) or a
/// bearer token. Debug shows which fields are set, never their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The client certificate PEM, base64.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// The client key PEM, base64.
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
    /// The client certificate's path.
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    /// The client key's path.
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "[elided]");
        f.debug_struct("User")
            .field(
                "client_certificate_data",
                &set(&self.client_certificate_data),
            )
            .field("client_key_data", &set(&self.client_key_data))
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("token", &set(&self.token))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
}

/// Always empty: written as `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {}

/// How a kubeconfig's user authenticates.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    /// A client certificate and its key, PEM.
    Cert { cert_pem: &'a str, key_pem: &'a str },
    /// A bearer token (the bootstrap token).
    Token(&'a str),
}

impl Kubeconfig {
    /// One cluster, one user and one context `<user>@<cluster>`, current; certificates
    /// embedded (base64).
    pub fn embedded(
        cluster: &str,
        server: &str,
        ca_pem: &str,
        user: &str,
        credentials: Credentials,
    ) -> Kubeconfig {
        let b64 = |pem: &str| Some(base64::engine::general_purpose::STANDARD.encode(pem));
        let auth = match credentials {
            Credentials::Cert { cert_pem, key_pem } => User {
                client_certificate_data: b64(cert_pem),
                client_key_data: b64(key_pem),
                ..User::default()
            },
            Credentials::Token(token) => User {
                token: Some(token.to_string()),
                ..User::default()
            },
        };
        let context = format!("{user}@{cluster}");
        Kubeconfig {
            api_version: "v1".to_string(),
            kind: "Config".to_string(),
            clusters: vec![NamedCluster {
                name: cluster.to_string(),
                cluster: Cluster {
                    server: server.to_string(),
                    certificate_authority_data: b64(ca_pem),
                    certificate_authority: None,
                },
            }],
            users: vec![NamedUser {
                name: user.to_string(),
                user: auth,
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: Context {
                    cluster: cluster.to_string(),
                    user: user.to_string(),
                },
            }],
            current_context: context,
            preferences: Preferences::default(),
        }
    }

    /// The file's text, YAML.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("a kubeconfig serialises as YAML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_and_embedded_data_read_back() {
        // What the kubelet writes after TLS bootstrap: the CA and client certificate by path.
        let text = r#"apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /etc/kubernetes/pki/ca.crt
    server: https://10.0.1.10:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
"#;
        let config: Kubeconfig = yaml_serde::from_str(text).unwrap();
        let cluster = &config.clusters[0].cluster;
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/etc/kubernetes/pki/ca.crt")
        );
        assert_eq!(cluster.certificate_authority_data, None);
        let user = &config.users[0].user;
        assert_eq!(
            user.client_key.as_deref(),
            Some("/var/lib/kubelet/pki/kubelet-client-current.pem")
        );
        assert_eq!(config.current_context, "default-context");
        assert_eq!(config.preferences, Preferences::default());

        let embedded = Kubeconfig::embedded(
            "prod",
            "https://127.0.0.1:443",
            "CA\n",
            "admin",
            Credentials::Token("abcdef.0123456789abcdef"),
        );
        let again: Kubeconfig = yaml_serde::from_str(&embedded.to_yaml()).unwrap();
        assert_eq!(again, embedded);
        assert_eq!(
            embedded.clusters[0]
                .cluster
                .certificate_authority_data
                .as_deref(),
            Some("Q0EK")
        );
        // Debug never shows a credential.
        assert!(!format!("{embedded:?}").contains("0123456789abcdef"));
    }
}
