//! Files as the tests look at them: every file under a directory, permission bits, PEM bodies,
//! the cluster's PKI objects in the bucket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every file under `dir` (subdirectories included), as paths relative to `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The permission bits (`0o777`) of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The base64 body of a PEM block (its lines between the `-----` ones), on one line.
pub fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// The cluster's PKI object `name` in the state bucket (`demo/pki/<name>`), as text.
pub fn pki_object(world: &tn_world::World, name: &str) -> String {
    let key = format!("demo/pki/{name}");
    let bytes = world
        .get_object(&key)
        .unwrap()
        .unwrap_or_else(|| panic!("no {key} in the bucket"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{key}: {e}"))
}
