//! Kubernetes nodes (SPEC §4–§6): a master's certificates, static pods and kubeconfigs, and the
//! kubelet files of masters and workers. Everything that can be wrong in the cluster's PKI is
//! fetched and checked before the first file is written, so a missing or malformed object
//! leaves the node's files as they were.

pub mod apiserver_restart;
pub mod certs;
pub mod client;
pub mod fetch;
pub mod kubeconfig;
pub mod kubelet_config;
pub mod render;

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use self::certs::Signer;
use self::fetch::{MasterPki, WorkerPki};
use self::render::{ControlPlane, Credentials, Kubelet};
use crate::aws::{AsgView, Aws};
use crate::config::{KubernetesSettings, MasterSettings, Settings};
use crate::etcd::client::{ClientTls, EtcdAccess};
use crate::etcd::model::{ClusterView, Endpoints};
use crate::exit::BadInput;
use crate::files;
use crate::fsutil::{Root, MODE_PUBLIC, MODE_SECRET};
use crate::identity::NodeIdentity;
use crate::node::{Node, OwnFiles};
use crate::pki::{Ca, Leaf};
use crate::state::BootState;

/// The user a worker's kubelet bootstraps as (its token decides who it really is).
const BOOTSTRAP_USER: &str = "kubelet-bootstrap";

/// A master or worker whose files are all there, with certificates good enough for `when`,
/// keeps them as they are (a master's static pods keep their etcd servers) and writes the
/// kubelet files again (they come from the config and IMDS alone). For a reboot each of a
/// master's leaves must be one a run with the CA would keep, and a worker's kubelet must hold
/// its own client certificate (it needs the bootstrap token no more); without AWS, certificates
/// valid now suffice. `Ok(false)` otherwise: that needs the state bucket.
pub fn keep_files(
    node: &Node<'_>,
    kube: &KubernetesSettings,
    state: &mut BootState,
    when: OwnFiles,
) -> Result<bool> {
    let (settings, root, me) = (node.settings, node.root, node.ident);
    let master = settings.role() == crate::config::Role::Master;
    let mut needed = files::expected(settings.role(), settings.etcd.tls);
    let mut certs = vec![files::CA_CERT];
    let mut leaves = Vec::new();
    if master {
        needed.extend([
            files::CA_KEY,
            files::FRONT_PROXY_CA_CERT,
            files::SA_KEY,
            files::SA_PUB,
            files::CONTROLLER_MANAGER_KUBECONFIG,
            files::SCHEDULER_KUBECONFIG,
            files::APISERVER_MANIFEST,
            files::CONTROLLER_MANAGER_MANIFEST,
            files::SCHEDULER_MANIFEST,
        ]);
        certs.push(files::FRONT_PROXY_CA_CERT);
        if settings.etcd.tls {
            certs.push(files::ETCD_CA_CERT);
        }
        leaves = certs::master_leaves(settings, kube, me);
        needed.extend(leaves.iter().map(|leaf| leaf.files.key));
    } else if when == OwnFiles::Reboot {
        certs.push(files::KUBELET_CLIENT_CURRENT);
    }
    if let Some(file) = files::first_missing(root, &needed) {
        tracing::info!(file, "not starting as before: a file is missing");
        return Ok(false);
    }
    let leaf_not_kept = |leaf: &certs::LeafPlan| match when {
        OwnFiles::Reboot => {
            files::leaf_not_kept(root, leaf.files, leaf.signer.ca_cert(), &leaf.request)
        }
        OwnFiles::AwsDown => files::unusable_cert(root, leaf.files.cert),
    };
    let not_kept = certs
        .iter()
        .find_map(|c| files::unusable_cert(root, c))
        .or_else(|| leaves.iter().find_map(leaf_not_kept));
    if let Some(why) = not_kept {
        tracing::info!(%why, "not starting as before");
        return Ok(false);
    }
    write_kubelet_files(settings, kube, root, me, master, state)?;
    Ok(true)
}

