//! What a master's certificates must say: one request per leaf, with its files and the CA that
//! signs it. Pure: the issuing (or keeping) is `files::ensure_leaf`'s.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::{KubernetesSettings, Settings};
use crate::files::{self, LeafFiles};
use crate::identity::NodeIdentity;
use crate::pki::{LeafRequest, Usage};

/// Which of the cluster's CAs signs a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    Cluster,
    Etcd,
    FrontProxy,
}

impl Signer {
    /// Where a master keeps this CA's certificate.
    pub fn ca_cert(self) -> &'static str {
        match self {
            Signer::Cluster => files::CA_CERT,
            Signer::Etcd => files::ETCD_CA_CERT,
            Signer::FrontProxy => files::FRONT_PROXY_CA_CERT,
        }
    }
}

/// One leaf of a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafPlan {
    /// For logs and decisions, e.g. `apiserver serving`.
    pub what: &'static str,
    pub files: LeafFiles,
    pub signer: Signer,
    pub request: LeafRequest,
}

/// The node's name in Kubernetes: its hostname from IMDS, lowercased (node names are DNS
/// subdomains). The kubelet registers under it and its client certificate names it.
pub fn node_name(me: &NodeIdentity) -> String {
    me.hostname.to_lowercase()
}

/// Every leaf a master needs; the etcd client only when etcd runs with TLS.
pub fn master_leaves(
    settings: &Settings,
    kube: &KubernetesSettings,
    me: &NodeIdentity,
) -> Vec<LeafPlan> {
    let mut leaves = vec![LeafPlan {
        what: "apiserver serving",
        files: files::APISERVER,
        signer: Signer::Cluster,
        request: apiserver_request(settings, kube, me),
    }];
    if settings.etcd.tls {
        leaves.push(LeafPlan {
            what: "apiserver etcd client",
            files: files::APISERVER_ETCD_CLIENT,
            signer: Signer::Etcd,
            request: client_request("kube-apiserver-etcd-client", None),
        });
    }
    leaves.extend([
        LeafPlan {
            what: "apiserver kubelet client",
            files: files::APISERVER_KUBELET_CLIENT,
            signer: Signer::Cluster,
            request: client_request("kube-apiserver-kubelet-client", Some("system:masters")),
        },
        LeafPlan {
            what: "front-proxy client",
            files: files::FRONT_PROXY_CLIENT,
            signer: Signer::FrontProxy,
            request: client_request("front-proxy-client", None),
        },
        LeafPlan {
            what: "controller-manager client",
            files: files::CONTROLLER_MANAGER,
            signer: Signer::Cluster,
            request: client_request("system:kube-controller-manager", None),
        },
        LeafPlan {
            what: "scheduler client",
            files: files::SCHEDULER,
            signer: Signer::Cluster,
            request: client_request("system:kube-scheduler", None),
        },
        LeafPlan {
            what: "kubelet client",
            files: files::KUBELET_CLIENT,
            signer: Signer::Cluster,
            request: client_request(
                &format!("system:node:{}", node_name(me)),
                Some("system:nodes"),
            ),
        },
    ]);
    leaves
}

/// The apiserver's serving certificate: every name clients reach it by. The API service IP,
/// `kubernetes`, `kubernetes.default`, `kubernetes.default.svc`,
/// `kubernetes.default.svc.<cluster_domain>`, `kubernetes.<internal_domain>`, the apiserver
/// URL's host, the node's private IP and hostname, `127.0.0.1` and `localhost`.
pub fn apiserver_request(
    settings: &Settings,
    kube: &KubernetesSettings,
    me: &NodeIdentity,
) -> LeafRequest {
    let mut dns_names: Vec<String> = vec![
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", kube.cluster_domain),
    ];
    if let Some(domain) = &settings.internal_domain {
        dns_names.push(format!("kubernetes.{domain}"));
    }
    let mut ips: Vec<IpAddr> = vec![settings.plan.api_service_ip.into()];
    match kube.apiserver.host().parse::<Ipv4Addr>() {
        Ok(ip) => ips.push(ip.into()),
        Err(_) => dns_names.push(kube.apiserver.host().to_lowercase()),
    }
    dns_names.push(node_name(me));
    dns_names.push("localhost".into());
    ips.push(me.private_ip.into());
    ips.push(Ipv4Addr::LOCALHOST.into());
    LeafRequest {
        common_name: "kube-apiserver".into(),
        organization: None,
        dns_names: dedup(dns_names),
        ips: dedup(ips),
        usages: vec![Usage::ServerAuth],
    }
}

/// A client certificate: CN is the user, O the group.
pub fn client_request(user: &str, group: Option<&str>) -> LeafRequest {
    LeafRequest {
        common_name: user.to_string(),
        organization: group.map(str::to_string),
        dns_names: Vec::new(),
        ips: Vec::new(),
        usages: vec![Usage::ClientAuth],
    }
}

