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
