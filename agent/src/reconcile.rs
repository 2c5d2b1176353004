//! `tn-agent reconcile` (SPEC §11), run by `tn-agent-reconcile.timer` after the bootstrap and then
//! hourly: the day-2 pass that keeps a node right while the cluster changes under it.
//!
//! Certificates: the leaves tn-agent issued on this node (an etcd node's server and peer
//! certificates; a master's) are renewed by bootstrap's rules once one is within 30 days of
//! expiry, written atomically. etcd reads its files at each handshake; the controller-manager and
//! scheduler are restarted by the kubelet (their manifests carry their kubeconfig's hash); the
//! apiserver is restarted with its renewed client certificates by the reboot manager, one master
//! at a time through the master group's lock (`kube/apiserver_restart.rs`).
//! A node whose leaves are far from expiry makes no AWS call for this. Workers have no such
//! leaves: their kubelet renews its own.
//!
//! Masters: the apiserver's `--etcd-servers` follows the etcd voters' client URLs, which keeps
//! the control plane up through an etcd AMI roll. It asks etcd itself
//! (with the apiserver's own etcd client certificate, from the node's disk), through the servers
//! the manifest lists and the etcd ASG's instances, and rewrites the manifest only when the set
//! of voters changed: never to an empty list, never with a learner, and never from a guess (when
//! no member answers, the manifest stays as it is and the run fails). The kubelet restarts the
//! apiserver when its manifest changes.
//!
//! Each run is recorded in `state.json` (`last_reconcile`: when, the outcome, what changed) and
//! shown by `status`.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::aws::Aws;
use crate::config::{Role, RoleSettings, Settings};
use crate::etcd::client::{ClientTls, EtcdAccess};
use crate::files;
use crate::fsutil::{self, Root};
use crate::identity::NodeIdentity;
use crate::kube::render;
use crate::state::BootState;
use crate::store::Store;

/// One reconcile run, as `state.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRecord {
    /// When it finished (RFC 3339).
    pub at: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it changed, a sentence each; empty when everything was right.
    pub changes: Vec<String>,
    pub duration_ms: u64,
}

