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

/// Moves the directory `dir` aside to `<dir>.<suffix>` beside it, never deleting anything, and
/// returns where it is now. When `dir` is a symlink (a data volume mounted elsewhere), the
/// directory it points to is moved on its own file system and an empty one (0700) takes its
/// place, so the link keeps pointing at the volume and the data stays on it.
pub fn move_aside(dir: &Path, suffix: &str) -> io::Result<PathBuf> {
    let linked = fs::symlink_metadata(dir)?.file_type().is_symlink();
    let real = fs::canonicalize(dir)?;
    let name = real
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no directory name"))?;
    let dest = real.with_file_name(format!("{}.{suffix}", name.to_string_lossy()));
    fs::rename(&real, &dest)?;
    if linked {
        fs::DirBuilder::new().mode(0o700).create(&real)?;
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
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
    fn moving_aside_keeps_everything_and_follows_a_symlinked_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("etcd");
        fs::create_dir_all(plain.join("member")).unwrap();
        let dest = move_aside(&plain, "moved-1").unwrap();
        assert_eq!(dest, tmp.path().join("etcd.moved-1"));
        assert!(dest.join("member").is_dir());
        assert!(!plain.exists());

        // /var/lib/etcd -> /mnt/volume/etcd: the data stays on the volume.
        let volume = tmp.path().join("volume");
        let real = volume.join("etcd");
        fs::create_dir_all(real.join("member")).unwrap();
        let link = tmp.path().join("lib-etcd");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dest = move_aside(&link, "moved-2").unwrap();
        assert_eq!(
            dest,
            fs::canonicalize(&volume).unwrap().join("etcd.moved-2")
        );
        assert!(dest.join("member").is_dir());
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(link.is_dir(), "the link points at a new, empty directory");
        assert_eq!(fs::read_dir(&link).unwrap().count(), 0);
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