/// `bootstrap` for role master: the control plane's certificates (kept while they fit), its
/// static pods and kubeconfigs, and the kubelet files.
pub async fn bootstrap_master(
    node: &Node<'_>,
    master: &MasterSettings,
    own_asg: &str,
    state: &mut BootState,
) -> Result<()> {
    let (settings, root, me) = (node.settings, node.root, node.ident);
    let kube = &master.kubernetes;
    let etcd_asg = etcd_asg(&master.etcd_asg, own_asg)?;

    // Gather and check everything first: nothing is written before this is done.
    let store = node.store();
    let pki = MasterPki::fetch(&store, settings.etcd.tls)
        .await
        .with_context(|| store.pki_context())?;
    let asg_urls = etcd_asg_urls(settings, node.aws, etcd_asg).await?;
    let encryption = encryption_config(root, &store, &pki, state)?;

    // Then write: certificates first, what refers to them after, the static pods last.
    let issued = write_master_pki(settings, kube, root, me, &pki, state)?;
    let etcd_servers = etcd_servers(settings, &pki, &issued, &asg_urls, state).await;
    write_master_kubeconfigs(settings, kube, root, &pki, &issued, me, state)?;
    write_kubelet_files(settings, kube, root, me, true, state)?;
    let expires = pki
        .token_stored_at
        .map(|at| time::OffsetDateTime::from(at + fetch::TOKEN_LIFETIME));
    if let Some(at) = expires {
        state.bootstrap_token_expires = Some(crate::state::rfc3339(at));
    }
    let addon = render::tls_bootstrap_addon(&pki.token, expires);
    files::write(
        root,
        state,
        files::TLS_BOOTSTRAP_ADDON,
        addon.as_bytes(),
        MODE_SECRET,
    )?;
    let mut groups = vec![crate::reboot::lock::MASTER_GROUP.to_string()];
    groups.extend(settings.reboot.worker_groups.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| seen.insert(g.clone()));
    files::write(
        root,
        state,
        files::REBOOT_LOCKS_ADDON,
        render::reboot_locks_addon(&groups).as_bytes(),
        MODE_PUBLIC,
    )?;
    if let Some(config) = &encryption {
        files::write(
            root,
            state,
            files::ENCRYPTION_CONFIG,
            config.as_bytes(),
            MODE_SECRET,
        )?;
    }
    let encrypt_secrets = encryption.is_some();
    write_static_pods(
        settings,
        kube,
        root,
        me,
        &etcd_servers,
        encrypt_secrets,
        state,
    )?;
    state.decide(
        "configured control plane",
        format!(
            "Kubernetes {} with the apiserver on port {}, etcd at {}",
            kube.version,
            kube.apiserver.port(),
            etcd_servers.join(",")
        ),
    );
    Ok(())
}

/// Renews a master's leaf certificates by bootstrap's rules (reconcile, SPEC §11): the cluster's
/// PKI fetched and checked, every leaf kept while it fits and reissued otherwise, and the
/// kubeconfigs that embed a client certificate rewritten when theirs changed. Nothing else is
/// touched: not the static pods (they name the files, which the components read again), not
/// the addons. What was issued is recorded in `state` as bootstrap records it.
pub async fn renew_master_certificates(
    settings: &Settings,
    master: &MasterSettings,
    root: &Root,
    me: &NodeIdentity,
    aws: &Aws,
    state: &mut BootState,
) -> Result<()> {
    let store = crate::store::Store::new(aws, &settings.state_bucket, settings.cluster.as_str());
    let pki = MasterPki::fetch(&store, settings.etcd.tls)
        .await
        .with_context(|| store.pki_context())?;
    let kube = &master.kubernetes;
    let issued = write_master_pki(settings, kube, root, me, &pki, state)?;
    write_master_kubeconfigs(settings, kube, root, &pki, &issued, me, state)?;
    remark_static_pods(root, state)
}

/// `etcd.asg`: not the master's own group.
fn etcd_asg<'a>(name: &'a str, own_asg: &str) -> Result<&'a str> {
    if name == own_asg {
        bail!(BadInput(format!(
            "key `etcd.asg` names this master's own autoscaling group {name}; \
             it must name the etcd nodes' group"
        )));
    }
    Ok(name)
}

/// The client URLs of the etcd ASG's instances; at least one.
async fn etcd_asg_urls(settings: &Settings, aws: &Aws, etcd_asg: &str) -> Result<Vec<String>> {
    let view = aws
        .describe_asg(etcd_asg)
        .await
        .with_context(|| format!("listing the etcd autoscaling group {etcd_asg}"))?;
    let urls = etcd_urls_of(&view, &crate::etcd::endpoints(&settings.etcd));
    if urls.is_empty() {
        bail!("the etcd autoscaling group {etcd_asg} has no in-service instance with a private IP yet");
    }
    Ok(urls)
}