/// `items` without repeats, first occurrence kept.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::PathBuf;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "cluster = \"prod\"\nrole = \"master\"\nstate_bucket = \"prod-tn-state\"\n\
             internal_domain = \"prod.int\"\nvpc_number = 4\n[etcd]\nasg = \"prod-etcd\"\n\
             [kubernetes]\nversion = \"v1.31.4\"\n{extra}"
        );
        config::from_sources(&[(PathBuf::from("/etc/tn-agent/config.toml"), text)]).unwrap()
    }

    fn me() -> NodeIdentity {
        NodeIdentity {
            instance_id: "i-0abc".into(),
            private_ip: "10.4.1.12".parse().unwrap(),
            hostname: "IP-10-4-1-12.ec2.internal".into(),
            availability_zone: "eu-west-1b".into(),
            region: "eu-west-1".into(),
        }
    }

    fn strings<T: ToString>(items: &[T]) -> Vec<String> {
        items.iter().map(T::to_string).collect()
    }

    #[test]
    fn the_apiserver_certificate_names_every_way_to_reach_it() {
        let s = settings("");
        let req = apiserver_request(&s, s.kubernetes().unwrap(), &me());
        assert_eq!(req.common_name, "kube-apiserver");
        assert_eq!(req.usages, vec![Usage::ServerAuth]);
        assert_eq!(
            req.dns_names,
            [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "kubernetes.prod.int",
                "ip-10-4-1-12.ec2.internal",
                "localhost",
            ]
        );
        assert_eq!(
            strings(&req.ips),
            ["10.5.128.1", "10.4.1.12", "127.0.0.1"],
            "API service IP from the plan of vpc_number 4"
        );
    }

    #[test]
    fn an_apiserver_url_elsewhere_is_named_too() {
        let s = settings(
            "apiserver = \"https://api.example.com:6443\"\ncluster_domain = \"k8s.local\"\n",
        );
        let req = apiserver_request(&s, s.kubernetes().unwrap(), &me());
        assert!(req.dns_names.contains(&"api.example.com".to_string()));
        assert!(req.dns_names.contains(&"kubernetes.prod.int".to_string()));
        assert!(req
            .dns_names
            .contains(&"kubernetes.default.svc.k8s.local".to_string()));
        // An IP address as the apiserver's host is an IP SAN, once.
        let s = settings("apiserver = \"https://10.4.1.12:6443\"\n");
        let req = apiserver_request(&s, s.kubernetes().unwrap(), &me());
        assert_eq!(strings(&req.ips), ["10.5.128.1", "10.4.1.12", "127.0.0.1"]);
        assert!(!req.dns_names.iter().any(|d| d.starts_with("10.")));
    }

    #[test]
    fn every_leaf_has_its_signer_and_subject() {
        let s = settings("");
        let leaves = master_leaves(&s, s.kubernetes().unwrap(), &me());
        type Summary<'a> = (&'a str, Signer, String, Option<String>, Vec<Usage>);
        let summary: Vec<Summary> = leaves
            .iter()
            .map(|l| {
                (
                    l.files.cert,
                    l.signer,
                    l.request.common_name.clone(),
                    l.request.organization.clone(),
                    l.request.usages.clone(),
                )
            })
            .collect();
        let client = vec![Usage::ClientAuth];
        assert_eq!(
            summary,
            vec![
                (
                    "/etc/kubernetes/pki/apiserver.crt",
                    Signer::Cluster,
                    "kube-apiserver".into(),
                    None,
                    vec![Usage::ServerAuth]
                ),
                (
                    "/etc/kubernetes/pki/apiserver-etcd-client.crt",
                    Signer::Etcd,
                    "kube-apiserver-etcd-client".into(),
                    None,
                    client.clone()
                ),
                (
                    "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
                    Signer::Cluster,
                    "kube-apiserver-kubelet-client".into(),
                    Some("system:masters".into()),
                    client.clone()
                ),
                (
                    "/etc/kubernetes/pki/front-proxy-client.crt",
                    Signer::FrontProxy,
                    "front-proxy-client".into(),
                    None,
                    client.clone()
                ),
                (
                    "/etc/kubernetes/pki/controller-manager.crt",
                    Signer::Cluster,
                    "system:kube-controller-manager".into(),
                    None,
                    client.clone()
                ),
                (
                    "/etc/kubernetes/pki/scheduler.crt",
                    Signer::Cluster,
                    "system:kube-scheduler".into(),
                    None,
                    client.clone()
                ),
                (
                    "/etc/kubernetes/pki/kubelet-client.crt",
                    Signer::Cluster,
                    "system:node:ip-10-4-1-12.ec2.internal".into(),
                    Some("system:nodes".into()),
                    client
                ),
            ]
        );
        // Without etcd TLS there is no etcd client certificate.
        let mut s = settings("");
        s.etcd.tls = false;
        let leaves = master_leaves(&s, s.kubernetes().unwrap(), &me());
        assert!(leaves.iter().all(|l| l.signer != Signer::Etcd));
        assert_eq!(leaves.len(), 6);
    }
}
