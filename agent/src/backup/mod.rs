//! etcd backups (SPEC §10): a snapshot of the member that leads, streamed to S3 and checked on
//! the way, its description written last, old backups pruned; and the listing operators choose
//! a restore from. The restore itself changes membership and lives with it (`etcd::restore`).
//!
//! `catalog` is what a backup is in the bucket, `retention` which to keep (pure), `upload` the
//! streaming upload, `take` the command, `record` what each node saw (read by `status` and the
//! reboot gates).

pub mod catalog;
pub mod record;
pub mod retention;
pub mod take;
pub mod upload;

pub use self::take::{run, Outcome};
