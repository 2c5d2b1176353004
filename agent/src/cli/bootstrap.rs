//! `tn-agent bootstrap`: boot-time work for this node's role.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::Globals;
use crate::aws::Aws;
use crate::config::{RoleSettings, Settings};
use crate::identity::NodeIdentity;
use crate::imds::Imds;
use crate::node::Node;
use crate::state::{now_rfc3339, BootState};

#[derive(Debug, Args)]
pub struct Bootstrap {}

impl Bootstrap {
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        // A config error stops here: nothing is written.
        let settings = globals.load_config()?;
        let mut state = BootState::new(settings.cluster.as_str(), settings.role());
        // Written first, unfinished: a run that is killed never shows as the last one's outcome.
        state.save(&globals.root)?;
        let result = work(&settings, globals, &mut state).await;
        state.finished_at = Some(now_rfc3339());
        state.ok = result.is_ok();
        state.error = result.as_ref().err().map(|e| format!("{e:#}"));
        state.save(&globals.root)?;
        result.map(|()| crate::exit::OK)
    }
}

async fn work(settings: &Settings, globals: &Globals, state: &mut BootState) -> Result<()> {
    let step = Instant::now();
    let imds = Imds::from_env();
    let me = NodeIdentity::from_imds(&imds)
        .await
        .context("finding out who this node is from the instance metadata service")?;
    tracing::info!(
        instance_id = %me.instance_id,
        private_ip = %me.private_ip,
        az = %me.availability_zone,
        "identified this node"
    );
    state.identity = Some(me.clone());
    state.timings_ms.insert("identify".into(), elapsed_ms(step));

    let step = Instant::now();
    let aws = Aws::connect(&me.region).await;
    let discovered = discover(&aws, &me).await;
    state.aws_calls = aws.calls();
    let asg = discovered?;
    state.decide(
        "discovered peers",
        format!(
            "autoscaling group {} has {} instances ({} in service)",
            asg.name,
            asg.instances.len(),
            asg.instances.iter().filter(|i| i.in_service()).count()
        ),
    );
    state.asg = Some(asg.clone());
    state.timings_ms.insert("discover".into(), elapsed_ms(step));

    let step = Instant::now();
    let node = Node {
        settings,
        root: &globals.root,
        ident: &me,
        aws: &aws,
    };
    let result = match &settings.role_settings {
        RoleSettings::Etcd { .. } => crate::etcd::bootstrap(&node, &asg, state).await,
        RoleSettings::Master(master) => {
            crate::kube::bootstrap_master(&node, master, &asg, state).await
        }
        RoleSettings::Worker { kubernetes, .. } => {
            crate::kube::bootstrap_worker(&node, kubernetes, state).await
        }
    };
    state.aws_calls = aws.calls();
    state
        .timings_ms
        .insert(settings.role().as_str().into(), elapsed_ms(step));
    result
}

async fn discover(aws: &Aws, me: &NodeIdentity) -> Result<crate::aws::AsgView> {
    let name = aws
        .asg_of(&me.instance_id)
        .await
        .context("finding this instance's autoscaling group")?;
    aws.describe_asg(&name)
        .await
        .with_context(|| format!("listing the instances of autoscaling group {name}"))
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
