//! Talking to etcd: who answers, the member list, and the membership changes the plan asks for.
//! Every call has a short timeout: a member that does not answer is reported, not waited for.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, MemberAddOptions, TlsOptions};
use tokio::task::JoinSet;

use super::model::{ClusterView, Endpoints, MemberInfo};
use crate::exit::one_line;

/// Time for one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd {operation} via {endpoints} failed")]
    Call {
        operation: &'static str,
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {operation} via {endpoints} did not answer within {within:?}")]
    Timeout {
        operation: &'static str,
        endpoints: String,
        within: Duration,
    },
    #[error("no etcd member to send {operation} to")]
    NoEndpoint { operation: &'static str },
}

/// What an etcd error means to the caller: the conditions the agent waits out by name, the rest
/// as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `member add --learner` while another learner exists: etcd takes one at a time.
    TooManyLearners,
    /// `member promote` of a learner that has not caught up with the leader yet.
    LearnerNotInSync,
    /// Anything else.
    Other,
}

impl EtcdError {
    /// Classifies the error by etcd's own message (etcd's client libraries do the same: these
    /// conditions have no gRPC code of their own).
    pub fn kind(&self) -> ErrorKind {
        let EtcdError::Call {
            source: etcd_client::Error::GRpcStatus(status),
            ..
        } = self
        else {
            return ErrorKind::Other;
        };
        let msg = status.message();
        if msg.contains("too many learner") {
            ErrorKind::TooManyLearners
        } else if msg.contains("in sync with leader") {
            ErrorKind::LearnerNotInSync
        } else {
            ErrorKind::Other
        }
    }
}

/// The client certificate and CA the agent uses to talk to etcd.
#[derive(Clone)]
pub struct ClientTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// One member's answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub member_id: u64,
    pub leader: u64,
    pub raft_term: u64,
    /// The member's raft log index: a member is caught up when its index is the leader's.
    pub raft_index: u64,
    pub is_learner: bool,
    /// The keyspace's revision as this member has applied it.
    pub revision: i64,
    /// The member's etcd version (`3.4.23`).
    pub version: String,
}

