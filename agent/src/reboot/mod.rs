//! Reboots after OS updates, one safe slot at a time (SPEC §9). This part: locksmith's reboot
//! semaphore (`semaphore`) and its etcd backend for the etcd nodes' group (`etcd_lock`). The
//! reboot manager (`reboot watch`) and the Kubernetes backend of masters and workers build on
//! them.

pub mod dbus;
pub mod etcd_lock;
pub mod gates;
pub mod phase;
pub mod semaphore;
pub mod watch;
pub mod window;
