//! The etcd data model shared by the decision, the orchestrator, status and the masters: this
//! node as a member, the member list as seen, the cluster marker, the agent's record of a data
//! dir, quorum, and the one way URLs of members are built and read. No I/O here.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How members are reached: the scheme and ports every URL of the cluster is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub tls: bool,
    pub client_port: u16,
    pub peer_port: u16,
}

impl Endpoints {
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The client URL of a member at `host`.
    pub fn client_url(&self, host: impl fmt::Display) -> String {
        format!("{}://{host}:{}", self.scheme(), self.client_port)
    }

    /// The peer URL of a member at `host`.
    pub fn peer_url(&self, host: impl fmt::Display) -> String {
        format!("{}://{host}:{}", self.scheme(), self.peer_port)
    }
}

/// The host of `scheme://host:port`.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

/// This node as an etcd member would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// The member name: the instance id.
    pub name: String,
    pub ip: Ipv4Addr,
    pub peer_url: String,
}

impl Me {
    /// This node: named by its instance id, its peer URL on its private IP.
    pub fn new(instance_id: &str, ip: Ipv4Addr, endpoints: &Endpoints) -> Self {
        Me {
            name: instance_id.to_string(),
            ip,
            peer_url: endpoints.peer_url(ip),
        }
    }
}

/// One member of the cluster as the member list shows it, with whether it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: u64,
    /// Empty for a learner that has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
    /// Its client endpoint answered a status request just now.
    pub healthy: bool,
}

impl MemberInfo {
    /// The name to show: an unstarted learner has none yet.
    pub fn display_name(&self) -> &str {
        display_name(&self.name)
    }

    /// The host of its first peer URL, when it is an IPv4 address.
    pub fn peer_ip(&self) -> Option<Ipv4Addr> {
        host_of(self.peer_urls.first()?)?.parse().ok()
    }
}

/// `(unstarted)` for the empty name of a learner that has not started.
pub fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "(unstarted)"
    } else {
        name
    }
}

/// The cluster as seen from the members that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub members: Vec<MemberInfo>,
    /// The leader's member id, when the member asked knows one.
    pub leader: Option<u64>,
}

impl ClusterView {
    pub fn voters(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.iter().filter(|m| !m.is_learner)
    }

    pub fn learners(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.iter().filter(|m| m.is_learner)
    }

    /// The member that is this node: by name, else (a learner not started yet) by peer URL.
    pub fn find_me(&self, me: &Me) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.name == me.name).or_else(|| {
            self.members
                .iter()
                .find(|m| m.name.is_empty() && m.peer_urls.contains(&me.peer_url))
        })
    }

    /// Client URLs of the healthy voters: where membership changes are sent.
    pub fn voter_endpoints(&self) -> Vec<String> {
        self.voters()
            .filter(|m| m.healthy)
            .flat_map(|m| m.client_urls.iter().cloned())
            .collect()
    }
}

/// Votes needed for a cluster of `voters` voters to make progress.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// `etcd/cluster.json` in the state bucket: written once, by the seeder, by conditional put.
/// Read strictly (unknown fields refused) and checked with [`Marker::check`] before use: anyone
/// who can write the bucket must not be able to steer what reaches etcd's env file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    pub cluster: String,
    /// `ETCD_INITIAL_CLUSTER_TOKEN` of the cluster.
    pub token: String,
    pub seeded_by: String,
    pub seed_peer_url: String,
    pub seeded_at: String,
    /// Set by `etcd restore`: the backup this cluster was restored from (its seeder is then
    /// the node that restored it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// The founding members (SPEC §7.6), the seeder among them: every instance of the ASG's
    /// desired capacity, in service when the seeder wrote the marker, each starting `new` with
    /// them as the initial cluster. Empty (markers written before founding sets, a seeder that
    /// did not see the whole ASG in service, a restore): the seeder founded alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub founders: Vec<Founder>,
}

/// One founding member of the cluster, as the marker names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Founder {
    pub instance_id: String,
    pub peer_url: String,
}

/// What is wrong with a marker that parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMarker {
    #[error("it is the marker of cluster {found:?}, not {expected:?}")]
    OtherCluster { found: String, expected: String },
    #[error("its token is not 1-64 characters from a-z, 0-9 and '-'")]
    Token,
    #[error("its founders are not a usable initial cluster: {0}")]
    Founders(String),
}

