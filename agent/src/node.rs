//! The node a `bootstrap` works on: its settings, its `--root`, who it is (IMDS) and its AWS
//! clients, passed together to every role's steps.

use crate::aws::Aws;
use crate::config::Settings;
use crate::fsutil::Root;
use crate::identity::NodeIdentity;
use crate::store::Store;

pub struct Node<'a> {
    pub settings: &'a Settings,
    pub root: &'a Root,
    pub ident: &'a NodeIdentity,
    pub aws: &'a Aws,
}

impl Node<'_> {
    /// The cluster's prefix in its state bucket.
    pub fn store(&self) -> Store<'_> {
        Store::new(
            self.aws,
            &self.settings.state_bucket,
            self.settings.cluster.as_str(),
        )
    }
}

/// How sure a node must be to start its services with the files it has, deciding nothing with
/// AWS (bootstrap's two paths that make no AWS call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnFiles {
    /// The first run after a reboot of a node whose last run succeeded: nothing has changed that
    /// needs AWS when its files are complete, every certificate it issued would be kept by a run
    /// with the CA (signed by the CA certificate on the node, fitting the node, outside its
    /// renewal window), a worker's kubelet holds its own client certificate (the bootstrap
    /// token is not needed again), and an etcd member answers that lists this node. Otherwise
    /// the run asks AWS as on a first boot.
    Reboot,
    /// AWS cannot be used now: certificates valid now suffice, and an etcd node that no member
    /// answers restarts as itself (a whole-cluster restart).
    AwsDown,
}
