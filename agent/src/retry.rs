//! Bounded retries: exponential backoff with jitter, a cap per wait, an overall deadline, and no
//! retry on errors the caller calls permanent.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long and how often to retry. Every retry loop in the agent takes one of these, so tests
/// can make them near-instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the second attempt.
    pub initial: Duration,
    /// Cap on one wait.
    pub max: Duration,
    /// No attempt starts after this much time from the first.
    pub deadline: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration, deadline: Duration) -> Self {
        Backoff {
            initial,
            max,
            deadline,
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): `initial * 2^(attempt-1)`,
    /// capped at `max`, then jittered to between half and all of it so that nodes booting
    /// together spread out.
    pub fn wait(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        let half = exp / 2;
        half + exp.mul_f64(rand::random::<f64>() * 0.5)
    }
}

/// What one attempt's failure means.
#[derive(Debug)]
pub enum Step<E> {
    /// Worth trying again (network, 5xx, throttling, not ready yet).
    Retry(E),
    /// Trying again cannot help (403, validation, bad input).
    Stop(E),
}

/// Why a retried operation failed in the end.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Permanent(E),
    #[error("gave up after {attempts} attempts over {:.1}s", elapsed.as_secs_f64())]
    Exhausted {
        attempts: u32,
        elapsed: Duration,
        #[source]
        last: E,
    },
}

impl<E: std::error::Error + 'static> RetryError<E> {
    /// The error of the last attempt.
    pub fn last(&self) -> &E {
        match self {
            RetryError::Permanent(e) => e,
            RetryError::Exhausted { last, .. } => last,
        }
    }
}

/// Runs `op` (given the attempt number, from 1) until it succeeds, fails permanently, or the next
/// attempt would start past the deadline.
pub async fn retry<T, E, F, Fut>(policy: &Backoff, mut op: F) -> Result<T, RetryError<E>>
where
    E: std::error::Error + 'static,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Step<E>>>,
{
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(value) => return Ok(value),
            Err(Step::Stop(e)) => return Err(RetryError::Permanent(e)),
            Err(Step::Retry(e)) => {
                let wait = policy.wait(attempt);
                if start.elapsed() + wait > policy.deadline {
                    return Err(RetryError::Exhausted {
                        attempts: attempt,
                        elapsed: start.elapsed(),
                        last: e,
                    });
                }
                tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    const FAST: Backoff = Backoff::new(
        Duration::from_millis(1),
        Duration::from_millis(4),
        Duration::from_millis(200),
    );

    #[test]
    fn waits_grow_are_capped_and_jittered() {
        let b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        for _ in 0..100 {
            let w1 = b.wait(1);
            assert!(w1 >= Duration::from_millis(50) && w1 <= Duration::from_millis(100));
            let w3 = b.wait(3);
            assert!(w3 >= Duration::from_millis(200) && w3 <= Duration::from_millis(400));
            let w30 = b.wait(30);
            assert!(w30 >= Duration::from_millis(500) && w30 <= Duration::from_secs(1));
        }
    }

    #[tokio::test]
    async fn retries_until_success() {
        let got = retry(&FAST, |attempt| async move {
            if attempt < 3 {
                Err(Step::Retry(io::Error::other("not yet")))
            } else {
                Ok(attempt)
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let mut calls = 0;
        let err = retry(&FAST, |_| {
            calls += 1;
            async { Err::<(), _>(Step::Stop(io::Error::other("403 AccessDenied"))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(matches!(err, RetryError::Permanent(_)));
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        let start = Instant::now();
        let err = retry(&FAST, |_| async {
            Err::<(), _>(Step::Retry(io::Error::other("connection refused")))
        })
        .await
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        match err {
            RetryError::Exhausted { attempts, last, .. } => {
                assert!(attempts > 3);
                assert_eq!(last.to_string(), "connection refused");
            }
            other => panic!("{other:?}"),
        }
    }
}