impl Marker {
    /// Checks that the marker is this cluster's and its token is safe to write into a file.
    pub fn check(&self, cluster: &str) -> Result<(), BadMarker> {
        if self.cluster != cluster {
            return Err(BadMarker::OtherCluster {
                found: self.cluster.clone(),
                expected: cluster.to_string(),
            });
        }
        if !is_token(&self.token) {
            return Err(BadMarker::Token);
        }
        if self.founders.is_empty() {
            return Ok(());
        }
        let bad = |why: String| Err(BadMarker::Founders(why));
        let initial = self.initial_cluster();
        if let Some(p) = initial.first_invalid() {
            return bad(format!(
                "{}={} is not a member name and peer URL",
                p.name, p.peer_url
            ));
        }
        let mut ids: Vec<&str> = self
            .founders
            .iter()
            .map(|f| f.instance_id.as_str())
            .collect();
        let mut urls: Vec<&str> = self.founders.iter().map(|f| f.peer_url.as_str()).collect();
        ids.sort_unstable();
        urls.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) || urls.windows(2).any(|w| w[0] == w[1]) {
            return bad("an instance or a peer URL is named twice".into());
        }
        if !self
            .founders
            .iter()
            .any(|f| f.instance_id == self.seeded_by && f.peer_url == self.seed_peer_url)
        {
            return bad(format!("the seeder {} is not among them", self.seeded_by));
        }
        Ok(())
    }

    /// The cluster the founders start with: the founders, or the seeder alone.
    pub fn initial_cluster(&self) -> InitialCluster {
        if self.founders.is_empty() {
            return InitialCluster(vec![Peer {
                name: self.seeded_by.clone(),
                peer_url: self.seed_peer_url.clone(),
            }]);
        }
        InitialCluster(
            self.founders
                .iter()
                .map(|f| Peer {
                    name: f.instance_id.clone(),
                    peer_url: f.peer_url.clone(),
                })
                .collect(),
        )
    }

    /// Whether `me` is one of the founders (the seeder is, also of a marker without founders).
    pub fn founded_by(&self, me: &Me) -> bool {
        self.initial_cluster()
            .0
            .iter()
            .any(|p| p.name == me.name && p.peer_url == me.peer_url)
    }
}

/// A cluster token: 1-64 characters from `a-z`, `0-9` and `-`.
pub fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `ETCD_INITIAL_CLUSTER_STATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    New,
    Existing,
}

impl ClusterState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::New => "new",
            ClusterState::Existing => "existing",
        }
    }
}

/// One `name=peer_url` entry of `ETCD_INITIAL_CLUSTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub peer_url: String,
}

/// `ETCD_INITIAL_CLUSTER`: the members etcd starts with, written `name=url,name=url`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct InitialCluster(pub Vec<Peer>);

impl InitialCluster {
    /// A cluster of one: this node.
    pub fn only(me: &Me) -> Self {
        InitialCluster(vec![Peer {
            name: me.name.clone(),
            peer_url: me.peer_url.clone(),
        }])
    }

    /// The members as listed, this node's unstarted learner under its own name; members
    /// without a peer URL are left out.
    pub fn of_members<'a>(members: impl IntoIterator<Item = &'a MemberInfo>, me: &Me) -> Self {
        let peers = members
            .into_iter()
            .filter_map(|m| {
                let url = m.peer_urls.first()?;
                let name = if m.name.is_empty() && *url == me.peer_url {
                    me.name.clone()
                } else {
                    m.name.clone()
                };
                Some(Peer {
                    name,
                    peer_url: url.clone(),
                })
            })
            .collect();
        InitialCluster(peers)
    }

    /// The hosts of the peer URLs.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| host_of(&p.peer_url))
    }

    /// The first entry that is not a plain member name with an `http(s)://host:port` peer URL
    /// (names and URLs come from etcd's member list: a `,` or `=` in one would add a member).
    pub fn first_invalid(&self) -> Option<&Peer> {
        self.0.iter().find(|p| !p.is_valid())
    }
}

