//! Files on the node: every path taken under `--root`, every write atomic with an explicit mode.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// File mode for secrets: private keys and tokens.
pub const MODE_SECRET: u32 = 0o600;
/// File mode for everything else the agent writes.
pub const MODE_PUBLIC: u32 = 0o644;
/// Mode of directories the agent creates.
const MODE_DIR: u32 = 0o755;

/// The directory every node path is taken under (`--root`, default `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root(dir.into())
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `node_path` (absolute, as on a real node) taken under the root: `/etc/x` under
    /// `/tmp/n1` is `/tmp/n1/etc/x`. A relative path is taken as if it were absolute.
    pub fn path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.0.clone();
        for part in node_path.as_ref().components() {
            match part {
                Component::Normal(p) => out.push(p),
                Component::ParentDir => out.push(".."),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        out
    }
}

/// Writes `contents` to `path` so that readers see the old file or the new one, never a part:
/// a temp file in the same directory, written, mode set, fsynced, renamed over `path`, and the
/// directory fsynced. Missing parent directories are created (0755).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dirs(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_new(&tmp, contents, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The umask may have cleared bits of `mode`: set it explicitly.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The name prefix of the directories [`move_aside`] makes; entries so named stay where they are.
pub const MOVED_PREFIX: &str = "moved-";
/// The name prefix of `etcd restore`'s work directory inside the data dir; [`move_aside`]
/// leaves it where it is too.
pub const RESTORE_PREFIX: &str = ".tn-restore-";

/// Moves everything in the directory `dir` into a new directory `dir/<name>` (0700), never
/// deleting anything, and returns it. Earlier moved-aside directories (named [`MOVED_PREFIX`]…)
/// and a restore's work directory ([`RESTORE_PREFIX`]…) stay beside it. The data stays in `dir`'s file system: a data dir that is a mount point or a
/// symlink to a volume keeps its data on that volume (renaming the mount point itself is not
/// possible, and the parent need not be writable). A crash half-way leaves some entries moved
/// and some not; nothing is lost, and the next move takes the rest.
pub fn move_aside(dir: &Path, name: &str) -> io::Result<PathBuf> {
    let entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    let dest = dir.join(name);
    fs::DirBuilder::new().mode(0o700).create(&dest)?;
    for entry in entries {
        let entry_name = entry.file_name();
        let entry_name_text = entry_name.to_string_lossy();
        if entry_name_text.starts_with(MOVED_PREFIX) || entry_name_text.starts_with(RESTORE_PREFIX)
        {
            continue;
        }
        fs::rename(entry.path(), dest.join(&entry_name))?;
    }
    sync_dir(&dest)?;
    sync_dir(dir)?;
    Ok(dest)
}

/// Creates `dir` and its missing parents with mode 0755.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(MODE_DIR)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn moving_aside_keeps_everything_inside_the_dir_and_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("etcd");
        fs::create_dir_all(plain.join("member/wal")).unwrap();
        fs::write(plain.join("tn-agent-member.json"), "{}").unwrap();
        let dest = move_aside(&plain, "moved-1").unwrap();
        assert_eq!(dest, plain.join("moved-1"));
        assert!(dest.join("member/wal").is_dir());
        assert!(dest.join("tn-agent-member.json").is_file());
        assert!(!plain.join("member").exists());
        // A second move keeps the first one where it is.
        fs::create_dir_all(plain.join("member")).unwrap();
        let second = move_aside(&plain, "moved-2").unwrap();
        assert!(second.join("member").is_dir());
        assert!(
            dest.join("member/wal").is_dir(),
            "the first move is untouched"
        );
        let mut names: Vec<_> = fs::read_dir(&plain)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["moved-1", "moved-2"]);

        // /var/lib/etcd -> /mnt/volume/etcd: the data stays on the volume, the link stays.
        let real = tmp.path().join("volume/etcd");
        fs::create_dir_all(real.join("member")).unwrap();
        let link = tmp.path().join("lib-etcd");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        move_aside(&link, "moved-3").unwrap();
        assert!(real.join("moved-3/member").is_dir());
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn root_takes_node_paths_under_it() {
        let root = Root::new("/tmp/n1");
        assert_eq!(
            root.path("/etc/etcd/etcd.env"),
            PathBuf::from("/tmp/n1/etc/etcd/etcd.env")
        );
        assert_eq!(
            Root::new("/").path("/var/lib/etcd"),
            PathBuf::from("/var/lib/etcd")
        );
        assert_eq!(root.path("var/x"), PathBuf::from("/tmp/n1/var/x"));
    }

    #[test]
    fn writes_with_the_mode_asked_for_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("etc/pki/server.key");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let public = dir.path().join("etc/etcd.env");
        let r1 = write_atomic(&key, b"secret", MODE_SECRET);
        let r2 = write_atomic(&public, b"A=b\n", MODE_PUBLIC);
        nix::sys::stat::umask(old);
        r1.unwrap();
        r2.unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&public), 0o644);
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        // Replacing a file changes its mode to the one asked for.
        write_atomic(&public, b"A=c\n", MODE_SECRET).unwrap();
        assert_eq!(mode(&public), 0o600);
        assert_eq!(fs::read(&public).unwrap(), b"A=c\n");
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn readers_never_see_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let big_a = vec![b'a'; 1 << 20];
        let big_b = vec![b'b'; 1 << 20];
        write_atomic(&path, &big_a, MODE_PUBLIC).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let data = fs::read(&path).unwrap();
                    assert_eq!(data.len(), 1 << 20, "partial file seen");
                    assert!(
                        data.iter().all(|&c| c == data[0]),
                        "mixed old and new contents seen"
                    );
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..50 {
            let data = if i % 2 == 0 { &big_b } else { &big_a };
            write_atomic(&path, data, MODE_PUBLIC).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.env");
        write_atomic(&path, b"old", MODE_PUBLIC).unwrap();
        // A directory in the way of the rename makes the write fail.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("child"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new", MODE_PUBLIC).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