/// The CA certificates, the service-account key pair, the one CA key a master keeps on disk
/// (the controller-manager signs the kubelets' CSRs with it), and the leaves, kept when they
/// still fit. Returns the leaves as they are on disk, by certificate path.
fn write_master_pki(
    settings: &Settings,
    kube: &KubernetesSettings,
    root: &Root,
    me: &NodeIdentity,
    pki: &MasterPki,
    state: &mut BootState,
) -> Result<BTreeMap<&'static str, Leaf>> {
    let mut files = vec![
        (files::CA_CERT, pki.cluster_ca.cert_pem(), MODE_PUBLIC),
        (files::CA_KEY, pki.cluster_ca_key_pem.as_str(), MODE_SECRET),
        (
            files::FRONT_PROXY_CA_CERT,
            pki.front_proxy_ca.cert_pem(),
            MODE_PUBLIC,
        ),
        (files::SA_KEY, pki.sa_key_pem.as_str(), MODE_SECRET),
        (files::SA_PUB, pki.sa_pub_pem.as_str(), MODE_PUBLIC),
    ];
    if let Some(etcd_ca) = &pki.etcd_ca {
        files.push((files::ETCD_CA_CERT, etcd_ca.cert_pem(), MODE_PUBLIC));
    }
    for (path, contents, mode) in files {
        files::write(root, state, path, contents.as_bytes(), mode)?;
    }
    let mut issued = BTreeMap::new();
    for leaf in certs::master_leaves(settings, kube, me) {
        let ca = signer(pki, leaf.signer)?;
        issued.insert(
            leaf.files.cert,
            files::ensure_leaf(root, state, leaf.what, leaf.files, ca, &leaf.request)?,
        );
    }
    Ok(issued)
}

/// The apiserver's EncryptionConfiguration for the bucket's key, checked against the one this
/// master already has: `None` when the bucket has no key (a cluster whose PKI predates it;
/// the decision says how to turn encryption on). A master that encrypts Secrets never drops
/// or swaps its key because the bucket changed: every Secret written with it would become
/// unreadable. Then it refuses (exit 1), naming the object to restore.
fn encryption_config(
    root: &Root,
    store: &crate::store::Store<'_>,
    pki: &MasterPki,
    state: &mut BootState,
) -> Result<Option<String>> {
    let object = store.url(crate::store::Object::EncryptionKey);
    let on_disk = std::fs::read_to_string(root.path(files::ENCRYPTION_CONFIG)).ok();
    let Some(key) = &pki.encryption_key else {
        if on_disk.is_some() {
            bail!(
                "{object} does not exist, but this master encrypts Secrets with the key in {}: \
                 without it every Secret is unreadable; restore the object (bucket versioning \
                 keeps the old one) and run bootstrap again",
                files::ENCRYPTION_CONFIG
            );
        }
        state.decide(
            "secrets not encrypted at rest",
            format!(
                "{object} does not exist; create it with `tn-agent pki init \
                 --add-encryption-key --upload` (docs/kubernetes.md, \"Secrets at rest\"), \
                 then run bootstrap again on each master"
            ),
        );
        return Ok(None);
    };
    let config = render::encryption_config(key);
    if on_disk.as_ref().is_some_and(|d| *d != config) {
        bail!(
            "{object} is not the key this master encrypts Secrets with ({}): replacing the key \
             makes every Secret written with the old one unreadable; restore the old object \
             (bucket versioning keeps it) and run bootstrap again",
            files::ENCRYPTION_CONFIG
        );
    }
    Ok(Some(config))
}

/// The apiserver, controller-manager and scheduler static pods.
fn write_static_pods(
    settings: &Settings,
    kube: &KubernetesSettings,
    root: &Root,
    me: &NodeIdentity,
    etcd_servers: &[String],
    encrypt_secrets: bool,
    state: &mut BootState,
) -> Result<()> {
    let cp = ControlPlane {
        cluster: settings.cluster.as_str(),
        version: kube.version.as_str(),
        advertise_ip: me.private_ip,
        secure_port: kube.apiserver.port(),
        etcd_servers,
        etcd_tls: settings.etcd.tls,
        plan: &settings.plan,
        cluster_domain: &kube.cluster_domain,
        encrypt_secrets,
    };
    let pods = [
        (files::APISERVER_MANIFEST, render::apiserver_pod(&cp, root)),
        (
            files::CONTROLLER_MANAGER_MANIFEST,
            render::controller_manager_pod(&cp, root),
        ),
        (files::SCHEDULER_MANIFEST, render::scheduler_pod(&cp, root)),
    ];
    for (path, text) in &pods {
        let text = with_start_mark(root, path, text)?;
        files::write(root, state, path, text.as_bytes(), MODE_PUBLIC)?;
    }
    Ok(())
}

