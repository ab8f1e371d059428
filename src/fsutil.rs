//! Crash-safe file writes.
//!
//! A file we own is never truncated in place: new content goes to a temporary file in the
//! same directory, is flushed to disk, and is renamed over the old one, so a reader (nginx, a
//! later run) sees either the old content or the new, never a half-written file, even after
//! a `kill -9` or a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` with `contents` atomically (temp file in the same directory, fsync,
/// rename, fsync of the directory). The new file gets mode `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", format!("{} names no file", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        // A temp file left by a killed run of this same pid is ours to replace.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode asked for, whatever the umask (nginx's workers read some of these files).
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// Appends one line to `path` (created with mode 0644 when missing) and flushes it to disk.
/// Lines shorter than the pipe buffer are written with one `write` call in append mode, so
/// concurrent writers never interleave within a line. A symlink at `path` is refused, not
/// followed.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let append = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        file.write_all(&buf)?;
        file.sync_data()
    };
    append().map_err(|e| Error::io("append to", path, e))
}

/// Checks that `dir` is a directory of this process's user, reached without a symlink at its
/// last component, that no other user can write to: only then can what it holds (state,
/// lock, history) be trusted not to have been planted or swapped by someone else.
pub fn check_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
    let refuse = |why: String| Err(Error::invalid("state directory", why));
    if meta.file_type().is_symlink() {
        return refuse(format!(
            "{} is a symlink; point the state directory at the real directory",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return refuse(format!("{} is not a directory", dir.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return refuse(format!(
            "{} is owned by uid {}, not by this user (uid {me}); chown it to the deploy user",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "{} is writable by other users (mode {:o}); chmod go-w it",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Reads a file that may be missing: `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_text() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.conf");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }

    #[test]
    fn atomic_write_into_missing_dir_is_a_clear_error() {
        let err = write_atomic(Path::new("/nonexistent-dir/x.conf"), b"x", 0o644).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.conf"), "{err}");
    }

    #[test]
    fn append_adds_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        append_line(&path, "a").unwrap();
        append_line(&path, "b").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\nb\n");
        assert_eq!(read_optional(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn a_history_line_is_never_appended_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, "").unwrap();
        let link = dir.path().join("history.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(append_line(&link, "{}").is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn only_a_private_directory_of_this_user_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        check_private_dir(&state).unwrap();

        fs::set_permissions(&state, fs::Permissions::from_mode(0o775)).unwrap();
        let err = check_private_dir(&state).unwrap_err().to_string();
        assert!(err.contains("writable by other users (mode 775)"), "{err}");
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        let err = check_private_dir(&link).unwrap_err().to_string();
        assert!(err.contains("is a symlink"), "{err}");

        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
            let err = check_private_dir(&state).unwrap_err().to_string();
            assert!(err.contains("owned by uid 65534"), "{err}");
        }
    }
}
