//! Who this node is: the facts IMDS gives, gathered once at the start of every command; when
//! IMDS does not answer, what the node's last bootstrap recorded ([`NodeIdentity::find`]).

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::exit::one_line;
use crate::fsutil::Root;
use crate::imds::{Imds, ImdsError};
use crate::retry::Backoff;

/// How long IMDS is waited for when the node's identity is recorded (IMDS's own wait, for a
/// node that has none, is a minute: right after the first boot IMDS can be slow).
const IMDS_WAIT_WITH_RECORD: Backoff = Backoff::new(
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub hostname: String,
    pub availability_zone: String,
    pub region: String,
}

impl NodeIdentity {
    /// Who this node is: IMDS's answer (at `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the
    /// standard address). When IMDS does not answer within a few seconds (unreachable, or
    /// server errors; not when it answers something invalid, missing or refused), the identity the
    /// node's last bootstrap recorded in `state.json`, with a warning: an instance's id,
    /// address, zone and region never change, and a node must come back from a reboot and
    /// keep its timers running while IMDS has a bad moment. The record is used only when its
    /// private address is one of this host's (a state file copied to another machine is not
    /// this node's). A node without a record waits for IMDS as long as IMDS's own policy says.
    pub async fn find(root: &Root) -> Result<Self> {
        let Some(recorded) = recorded(root) else {
            return Self::from_imds(&Imds::from_env())
                .await
                .context("finding out who this node is from the instance metadata service");
        };
        let imds = Imds::with_policy_from_env(IMDS_WAIT_WITH_RECORD);
        match Self::from_imds(&imds).await {
            Ok(me) => Ok(me),
            Err(e) if !not_answering(&e) => {
                Err(e).context("finding out who this node is from the instance metadata service")
            }
            Err(e) => {
                tracing::warn!(
                    error = %one_line(e.as_ref()),
                    instance_id = %recorded.instance_id,
                    private_ip = %recorded.private_ip,
                    "the instance metadata service did not answer: going by the identity this node's last bootstrap recorded"
                );
                Ok(recorded)
            }
        }
    }

    /// Reads the instance's identity from IMDS. The region is `AWS_REGION` when set (SPEC §3),
    /// else the one IMDS gives.
    pub async fn from_imds(imds: &Imds) -> Result<Self> {
        let doc = imds
            .identity_document()
            .await
            .context("reading the instance identity document")?;
        let hostname = imds.hostname().await.context("reading the hostname")?;
        let region = match std::env::var("AWS_REGION") {
            Ok(r) if !r.trim().is_empty() => r,
            _ => doc.region.clone(),
        };
        Ok(NodeIdentity {
            instance_id: doc.instance_id,
            private_ip: doc.private_ip,
            hostname,
            availability_zone: doc.availability_zone,
            region,
        })
    }
}

/// Whether `e` says IMDS did not answer — unreachable, or server errors (5xx) — rather than
/// that it answered something: an invalid or missing value, a refusal (4xx). Only then may the
/// recorded identity stand in; an answer that is wrong is bad input, as ever.
fn not_answering(e: &anyhow::Error) -> bool {
    let mut silent = false;
    for cause in e.chain() {
        let imds = cause
            .downcast_ref::<ImdsError>()
            .or_else(|| cause.downcast_ref::<Box<ImdsError>>().map(|b| &**b));
        match imds {
            Some(ImdsError::Invalid { .. } | ImdsError::Missing { .. }) => return false,
            Some(ImdsError::Status { status, .. }) if *status < 500 => return false,
            Some(ImdsError::Unreachable { .. } | ImdsError::Status { .. }) => silent = true,
            _ => {}
        }
    }
    silent
}

/// The identity in `state.json`, when its private address is this host's.
fn recorded(root: &Root) -> Option<NodeIdentity> {
    let me = crate::state::BootState::load(root)
        .ok()
        .flatten()?
        .identity?;
    // Binding to an address succeeds only when the host has it.
    std::net::UdpSocket::bind((me.private_ip, 0)).ok()?;
    Some(me)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::state::BootState;

    fn record(root: &Root, ip: Ipv4Addr) {
        let mut state = BootState::new("prod", Role::Etcd);
        state.identity = Some(NodeIdentity {
            instance_id: "i-0123456789abcdef0".into(),
            private_ip: ip,
            hostname: "ip-10-0-1-5.ec2.internal".into(),
            availability_zone: "us-east-1a".into(),
            region: "us-east-1".into(),
        });
        state.save(root).unwrap();
    }

    #[test]
    fn only_silence_lets_the_record_stand_in() {
        let status = |status| ImdsError::Status {
            method: "GET",
            path: "/latest/dynamic/instance-identity/document".into(),
            status,
        };
        let wrapped = |e: ImdsError| anyhow::Error::new(e).context("reading the document");
        assert!(not_answering(&wrapped(status(503))));
        assert!(!not_answering(&wrapped(status(404))));
        assert!(!not_answering(&wrapped(ImdsError::Invalid {
            path: "/latest/meta-data/local-hostname".into(),
            why: "not a DNS name".into(),
        })));
        assert!(!not_answering(&wrapped(ImdsError::Missing {
            path: "/latest/meta-data/local-hostname".into(),
        })));
        assert!(!not_answering(&anyhow::anyhow!("something else")));
    }

    #[test]
    fn a_recorded_identity_counts_only_on_the_host_that_has_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert_eq!(recorded(&root), None, "nothing recorded");
        // Every 127.x.y.z is this host's (as the world's nodes' addresses are).
        record(&root, Ipv4Addr::new(127, 0, 3, 4));
        assert_eq!(
            recorded(&root).map(|me| me.instance_id),
            Some("i-0123456789abcdef0".to_string())
        );
        // TEST-NET-1: no host here has it; a state file from another machine.
        record(&root, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(recorded(&root), None);
    }
}