/// The annotation on the controller-manager's and scheduler's static pods with the SHA-256 of
/// their kubeconfig: they read it (and the client certificate embedded in it) only at start, so
/// a renewed certificate changes their manifest and the kubelet restarts them with it.
pub const KUBECONFIG_MARK: &str = "tn-agent/kubeconfig-sha256";

/// The static pods that read an agent-written kubeconfig only at start, and that kubeconfig.
const MARKED_PODS: [(&str, &str); 2] = [
    (
        files::CONTROLLER_MANAGER_MANIFEST,
        files::CONTROLLER_MANAGER_KUBECONFIG,
    ),
    (files::SCHEDULER_MANIFEST, files::SCHEDULER_KUBECONFIG),
];

/// `manifest` (of the static pod at `path`) with its mark set from the files on disk: the
/// apiserver's [`apiserver_restart::CLIENT_CERTS_MARK`], the controller-manager's and scheduler's
/// [`KUBECONFIG_MARK`]; other manifests as they are.
fn with_start_mark(root: &Root, path: &str, manifest: &str) -> Result<String> {
    if path == files::APISERVER_MANIFEST {
        let mark = apiserver_restart::client_certs_mark(root)?;
        return render::with_annotation(manifest, apiserver_restart::CLIENT_CERTS_MARK, &mark)
            .map_err(|e| anyhow::anyhow!("{}: {e}", root.path(path).display()));
    }
    with_kubeconfig_mark(root, path, manifest)
}

/// `manifest` (of the static pod at `path`) with [`KUBECONFIG_MARK`] set from its kubeconfig on
/// disk; other pods' manifests as they are.
fn with_kubeconfig_mark(root: &Root, path: &str, manifest: &str) -> Result<String> {
    let Some((_, kubeconfig)) = MARKED_PODS.iter().find(|(m, _)| *m == path) else {
        return Ok(manifest.to_string());
    };
    let file = root.path(kubeconfig);
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    render::with_annotation(manifest, KUBECONFIG_MARK, &digest)
        .map_err(|e| anyhow::anyhow!("{}: {e}", root.path(path).display()))
}

/// After a renewal rewrote kubeconfigs: the marked static pods' manifests updated, so the
/// kubelet restarts the pods whose kubeconfig changed (and only those).
fn remark_static_pods(root: &Root, state: &mut BootState) -> Result<()> {
    for (path, _) in MARKED_PODS {
        let file = root.path(path);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let text = with_kubeconfig_mark(root, path, &text)?;
        if files::write(root, state, path, text.as_bytes(), MODE_PUBLIC)? {
            state.decide(
                format!("restarting the static pod of {path}"),
                "its kubeconfig (with the client certificate it reads only at start) changed: \
                 the kubelet restarts it",
            );
        }
    }
    Ok(())
}

/// `bootstrap` for role worker: the cluster CA certificate, the bootstrap kubeconfig and the
/// kubelet files, so that the kubelet joins by TLS bootstrap. Reads no CA key.
pub async fn bootstrap_worker(
    node: &Node<'_>,
    kube: &KubernetesSettings,
    state: &mut BootState,
) -> Result<()> {
    let (settings, root, me) = (node.settings, node.root, node.ident);
    let store = node.store();
    let pki = WorkerPki::fetch(&store)
        .await
        .with_context(|| store.pki_context())?;
    files::write(
        root,
        state,
        files::CA_CERT,
        pki.ca_pem.as_bytes(),
        MODE_PUBLIC,
    )?;
    let token = pki.token.token();
    let bootstrap = render::kubeconfig(
        settings.cluster.as_str(),
        kube.apiserver.as_str(),
        &pki.ca_pem,
        BOOTSTRAP_USER,
        Credentials::Token(&token),
    );
    files::write(
        root,
        state,
        files::BOOTSTRAP_KUBECONFIG,
        bootstrap.as_bytes(),
        MODE_SECRET,
    )?;
    write_kubelet_files(settings, kube, root, me, false, state)?;
    state.decide(
        "kubelet joins by TLS bootstrap",
        format!(
            "with the cluster's bootstrap token against {}; its client certificate comes from a CSR",
            kube.apiserver
        ),
    );
    Ok(())
}

fn signer(pki: &MasterPki, signer: Signer) -> Result<&Ca> {
    match signer {
        Signer::Cluster => Ok(&pki.cluster_ca),
        Signer::FrontProxy => Ok(&pki.front_proxy_ca),
        Signer::Etcd => pki
            .etcd_ca
            .as_ref()
            .context("an etcd client certificate was planned without etcd TLS"),
    }
}

