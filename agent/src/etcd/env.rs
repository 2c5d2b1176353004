//! `/etc/etcd/etcd.env` ([`crate::files::ETCD_ENV`]): etcd's own `ETCD_*` variables, `KEY=value` per line, no quotes and no
//! shell syntax, read by the unit with `EnvironmentFile=`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::model::{ClusterState, Endpoints, InitialCluster};

/// Certificate paths as written into the env file (with the `--root` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub peer_cert: PathBuf,
    pub peer_key: PathBuf,
}

/// Everything the env file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEnv {
    pub name: String,
    pub data_dir: PathBuf,
    pub ip: Ipv4Addr,
    /// Scheme and ports; TLS files are given when `endpoints.tls`.
    pub endpoints: Endpoints,
    pub initial_cluster: InitialCluster,
    pub initial_cluster_state: ClusterState,
    pub token: String,
    pub tls: Option<TlsFiles>,
}

/// A value that cannot go into the env file as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{key} would be {value:?}: values of etcd.env may not hold whitespace, control characters, \
     quotes, `$` or `\\`, and members must be `name=http(s)://host:port`"
)]
pub struct UnsafeValue {
    pub key: &'static str,
    pub value: String,
}

impl EtcdEnv {
    /// The file's text. Every value is checked: systemd's `EnvironmentFile=` would take a
    /// newline as the start of another variable.
    pub fn render(&self) -> Result<String, UnsafeValue> {
        if let Some(peer) = self.initial_cluster.first_invalid() {
            return Err(UnsafeValue {
                key: "ETCD_INITIAL_CLUSTER",
                value: format!("{}={}", peer.name, peer.peer_url),
            });
        }
        let peer_url = self.endpoints.peer_url(self.ip);
        let client_url = self.endpoints.client_url(self.ip);
        let mut vars: Vec<(&str, String)> = vec![
            ("ETCD_NAME", self.name.clone()),
            ("ETCD_DATA_DIR", self.data_dir.display().to_string()),
            ("ETCD_INITIAL_CLUSTER", self.initial_cluster.to_string()),
            (
                "ETCD_INITIAL_CLUSTER_STATE",
                self.initial_cluster_state.as_str().into(),
            ),
            ("ETCD_INITIAL_CLUSTER_TOKEN", self.token.clone()),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_url.clone()),
            ("ETCD_LISTEN_PEER_URLS", peer_url),
            ("ETCD_LISTEN_CLIENT_URLS", client_url.clone()),
            ("ETCD_ADVERTISE_CLIENT_URLS", client_url),
            ("ETCD_STRICT_RECONFIG_CHECK", "true".into()),
            ("ETCD_ENABLE_V2", "false".into()),
            ("ETCD_LOGGER", "zap".into()),
            ("ETCD_LOG_OUTPUTS", "stderr".into()),
        ];
        if let Some(tls) = &self.tls {
            let p = |p: &PathBuf| p.display().to_string();
            vars.extend([
                ("ETCD_TRUSTED_CA_FILE", p(&tls.ca)),
                ("ETCD_CERT_FILE", p(&tls.server_cert)),
                ("ETCD_KEY_FILE", p(&tls.server_key)),
                ("ETCD_CLIENT_CERT_AUTH", "true".into()),
                ("ETCD_PEER_TRUSTED_CA_FILE", p(&tls.ca)),
                ("ETCD_PEER_CERT_FILE", p(&tls.peer_cert)),
                ("ETCD_PEER_KEY_FILE", p(&tls.peer_key)),
                ("ETCD_PEER_CLIENT_CERT_AUTH", "true".into()),
            ]);
        }
        let mut out = String::from("# Written by tn-agent bootstrap; changes are overwritten.\n");
        for (key, value) in &vars {
            let unsafe_char = |c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '$' | '\\')
            };
            if value.is_empty() || value.contains(unsafe_char) {
                return Err(UnsafeValue {
                    key,
                    value: value.clone(),
                });
            }
        }
        for (k, v) in vars {
            out.push_str(k);
            out.push('=');
            out.push_str(&v);
            out.push('\n');
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plain_key_value_lines() {
        let env = EtcdEnv {
            name: "i-0abc".into(),
            data_dir: "/tmp/n1/var/lib/etcd".into(),
            ip: Ipv4Addr::new(10, 0, 1, 12),
            endpoints: Endpoints {
                tls: true,
                client_port: 2379,
                peer_port: 2380,
            },
            initial_cluster: "i-0abc=https://10.0.1.12:2380".parse().unwrap(),
            initial_cluster_state: ClusterState::New,
            token: "prod-0123".into(),
            tls: Some(TlsFiles {
                ca: "/etc/etcd/pki/ca.crt".into(),
                server_cert: "/etc/etcd/pki/server.crt".into(),
                server_key: "/etc/etcd/pki/server.key".into(),
                peer_cert: "/etc/etcd/pki/peer.crt".into(),
                peer_key: "/etc/etcd/pki/peer.key".into(),
            }),
        };
        let text = env.render().unwrap();
        for line in [
            "ETCD_NAME=i-0abc",
            "ETCD_DATA_DIR=/tmp/n1/var/lib/etcd",
            "ETCD_INITIAL_CLUSTER=i-0abc=https://10.0.1.12:2380",
            "ETCD_INITIAL_CLUSTER_STATE=new",
            "ETCD_INITIAL_CLUSTER_TOKEN=prod-0123",
            "ETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.1.12:2380",
            "ETCD_LISTEN_PEER_URLS=https://10.0.1.12:2380",
            "ETCD_LISTEN_CLIENT_URLS=https://10.0.1.12:2379",
            "ETCD_ADVERTISE_CLIENT_URLS=https://10.0.1.12:2379",
            "ETCD_CERT_FILE=/etc/etcd/pki/server.crt",
            "ETCD_PEER_KEY_FILE=/etc/etcd/pki/peer.key",
            "ETCD_CLIENT_CERT_AUTH=true",
            "ETCD_PEER_CLIENT_CERT_AUTH=true",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = line.split_once('=').unwrap();
            assert!(k.starts_with("ETCD_"), "{line}");
            assert!(!v.contains(['"', '\'', '$', ' ', '\\']), "{line}");
        }
        let plain = EtcdEnv {
            tls: None,
            endpoints: Endpoints {
                tls: false,
                ..env.endpoints
            },
            ..env
        };
        let text = plain.render().unwrap();
        assert!(text.contains("ETCD_LISTEN_CLIENT_URLS=http://10.0.1.12:2379\n"));
        assert!(!text.contains("CERT"), "{text}");
    }

    #[test]
    fn a_value_that_would_inject_a_variable_is_refused() {
        let env = EtcdEnv {
            name: "i-0abc".into(),
            data_dir: "/var/lib/etcd".into(),
            ip: Ipv4Addr::new(10, 0, 1, 12),
            endpoints: Endpoints {
                tls: false,
                client_port: 2379,
                peer_port: 2380,
            },
            initial_cluster: "i-0abc=http://10.0.1.12:2380".parse().unwrap(),
            initial_cluster_state: ClusterState::New,
            token: "prod\nETCD_FORCE_NEW_CLUSTER=true".into(),
            tls: None,
        };
        let err = env.render().unwrap_err();
        assert_eq!(err.key, "ETCD_INITIAL_CLUSTER_TOKEN");
        for bad in ["a b", "a\tb", "\"x\"", "$HOME", "a\\b", ""] {
            let env = EtcdEnv {
                name: bad.into(),
                token: "prod-1".into(),
                ..env.clone()
            };
            assert_eq!(env.render().unwrap_err().key, "ETCD_NAME", "{bad:?}");
        }
    }
}
