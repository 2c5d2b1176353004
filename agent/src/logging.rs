//! Logs for journald: native journal fields when stderr is the journal (`JOURNAL_STREAM`),
//! plain lines on stderr otherwise, without timestamps under systemd. Never log secrets.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Sets up logging for the process. `verbosity` is the count of `-v`: 0 shows the agent's
/// events, 1 its debug detail, 2 everyone's debug detail, 3 everything.
pub fn init(verbosity: u8) {
    let (others, agent) = match verbosity {
        0 => (LevelFilter::WARN, LevelFilter::INFO),
        1 => (LevelFilter::WARN, LevelFilter::DEBUG),
        2 => (LevelFilter::DEBUG, LevelFilter::DEBUG),
        _ => (LevelFilter::TRACE, LevelFilter::TRACE),
    };
    let filter = Targets::new()
        .with_default(others)
        .with_target("tn_agent", agent);
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
    let value = std::env::var_os("JOURNAL_STREAM");
    is_journal_stream(
        value.as_deref().and_then(|v| v.to_str()),
        std::io::stderr().as_fd(),
    )
}

/// Whether `fd` is the stream `journal_stream` (a `JOURNAL_STREAM` value) names.
fn is_journal_stream(journal_stream: Option<&str>, fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(fd) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_the_very_stream() {
        let file = tempfile::tempfile().unwrap();
        let stat = nix::sys::stat::fstat(file.as_fd()).unwrap();
        let mine = format!("{}:{}", stat.st_dev, stat.st_ino);
        assert!(is_journal_stream(Some(&mine), file.as_fd()));
        let other = tempfile::tempfile().unwrap();
        assert!(
            !is_journal_stream(Some(&mine), other.as_fd()),
            "inherited by a child"
        );
        assert!(!is_journal_stream(None, file.as_fd()));
        assert!(!is_journal_stream(Some("garbage"), file.as_fd()));
    }
}
