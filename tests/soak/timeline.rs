//! What the soak saw, in simulated time: the monitor's samples of the cluster, and marks for the
//! faults it injected and the events it drove. The plot (`plot.rs`) and the text summary are
//! drawn from it.

/// One look at the cluster by the monitor (every 100 ms of wall time).
#[derive(Clone, Debug)]
pub struct Sample {
    /// Simulated time, in days since the soak's start (fractional).
    pub day: f64,
    /// Members in etcd's member list (learners included); 0 when no member answered.
    pub members: u32,
    /// Voters whose etcd answered.
    pub healthy_voters: u32,
    /// Members whose etcd did not answer.
    pub down: u32,
    /// Holders of each group's reboot lock, in the order of [`Timeline::groups`].
    pub holders: Vec<u32>,
    /// Hours (simulated) since the time of the newest backup; `None` before the first.
    pub backup_age_hours: Option<f64>,
}

/// What a mark stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// A fault the soak injected (a node killed, IMDS down, S3 503s, AWS throttling, a lost disk).
    Fault,
    /// Something the world did on schedule (an OS update staged, an ASG roll, the restore).
    Event,
}

/// A fault or an event, at a simulated time.
#[derive(Clone, Debug)]
pub struct Mark {
    pub day: f64,
    pub kind: MarkKind,
    /// Short, e.g. "kill etcd i-0abc", "s3 503", "update", "roll".
    pub label: String,
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub seed: u64,
    /// Simulated days the run covers.
    pub days: f64,
    /// etcd cluster size.
    pub etcd_size: u32,
    /// Reboot lock groups and their max holders, in the order of [`Sample::holders`].
    pub groups: Vec<(String, u32)>,
    /// The backup interval, in hours (the backup age's limit is two of them).
    pub backup_interval_hours: f64,
    pub samples: Vec<Sample>,
    pub marks: Vec<Mark>,
}