/// Runs the role's reconcile and records it in `state.json`; the run's error, if any, is
/// returned after it is recorded.
pub async fn run(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<Vec<String>> {
    let started = Instant::now();
    let mut changes = Vec::new();
    // The parts are independent: a bucket that cannot be read for a renewal must not keep a
    // master's apiserver off the current etcd members, nor the other way round.
    let mut failures = Vec::new();
    if let Err(e) = renew_certificates(settings, root, ident, &mut changes).await {
        failures.push(format!("renewing certificates: {e:#}"));
    }
    let mut servers = None;
    if settings.role() == Role::Master {
        match follow_etcd_voters(settings, root, ident, &mut changes).await {
            Ok(new) => servers = new,
            Err(e) => failures.push(format!("following the etcd voters: {e:#}")),
        }
    }
    let result = match failures.is_empty() {
        true => Ok(()),
        false => Err(anyhow!("{}", failures.join("; "))),
    };
    let record = ReconcileRecord {
        at: crate::state::now_rfc3339(),
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
        changes: changes.clone(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let mut state = BootState::load(root)?
        .ok_or_else(|| anyhow!("this node has not run `tn-agent bootstrap` yet"))?;
    state.last_reconcile = Some(record);
    if let Some(servers) = servers {
        state.etcd_servers = servers;
    }
    state.save(root)?;
    crate::metrics::write(settings, root, crate::metrics::Etcd::Ask).await;
    result.map(|()| changes)
}

/// The leaves this node's bootstrap issued, by certificate path.
fn own_leaves(settings: &Settings, ident: &NodeIdentity) -> Vec<&'static str> {
    match &settings.role_settings {
        RoleSettings::Etcd { .. } if settings.etcd.tls => {
            vec![files::ETCD_SERVER.cert, files::ETCD_PEER.cert]
        }
        RoleSettings::Master(master) => {
            crate::kube::certs::master_leaves(settings, &master.kubernetes, ident)
                .iter()
                .map(|leaf| leaf.files.cert)
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Renews this node's leaves when one is within [`files::RENEW_BEFORE`] of expiry (or cannot
/// be read), with bootstrap's rules: the ones that still fit are kept.
async fn renew_certificates(
    settings: &Settings,
    root: &Root,
    ident: &NodeIdentity,
    changes: &mut Vec<String>,
) -> Result<()> {
    let now = crate::clock::now();
    let due: Vec<&str> = own_leaves(settings, ident)
        .into_iter()
        .filter(|cert| {
            std::fs::read_to_string(root.path(cert))
                .ok()
                .and_then(|pem| crate::pki::inspect(&pem).ok())
                .is_none_or(|info| info.not_after - now < files::RENEW_BEFORE)
        })
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    tracing::info!(certificates = ?due, "renewing certificates near expiry");
    let aws = Aws::connect(&ident.region).await;
    let mut record = BootState::new(settings.cluster.as_str(), settings.role());
    match &settings.role_settings {
        RoleSettings::Etcd { .. } => {
            let store = Store::new(&aws, &settings.state_bucket, settings.cluster.as_str());
            crate::etcd::tls::prepare(&store, root, ident, &mut record).await?;
        }
        RoleSettings::Master(master) => {
            crate::kube::renew_master_certificates(
                settings,
                master,
                root,
                ident,
                &aws,
                &mut record,
            )
            .await?;
        }
        RoleSettings::Worker { .. } => {}
    }
    changes.extend(
        record
            .decisions
            .iter()
            .map(|d| format!("{}: {}", d.what, d.why)),
    );
    Ok(())
}

/// A master: `--etcd-servers` of the apiserver manifest set to the voters' client URLs when
/// they changed; `Some(servers)` when it rewrote the manifest.
async fn follow_etcd_voters(
    settings: &Settings,
    root: &Root,
    ident: &NodeIdentity,
    changes: &mut Vec<String>,
) -> Result<Option<Vec<String>>> {
    let manifest_path = root.path(files::APISERVER_MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let listed = render::manifest_etcd_servers(&manifest)
        .map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    let endpoints = crate::etcd::endpoints(&settings.etcd);
    let access = EtcdAccess::new(apiserver_etcd_tls(settings, root)?, endpoints);
    // The ASG's instances too: when every member the manifest lists is gone, the new ones are
    // found there. Without AWS, the listed servers alone (one live member lists them all).
    let mut candidates = listed.clone();
    if let Some(asg) = settings.etcd_asg() {
        let aws = Aws::connect(&ident.region).await;
        match aws.describe_asg(asg).await {
            Ok(view) => candidates.extend(crate::kube::etcd_urls_of(&view, &endpoints)),
            Err(e) => tracing::warn!(
                error = %crate::exit::one_line(&e),
                "cannot list the etcd ASG; asking the listed etcd servers only"
            ),
        }
    }
    candidates.sort();
    candidates.dedup();
    let view = access.observe(&candidates).await.ok_or_else(|| {
        anyhow!(
            "no etcd member answers at {}: the apiserver's etcd servers stay {}",
            candidates.join(","),
            listed.join(",")
        )
    })?;
    let voters: BTreeSet<String> = view
        .voters()
        .flat_map(|m| m.client_urls.iter().cloned())
        .collect();
    if voters.is_empty() {
        return Err(anyhow!(
            "the etcd member list has no voter with a client URL: the apiserver's etcd servers \
             stay {}",
            listed.join(",")
        ));
    }
    if voters == listed.iter().cloned().collect::<BTreeSet<_>>() {
        return Ok(None);
    }
    let servers: Vec<String> = voters.into_iter().collect();
    let updated = render::with_etcd_servers(&manifest, &servers)
        .map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    fsutil::write_atomic(&manifest_path, updated.as_bytes(), fsutil::MODE_PUBLIC)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    let change = format!(
        "apiserver etcd servers {} -> {} (the etcd voters)",
        listed.join(","),
        servers.join(",")
    );
    tracing::info!(%change, "reconciled");
    changes.push(change);
    Ok(Some(servers))
}

/// The apiserver's etcd client TLS from the master's disk (`None` when etcd runs without TLS).
fn apiserver_etcd_tls(settings: &Settings, root: &Root) -> Result<Option<ClientTls>> {
    if !settings.etcd.tls {
        return Ok(None);
    }
    let read = |p: &str| {
        let path = root.path(p);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(Some(ClientTls {
        ca_pem: read(files::ETCD_CA_CERT)?,
        cert_pem: read(files::APISERVER_ETCD_CLIENT.cert)?,
        key_pem: read(files::APISERVER_ETCD_CLIENT.key)?,
    }))
}
