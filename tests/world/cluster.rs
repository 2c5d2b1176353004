//! etcd clusters in the world: the cluster's PKI in the state bucket, nodes booted the way
//! their units would (bootstrap, start etcd, promote), and checks of the result from outside.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tn_agent::etcd::client::{ClientTls, EtcdAccess};
use tn_agent::etcd::model::{ClusterView, Endpoints};
use tn_agent::pki::Ca;

use crate::{EtcdProcess, Node, Run, World};

/// How long [`Inspector`]'s key-value requests are tried: an etcd election after a member's
/// loss takes about a second (more on a loaded machine).
const KV_PATIENCE: Duration = Duration::from_secs(15);

/// The ports every etcd of the world listens on (the agent's defaults).
pub const ETCD_PORTS: Endpoints = Endpoints {
    tls: true,
    client_port: 2379,
    peer_port: 2380,
};

impl World {
    /// Creates the etcd CA and puts it in the state bucket (`pki/etcd-ca.{crt,key}`), as
    /// `pki init --upload` or Terraform would.
    pub fn init_etcd_pki(&self) -> Result<Ca> {
        let ca = Ca::generate("etcd-ca")?;
        self.put_object(
            &format!("{}/pki/etcd-ca.crt", self.cluster),
            ca.cert_pem().as_bytes(),
        )?;
        self.put_object(
            &format!("{}/pki/etcd-ca.key", self.cluster),
            ca.key_pem().as_bytes(),
        )?;
        Ok(ca)
    }

    pub fn put_object(&self, key: &str, body: &[u8]) -> Result<()> {
        self.block_on(
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body.to_vec().into())
                .send(),
        )
        .with_context(|| format!("putting s3://{}/{key}", self.bucket))?;
        Ok(())
    }

    pub fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let result = self.block_on(self.s3.get_object().bucket(&self.bucket).key(key).send());
        match result {
            Ok(out) => Ok(Some(
                self.block_on(out.body.collect())?.into_bytes().to_vec(),
            )),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("getting s3://{}/{key}", self.bucket)),
        }
    }

    /// Config for an etcd node: `join_timeout_seconds` bounds how long bootstrap and promote
    /// wait.
    pub fn etcd_config(&self, join_timeout_seconds: u32) -> String {
        self.config(
            "etcd",
            &format!("[etcd]\njoin_timeout_seconds = {join_timeout_seconds}\n"),
        )
    }

    /// Nodes for every instance of `asg`.
    pub fn etcd_nodes(&self, asg: &str, join_timeout_seconds: u32) -> Result<Vec<Node>> {
        self.asg_instances(asg)?
            .iter()
            .map(|i| self.node(i, &self.etcd_config(join_timeout_seconds)))
            .collect()
    }
}

impl Node {
    /// What the node's units do at boot: `tn-agent bootstrap` (must exit 0), etcd from the env
    /// file, then `tn-agent etcd promote` (must exit 0).
    pub fn boot_etcd(&self) -> Result<EtcdProcess> {
        let run = self.run(&["bootstrap"])?;
        ensure!(
            run.code == 0,
            "bootstrap on {} exited {}:\n{}",
            self.id,
            run.code,
            run.stderr
        );
        let etcd = self.start_etcd()?;
        let run = self.run(&["etcd", "promote"])?;
        ensure!(
            run.code == 0,
            "etcd promote on {} exited {}:\n{}\netcd log: {}",
            self.id,
            run.code,
            run.stderr,
            etcd.log.display()
        );
        Ok(etcd)
    }

    /// Whether bootstrap configured etcd with TLS (it wrote the node's etcd CA).
    pub fn etcd_tls(&self) -> bool {
        self.path("/etc/etcd/pki/ca.crt").exists()
    }

    /// How a client on this node reaches etcd: with TLS, its own server certificate.
    pub fn etcd_access(&self) -> Result<EtcdAccess> {
        if !self.etcd_tls() {
            return Ok(EtcdAccess::new(None, ETCD_PORTS));
        }
        let read = |n: &str| std::fs::read_to_string(self.path(&format!("/etc/etcd/pki/{n}")));
        let tls = ClientTls {
            ca_pem: read("ca.crt")?,
            cert_pem: read("server.crt")?,
            key_pem: read("server.key")?,
        };
        Ok(EtcdAccess::new(Some(tls), ETCD_PORTS))
    }