/// The client URLs of the etcd ASG's in-service instances that are not leaving, sorted.
pub fn etcd_urls_of(asg: &AsgView, endpoints: &Endpoints) -> Vec<String> {
    let mut urls: Vec<String> = asg
        .instances
        .iter()
        .filter(|i| i.in_service() && !i.leaving())
        .filter_map(|i| i.private_ip)
        .map(|ip| endpoints.client_url(ip))
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// The apiserver's etcd servers: the voters' client URLs when the member list could be read,
/// else the etcd ASG's instances. Also says why, for the state file.
pub fn choose_etcd_servers(
    asg_urls: &[String],
    members: Option<&ClusterView>,
) -> (Vec<String>, String) {
    let mut voters: Vec<String> = members
        .map(|view| {
            view.voters()
                .flat_map(|m| m.client_urls.iter().cloned())
                .collect()
        })
        .unwrap_or_default();
    voters.sort();
    voters.dedup();
    match members {
        Some(_) if !voters.is_empty() => {
            let why = format!(
                "the client URLs of the {} voting etcd members",
                voters.len()
            );
            (voters, why)
        }
        Some(_) => (
            asg_urls.to_vec(),
            "the etcd member list has no voter with a client URL; using the etcd ASG's instances"
                .into(),
        ),
        None => (
            asg_urls.to_vec(),
            "no etcd member answered; using the etcd ASG's in-service instances".into(),
        ),
    }
}

/// Asks etcd for its members with the apiserver's own etcd client certificate, and picks the
/// servers.
async fn etcd_servers(
    settings: &Settings,
    pki: &MasterPki,
    issued: &BTreeMap<&str, Leaf>,
    asg_urls: &[String],
    state: &mut BootState,
) -> Vec<String> {
    let tls = pki.etcd_ca.as_ref().and_then(|ca| {
        let client = issued.get(files::APISERVER_ETCD_CLIENT.cert)?;
        Some(ClientTls {
            ca_pem: ca.cert_pem().to_string(),
            cert_pem: client.cert_pem.clone(),
            key_pem: client.key_pem.clone(),
        })
    });
    let access = EtcdAccess::new(tls, crate::etcd::endpoints(&settings.etcd));
    let view = access.observe(asg_urls).await;
    let (servers, why) = choose_etcd_servers(asg_urls, view.as_ref());
    state.decide(
        "chose etcd servers",
        format!("{}: {why}", servers.join(",")),
    );
    state.etcd_servers = servers.clone();
    servers
}

/// The controller-manager's and scheduler's kubeconfigs (to the local apiserver, whose
/// certificate names 127.0.0.1) and the master kubelet's (to the configured apiserver URL).
fn write_master_kubeconfigs(
    settings: &Settings,
    kube: &KubernetesSettings,
    root: &Root,
    pki: &MasterPki,
    issued: &BTreeMap<&str, Leaf>,
    me: &NodeIdentity,
    state: &mut BootState,
) -> Result<()> {
    let local = format!("https://127.0.0.1:{}", kube.apiserver.port());
    let node_user = format!("system:node:{}", certs::node_name(me));
    let configs = [
        (
            files::CONTROLLER_MANAGER_KUBECONFIG,
            &local,
            "system:kube-controller-manager",
            files::CONTROLLER_MANAGER,
        ),
        (
            files::SCHEDULER_KUBECONFIG,
            &local,
            "system:kube-scheduler",
            files::SCHEDULER,
        ),
        (
            files::KUBELET_KUBECONFIG,
            &kube.apiserver.to_string(),
            node_user.as_str(),
            files::KUBELET_CLIENT,
        ),
    ];
    for (path, server, user, files) in configs {
        let leaf = issued
            .get(files.cert)
            .with_context(|| format!("no certificate {} was made", files.cert))?;
        let text = render::kubeconfig(
            settings.cluster.as_str(),
            server,
            pki.cluster_ca.cert_pem(),
            user,
            Credentials::Cert {
                cert_pem: &leaf.cert_pem,
                key_pem: &leaf.key_pem,
            },
        );
        files::write(root, state, path, text.as_bytes(), MODE_SECRET)?;
    }
    Ok(())
}

/// `/var/lib/kubelet/config.yaml` and `/etc/kubernetes/kubelet.env`.
fn write_kubelet_files(
    settings: &Settings,
    kube: &KubernetesSettings,
    root: &Root,
    me: &NodeIdentity,
    master: bool,
    state: &mut BootState,
) -> Result<()> {
    let node_name = certs::node_name(me);
    let provider_id = render::provider_id(&me.availability_zone, &me.instance_id);
    let kubelet = Kubelet {
        master,
        node_ip: me.private_ip,
        node_name: &node_name,
        provider_id: &provider_id,
        labels: &kube.node_labels,
        taints: &kube.node_taints,
        dns_ip: settings.plan.dns_service_ip,
        cluster_domain: &kube.cluster_domain,
    };
    let config = render::kubelet_config(&kubelet, root);
    files::write(
        root,
        state,
        files::KUBELET_CONFIG,
        config.as_bytes(),
        MODE_PUBLIC,
    )?;
    let env = render::kubelet_env(&kubelet, root);
    files::write(root, state, files::KUBELET_ENV, env.as_bytes(), MODE_PUBLIC)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AsgInstance;
    use crate::etcd::model::MemberInfo;

    fn instance(id: &str, ip: Option<&str>, lifecycle: &str, ec2: &str) -> AsgInstance {
        AsgInstance {
            instance_id: id.into(),
            lifecycle_state: lifecycle.into(),
            health_status: "Healthy".into(),
            availability_zone: "eu-west-1a".into(),
            private_ip: ip.map(|ip| ip.parse().unwrap()),
            launch_time: None,
            ec2_state: Some(ec2.into()),
        }
    }

    #[test]
    fn etcd_urls_come_from_in_service_instances_that_stay() {
        let asg = AsgView {
            name: "prod-etcd".into(),
            desired_capacity: 3,
            min_size: 3,
            max_size: 6,
            instances: vec![
                instance("i-3", Some("10.4.3.5"), "InService", "running"),
                instance("i-1", Some("10.4.1.5"), "InService", "running"),
                instance("i-2", Some("10.4.2.5"), "Terminating", "running"),
                instance("i-4", Some("10.4.4.5"), "Pending", "pending"),
                instance("i-5", None, "InService", "running"),
                instance("i-6", Some("10.4.6.5"), "InService", "shutting-down"),
            ],
        };
        assert_eq!(
            etcd_urls_of(
                &asg,
                &Endpoints {
                    tls: true,
                    client_port: 2379,
                    peer_port: 2380
                }
            ),
            ["https://10.4.1.5:2379", "https://10.4.3.5:2379"]
        );
        assert_eq!(
            etcd_urls_of(
                &asg,
                &Endpoints {
                    tls: false,
                    client_port: 4001,
                    peer_port: 4002
                }
            ),
            ["http://10.4.1.5:4001", "http://10.4.3.5:4001"]
        );
    }

    fn member(id: u64, url: &str, learner: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: format!("i-{id}"),
            peer_urls: vec![url.replace("2379", "2380")],
            client_urls: if url.is_empty() {
                vec![]
            } else {
                vec![url.to_string()]
            },
            is_learner: learner,
            healthy: true,
        }
    }

    #[test]
    fn etcd_servers_prefer_the_member_list() {
        let asg = vec![
            "https://10.4.1.5:2379".to_string(),
            "https://10.4.9.5:2379".to_string(),
        ];
        let cases: Vec<(&str, Option<ClusterView>, Vec<&str>, &str)> = vec![
            (
                "no member answers",
                None,
                vec!["https://10.4.1.5:2379", "https://10.4.9.5:2379"],
                "no etcd member answered",
            ),
            (
                "voters, a learner left out",
                Some(ClusterView {
                    members: vec![
                        member(2, "https://10.4.2.5:2379", false),
                        member(1, "https://10.4.1.5:2379", false),
                        member(3, "https://10.4.3.5:2379", true),
                    ],
                    leader: Some(1),
                }),
                vec!["https://10.4.1.5:2379", "https://10.4.2.5:2379"],
                "the client URLs of the 2 voting etcd members",
            ),
            (
                "only an unstarted voter",
                Some(ClusterView {
                    members: vec![member(1, "", false)],
                    leader: None,
                }),
                vec!["https://10.4.1.5:2379", "https://10.4.9.5:2379"],
                "the etcd member list has no voter",
            ),
        ];
        for (name, view, want, why_starts) in cases {
            let (got, why) = choose_etcd_servers(&asg, view.as_ref());
            assert_eq!(got, want, "{name}");
            assert!(why.starts_with(why_starts), "{name}: {why}");
        }
    }
}
