//! The per-app lock that serialises mutations (switches, rollbacks).
//!
//! It is an advisory `flock` on `<state-dir>/lock`. The kernel drops it when the holder's
//! file descriptor closes, so a holder killed with `kill -9` never leaves a stale lock behind.
//! The holder writes its pid, start time and purpose into the file so a second mutation can
//! say who is in the way.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::clock::now_rfc3339;
use crate::error::{Error, Result};

pub mod holder;
use holder::LockHolder;

/// How often a waiting run says who holds the lock.
const WAIT_REPORT_EVERY: Duration = Duration::from_secs(5);

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct AppLock {
    file: File,
    path: PathBuf,
}

impl AppLock {
    /// Takes the lock in `state_dir` for `app`, waiting up to `timeout` (zero: fail at once)
    /// while another process holds it.
    pub fn acquire(state_dir: &Path, app: &str, purpose: &str, timeout: Duration) -> Result<Self> {
        AppLock::acquire_reporting(state_dir, app, purpose, timeout, |_| {}, &Cancel::new())
    }

    /// Like [`AppLock::acquire`], telling `report` every few seconds while it waits who holds
    /// the lock and how long it has waited, and giving up when `cancel` is raised.
    pub fn acquire_reporting(
        state_dir: &Path,
        app: &str,
        purpose: &str,
        timeout: Duration,
        report: impl Fn(&str),
        cancel: &Cancel,
    ) -> Result<Self> {
        let path = state_dir.join("lock");
        // Private: a user who can open the file can take a shared flock on it and block
        // every deploy. A symlink in its place is refused, not followed.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        // A lock file made before it was private becomes private.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("make private", &path, e))?;
        let started = Instant::now();
        let mut next_report = Duration::ZERO;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if let Some(reason) = cancel.requested() {
                        return Err(Error::Cancelled(reason));
                    }
                    let waited = started.elapsed();
                    if waited >= timeout {
                        return Err(Error::LockHeld {
                            app: app.to_owned(),
                            holder: read_holder(&mut file),
                            waited: timeout,
                        });
                    }
                    if waited >= next_report {
                        let held = Error::LockHeld {
                            app: app.to_owned(),
                            holder: read_holder(&mut file),
                            waited: Duration::ZERO,
                        };
                        report(&format!(
                            "{held}; waited {} of {}",
                            humantime::format_duration(Duration::from_secs(waited.as_secs())),
                            humantime::format_duration(timeout)
                        ));
                        next_report += WAIT_REPORT_EVERY;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
        }
        let holder = LockHolder {
            pid: std::process::id(),
            started_at: now_rfc3339(),
            purpose: purpose.to_owned(),
        };
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(
                serde_json::to_string(&holder)
                    .expect("holder serializes")
                    .as_bytes(),
            )
        };
        write(&mut file).map_err(|e| Error::io("write lock holder to", &path, e))?;
        Ok(AppLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AppLock {
    fn drop(&mut self) {
        // Clear the holder details before the kernel releases the lock on close.
        let _ = self.file.set_len(0);
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_holders_details() {
        let dir = tempfile::tempdir().unwrap();
        let first = AppLock::acquire(dir.path(), "shop", "first", Duration::ZERO).unwrap();
        let err = AppLock::acquire(dir.path(), "shop", "second", Duration::ZERO).unwrap_err();
        let Error::LockHeld {
            holder: Some(h), ..
        } = &err
        else {
            panic!("unexpected {err:?}");
        };
        assert_eq!((h.pid, h.purpose.as_str()), (std::process::id(), "first"));
        assert!(err.to_string().contains("\"first\""), "{err}");
        drop(first);
        AppLock::acquire(dir.path(), "shop", "third", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_waiting_run_says_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _first = AppLock::acquire(dir.path(), "shop", "deploy v1", Duration::ZERO).unwrap();
        let said = std::cell::RefCell::new(Vec::new());
        let err = AppLock::acquire_reporting(
            dir.path(),
            "shop",
            "deploy v2",
            Duration::from_millis(300),
            |line| said.borrow_mut().push(line.to_owned()),
            &Cancel::new(),
        )
        .unwrap_err();
        let said = said.into_inner();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("\"deploy v1\"") && said[0].contains("waited 0s of 300ms"),
            "{}",
            said[0]
        );
        assert!(err.to_string().contains("waited 300ms"), "{err}");
    }

    #[test]
    fn the_lock_file_is_private_and_a_symlink_in_its_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("lock");
        std::fs::write(&lock_path, "").unwrap();
        std::fs::set_permissions(&lock_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(AppLock::acquire(dir.path(), "shop", "first", Duration::ZERO).unwrap());
        let mode = std::fs::metadata(&lock_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "an old 0644 lock file is made private");

        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&lock_path).unwrap();
        std::os::unix::fs::symlink(&target, &lock_path).unwrap();
        let err = AppLock::acquire(dir.path(), "shop", "second", Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("open lock file"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }

    #[test]
    fn a_cancelled_wait_gives_up_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let _first = AppLock::acquire(dir.path(), "shop", "deploy v1", Duration::ZERO).unwrap();
        let cancel = Cancel::new();
        let raiser = cancel.clone();
        let started = Instant::now();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            raiser.request(crate::cancel::CancelReason::Runner);
        });
        let err = AppLock::acquire_reporting(
            dir.path(),
            "shop",
            "deploy v2",
            Duration::from_secs(60),
            |_| {},
            &cancel,
        )
        .unwrap_err();
        canceller.join().unwrap();
        assert!(matches!(err, Error::Cancelled(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn waiting_holder_gets_the_lock_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = AppLock::acquire(dir.path(), "shop", "first", Duration::ZERO).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        let started = Instant::now();
        AppLock::acquire(dir.path(), "shop", "second", Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        releaser.join().unwrap();
    }
}
