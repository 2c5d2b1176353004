//! etcd's peer port: what members say before their client ports answer.
//!
//! etcd serves its peer API from the moment it runs (members must reach each other to elect a
//! leader), but its client port answers only once a quorum of members runs and it has published
//! itself: during a cold start, the founders' client ports accept connections and say nothing.
//! `GET /members` on the peer port, what etcd itself asks when a member joins with `existing`,
//! answers at once with the member list as that member knows it: each member's id, peer URLs
//! and, once it has run, client URLs. The peer API checks client certificates against the etcd
//! CA, which every etcd node's own certificates are issued by.

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinSet;

use super::client::EtcdAccess;
use super::model::{host_of, Endpoints, Me};
use crate::exit::one_line;
use crate::http::{HttpClient, Timeouts, TlsError};

/// Time for one connection and for one answer: a running etcd answers its peer port in
/// milliseconds, a host without etcd refuses the connection.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_millis(300),
    request: Duration::from_millis(700),
};

/// One member as a peer port lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Listed {
    id: u64,
    #[serde(default, rename = "peerURLs")]
    peer_urls: Vec<String>,
    /// Published by the member once it runs: empty for one that never started.
    #[serde(default, rename = "clientURLs")]
    client_urls: Vec<String>,
}

/// The peer ports of the cluster's members, asked with one HTTP client made once.
pub struct PeerPorts {
    /// `None` when the client cannot be made from the TLS material (logged): nobody answers.
    http: Option<HttpClient>,
    endpoints: Endpoints,
}

impl PeerPorts {
    /// Peer ports reached as `access` reaches the client ports: with TLS, the etcd CA alone and
    /// the node's certificate.
    pub fn new(access: &EtcdAccess) -> Self {
        let http = http_client(access)
            .inspect_err(|e| tracing::warn!(error = %one_line(e), "cannot ask etcd peer ports"))
            .ok();
        PeerPorts {
            http,
            endpoints: *access.endpoints(),
        }
    }

    /// This node's member, when every peer port that answers lists it as never started:
    /// `Some(id)` when at least one answers, each lists a member with this node's peer URL, and
    /// none shows it started. A founder whose member some etcd knows as never started may take
    /// it (SPEC §7.6). `None` when nobody answers or any answer says otherwise: the client
    /// ports must tell.
    pub async fn unstarted_member(&self, client_urls: &[String], me: &Me) -> Option<u64> {
        let answers = self.members(client_urls).await;
        let mut mine = None;
        for (peer, listed) in &answers {
            match listed.iter().find(|m| m.peer_urls.contains(&me.peer_url)) {
                Some(m) if m.client_urls.is_empty() && mine.is_none_or(|id| id == m.id) => {
                    mine = Some(m.id)
                }
                other => {
                    tracing::debug!(%peer, member = ?other, "a peer does not list this node's member as never started");
                    return None;
                }
            }
        }
        mine
    }

    /// Whether any member at `client_urls`' hosts answers on its peer port: an etcd runs there.
    pub async fn any_runs(&self, client_urls: &[String]) -> bool {
        !self.members(client_urls).await.is_empty()
    }

    /// Returns once the member at `client_url`'s host answers on its peer port, asked `every`
    /// so often; the caller bounds the wait.
    pub async fn until_answers(&self, client_url: &str, every: Duration) {
        let urls = [client_url.to_string()];
        while self.members(&urls).await.is_empty() {
            tokio::time::sleep(every).await;
        }
    }

    /// The member lists of the peer ports that answer, of the members at `client_urls'` hosts,
    /// asked in parallel.
    async fn members(&self, client_urls: &[String]) -> Vec<(String, Vec<Listed>)> {
        let Some(http) = &self.http else {
            return Vec::new();
        };
        let mut set = JoinSet::new();
        for url in client_urls {
            let Some(host) = host_of(url) else { continue };
            let peer = self.endpoints.peer_url(host);
            let http = http.clone();
            set.spawn(async move {
                let answer = match http.get(&format!("{peer}/members")).await {
                    Ok(reply) if reply.status().is_success() => {
                        serde_json::from_slice::<Vec<Listed>>(reply.body())
                            .map_err(|e| format!("not a member list: {e}"))
                    }
                    Ok(reply) => Err(format!("HTTP {}", reply.status())),
                    Err(e) => Err(one_line(&e)),
                };
                match answer {
                    Ok(listed) => Some((peer, listed)),
                    Err(error) => {
                        tracing::debug!(%peer, %error, "no member list from the peer port");
                        None
                    }
                }
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(Some(answer)) = joined {
                out.push(answer);
            }
        }
        out
    }
}

/// An HTTP client for the peer ports: with TLS, the etcd CA alone and the node's certificate.
fn http_client(access: &EtcdAccess) -> Result<HttpClient, TlsError> {
    match access.tls() {
        Some(tls) => {
            let identity = format!("{}\n{}", tls.cert_pem, tls.key_pem);
            HttpClient::tls(tls.ca_pem.as_bytes(), Some(identity.as_bytes()), TIMEOUTS)
        }
        None => Ok(HttpClient::plain(TIMEOUTS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What etcd 3.4 answers on its peer port: a founder that never started has a name (from
    /// the initial cluster) but no client URLs.
    #[test]
    fn reads_what_etcd_lists() {
        let body = r#"[{"id":5889314382718021807,"peerURLs":["https://10.0.1.5:2380"],"name":"i-b"},
            {"id":17371728233233438452,"peerURLs":["https://10.0.1.4:2380"],"name":"i-a",
             "clientURLs":["https://10.0.1.4:2379"]}]"#;
        let listed: Vec<Listed> = serde_json::from_str(body).unwrap();
        assert_eq!(listed[0].id, 5889314382718021807);
        assert!(listed[0].client_urls.is_empty());
        assert_eq!(listed[1].client_urls, ["https://10.0.1.4:2379"]);
    }
}
