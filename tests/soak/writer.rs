//! The writer: a client of the cluster for the whole run, writing one key after another and
//! keeping those etcd acknowledged (with the revision of the write), so the soak can show that
//! none is ever lost. It follows the cluster's endpoints as members are replaced, and counts its
//! failed attempts (the cluster's unavailability as a client sees it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tn_agent::etcd::client::EtcdAccess;

/// Where the writer's keys live: `/soak/w/<sequence, 9 digits>`.
pub const PREFIX: &str = "/soak/w/";
/// Pause between writes.
const PACE: Duration = Duration::from_millis(50);
/// How long one attempt (connect and put) may take.
const ATTEMPT: Duration = Duration::from_secs(3);

/// What the writer shares with the soak.
#[derive(Default)]
pub struct Writes {
    /// Acknowledged writes: (sequence, revision), in order.
    pub acked: Mutex<Vec<(u64, i64)>>,
    /// Attempts that failed (timed out or refused).
    pub failed: AtomicU64,
    /// The cluster's client URLs now (the soak updates them).
    pub endpoints: Mutex<Vec<String>>,
    /// Writing pauses while set (the disaster: every member is gone).
    pub paused: AtomicBool,
    pub stop: AtomicBool,
}

pub fn key(seq: u64) -> String {
    format!("{PREFIX}{seq:09}")
}

/// A client of one member at a time, moving to the next on a failure, as etcd's own clients
/// fail over (a client of several endpoints at once keeps trying one that is down).
pub struct OneAtATime {
    access: EtcdAccess,
    next: usize,
    client: Option<(String, etcd_client::Client)>,
}

impl OneAtATime {
    pub fn new(access: EtcdAccess) -> Self {
        OneAtATime {
            access,
            next: 0,
            client: None,
        }
    }

    /// The client, connected to one of `endpoints` (the same as before while it is listed).
    pub async fn get(
        &mut self,
        endpoints: &[String],
    ) -> Result<&mut etcd_client::Client, etcd_client::Error> {
        if self
            .client
            .as_ref()
            .is_some_and(|(ep, _)| !endpoints.contains(ep))
        {
            self.client = None;
        }
        if self.client.is_none() {
            let Some(ep) = endpoints.get(self.next % endpoints.len().max(1)) else {
                return Err(etcd_client::Error::InvalidArgs("no endpoints".into()));
            };
            let c =
                etcd_client::Client::connect([ep.as_str()], Some(self.access.connect_options()))
                    .await?;
            self.client = Some((ep.clone(), c));
        }
        Ok(&mut self.client.as_mut().expect("connected").1)
    }

    /// The last request failed: the next one goes to the next member.
    pub fn failed(&mut self) {
        self.client = None;
        self.next = self.next.wrapping_add(1);
    }
}

/// Writes until `writes.stop` is set.
pub fn run(access: EtcdAccess, writes: &Writes) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the writer");
    rt.block_on(async {
        let mut seq = 0u64;
        let mut client = OneAtATime::new(access);
        while !writes.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(PACE).await;
            if writes.paused.load(Ordering::SeqCst) {
                continue;
            }
            let endpoints = writes.endpoints.lock().expect("endpoints").clone();
            let attempt = async {
                let c = client.get(&endpoints).await?;
                c.put(key(seq), format!("{seq}"), None).await
            };
            match tokio::time::timeout(ATTEMPT, attempt).await {
                Ok(Ok(resp)) => {
                    let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
                    writes.acked.lock().expect("acked").push((seq, revision));
                    seq += 1;
                }
                _ => {
                    // Tried again with the same key: a put that took effect without its answer
                    // is simply written twice.
                    writes.failed.fetch_add(1, Ordering::SeqCst);
                    client.failed();
                }
            }
        }
    });
}
