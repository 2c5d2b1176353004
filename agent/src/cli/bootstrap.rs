//! `tn-agent bootstrap`: boot-time work for this node's role.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use super::Globals;
use crate::aws::{Aws, AwsError};
use crate::config::{Role, RoleSettings, Settings};
use crate::exit::one_line;
use crate::identity::NodeIdentity;
use crate::node::{Node, OwnFiles};
use crate::state::{now_rfc3339, BootState};

#[derive(Debug, Args)]
pub struct Bootstrap {}

impl Bootstrap {
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        // A config error stops here: nothing is written.
        let settings = globals.load_config()?;
        let previous = BootState::load(&globals.root).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "ignoring the last run's state");
            None
        });
        let mut state = BootState::new(settings.cluster.as_str(), settings.role());
        state.boot_id = crate::reboot::phase::boot_id(&globals.root);
        let rebooted = first_run_after_reboot(previous.as_ref(), state.boot_id.as_deref());
        state.consecutive_failures = failures_before(previous.as_ref());
        state.last_reconcile = previous.as_ref().and_then(|p| p.last_reconcile.clone());
        state.asg_name = previous
            .as_ref()
            .and_then(|p| p.own_asg())
            .map(str::to_owned);
        // Who this node is, until this run finds out again (IMDS may not answer: the
        // identity's fallback reads it from here).
        state.identity = previous.as_ref().and_then(|p| p.identity.clone());
        if settings.role() == Role::Master {
            // The apiserver manifest and the addon keep them until this run writes them again.
            if let Some(p) = previous {
                state.etcd_servers = p.etcd_servers;
                state.bootstrap_token_expires = p.bootstrap_token_expires;
            }
        }
        // Written first, unfinished: a run that is killed never shows as the last one's outcome.
        state.save(&globals.root)?;
        pace(
            state.consecutive_failures,
            settings.bootstrap.retry_max_delay,
        )
        .await;
        let result = work(&settings, globals, &mut state, rebooted).await;
        state.finished_at = Some(now_rfc3339());
        state.ok = result.is_ok();
        state.error = result.as_ref().err().map(|e| format!("{e:#}"));
        let retryable = result
            .as_ref()
            .is_err_and(|e| crate::exit::code_for(e) == crate::exit::FAILED);
        state.consecutive_failures = if retryable {
            state.consecutive_failures + 1
        } else {
            0
        };
        state.save(&globals.root)?;
        crate::metrics::write(&settings, &globals.root, crate::metrics::Etcd::Skip).await;
        result.map(|()| crate::exit::OK)
    }
}

/// Whether this is the first run of a boot that follows a successful run on an earlier boot:
/// the node rebooted with a good state. A run again within the same boot (an operator's
/// `systemctl restart tn-agent-bootstrap`, systemd's retry) always asks AWS.
fn first_run_after_reboot(previous: Option<&BootState>, boot_id: Option<&str>) -> bool {
    match (previous, boot_id) {
        (Some(p), Some(now)) => p.ok && p.boot_id.as_deref().is_some_and(|then| then != now),
        _ => false,
    }
}

/// Failed runs in a row before this one: a finished run recorded its count; a run that never
/// finished (killed, timed out) counts as one more failure.
fn failures_before(previous: Option<&BootState>) -> u32 {
    match previous {
        None => 0,
        Some(p) if p.finished_at.is_none() => p.consecutive_failures + 1,
        Some(p) => p.consecutive_failures,
    }
}

/// The wait before a run after `failures` failed ones, on top of the unit's `RestartSec=`
/// (15 s): none after one failure, then 15 s doubling per failure, capped at `max`, jittered to
/// between half and all of it so that nodes failing together spread out.
pub fn retry_delay(failures: u32, max: Duration) -> Duration {
    if failures < 2 {
        return Duration::ZERO;
    }
    let policy = crate::retry::Backoff::new(Duration::from_secs(15), max, Duration::MAX);
    policy.wait(failures - 1)
}

/// Waits [`retry_delay`], saying so: a bootstrap that keeps failing does not hammer AWS every
/// 15 s forever.
async fn pace(failures: u32, max: Duration) {
    let delay = retry_delay(failures, max);
    if delay.is_zero() {
        return;
    }
    tracing::warn!(
        failures,
        delay_seconds = delay.as_secs_f64(),
        "the last {failures} runs failed: waiting {:.1}s before trying again",
        delay.as_secs_f64()
    );
    tokio::time::sleep(delay).await;
}

async fn work(
    settings: &Settings,
    globals: &Globals,
    state: &mut BootState,
    rebooted: bool,
) -> Result<()> {
    let step = Instant::now();
    let me = NodeIdentity::find(&globals.root).await?;
    tracing::info!(
        instance_id = %me.instance_id,
        private_ip = %me.private_ip,
        az = %me.availability_zone,
        "identified this node"
    );
    state.identity = Some(me.clone());
    state.timings_ms.insert("identify".into(), elapsed_ms(step));

    let aws = Aws::connect(&me.region).await;
    let node = Node {
        settings,
        root: &globals.root,
        ident: &me,
        aws: &aws,
    };
    let step = Instant::now();
    let result = match rebooted && start_as_before(&node, state).await? {
        true => Ok(()),
        false => role_work(&node, state).await,
    };
    state.aws_calls = aws.calls();
    state.aws_calls_by_service = aws.calls_by_service();
    state.s3_keys_read = aws.fetched_keys();
    state
        .timings_ms
        .insert(settings.role().as_str().into(), elapsed_ms(step));
    match result {
        Err(e) if unreachable_aws(&e) => start_without_aws(&node, state, e).await,
        other => other,
    }
}

