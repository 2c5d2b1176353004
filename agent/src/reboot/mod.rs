//! Reboots after OS updates, one safe slot at a time (SPEC §9): locksmith's reboot semaphore
//! (`semaphore`) kept in etcd for the etcd nodes (`etcd_lock`) and in a ConfigMap for masters
//! and workers (`kube_lock`), one compare-and-swap for both (`lock`); when a node may go
//! (`window`, `gates`); and the node's reboot manager (`watch`), which drains a Kubernetes node
//! first (`drain`) and remembers every step (`phase`).

pub mod dbus;
pub mod drain;
pub mod etcd_lock;
pub mod gates;
pub mod kube_lock;
pub mod lock;
pub mod phase;
pub mod semaphore;
pub mod watch;
pub mod window;
