//! `tn-agent etcd ...`: this node's etcd membership after boot.

use anyhow::{Context, Result};
use clap::Subcommand;

use super::Globals;
use crate::aws::Aws;
use crate::identity::NodeIdentity;
use crate::imds::Imds;

#[derive(Debug, Subcommand)]
pub enum Etcd {
    /// After etcd has started: promote this member from learner to voter once it has caught up
    /// (no-op if it is a voter). Waits up to etcd.join_timeout_seconds.
    Promote,
    /// Remove this member from the cluster if the remaining voters keep quorum (scale-in,
    /// termination); then complete the ASG termination lifecycle action of etcd.leave_hook.
    Leave,
}

impl Etcd {
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        let settings = globals.load_config()?;
        let imds = Imds::from_env();
        let me = NodeIdentity::from_imds(&imds)
            .await
            .context("finding out who this node is from the instance metadata service")?;
        match self {
            Etcd::Promote => {
                let done = crate::etcd::promote(&settings, &globals.root, &me).await?;
                println!("{done}");
            }
            Etcd::Leave => {
                let done = crate::etcd::leave(&settings, &globals.root, &me).await?;
                println!("{done}");
                complete_termination(&imds, &me, &settings.etcd.leave_hook).await?;
            }
        }
        Ok(crate::exit::OK)
    }
}

/// When the ASG is terminating this instance (IMDS `autoscaling/target-lifecycle-state` is
/// `Terminated`), tell it to go on now rather than at the hook's timeout.
async fn complete_termination(imds: &Imds, me: &NodeIdentity, hook: &str) -> Result<()> {
    let target = imds
        .target_lifecycle_state()
        .await
        .context("reading the ASG target lifecycle state")?;
    if target.as_deref() != Some("Terminated") {
        return Ok(());
    }
    let aws = Aws::connect(&me.region).await;
    let asg = aws
        .asg_of(&me.instance_id)
        .await
        .context("finding this instance's autoscaling group")?;
    let hooks = aws
        .complete_termination(&asg, &me.instance_id, hook)
        .await
        .context("completing the termination lifecycle action")?;
    for hook in hooks {
        tracing::info!(hook = %hook, asg = %asg, "completed lifecycle action");
        println!("completed lifecycle action {hook} of {asg}: termination continues");
    }
    Ok(())
}
