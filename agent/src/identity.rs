//! Who this node is: the facts IMDS gives, gathered once at the start of every command.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::imds::Imds;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub hostname: String,
    pub availability_zone: String,
    pub region: String,
}

impl NodeIdentity {
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
