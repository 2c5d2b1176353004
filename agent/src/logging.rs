//! Logs for journald: native journal fields when stderr is the journal (`JOURNAL_STREAM`),
//! plain lines on stderr otherwise, without timestamps under systemd. Never log secrets.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Sets up logging for the process. `verbosity` is the count of `-v`: 0 shows the agent's
/// events, 1 its debug detail, 2 everyone's debug detail, 3 everything.
pub fn init(verbosity: u8) {
    let filter = match verbosity {
        0 => "warn,tn_agent=info",
        1 => "warn,tn_agent=debug",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            registry
                .with(journald.with_syslog_identifier("tn-agent".into()))
                .init();
            return;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbosity >= 2);
    if std::env::var_os("INVOCATION_ID").is_some() {
        // Under systemd the journal stamps every line already.
        registry.with(fmt.without_time()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stderr is the journal; the
/// variable may be inherited by a child whose stderr is elsewhere, so compare with stderr itself.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}
