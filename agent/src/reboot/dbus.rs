//! update_engine and logind over the system D-Bus (SPEC §9). update_engine (`com.coreos.update1`)
//! says when an update is staged (`GetStatus` at start, then its `StatusUpdate` signal) and which
//! version; logind's `Reboot` is the default way to reboot. No bus, or no update_engine on it
//! (containers, tests), is not an error: the sentinel `/run/reboot-required` alone then says a
//! reboot is needed. The bus is the system bus, or `DBUS_SYSTEM_BUS_ADDRESS` when set.

use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;

/// update_engine's status when an update is staged and waits for a reboot.
pub const NEED_REBOOT: &str = "UPDATE_STATUS_UPDATED_NEED_REBOOT";

/// What update_engine last said.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateStatus {
    pub operation: String,
    /// The staged version (empty when none).
    pub new_version: String,
}

impl UpdateStatus {
    pub fn needs_reboot(&self) -> bool {
        self.operation == NEED_REBOOT
    }
}

/// `GetStatus` and `StatusUpdate` carry (last_checked_time, progress, current_operation,
/// new_version, new_size).
type Status = (i64, f64, String, String, i64);

fn status_of((_, _, operation, new_version, _): Status) -> UpdateStatus {
    UpdateStatus {
        operation,
        new_version,
    }
}

/// update_engine on the system bus, and its signals.
pub struct UpdateEngine {
    signals: zbus::proxy::SignalStream<'static>,
    last: Option<UpdateStatus>,
}

impl UpdateEngine {
    /// Asks update_engine for its status and listens to its signals; `None` (logged) when there
    /// is no bus or no update_engine on it.
    pub async fn connect() -> Option<Self> {
        match Self::try_connect().await {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::info!(error = %format!("{e:#}"), "no update_engine on D-Bus: the reboot sentinel alone says when to reboot");
                None
            }
        }
    }

    async fn try_connect() -> Result<Self> {
        let proxy = system_proxy(
            "com.coreos.update1",
            "/com/coreos/update1",
            "com.coreos.update1.Manager",
        )
        .await?;
        let signals = proxy.receive_signal("StatusUpdate").await?;
        let status: Status = proxy
            .call("GetStatus", &())
            .await
            .context("calling update_engine's GetStatus")?;
        let last = Some(status_of(status));
        tracing::info!(status = ?last, "update_engine status");
        Ok(UpdateEngine { signals, last })
    }

    pub fn last(&self) -> Option<&UpdateStatus> {
        self.last.as_ref()
    }

    /// Waits up to `wait` for update_engine's next `StatusUpdate`, and remembers it.
    pub async fn wait(&mut self, wait: Duration) {
        let Ok(Some(msg)) = tokio::time::timeout(wait, self.signals.next()).await else {
            return;
        };
        match msg.body().deserialize::<Status>() {
            Ok(status) => {
                let status = status_of(status);
                tracing::debug!(status = ?status, "update_engine status update");
                self.last = Some(status);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed StatusUpdate signal"),
        }
    }
}

/// Asks logind to reboot the machine (`org.freedesktop.login1.Manager.Reboot`, not
/// interactive).
pub async fn logind_reboot() -> Result<()> {
    let proxy = system_proxy(
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
    )
    .await?;
    proxy
        .call::<_, _, ()>("Reboot", &(false,))
        .await
        .context("calling logind's Reboot")?;
    Ok(())
}

/// A proxy for `interface` of `path` at `destination` on the system bus.
async fn system_proxy(
    destination: &'static str,
    path: &'static str,
    interface: &'static str,
) -> Result<zbus::Proxy<'static>> {
    let conn = zbus::Connection::system()
        .await
        .context("connecting to the system D-Bus")?;
    Ok(zbus::Proxy::new(&conn, destination, path, interface).await?)
}
