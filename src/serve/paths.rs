//! Context names relative to the server's context root: a lexical check (pure) and the
//! resolution on disk that also refuses symlinks leading out of the root.

use std::path::{Component, Path, PathBuf};

/// Why a context name was refused (the message names no path outside the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError(pub(crate) String);

/// The name as a relative path of plain components: no root, no `..`, no `.`-only, no NUL,
/// not empty.
pub(crate) fn check_name(name: &str) -> Result<PathBuf, PathError> {
    if name.is_empty() {
        return Err(PathError("is empty".into()));
    }
    if name.contains('\0') {
        return Err(PathError("contains a NUL byte".into()));
    }
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(PathError("must not contain `..`".into()));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError(
                    "must be relative to the server's context root".into(),
                ));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(PathError("names no file".into()));
    }
    Ok(out)
}

/// The canonical path of `name` under `root` (itself canonical): it must exist, be a regular
/// file, and stay inside `root` after every symlink is followed. Blocking (file system):
/// call it off the executor.
pub(crate) fn resolve(root: &Path, name: &str) -> Result<PathBuf, PathError> {
    let rel = check_name(name)?;
    let joined = root.join(rel);
    let real = joined
        .canonicalize()
        .map_err(|_| PathError("does not exist under the context root".into()))?;
    if !real.starts_with(root) {
        return Err(PathError("leads out of the context root".into()));
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => Ok(real),
        Ok(_) => Err(PathError("is not a regular file".into())),
        Err(_) => Err(PathError("cannot be read".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_checks() {
        assert_eq!(check_name("a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        assert_eq!(check_name("./a.txt").unwrap(), PathBuf::from("a.txt"));
        assert!(check_name("../x").is_err());
        assert!(check_name("a/../../x").is_err());
        assert!(check_name("a/..").is_err());
        assert!(check_name("/etc/passwd").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(".").is_err());
        assert!(check_name("a\0b").is_err());
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let dir = std::env::temp_dir().join(format!("rlm-paths-test-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/in.txt"), "in").unwrap();
        std::fs::write(dir.join("secret.txt"), "out").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link.txt"));
        let _ = std::os::unix::fs::symlink(root.join("sub/in.txt"), root.join("inner.txt"));
        let root = root.canonicalize().unwrap();
        assert!(resolve(&root, "sub/in.txt").is_ok());
        assert!(
            resolve(&root, "inner.txt").is_ok(),
            "a link inside the root is fine"
        );
        let e = resolve(&root, "link.txt").unwrap_err();
        assert!(e.0.contains("out of the context root"), "{e:?}");
        assert!(resolve(&root, "sub").is_err(), "a directory");
        assert!(resolve(&root, "missing.txt").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
