//! Exit codes (SPEC §2) and how an error chain maps to one.

use std::fmt;

/// Exit code: done.
pub const OK: u8 = 0;
/// Exit code: failed; a retry may succeed (network, AWS, etcd not reachable in time), or a refusal
/// to do something unsafe.
pub const FAILED: u8 = 1;
/// Exit code: bad input (config, flags, files); a retry cannot help.
pub const BAD_INPUT: u8 = 2;

/// Marks an error as bad input: anywhere in an `anyhow` chain it makes the exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Picks the exit code for a failed command: 2 when any error in the chain is bad input
/// (a config error, a malformed instance-metadata answer, or a [`BadInput`]), 1 otherwise. A
/// malformed state-bucket object is 1: it may be half-way through an update.
pub fn code_for(err: &anyhow::Error) -> u8 {
    // `downcast_ref` sees context values anywhere in the chain; `chain` sees sources.
    let malformed = |cause: &(dyn std::error::Error + 'static)| {
        cause
            .downcast_ref::<crate::imds::ImdsError>()
            .is_some_and(|e| matches!(e, crate::imds::ImdsError::Invalid { .. }))
    };
    let bad_input = err.downcast_ref::<BadInput>().is_some()
        || err.downcast_ref::<crate::config::ConfigError>().is_some()
        || err.chain().any(|cause| {
            cause.is::<BadInput>() || cause.is::<crate::config::ConfigError>() || malformed(cause)
        });
    if bad_input {
        BAD_INPUT
    } else {
        FAILED
    }
}

/// Renders an error for stderr: `error: <what failed>` then one indented line per cause.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}");
    for cause in err.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}

/// An error and its causes on one line, `: `-separated, for log fields.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_the_chain_is_exit_2() {
        let err = Err::<(), _>(BadInput("no such role".into()))
            .context("loading config")
            .unwrap_err();
        assert_eq!(code_for(&err), BAD_INPUT);
        let err = anyhow::anyhow!("etcd not reachable");
        assert_eq!(code_for(&err), FAILED);
        // As a context value too, under more context.
        let err = Err::<(), _>(std::io::Error::other("bad PEM"))
            .context(BadInput("s3://b/k is not a CA".into()))
            .context("making certificates")
            .unwrap_err();
        assert_eq!(code_for(&err), BAD_INPUT);
    }

    #[test]
    fn render_prints_the_chain() {
        let err = Err::<(), _>(std::io::Error::other("connection refused"))
            .context("asking IMDS for the instance id")
            .unwrap_err();
        assert_eq!(
            render(&err),
            "error: asking IMDS for the instance id\n  caused by: connection refused"
        );
    }
}
