//! The masters' kubelets, played by the world: each runs its master's apiserver from the static
//! pod's manifest — `/readyz` on the master's address and the cluster's apiserver port, where the
//! other masters' reboot gate looks — and keeps its mirror pod (`kube-system/kube-apiserver-
//! <node>`) carrying the manifest's client-certificates mark. When the reboot manager marks the
//! manifest anew after reconcile renewed the certificates, the kubelet restarts the apiserver:
//! down (no `/readyz`, the mirror pod NotReady with the new mark), back 2 s later, Ready.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use tn_agent::fsutil::Root;
use tn_agent::kube::apiserver_restart::{manifest_mark, mirror_pod_name, CLIENT_CERTS_MARK};
use tn_world::kube_api::{KubeApi, PodSeed, Policy};
use tn_world::kube_reboot::node_name;

use super::Cluster;

/// How long a restarted apiserver takes to be Ready again.
const RESTART: Duration = Duration::from_secs(2);

/// What a master's kubelet runs.
#[derive(Default)]
pub(super) struct Apiserver {
    /// `/readyz` while it runs.
    readyz: Option<KubeApi>,
    /// The mark of the manifest it runs, and since when it restarts (down) when it does.
    mark: String,
    restarting: Option<Instant>,
}

impl Cluster<'_> {
    /// A master's kubelet at boot: the apiserver runs from the manifest as it is now.
    pub(super) fn start_apiserver(&mut self, i: usize) -> Result<()> {
        if !self.kube[i].master {
            return Ok(());
        }
        let mark = self.manifest_mark(i);
        self.run_apiserver(i, mark)
    }

    /// The master lost power: its apiserver with it.
    pub(super) fn stop_apiserver(&mut self, i: usize) {
        self.kube[i].apiserver = Apiserver::default();
    }

    /// Each master's kubelet looks at its manifest: a new mark restarts the apiserver.
    pub(super) fn kubelets(&mut self) -> Result<()> {
        for i in 0..self.kube.len() {
            let k = &self.kube[i];
            if !k.master || self.is_down(&k.node.id) || k.apiserver.mark.is_empty() {
                continue;
            }
            let mark = self.manifest_mark(i);
            let k = &mut self.kube[i];
            match k.apiserver.restarting {
                Some(since) if since.elapsed() >= RESTART => self.run_apiserver(i, mark)?,
                Some(_) => {}
                None if mark != k.apiserver.mark => {
                    k.apiserver.readyz = None;
                    k.apiserver.restarting = Some(Instant::now());
                    let pod = mirror_pod(&k.node, &mark).not_ready();
                    self.api.recreate_pod(pod)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    fn run_apiserver(&mut self, i: usize, mark: String) -> Result<()> {
        let port = self.api.addr().port();
        let k = &mut self.kube[i];
        let addr = SocketAddr::new(k.node.ip.into(), port);
        k.apiserver = Apiserver {
            readyz: Some(KubeApi::start_with(&self.ca, addr, Policy::default())?),
            restarting: None,
            mark: mark.clone(),
        };
        self.api.recreate_pod(mirror_pod(&k.node, &mark))
    }

    fn manifest_mark(&self, i: usize) -> String {
        manifest_mark(&Root::new(&self.kube[i].node.root))
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// The apiserver's mirror pod as the kubelet keeps it: the manifest's mark, Ready.
fn mirror_pod(node: &tn_world::Node, mark: &str) -> PodSeed {
    let name = node_name(node);
    PodSeed::new("kube-system", &mirror_pod_name(&name), &name)
        .mirror()
        .annotation(CLIENT_CERTS_MARK, mark)
}
