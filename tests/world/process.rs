//! Child processes of the world (moto_server, etcd): killed when their handle drops, and by the
//! kernel if the test process itself dies, so nothing outlives a test.

use std::process::{Child, Command};

use anyhow::{Context, Result};

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Owned {
    pub child: Child,
    pub what: String,
}

impl Owned {
    /// Spawns `cmd`, asking the kernel to SIGKILL it when the test process dies.
    pub fn spawn(cmd: Command, what: &str) -> Result<Self> {
        let program = cmd.get_program().to_owned();
        let child =
            spawner::spawn(cmd).with_context(|| format!("starting {what} ({program:?})"))?;
        Ok(Owned {
            child,
            what: what.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One thread that lives as long as the process spawns every child: `PR_SET_PDEATHSIG` fires
/// when the thread that spawned a child exits, so children spawned from short-lived threads
/// would die early, and children spawned from here die exactly when the test process does.
pub(crate) mod spawner {
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Mutex, OnceLock};

    type Request = (Command, Sender<std::io::Result<Child>>);

    fn requests() -> &'static Mutex<Sender<Request>> {
        static TX: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
        TX.get_or_init(|| {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("child-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        // SAFETY: prctl is async-signal-safe and touches no parent memory.
                        unsafe {
                            cmd.pre_exec(|| {
                                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                                    .map_err(std::io::Error::from)
                            });
                        }
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("spawner thread");
            Mutex::new(tx)
        })
    }

    pub fn spawn(cmd: Command) -> std::io::Result<Child> {
        let (tx, rx) = channel();
        requests()
            .lock()
            .unwrap()
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("spawner thread gone"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("spawner thread gone"))?
    }
}
