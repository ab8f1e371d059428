//! Watching nginx's processes to confirm that a reload really happened.
//!
//! `nginx -s reload` exits 0 as soon as it has sent the signal, even when the master then
//! fails to apply the new configuration (a port it cannot bind, a certificate it cannot
//! read) and keeps the old workers. A successful reload always starts new worker processes,
//! so we compare the master's children before and after.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The nginx master process to watch: the pid in `pid_file` when that file names a live
/// process, else the only nginx master process on the host. `None` when neither works
/// (nginx in another pid namespace, or several masters).
pub fn find_master(pid_file: &Path) -> Option<u32> {
    let from_file = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&pid| Path::new(&format!("/proc/{pid}")).exists());
    if from_file.is_some() {
        return from_file;
    }
    let masters: Vec<u32> = all_pids()
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"nginx: master process"))
        })
        .collect();
    match masters.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The pids of `parent`'s child processes.
pub fn children(parent: u32) -> HashSet<u32> {
    all_pids()
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// Waits up to `timeout` for `master` to have a child that is not in `before`: the sign
/// that a reload started new workers.
pub fn wait_for_new_workers(master: u32, before: &HashSet<u32>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if children(master).iter().any(|pid| !before.contains(pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn all_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
}

/// The parent pid from `/proc/PID/stat` ("pid (comm) state ppid ..."; comm may hold spaces
/// and parentheses, so fields are counted from the last `)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_of_this_process_include_a_spawned_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = children(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }

    #[test]
    fn new_children_are_noticed() {
        let before = children(std::process::id());
        assert!(!wait_for_new_workers(
            std::process::id(),
            &before,
            Duration::from_millis(50)
        ));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let noticed = wait_for_new_workers(std::process::id(), &before, Duration::from_secs(2));
        let _ = child.kill();
        let _ = child.wait();
        assert!(noticed);
    }
}