    pub fn client_url(&self) -> String {
        let scheme = if self.etcd_tls() { "https" } else { "http" };
        format!("{scheme}://{}:2379", self.ip)
    }
}

/// Boots `nodes` at the same moment, each on its own thread; every one must succeed.
pub fn boot_in_parallel(nodes: &[&Node]) -> Result<Vec<EtcdProcess>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes.iter().map(|n| s.spawn(|| n.boot_etcd())).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("boot thread panicked"))
            .collect()
    })
}

/// Runs `tn-agent <args>` on every node at the same moment (a timer firing on every node),
/// each on its own thread; the runs in the nodes' order.
pub fn run_at_once(nodes: &[&Node], args: &[&str]) -> Vec<Result<Run>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes.iter().map(|n| s.spawn(|| n.run(args))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run thread panicked"))
            .collect()
    })
}

/// Looks at the cluster from outside, through `via`'s credentials and the given nodes.
pub struct Inspector<'a> {
    world: &'a World,
    access: EtcdAccess,
    endpoints: Vec<String>,
}

impl<'a> Inspector<'a> {
    pub fn new(world: &'a World, via: &Node, nodes: &[&Node]) -> Result<Self> {
        Ok(Inspector {
            world,
            access: via.etcd_access()?,
            endpoints: nodes.iter().map(|n| n.client_url()).collect(),
        })
    }

    pub fn view(&self) -> Option<ClusterView> {
        self.world.block_on(self.access.observe(&self.endpoints))
    }

    /// Waits (at most `within`) until the members are exactly `names`, all voters, all
    /// healthy, with a leader; returns the view.
    pub fn expect_members(&self, names: &[&str], within: Duration) -> Result<ClusterView> {
        self.wait_for_members(names, within, Duration::from_millis(200))
    }

    /// [`Inspector::expect_members`], looking every `poll`.
    pub fn wait_for_members(
        &self,
        names: &[&str],
        within: Duration,
        poll: Duration,
    ) -> Result<ClusterView> {
        let want: BTreeSet<&str> = names.iter().copied().collect();
        let deadline = Instant::now() + within;
        loop {
            let view = self.view();
            if let Some(v) = &view {
                let got: BTreeSet<&str> = v.members.iter().map(|m| m.name.as_str()).collect();
                if got == want
                    && v.members.iter().all(|m| !m.is_learner && m.healthy)
                    && v.leader.is_some()
                {
                    return Ok(v.clone());
                }
            }
            if Instant::now() > deadline {
                bail!("members are not {want:?} (all healthy voters) after {within:?}: {view:#?}");
            }
            std::thread::sleep(poll);
        }
    }

    /// [`Inspector::expect_members`] with the names of `nodes` (their instance ids).
    pub fn expect_nodes(&self, nodes: &[&Node], within: Duration) -> Result<ClusterView> {
        let names: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        self.expect_members(&names, within)
    }

    /// The etcd key-value API through the same credentials. A request is tried again for up
    /// to [`KV_PATIENCE`], as a client of a real cluster would: right after a member went down
    /// (it may have been the leader) the others answer only once they have elected a new one.
    fn kv<T>(
        &self,
        f: impl AsyncFn(etcd_client::Client) -> Result<T, etcd_client::Error>,
    ) -> Result<T> {
        let opts = self.access.connect_options();
        let deadline = Instant::now() + KV_PATIENCE;
        self.world.block_on(async {
            loop {
                let attempt = async {
                    let client =
                        etcd_client::Client::connect(&self.endpoints, Some(opts.clone())).await?;
                    f(client).await
                };
                match attempt.await {
                    Ok(v) => return Ok(v),
                    Err(e) if Instant::now() > deadline => {
                        return Err(e)
                            .context(format!("etcd did not answer within {KV_PATIENCE:?}"))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        })
    }

    /// Writes `key` (again, when a try timed out: the values the tests write are idempotent).
    pub fn put(&self, key: &str, value: &str) -> Result<()> {
        self.kv(async |mut c| c.put(key, value, None).await.map(|_| ()))
    }

    /// A linearizable read: answered only with quorum.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        self.kv(async |mut c| {
            let resp = c.get(key, None).await?;
            Ok(resp
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
        })
    }
}
