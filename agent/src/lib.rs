//! tn-agent: boot-time agent for self-managed Kubernetes nodes on AWS (Flatcar Container Linux).
//!
//! One module per outside system (`imds`, `aws`, `fsutil`, later `etcd`, `pki`, `kubelet`), pure
//! decisions over plain data, and the command line in `cli`.

pub mod aws;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dbus;
pub mod etcd;
pub mod exit;
pub mod files;
pub mod fsutil;
pub mod http;
pub mod identity;
pub mod imds;
pub mod kube;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod pki;
pub mod reboot;
pub mod reconcile;
pub mod retry;
pub mod state;
pub mod status;
pub mod store;
