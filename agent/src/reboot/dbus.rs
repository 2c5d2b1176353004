//! update_engine and logind over the system D-Bus (SPEC §9). update_engine (`com.coreos.update1`)
//! says when an update is staged (`GetStatus` at start, then its `StatusUpdate` signal) and which
//! version; logind's `Reboot` is the default way to reboot. No bus, or no update_engine on it
//! (containers, tests), is not an error: the sentinel `/run/reboot-required` alone then says a
//! reboot is needed. The bus is the system bus, or `DBUS_SYSTEM_BUS_ADDRESS` when set.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::dbus::{method_call, Bus, Message, Value};

/// update_engine's status when an update is staged and waits for a reboot.
pub const NEED_REBOOT: &str = "UPDATE_STATUS_UPDATED_NEED_REBOOT";

const UPDATE_ENGINE: &str = "com.coreos.update1";
const UPDATE_ENGINE_PATH: &str = "/com/coreos/update1";
const UPDATE_ENGINE_MANAGER: &str = "com.coreos.update1.Manager";
/// How long connecting and the first `GetStatus` may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// `GetStatus`'s reply and `StatusUpdate`'s body: (last_checked_time, progress,
    /// current_operation, new_version, new_size).
    fn of(message: &Message) -> Result<UpdateStatus> {
        match (message.signature.as_str(), message.body.as_slice()) {
            ("xdssx", [_, _, Value::Str(operation), Value::Str(new_version), _]) => {
                Ok(UpdateStatus {
                    operation: operation.clone(),
                    new_version: new_version.clone(),
                })
            }
            (signature, _) => anyhow::bail!(
                "update_engine's status has the signature {signature:?}, not \"xdssx\""
            ),
        }
    }
}

/// update_engine on the system bus, and its signals.
pub struct UpdateEngine {
    /// The bus's address, to connect again.
    address: String,
    /// `None` once the bus closed the connection.
    bus: Option<Bus>,
    last: Option<UpdateStatus>,
}

impl UpdateEngine {
    /// Asks update_engine for its status and listens to its signals; `None` (logged) when there
    /// is no bus or no update_engine on it.
    pub async fn connect() -> Option<Self> {
        let address = crate::dbus::system_bus_address();
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, Self::try_connect(&address))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}")));
        match connected {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::info!(error = %format!("{e:#}"), "no update_engine on D-Bus: the reboot sentinel alone says when to reboot");
                None
            }
        }
    }

    async fn try_connect(address: &str) -> Result<Self> {
        let mut bus = Bus::connect(address)
            .await
            .context("connecting to the system D-Bus")?;
        bus.add_match(&format!(
            "type='signal',sender='{UPDATE_ENGINE}',path='{UPDATE_ENGINE_PATH}',\
             interface='{UPDATE_ENGINE_MANAGER}',member='StatusUpdate'"
        ))
        .await
        .context("subscribing to update_engine's StatusUpdate")?;
        let reply = bus
            .call(method_call(
                UPDATE_ENGINE,
                UPDATE_ENGINE_PATH,
                UPDATE_ENGINE_MANAGER,
                "GetStatus",
                vec![],
            ))
            .await
            .context("calling update_engine's GetStatus")?;
        let last = Some(UpdateStatus::of(&reply)?);
        tracing::info!(status = ?last, "update_engine status");
        Ok(UpdateEngine {
            address: address.to_string(),
            bus: Some(bus),
            last,
        })
    }

    pub fn last(&self) -> Option<&UpdateStatus> {
        self.last.as_ref()
    }

    /// Waits up to `wait` for update_engine's next `StatusUpdate`, and remembers it. When the
    /// bus has closed the connection (dbus-daemon restarted), connects again instead, at most
    /// once a wait, and takes update_engine's status then; until that works, the last status
    /// stands and the wait is slept out (the sentinel still says when a reboot is needed).
    pub async fn wait(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        let Some(bus) = &mut self.bus else {
            let again = tokio::time::timeout_at(deadline, Self::try_connect(&self.address)).await;
            if let Ok(Ok(again)) = again {
                tracing::info!("connected to update_engine again");
                *self = again;
                return;
            }
            tokio::time::sleep_until(deadline).await;
            return;
        };
        loop {
            let Ok(signal) = tokio::time::timeout_at(deadline, bus.next_signal()).await else {
                return;
            };
            let signal = match signal {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::warn!(error = %crate::exit::one_line(&e), "lost the D-Bus connection: update_engine's last status stands until it is back");
                    self.bus = None;
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            };
            if signal.interface.as_deref() != Some(UPDATE_ENGINE_MANAGER)
                || signal.member.as_deref() != Some("StatusUpdate")
            {
                continue;
            }
            match UpdateStatus::of(&signal) {
                Ok(status) => {
                    tracing::debug!(status = ?status, "update_engine status update");
                    self.last = Some(status);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed StatusUpdate signal"),
            }
        }
    }
}

/// Asks logind to reboot the machine (`org.freedesktop.login1.Manager.Reboot`, not
/// interactive).
pub async fn logind_reboot() -> Result<()> {
    let mut bus = Bus::connect(&crate::dbus::system_bus_address())
        .await
        .context("connecting to the system D-Bus")?;
    bus.call(method_call(
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "Reboot",
        vec![Value::Bool(false)],
    ))
    .await
    .context("calling logind's Reboot")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::{fake_bus, Kind};

    fn status(operation: &str, version: &str) -> Vec<Value> {
        vec![
            Value::I64(0),
            Value::F64(0.0),
            Value::Str(operation.into()),
            Value::Str(version.into()),
            Value::I64(0),
        ]
    }

    /// update_engine as the fake bus plays it: idle when asked, then a StatusUpdate saying
    /// 4230.2.1 is staged, then the connection closes.
    fn update_engine(call: &Message) -> Option<Vec<Value>> {
        (call.member.as_deref() == Some("GetStatus")).then(|| status("UPDATE_STATUS_IDLE", ""))
    }

    /// A StatusUpdate is taken; when the bus closes the connection, that wait is slept out (a
    /// watch waiting on it must not spin) and the status stands; the next wait connects again
    /// and takes update_engine's status anew.
    #[tokio::test]
    async fn a_status_update_a_lost_bus_and_connecting_again() {
        let signal = Message {
            kind: Some(Kind::Signal),
            interface: Some(UPDATE_ENGINE_MANAGER.into()),
            member: Some("StatusUpdate".into()),
            signature: "xdssx".into(),
            body: status(NEED_REBOOT, "4230.2.1"),
            ..Message::default()
        };
        // AddMatch and GetStatus, then the signal.
        let (_dir, address) = fake_bus(2, update_engine, vec![signal]).await;
        let mut engine = UpdateEngine::try_connect(&address).await.unwrap();
        assert_eq!(engine.last().unwrap().operation, "UPDATE_STATUS_IDLE");
        engine.wait(Duration::from_secs(5)).await;
        let staged = engine.last().unwrap();
        assert!(staged.needs_reboot() && staged.new_version == "4230.2.1");

        let start = std::time::Instant::now();
        engine.wait(Duration::from_millis(300)).await;
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(engine.bus.is_none() && engine.last().unwrap().needs_reboot());

        engine.wait(Duration::from_secs(5)).await;
        assert!(engine.bus.is_some());
        assert_eq!(engine.last().unwrap().operation, "UPDATE_STATUS_IDLE");
    }
}