/// The role's work with AWS. Etcd nodes and masters look at their autoscaling group first;
/// workers never use it.
async fn role_work(node: &Node<'_>, state: &mut BootState) -> Result<()> {
    match &node.settings.role_settings {
        RoleSettings::Etcd { .. } => {
            let asg = own_asg(node, state).await?;
            crate::etcd::bootstrap(node, &asg, state).await
        }
        RoleSettings::Master(master) => {
            let asg = own_asg(node, state).await?;
            crate::kube::bootstrap_master(node, master, &asg, state).await
        }
        RoleSettings::Worker { kubernetes, .. } => {
            crate::kube::bootstrap_worker(node, kubernetes, state).await
        }
    }
}

/// A reboot of a node whose state is valid ([`OwnFiles::Reboot`]): its services start with its
/// files, and the run makes no AWS call. `Ok(false)` when anything needs deciding with AWS.
async fn start_as_before(node: &Node<'_>, state: &mut BootState) -> Result<bool> {
    if !own_files(node, state, OwnFiles::Reboot).await? {
        return Ok(false);
    }
    state.decide(
        "started as before",
        "the first run after a reboot, the last run succeeded, and nothing needs AWS: this \
         node's files are complete and its certificates are kept as they are",
    );
    Ok(true)
}

/// Starts the role's services with the node's own files when they are good enough for `when`.
async fn own_files(node: &Node<'_>, state: &mut BootState, when: OwnFiles) -> Result<bool> {
    match &node.settings.role_settings {
        RoleSettings::Etcd { .. } => crate::etcd::restart_as_before(node, state, when).await,
        RoleSettings::Master(master) => {
            crate::kube::keep_files(node, &master.kubernetes, state, when)
        }
        RoleSettings::Worker { kubernetes, .. } => {
            crate::kube::keep_files(node, kubernetes, state, when)
        }
    }
}

/// Whether the run failed because AWS could not be used for now (network, timeouts,
/// throttling, 5xx): not a refusal such as access denied (a policy to fix, which status would
/// otherwise hide), not a missing or malformed object, not an etcd or file problem.
fn unreachable_aws(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<AwsError>()
            .is_some_and(AwsError::is_transient)
    })
}

/// A reboot on a bad AWS day: the node starts with the files of its last good run when they
/// are complete and its certificates usable (and, for etcd, it restarts as the member it was);
/// otherwise the AWS error stands.
async fn start_without_aws(
    node: &Node<'_>,
    state: &mut BootState,
    aws_error: anyhow::Error,
) -> Result<()> {
    tracing::warn!(error = %one_line(aws_error.as_ref()), "AWS cannot be used: looking at the node's last-known-good files");
    if !own_files(node, state, OwnFiles::AwsDown).await? {
        return Err(aws_error);
    }
    let error = one_line(aws_error.as_ref());
    state.decide(
        "started with last-known-good files",
        format!(
            "AWS could not be used ({error}); this node's files from its last good run are \
             complete and its certificates valid, so its services start with them; joins, \
             replacements and renewals wait for AWS"
        ),
    );
    state.last_known_good = Some(error);
    Ok(())
}

/// The node's own group's name: from `etcd.asg` when an etcd node's config names it, else
/// AWS's answer (one AutoScaling call). A master needs nothing more of its group; an etcd node
/// lists it in its etcd bootstrap.
async fn own_asg(node: &Node<'_>, state: &mut BootState) -> Result<String> {
    let named = match &node.settings.role_settings {
        RoleSettings::Etcd { etcd_asg } => etcd_asg.clone(),
        _ => None,
    };
    let name = match named {
        Some(name) => name,
        None => node
            .aws
            .asg_of(&node.ident.instance_id)
            .await
            .context("finding this instance's autoscaling group")?,
    };
    state.asg_name = Some(name.clone());
    Ok(name)
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_run_of_a_new_boot_after_a_good_run_counts_as_a_reboot() {
        let last = |ok: bool, boot: Option<&str>| {
            let mut s = BootState::new("prod", Role::Worker);
            s.ok = ok;
            s.boot_id = boot.map(str::to_owned);
            s
        };
        let good = last(true, Some("boot-1"));
        assert!(first_run_after_reboot(Some(&good), Some("boot-2")));
        assert!(
            !first_run_after_reboot(Some(&good), Some("boot-1")),
            "same boot"
        );
        assert!(
            !first_run_after_reboot(Some(&good), None),
            "boot id unknown now"
        );
        let failed = last(false, Some("boot-1"));
        assert!(!first_run_after_reboot(Some(&failed), Some("boot-2")));
        let unknown = last(true, None);
        assert!(!first_run_after_reboot(Some(&unknown), Some("boot-2")));
        assert!(!first_run_after_reboot(None, Some("boot-2")), "first boot");
    }

    #[test]
    fn the_retry_delay_grows_from_the_second_failure_and_is_capped() {
        let max = Duration::from_secs(300);
        assert_eq!(retry_delay(0, max), Duration::ZERO);
        assert_eq!(retry_delay(1, max), Duration::ZERO);
        for (failures, full) in [
            (2, 15),
            (3, 30),
            (4, 60),
            (5, 120),
            (6, 240),
            (7, 300),
            (40, 300),
        ] {
            for _ in 0..20 {
                let d = retry_delay(failures, max);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "{failures} failures: {d:?}");
            }
        }
        assert_eq!(retry_delay(9, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_run_that_never_finished_counts_as_a_failure() {
        let mut p = BootState::new("prod", Role::Worker);
        assert_eq!(failures_before(Some(&p)), 1);
        p.consecutive_failures = 3;
        assert_eq!(failures_before(Some(&p)), 4);
        p.finished_at = Some(now_rfc3339());
        assert_eq!(failures_before(Some(&p)), 3);
        assert_eq!(failures_before(None), 0);
    }
}
