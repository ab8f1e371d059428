//! The memory preflight: blue-green runs two copies of the app at once, so before the
//! standby starts, the host must have room for a second copy of what the live slot uses
//! now, with `min-free-memory-mb` to spare. On a small VPS a standby that does not fit
//! wakes the kernel's OOM killer, which may pick the live slot.
//!
//! What the live slot uses is measured, never assumed: its container's usage (`docker
//! stats`) in the docker runtime, the resident memory of the process that listens on its
//! port in the command runtime. Compose projects (several containers) are not measured, and
//! the check says so.

use crate::input::Slot;
use crate::runtime::{self, Runtime};
use crate::sys;

use super::request::{COMMAND_TIMEOUT, CheckResult, CheckStatus, MemoryCheck, ValidateRequest};

const MIB: u64 = 1024 * 1024;

impl ValidateRequest {
    /// The memory check, for a deploy whose live slot is `live` (none on a first deploy).
    pub(super) fn memory_check(&self, live: Option<Slot>) -> Option<CheckResult> {
        if self.memory_check == MemoryCheck::Off {
            return None;
        }
        let result =
            |status: CheckStatus, detail: String| Some(CheckResult::new("memory", status, detail));
        let Some(live) = live else {
            return result(
                CheckStatus::Pass,
                "no live slot yet: one copy of the app will run".into(),
            );
        };
        let Some(available) = sys::mem_available_bytes() else {
            return result(
                CheckStatus::Warn,
                "/proc/meminfo gives no MemAvailable: free memory was not checked".into(),
            );
        };
        let used = match self.slot_usage(live) {
            Ok(used) => used,
            Err(why) => {
                return result(
                    CheckStatus::Warn,
                    format!(
                        "{} MiB available; what {live} uses was not measured ({why})",
                        available / MIB
                    ),
                );
            }
        };
        // The standby slot's old copy, if one still runs (kept warm), is stopped first.
        let freed = self.slot_usage(live.other()).unwrap_or(0);
        let left = (available + freed).saturating_sub(used);
        let detail = format!(
            "{} MiB available{}; the standby needs about {} MiB (what {live} uses now), leaving {} MiB (min-free-memory-mb {})",
            available / MIB,
            if freed > 0 {
                format!(" and {} MiB its old copy frees", freed / MIB)
            } else {
                String::new()
            },
            used / MIB,
            left / MIB,
            self.min_free_memory_mb
        );
        if left >= self.min_free_memory_mb * MIB {
            return result(CheckStatus::Pass, detail);
        }
        let status = match self.memory_check {
            MemoryCheck::Warn => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        };
        result(
            status,
            format!(
                "{detail}: a second copy would not fit, and the kernel's OOM killer may pick the live slot; free memory, or set memory-check: warn to go on anyway"
            ),
        )
    }

    /// The memory `slot` uses now, in bytes, or why it cannot be told.
    fn slot_usage(&self, slot: Slot) -> Result<u64, String> {
        match self.runtime {
            Runtime::Docker => {
                let out = runtime::memory_usage(&self.docker_cmd, &self.app, slot)
                    .run(COMMAND_TIMEOUT)
                    .map_err(|e| e.to_string())?;
                parse_mem_usage(&out.stdout)
                    .ok_or_else(|| format!("docker stats said {:?}", out.stdout.trim()))
            }
            Runtime::Command => {
                let port = self.ports.port(slot);
                let pid = *sys::listener_pids(port)
                    .first()
                    .ok_or_else(|| format!("nothing listens on its port {port}"))?;
                sys::resident_bytes(pid).ok_or_else(|| format!("pid {pid} is gone"))
            }
            Runtime::Compose => Err("a compose project's containers are not measured".into()),
        }
    }
}

/// The usage in a `docker stats` MemUsage column: `12.5MiB / 1.944GiB`.
fn parse_mem_usage(text: &str) -> Option<u64> {
    let used = text.split('/').next()?.trim();
    let split = used.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = used.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let factor = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB as f64,
        "GiB" => (1024 * MIB) as f64,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((number * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::CommandLine;

    #[test]
    fn docker_stats_usage_is_read_in_its_units() {
        assert_eq!(parse_mem_usage("12MiB / 1.944GiB\n"), Some(12 * MIB));
        assert_eq!(parse_mem_usage("1.5GiB / 4GiB"), Some(1536 * MIB));
        assert_eq!(parse_mem_usage("512KiB / 1GiB"), Some(512 * 1024));
        assert_eq!(parse_mem_usage("--"), None);
        assert_eq!(
            runtime::memory_usage(
                &CommandLine::new(["docker"]),
                &"shop".parse().unwrap(),
                Slot::Blue
            )
            .argv(),
            [
                "docker",
                "stats",
                "--no-stream",
                "--format",
                "{{.MemUsage}}",
                "shop-blue"
            ]
        );
    }
}
