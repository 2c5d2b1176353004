//! Reboots in the world (SPEC §9): `reboot watch` runs as tn-agent-reboot.service would, with a
//! reboot command that only leaves a mark, and [`simulate_reboot`] then does what a reboot does:
//! etcd stops, the kernel's boot id changes, /run empties, bootstrap and etcd start again.

use std::path::PathBuf;
use std::process::Child;

use anyhow::{ensure, Context, Result};

use crate::{EtcdProcess, Node, World};

/// A `reboot watch` running in the background, its output in a log file; killed on drop.
pub struct Watch(Child, PathBuf);

impl Watch {
    /// Starts the watch; its output goes to `<root>/watch-<n>.log`.
    pub fn start(node: &Node, n: usize) -> Result<Watch> {
        let path = node.root.join(format!("watch-{n}.log"));
        let log = std::fs::File::create(&path)?;
        let mut cmd = node.agent()?.command(&["reboot", "watch"]);
        cmd.stdout(log.try_clone()?).stderr(log);
        // Killed with this process too, however it ends (as etcd and moto_server are).
        let child = crate::process::spawner::spawn(cmd).context("starting reboot watch")?;
        Ok(Watch(child, path))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// `Some(success)` once it has exited.
    pub fn exited(&mut self) -> Result<Option<bool>> {
        Ok(self.0.try_wait()?.map(|s| s.success()))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The mark the test reboot command leaves.
pub fn reboot_mark(node: &Node) -> PathBuf {
    node.root.join("rebooted")
}

/// Gives an etcd node a `[reboot]` whose command leaves [`reboot_mark`] and looks every
/// second, a first boot id, and a reboot request (an update staged).
pub fn stage_update(world: &World, node: &Node, extra_config: &str) -> Result<()> {
    node.write_config(&world.config(
        "etcd",
        &format!(
            "{extra_config}[reboot]\ncheck_interval = \"1s\"\n\
             command = [\"/bin/sh\", \"-c\", \"touch {}\"]\n",
            reboot_mark(node).display()
        ),
    ))?;
    let run = node.run(&["reboot", "request"])?;
    ensure!(run.code == 0, "reboot request: {}", run.stderr);
    Ok(())
}

/// What a reboot does to a node whose watch ran the reboot command: etcd stops, a new boot id,
/// /run emptied, then bootstrap and etcd start again (the watch is the caller's to restart).
pub fn simulate_reboot(node: &Node, etcd: &mut Option<EtcdProcess>) -> Result<()> {
    if let Some(mut e) = etcd.take() {
        e.kill();
    }
    std::fs::remove_file(reboot_mark(node))?;
    let _ = std::fs::remove_file(node.path("/run/reboot-required"));
    node.new_boot()?;
    let run = node.run(&["bootstrap"])?;
    ensure!(run.code == 0, "bootstrap after the reboot: {}", run.stderr);
    *etcd = Some(node.start_etcd()?);
    Ok(())
}

/// Writes the node's `reboot.json` in `phase` of the `etcd` group, as a watch that stopped
/// there would have left it.
pub fn leave_phase(node: &Node, phase: &str) -> Result<()> {
    let path = node.path("/var/lib/tn-agent/reboot.json");
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    std::fs::write(
        path,
        format!(r#"{{"phase":"{phase}","group":"etcd","since":"2026-12-02T00:00:00Z"}}"#),
    )?;
    Ok(())
}

/// The node's `reboot.json`, when there is one.
pub fn reboot_state(node: &Node) -> Option<serde_json::Value> {
    let text = std::fs::read(node.path("/var/lib/tn-agent/reboot.json")).ok()?;
    serde_json::from_slice(&text).ok()
}
