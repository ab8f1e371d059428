//! Watching nginx's processes to confirm that a reload really happened, and quoting paths
//! for nginx's configuration.
//!
//! `nginx -s reload` exits 0 as soon as it has sent the signal, even when the master then
//! fails to apply the new configuration (a port it cannot bind, a certificate it cannot
//! read) and keeps the old workers. A successful reload always starts new worker processes,
//! so we compare the master's children before and after.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::exec::CommandOutput;

/// `path` as nginx configuration can hold it in double quotes, when it can: `None` for a
/// path with `$` (a variable to nginx), quotes, backslashes, braces, semicolons or control
/// characters.
pub fn quotable_path(path: &Path) -> Option<String> {
    let shown = path.display().to_string();
    let unsafe_char = |c: char| matches!(c, '$' | '"' | '\\' | '{' | '}' | ';') || c.is_control();
    (!shown.chars().any(unsafe_char)).then_some(shown)
}

/// How long nginx's test and reload commands may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the reload command through `run_reload` and, when `master` is known, waits up to
/// `confirm` until nginx has replaced its workers. `Ok(true)` when the reload was seen to
/// take effect, `Ok(false)` when there was no master to watch; on failure, the failed stage
/// (`reload`, `reload confirmation`) and why.
pub fn reload(
    run_reload: impl FnOnce() -> crate::error::Result<CommandOutput>,
    master: Option<u32>,
    confirm: Duration,
) -> Result<bool, (&'static str, String)> {
    let workers_before = master.map(children).unwrap_or_default();
    run_reload().map_err(|e| ("reload", e.to_string()))?;
    let Some(pid) = master else {
        return Ok(false);
    };
    if wait_for_reload(pid, &workers_before, confirm) {
        Ok(true)
    } else {
        Err((
            "reload confirmation",
            format!(
                "nginx master {pid} did not replace its workers within {}: the new configuration was not applied (see nginx's error log)",
                humantime::format_duration(confirm)
            ),
        ))
    }
}

/// The nginx master process to watch: the pid in `pid_file` when that file names a live
/// process; else the nginx master that listens on `site_port` (the port of the URL the
/// switch verifies through nginx), seen in the kernel's socket table; else the only nginx
/// master process on the host. `None` when none of these works (nginx in another pid
/// namespace, or several masters and none known by its port).
pub fn find_master(pid_file: &Path, site_port: Option<u16>) -> Option<u32> {
    search_master(pid_file, site_port)
        .ok()
        .map(|found| found.pid)
}

/// The nginx master [`find_master`] watches, and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterFound {
    /// Its pid.
    pub pid: u32,
    /// How it was told apart.
    pub by: FoundBy,
}

/// How the nginx master was told apart from other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// The pid file names it.
    PidFile,
    /// It is the one master listening on this port.
    Port(u16),
    /// It is the only nginx master on the host.
    OnlyOne,
}

/// Why no nginx master could be told apart: how many masters this process can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterMissing {
    /// The nginx master processes seen (0: none, or nginx in another pid namespace).
    pub masters: usize,
}

/// [`find_master`], saying how the master was found, or how many masters there were when
/// none could be told apart.
pub fn search_master(
    pid_file: &Path,
    site_port: Option<u16>,
) -> Result<MasterFound, MasterMissing> {
    let from_file = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&pid| Path::new(&format!("/proc/{pid}")).exists());
    if let Some(pid) = from_file {
        return Ok(MasterFound {
            pid,
            by: FoundBy::PidFile,
        });
    }
    let is_master = |pid: &u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with(b"nginx: master process"))
    };
    if let Some(port) = site_port {
        let listening: Vec<u32> = crate::sys::listener_pids(port)
            .into_iter()
            .filter(is_master)
            .collect();
        if let [pid] = listening.as_slice() {
            return Ok(MasterFound {
                pid: *pid,
                by: FoundBy::Port(port),
            });
        }
    }
    let masters: Vec<u32> = all_pids().filter(is_master).collect();
    match masters.as_slice() {
        [pid] => Ok(MasterFound {
            pid: *pid,
            by: FoundBy::OnlyOne,
        }),
        _ => Err(MasterMissing {
            masters: masters.len(),
        }),
    }
}

/// The pids of `parent`'s child processes.
pub fn children(parent: u32) -> HashSet<u32> {
    all_pids()
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// Waits up to `timeout` until a reload of `master` has taken effect: a worker not in
/// `before` is running, and every worker in `before` has exited or is shutting down.
///
/// New workers alone are not enough: the master lets old and new workers accept side by side
/// for about 100 ms before it tells the old ones to stop, and an old worker answers from the
/// old configuration until then.
pub fn wait_for_reload(master: u32, before: &HashSet<u32>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let now = children(master);
        let new_worker = now
            .iter()
            .any(|pid| !before.contains(pid) && title(*pid).starts_with("nginx: worker process"));
        let old_accepting = before
            .iter()
            .any(|pid| now.contains(pid) && title(*pid) == "nginx: worker process");
        if new_worker && !old_accepting {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process's title as nginx sets it ("nginx: worker process", "nginx: worker process is
/// shutting down"), empty when it is gone.
fn title(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches(['\0', ' '])
        .to_owned()
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
    fn processes_that_are_not_nginx_workers_do_not_confirm_a_reload() {
        let before = children(std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let confirmed = wait_for_reload(std::process::id(), &before, Duration::from_millis(100));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!confirmed);
    }
}