impl Peer {
    fn is_valid(&self) -> bool {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let url_ok = ["http://", "https://"].iter().any(|scheme| {
            self.peer_url.strip_prefix(scheme).is_some_and(|rest| {
                rest.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty()
                        && host.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
                        })
                        && port.parse::<u16>().is_ok_and(|p| p > 0)
                })
            })
        });
        name_ok && url_ok
    }
}

impl fmt::Display for InitialCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", p.name, p.peer_url)?;
        }
        Ok(())
    }
}

impl FromStr for InitialCluster {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(InitialCluster::default());
        }
        s.split(',')
            .map(|pair| match pair.split_once('=') {
                Some((name, url)) if !url.is_empty() => Ok(Peer {
                    name: name.to_string(),
                    peer_url: url.to_string(),
                }),
                _ => Err(format!("`{pair}` is not name=peer_url")),
            })
            .collect::<Result<_, _>>()
            .map(InitialCluster)
    }
}

impl From<InitialCluster> for String {
    fn from(c: InitialCluster) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for InitialCluster {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// What the agent recorded about the data dir when it last configured etcd
/// (`/var/lib/tn-agent/etcd-member.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub cluster_token: String,
    pub name: String,
    pub peer_url: String,
    /// Known when the member was added by `member add`; a seeder's id is made by etcd.
    pub member_id: Option<u64>,
    pub initial_cluster: InitialCluster,
    pub initial_cluster_state: ClusterState,
    pub data_dir: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_and_read_one_way() {
        let e = Endpoints {
            tls: true,
            client_port: 2379,
            peer_port: 2380,
        };
        assert_eq!(e.client_url("10.0.1.2"), "https://10.0.1.2:2379");
        assert_eq!(e.peer_url("10.0.1.2"), "https://10.0.1.2:2380");
        let plain = Endpoints { tls: false, ..e };
        assert_eq!(plain.client_url("10.0.1.2"), "http://10.0.1.2:2379");
        assert_eq!(host_of("https://10.0.1.2:2380"), Some("10.0.1.2"));
        assert_eq!(host_of("http://localhost"), Some("localhost"));
        assert_eq!(host_of("10.0.1.2:2380"), None);
        assert_eq!(host_of("https://:2380"), None);
    }

    #[test]
    fn the_initial_cluster_round_trips_as_etcd_writes_it() {
        let text = "i-a=https://10.0.1.1:2380,i-b=https://10.0.1.2:2380";
        let c: InitialCluster = text.parse().unwrap();
        assert_eq!(c.0.len(), 2);
        assert_eq!(c.to_string(), text);
        assert_eq!(c.hosts().collect::<Vec<_>>(), ["10.0.1.1", "10.0.1.2"]);
        assert!("i-a".parse::<InitialCluster>().is_err());
        assert_eq!(
            "".parse::<InitialCluster>().unwrap(),
            InitialCluster::default()
        );
    }

    #[test]
    fn members_from_etcd_are_checked_before_they_reach_a_file() {
        let ok: InitialCluster = "i-a=https://10.0.1.1:2380,i-b=http://[::1]:2380"
            .parse()
            .unwrap();
        assert_eq!(ok.first_invalid(), None);
        for bad in [
            "i-a,i-x=https://10.9.9.9:2380",
            "i-a=https://10.0.1.1:2380/path",
            "i-a=ftp://10.0.1.1:2380",
            "i-a=https://10.0.1.1",
            "i-a=https://10.0.1.1:0",
            "i a=https://10.0.1.1:2380",
        ] {
            let peer = Peer {
                name: bad.split_once('=').unwrap().0.into(),
                peer_url: bad.split_once('=').unwrap().1.into(),
            };
            assert!(
                InitialCluster(vec![peer]).first_invalid().is_some(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_record_keeps_its_json_form() {
        let json = r#"{"cluster_token":"prod-1","name":"i-a","peer_url":"https://10.0.1.1:2380",
            "member_id":null,"initial_cluster":"i-a=https://10.0.1.1:2380",
            "initial_cluster_state":"new","data_dir":"/var/lib/etcd"}"#;
        let r: MemberRecord = serde_json::from_str(json).unwrap();
        assert_eq!(r.initial_cluster_state, ClusterState::New);
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["initial_cluster"], "i-a=https://10.0.1.1:2380");
        assert_eq!(back["initial_cluster_state"], "new");
    }

    #[test]
    fn a_marker_is_read_strictly() {
        let good = r#"{"cluster":"prod","token":"prod-00ab","seeded_by":"i-a",
            "seed_peer_url":"https://10.0.1.1:2380","seeded_at":"2026-11-24T00:00:00Z"}"#;
        let m: Marker = serde_json::from_str(good).unwrap();
        assert_eq!(m.check("prod"), Ok(()));
        assert_eq!(
            m.check("staging"),
            Err(BadMarker::OtherCluster {
                found: "prod".into(),
                expected: "staging".into()
            })
        );
        let extra = good.replace(r#""cluster""#, r#""force":true,"cluster""#);
        assert!(serde_json::from_str::<Marker>(&extra).is_err());
        for token in [
            "",
            "a\nETCD_FORCE_NEW_CLUSTER=true",
            "A",
            "a b",
            &"a".repeat(65),
        ] {
            let m = Marker {
                token: token.into(),
                ..m.clone()
            };
            assert_eq!(m.check("prod"), Err(BadMarker::Token), "{token:?}");
        }
    }

    #[test]
    fn founders_are_checked_before_they_reach_a_file() {
        let founder = |id: &str, ip: u8| Founder {
            instance_id: id.into(),
            peer_url: format!("https://10.0.1.{ip}:2380"),
        };
        let m = Marker {
            cluster: "prod".into(),
            token: "prod-00ab".into(),
            seeded_by: "i-a".into(),
            seed_peer_url: "https://10.0.1.1:2380".into(),
            seeded_at: "2026-11-24T00:00:00Z".into(),
            restored_from: None,
            founders: vec![founder("i-a", 1), founder("i-b", 2), founder("i-c", 3)],
        };
        assert_eq!(m.check("prod"), Ok(()));
        assert_eq!(
            m.initial_cluster().to_string(),
            "i-a=https://10.0.1.1:2380,i-b=https://10.0.1.2:2380,i-c=https://10.0.1.3:2380"
        );
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Marker>(&json).unwrap(), m);
        let me = |id: &str, ip: u8| Me {
            name: id.into(),
            ip: Ipv4Addr::new(10, 0, 1, ip),
            peer_url: format!("https://10.0.1.{ip}:2380"),
        };
        assert!(m.founded_by(&me("i-b", 2)));
        assert!(!m.founded_by(&me("i-b", 4)), "another IP: not that founder");
        assert!(!m.founded_by(&me("i-d", 4)));
        // Without founders, the seeder alone.
        let alone = Marker {
            founders: vec![],
            ..m.clone()
        };
        assert_eq!(
            alone.initial_cluster().to_string(),
            "i-a=https://10.0.1.1:2380"
        );
        assert!(alone.founded_by(&me("i-a", 1)) && !alone.founded_by(&me("i-b", 2)));
        for (what, founders) in [
            ("seeder missing", vec![founder("i-b", 2), founder("i-c", 3)]),
            ("twice", vec![founder("i-a", 1), founder("i-a", 2)]),
            ("same URL", vec![founder("i-a", 1), founder("i-b", 1)]),
            (
                "a comma",
                vec![
                    founder("i-a", 1),
                    founder("i-b,i-x=https://10.9.9.9:2380", 2),
                ],
            ),
        ] {
            let bad = Marker {
                founders,
                ..m.clone()
            };
            assert!(
                matches!(bad.check("prod"), Err(BadMarker::Founders(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn an_unstarted_learner_of_this_node_goes_under_its_name() {
        let me = Me {
            name: "i-c".into(),
            ip: Ipv4Addr::new(10, 0, 1, 3),
            peer_url: "https://10.0.1.3:2380".into(),
        };
        let member = |id, name: &str, ip: u8| MemberInfo {
            id,
            name: name.into(),
            peer_urls: vec![format!("https://10.0.1.{ip}:2380")],
            client_urls: vec![],
            is_learner: false,
            healthy: true,
        };
        let members = [member(1, "i-a", 1), member(3, "", 3)];
        assert_eq!(
            InitialCluster::of_members(&members, &me).to_string(),
            "i-a=https://10.0.1.1:2380,i-c=https://10.0.1.3:2380"
        );
    }
}
