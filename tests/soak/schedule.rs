//! What happens on each simulated day, drawn from the seed: the backup timer every day, an OS
//! update staged on every node every two weeks, the etcd ASG rolled every month, and faults at
//! random. The same seed gives the same schedule (and the same fault targets).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Days between OS updates (Flatcar's stable channel: every two weeks or so).
pub const UPDATE_EVERY: u32 = 14;
/// Days between rolls of the etcd ASG (an instance refresh each month).
pub const ROLL_EVERY: u32 = 30;
/// The chance of a fault on a given day.
const FAULT_CHANCE: f64 = 0.3;

/// A fault the world injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An etcd node dies hard (power off) and boots again a few seconds later.
    KillEtcd,
    /// A master or worker dies hard and boots again.
    KillKube,
    /// An etcd member's disk is lost: it dies and boots again with an empty data dir.
    LostDisk,
    /// A node's IMDS stops answering for the rest of the day.
    ImdsDown,
    /// S3 answers 503 SlowDown to a third of the calls for the rest of the day.
    S3SlowDown,
    /// EC2 and AutoScaling throttle a third of the calls for the rest of the day.
    Throttling,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillEtcd,
        Fault::KillKube,
        Fault::LostDisk,
        Fault::ImdsDown,
        Fault::S3SlowDown,
        Fault::Throttling,
    ];
}

/// One simulated day's plan.
#[derive(Clone, Debug, Default)]
pub struct Day {
    pub fault: Option<Fault>,
    /// Picks the fault's target among the candidates (an index to reduce modulo their count).
    pub target: usize,
    /// Wall seconds before a killed node boots again.
    pub down_for: u64,
    pub update: bool,
    pub roll: bool,
}

/// The plan of `days` days for `seed`. Every kind of fault comes once in the first month;
/// S3 never fails two days in a row (a backup that fails waits for the next day's timer, and
/// two in a row would break the backup age's rule by the world's doing, not the agent's).
pub fn plan(seed: u64, days: u32) -> Vec<Day> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut first_round = Fault::ALL.to_vec();
    first_round.shuffle(&mut rng);
    let mut out: Vec<Day> = Vec::new();
    for d in 0..days {
        let mut day = Day {
            update: d % UPDATE_EVERY == UPDATE_EVERY - 1,
            roll: d % ROLL_EVERY == ROLL_EVERY - 10,
            target: rng.random_range(0..1000),
            down_for: rng.random_range(2..8),
            ..Day::default()
        };
        // The first month meets every kind of fault, one every four days from day 2 (day 0
        // has just formed the cluster); then faults come at random.
        let fault = if d >= 2 && (d - 2) % 4 == 0 && !first_round.is_empty() {
            first_round.pop()
        } else if first_round.is_empty() && rng.random_bool(FAULT_CHANCE) {
            Some(Fault::ALL[rng.random_range(0..Fault::ALL.len())])
        } else {
            None
        };
        let s3_yesterday = out
            .last()
            .is_some_and(|y| y.fault == Some(Fault::S3SlowDown));
        if !(fault == Some(Fault::S3SlowDown) && s3_yesterday) {
            day.fault = fault;
        }
        out.push(day);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let a: Vec<_> = plan(7, 365).iter().map(|d| format!("{d:?}")).collect();
        let b: Vec<_> = plan(7, 365).iter().map(|d| format!("{d:?}")).collect();
        assert_eq!(a, b);
        let c: Vec<_> = plan(8, 365).iter().map(|d| format!("{d:?}")).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn a_month_has_updates_a_roll_and_every_fault() {
        let month = plan(1, 30);
        assert_eq!(month.iter().filter(|d| d.update).count(), 2);
        assert_eq!(month.iter().filter(|d| d.roll).count(), 1);
        for fault in Fault::ALL {
            assert!(
                month.iter().any(|d| d.fault == Some(fault)),
                "{fault:?} missing from {month:?}"
            );
        }
        let year = plan(1, 365);
        assert_eq!(year.iter().filter(|d| d.update).count(), 26);
        assert_eq!(year.iter().filter(|d| d.roll).count(), 12);
        assert!(year
            .windows(2)
            .all(|w| !(w[0].fault == Some(Fault::S3SlowDown)
                && w[1].fault == Some(Fault::S3SlowDown))));
    }
}
