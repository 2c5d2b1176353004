//! moto_server on a free loopback port: the world's EC2, AutoScaling and S3.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::Owned;
use crate::workspace_dir;

pub struct Moto {
    process: Owned,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto_server and waits (at most 30 s) until it answers.
    pub fn start(log: PathBuf) -> Result<Self> {
        let port = free_port()?;
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let mut process = Owned::spawn(cmd, "moto_server")?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if !process.running() {
                bail!("moto_server exited at start; see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not answer on {addr} within 30 s; see {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Moto {
            process,
            endpoint: format!("http://{addr}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// `TN_MOTO_SERVER`, else the project's venv (scripts/setup makes it), else `PATH`.
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("TN_MOTO_SERVER") {
        return p.into();
    }
    let venv = workspace_dir().join(".venv/bin/moto_server");
    if venv.exists() {
        venv
    } else {
        "moto_server".into()
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}
