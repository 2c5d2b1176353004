//! `etcd promote` and `etcd leave`: this node's membership after boot.

use anyhow::{bail, Result};

use super::client::ErrorKind;
use super::model::ClusterState;
use super::{plan, Local, Waiter};
use crate::config::Settings;
use crate::exit::one_line;
use crate::fsutil::Root;
use crate::identity::NodeIdentity;

/// `etcd promote`: once etcd runs, make this member a voter when it has caught up. A voter
/// already: nothing to do. A member that started `new` (the seeder, a founder, a restore) is a
/// voter from its first start: nothing to ask, even before the founders have a quorum.
pub async fn promote(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    let local = Local::from_disk(settings, root, ident)?;
    if let Some(r) = local.read_record() {
        if r.name == local.me.name && r.initial_cluster_state == ClusterState::New {
            return Ok(format!(
                "{} is a voter from its first start (it started `new`, initial cluster {})",
                local.me.name, r.initial_cluster
            ));
        }
    }
    let mut waiter = Waiter::new(settings.etcd.join_timeout);
    loop {
        let why = match local.access.observe(&local.candidates(None)).await {
            None => "no etcd member answers".to_string(),
            Some(view) => match view.find_me(&local.me) {
                None => bail!(
                    "{} is not a member of the etcd cluster; run `tn-agent bootstrap` first",
                    local.me.name
                ),
                Some(m) if !m.is_learner => {
                    return Ok(format!("member {:x} is a voter", m.id));
                }
                Some(m) => match local.access.promote(&view.voter_endpoints(), m.id).await {
                    Ok(()) => {
                        tracing::info!(member = %format!("{:x}", m.id), "promoted");
                        return Ok(format!("promoted learner {:x} to voter", m.id));
                    }
                    Err(e) if e.kind() == ErrorKind::LearnerNotInSync => {
                        "the learner is still catching up with the leader".to_string()
                    }
                    Err(e) => format!("promote failed: {}", one_line(&e)),
                },
            },
        };
        if let Err(why) = waiter.pause(why).await {
            bail!("not promoted after {}s: {why}", waiter.secs());
        }
    }
}

/// `etcd leave`: remove this node's member if the remaining voters keep quorum. A refusal is
/// immediate; etcd saying "not now" (a member that just started, a leader election) is retried
/// for up to `etcd.join_timeout_seconds`.
pub async fn leave(settings: &Settings, root: &Root, ident: &NodeIdentity) -> Result<String> {
    let local = Local::from_disk(settings, root, ident)?;
    let mut waiter = Waiter::new(settings.etcd.join_timeout);
    let own = local.access.client_url(local.me.ip);
    loop {
        let Some(view) = local.access.observe(&local.candidates(None)).await else {
            bail!("no etcd member answers: cannot check quorum, so not leaving");
        };
        let Some(me) = view.find_me(&local.me) else {
            return Ok(format!("{} is not a member: nothing to do", local.me.name));
        };
        if let Err(why) = plan::check_leave(&view, me.id) {
            bail!("refusing to leave: {why}");
        }
        let others: Vec<String> = view
            .voter_endpoints()
            .into_iter()
            .filter(|e| *e != own)
            .collect();
        let endpoints = if others.is_empty() {
            vec![own.clone()]
        } else {
            others
        };
        let why = match local.access.remove(&endpoints, me.id).await {
            Ok(()) => {
                tracing::info!(member = %format!("{:x}", me.id), "left the cluster");
                return Ok(format!(
                    "removed member {:x} ({}) from the cluster",
                    me.id, local.me.name
                ));
            }
            Err(e) => format!("removing member {:x} failed: {}", me.id, one_line(&e)),
        };
        if let Err(why) = waiter.pause(why).await {
            bail!("did not leave after {}s: {why}", waiter.secs());
        }
    }
}