/// How to reach etcd: the cluster's endpoints, TLS material, timeouts.
#[derive(Clone)]
pub struct EtcdAccess {
    tls: Option<Arc<ClientTls>>,
    endpoints: Endpoints,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl EtcdAccess {
    /// Access with the client TLS material; plain HTTP when `tls` is `None`, whatever
    /// `endpoints` says.
    pub fn new(tls: Option<ClientTls>, endpoints: Endpoints) -> Self {
        Self::with_timeouts(tls, endpoints, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// Like [`EtcdAccess::new`], with other timeouts for one connection and one request (a call
    /// is bounded by their sum): `status` uses shorter ones to answer within its budget.
    pub fn with_timeouts(
        tls: Option<ClientTls>,
        endpoints: Endpoints,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        EtcdAccess {
            endpoints: Endpoints {
                tls: tls.is_some(),
                ..endpoints
            },
            tls: tls.map(Arc::new),
            connect_timeout,
            request_timeout,
        }
    }

    /// The client certificate and CA, when the cluster speaks TLS.
    pub(super) fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_deref()
    }

    /// The cluster's endpoints as this access reaches them.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The client URL of a member at `ip`.
    pub fn client_url(&self, ip: impl std::fmt::Display) -> String {
        self.endpoints.client_url(ip)
    }

    /// Connection options: timeouts and TLS.
    pub fn connect_options(&self) -> ConnectOptions {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout);
        if let Some(tls) = &self.tls {
            opts = opts.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem)),
            );
        }
        opts
    }

    async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        endpoints: &[String],
        f: F,
    ) -> Result<T, EtcdError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoint { operation });
        }
        let joined = endpoints.join(",");
        let work = async {
            let client = Client::connect(endpoints, Some(self.connect_options())).await?;
            f(client).await
        };
        match tokio::time::timeout(self.request_timeout + self.connect_timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(EtcdError::Call {
                operation,
                endpoints: joined,
                source,
            }),
            Err(_) => Err(EtcdError::Timeout {
                operation,
                endpoints: joined,
                within: self.request_timeout,
            }),
        }
    }

    /// The status of the member at one endpoint.
    pub async fn status(&self, endpoint: &str) -> Result<Status, EtcdError> {
        self.call("status", &[endpoint.to_string()], |mut c| async move {
            let s = c.status().await?;
            Ok(Status {
                member_id: s.header().map(|h| h.member_id()).unwrap_or_default(),
                leader: s.leader(),
                raft_term: s.raft_term(),
                raft_index: s.raft_index(),
                is_learner: s.is_learner(),
                revision: s.header().map(|h| h.revision()).unwrap_or_default(),
                version: s.version().to_string(),
            })
        })
        .await
    }

    /// Statuses of every endpoint that answers, asked in parallel.
    pub async fn statuses(&self, endpoints: &[String]) -> Vec<(String, Status)> {
        let mut set = JoinSet::new();
        for ep in endpoints {
            let (this, ep) = (self.clone(), ep.clone());
            set.spawn(async move {
                let result = this.status(&ep).await;
                if let Err(e) = &result {
                    tracing::debug!(endpoint = %ep, error = %one_line(e), "no etcd status");
                }
                result.ok().map(|s| (ep, s))
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(Some(answer)) = joined {
                out.push(answer);
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The cluster as seen from `candidates` (client URLs to try): `None` when nobody answers.
    /// The member list comes from a voter that knows a leader (the newest term first); each
    /// member is healthy when one of its client URLs answers a status request.
    pub async fn observe(&self, candidates: &[String]) -> Option<ClusterView> {
        let mut statuses = self.statuses(candidates).await;
        if statuses.is_empty() {
            return None;
        }
        let mut order: Vec<&(String, Status)> = statuses.iter().collect();
        order.sort_by_key(|(_, s)| {
            (
                std::cmp::Reverse(s.leader != 0 && !s.is_learner),
                std::cmp::Reverse(!s.is_learner),
                std::cmp::Reverse(s.raft_term),
            )
        });
        let mut listed = None;
        for (endpoint, status) in order {
            match self.member_list(std::slice::from_ref(endpoint)).await {
                Ok(members) => {
                    listed = Some((members, status.leader));
                    break;
                }
                Err(e) => {
                    tracing::debug!(endpoint = %endpoint, error = %one_line(&e), "member list failed")
                }
            }
        }
        let (mut members, leader) = listed?;
        // Members whose client URLs were not among the candidates: ask them too.
        let unasked: Vec<String> = members
            .iter()
            .flat_map(|m| m.client_urls.iter())
            .filter(|u| !candidates.contains(u))
            .cloned()
            .collect();
        statuses.extend(self.statuses(&unasked).await);
        for m in &mut members {
            m.healthy = statuses.iter().any(|(_, s)| s.member_id == m.id);
        }
        Some(ClusterView {
            members,
            leader: (leader != 0).then_some(leader),
        })
    }

    /// Of `endpoints`, those whose port accepts a TCP connection (within the connect timeout):
    /// asked after nobody answered as etcd, these are an etcd this node cannot talk to (another
    /// CA, client certificate auth) or something else on the port.
    pub async fn listening(&self, endpoints: &[String]) -> Vec<String> {
        let mut set = JoinSet::new();
        for ep in endpoints {
            let Some(addr) = ep.split_once("://").map(|(_, rest)| rest.to_string()) else {
                continue;
            };
            let (ep, within) = (ep.clone(), self.connect_timeout);
            set.spawn(async move {
                let connect = tokio::net::TcpStream::connect(addr);
                matches!(tokio::time::timeout(within, connect).await, Ok(Ok(_))).then_some(ep)
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(Some(ep)) = joined {
                out.push(ep);
            }
        }
        out.sort();
        out
    }

    pub async fn member_list(&self, endpoints: &[String]) -> Result<Vec<MemberInfo>, EtcdError> {
        self.call("member list", endpoints, |mut c| async move {
            let resp = c.member_list().await?;
            Ok(resp.members().iter().map(member_info).collect())
        })
        .await
    }

    /// Adds `peer_url` as a learner: the new member's id and the member list after the add.
    pub async fn add_learner(
        &self,
        endpoints: &[String],
        peer_url: &str,
    ) -> Result<(u64, Vec<MemberInfo>), EtcdError> {
        let url = peer_url.to_string();
        self.call("member add --learner", endpoints, |mut c| async move {
            let resp = c
                .member_add([url], Some(MemberAddOptions::new().with_is_learner()))
                .await?;
            let id = resp.member().map(|m| m.id()).unwrap_or_default();
            Ok((id, resp.member_list().iter().map(member_info).collect()))
        })
        .await
    }

    pub async fn remove(&self, endpoints: &[String], id: u64) -> Result<(), EtcdError> {
        self.call("member remove", endpoints, |mut c| async move {
            c.member_remove(id).await.map(|_| ())
        })
        .await
    }

    pub async fn promote(&self, endpoints: &[String], id: u64) -> Result<(), EtcdError> {
        self.call("member promote", endpoints, |mut c| async move {
            c.member_promote(id).await.map(|_| ())
        })
        .await
    }

    /// The cluster's active alarms (NOSPACE, CORRUPT), as `(member id, alarm)`.
    pub async fn alarms(&self, endpoints: &[String]) -> Result<Vec<(u64, String)>, EtcdError> {
        use etcd_client::{AlarmAction, AlarmType};
        self.call("alarm list", endpoints, |mut c| async move {
            let resp = c.alarm(AlarmAction::Get, AlarmType::None, None).await?;
            Ok(resp
                .alarms()
                .iter()
                .map(|a| (a.member_id(), format!("{:?}", a.alarm())))
                .collect())
        })
        .await
    }

    /// Asks the leader, at `leader_endpoint`, to hand leadership to member `target`.
    pub async fn move_leader(&self, leader_endpoint: &str, target: u64) -> Result<(), EtcdError> {
        self.call(
            "move-leader",
            &[leader_endpoint.to_string()],
            |mut c| async move { c.move_leader(target).await.map(|_| ()) },
        )
        .await
    }

    /// The keys under `prefix` with their values and mod revisions (a linearizable read).
    pub async fn get_prefix(
        &self,
        endpoints: &[String],
        prefix: &str,
    ) -> Result<Vec<Versioned>, EtcdError> {
        let prefix = prefix.to_string();
        self.call("get", endpoints, |mut c| async move {
            let resp = c
                .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
                .await?;
            Ok(resp.kvs().iter().map(versioned).collect())
        })
        .await
    }

    /// One key's value and mod revision; `None` when it does not exist.
    pub async fn get_versioned(
        &self,
        endpoints: &[String],
        key: &str,
    ) -> Result<Option<Versioned>, EtcdError> {
        let key = key.to_string();
        self.call("get", endpoints, |mut c| async move {
            let resp = c.get(key, None).await?;
            Ok(resp.kvs().first().map(versioned))
        })
        .await
    }

    /// Puts `value` at `key` only if the key's mod revision is still `revision` (0: only if the
    /// key does not exist): `Ok(false)` when someone changed it first.
    pub async fn put_if_revision(
        &self,
        endpoints: &[String],
        key: &str,
        value: Vec<u8>,
        revision: i64,
    ) -> Result<bool, EtcdError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let key = key.to_string();
        self.call("txn", endpoints, |mut c| async move {
            let compare = if revision == 0 {
                Compare::version(key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key, value, None)]);
            Ok(c.txn(txn).await?.succeeded())
        })
        .await
    }
}

impl EtcdAccess {
    /// Waits until `key` changes after `revision` (its mod revision when last read; 0 for a key
    /// that did not exist), at most `within`: `Ok(true)` on a change, `Ok(false)` when `within`
    /// ran out. A change made after `revision` and before the watch started counts.
    pub async fn wait_for_change(
        &self,
        endpoints: &[String],
        key: &str,
        revision: i64,
        within: Duration,
    ) -> Result<bool, EtcdError> {
        let joined = endpoints.join(",");
        let fail = |source| EtcdError::Call {
            operation: "watch",
            endpoints: joined.clone(),
            source,
        };
        let work = async {
            let mut client = Client::connect(endpoints, Some(self.connect_options()))
                .await
                .map_err(fail)?;
            let mut opts = etcd_client::WatchOptions::new();
            if revision > 0 {
                opts = opts.with_start_revision(revision + 1);
            }
            let mut stream = client.watch(key, Some(opts)).await.map_err(fail)?;
            loop {
                match stream.message().await.map_err(fail)? {
                    Some(resp) if !resp.events().is_empty() => return Ok(true),
                    Some(_) => continue, // the watch's creation or a progress notice
                    None => return Ok(false),
                }
            }
        };
        match tokio::time::timeout(within, work).await {
            Ok(result) => result,
            Err(_) => Ok(false),
        }
    }
}

/// A snapshot of one member's backend, as etcd streams it: chunks, the last 32 bytes of the
/// whole being the SHA-256 of what comes before them.
pub struct SnapshotStream {
    stream: etcd_client::SnapshotStreaming,
    endpoint: String,
    /// The most one chunk may take to arrive.
    chunk_timeout: Duration,
    _client: Client,
}

impl EtcdAccess {
    /// Starts streaming a snapshot from the member at `endpoint` (that member only).
    pub async fn snapshot(&self, endpoint: &str) -> Result<SnapshotStream, EtcdError> {
        let endpoints = [endpoint.to_string()];
        let (client, stream) = self
            .call("snapshot", &endpoints, |c| async move {
                let mut client = c.clone();
                let stream = client.snapshot().await?;
                Ok((c, stream))
            })
            .await?;
        Ok(SnapshotStream {
            stream,
            endpoint: endpoint.to_string(),
            chunk_timeout: self.request_timeout * 5,
            _client: client,
        })
    }
}

impl SnapshotStream {
    /// The next chunk; `None` at the end of the snapshot.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, EtcdError> {
        match tokio::time::timeout(self.chunk_timeout, self.stream.message()).await {
            Ok(Ok(message)) => Ok(message.map(|m| m.blob().to_vec())),
            Ok(Err(source)) => Err(EtcdError::Call {
                operation: "snapshot",
                endpoints: self.endpoint.clone(),
                source,
            }),
            Err(_) => Err(EtcdError::Timeout {
                operation: "snapshot",
                endpoints: self.endpoint.clone(),
                within: self.chunk_timeout,
            }),
        }
    }
}

/// A key's value and the revision of its last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

fn versioned(kv: &etcd_client::KeyValue) -> Versioned {
    Versioned {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    }
}

fn member_info(m: &etcd_client::Member) -> MemberInfo {
    MemberInfo {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
        healthy: false,
    }
}
