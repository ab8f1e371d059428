//! The test harness: every fixture starts a real program on loopback (nginx under its own
//! prefix, the demo app, sshd with throwaway keys, a Slack stand-in, a second Docker daemon)
//! and stops it by pid when dropped. One module per fixture; this file has what all share:
//! free ports, running the built helpers, and [`require!`], with which a test names the
//! programs it needs and is skipped, saying why, where they are missing.

pub mod demo;
pub mod docker;
pub mod fleet;
pub mod nginx;
#[macro_use]
pub mod require;
pub mod slack;
pub mod sshd;
pub mod target;
pub mod traffic;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

pub use demo::{DEMO_APP, Demo, demo_image};
pub use docker::{NftTable, SecondDocker};
pub use fleet::Fleet;
pub use nginx::{Nginx, Site, http_get, http_get_as, http_get_retry_after};
pub use slack::SlackRecorder;
pub use sshd::{Sshd, current_user};
pub use target::{ActRun, Target, assert_result};
pub use traffic::Traffic;

pub const BLUEGREEN: &str = env!("CARGO_BIN_EXE_bluegreen");
/// The helpers by hand, each called as a user calls it: through a link named after it.
pub static VALIDATE: LazyLock<String> = LazyLock::new(|| helper_link("validate"));
pub static HEALTH_CHECK: LazyLock<String> = LazyLock::new(|| helper_link("health-check"));
pub static SWITCH_TRAFFIC: LazyLock<String> = LazyLock::new(|| helper_link("switch-traffic"));
pub static MONITOR: LazyLock<String> = LazyLock::new(|| helper_link("monitor"));

/// A link named `name` to the `bluegreen` binary, which runs as that helper when called so
/// (like busybox). Tests run in processes of their own at once: each puts its link in place
/// by a rename, which never leaves the name missing or half made.
fn helper_link(name: &str) -> String {
    let dir = Path::new(BLUEGREEN).with_file_name("helper-links");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(name);
    let fresh = dir.join(format!("{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&fresh);
    std::os::unix::fs::symlink(BLUEGREEN, &fresh).unwrap();
    std::fs::rename(&fresh, &link).unwrap();
    link.display().to_string()
}

/// The p95 limit (`max-p95-ms`) of every end-to-end deploy's watch: four tests at once on
/// two cores slow every answer, and a watch judging a healthy release on the default 500 ms
/// would fail it at random. (Latency is judged in these tests against the live slot's, as
/// canary steps do.)
pub const BUSY_MACHINE_MAX_P95_MS: u64 = 3000;

/// The app name every test deploys.
pub const APP: &str = "shop";

/// A loopback port that was free a moment ago and that no other test of this run has been
/// given: a test may hold a port unbound for a while (a slot's port until its deploy), so
/// each port is handed out once per run, reserved by a file in a directory of the run's
/// own. Ports come from below the kernel's ephemeral range, so nothing that binds port 0 or
/// connects out (act's cache server, a client socket) can be handed one first.
pub fn free_port() -> u16 {
    let (ephemeral_low, _) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut ends = range.split_whitespace().map(str::parse::<u16>);
            Some((ends.next()?.ok()?, ends.next()?.ok()?))
        })
        .unwrap_or((32768, 60999));
    let run = std::env::var("NEXTEST_RUN_ID")
        .unwrap_or_else(|_| format!("process-{}", std::process::id()));
    let reserved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ports")
        .join(run);
    std::fs::create_dir_all(&reserved).unwrap();
    let first = 10_000u16;
    let span = u64::from(ephemeral_low.saturating_sub(first).max(1));
    for _ in 0..1000 {
        let port = first + (random_u64() % span) as u16;
        let unclaimed = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(reserved.join(port.to_string()))
            .is_ok();
        if unclaimed && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {first} and {ephemeral_low}");
}

/// A random number from the standard library's per-process hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A finished helper run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs a helper binary with `args` and collects its output.
pub fn run<S: AsRef<std::ffi::OsStr>>(bin: &str, args: &[S]) -> Run {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The smallest set of action inputs (as INPUT_* variables) that validates.
pub fn valid_env() -> std::collections::HashMap<String, String> {
    [
        ("host", "203.0.113.7"),
        ("username", "deploy"),
        ("ssh-key", "KEY"),
        ("known-hosts", "203.0.113.7 ssh-ed25519 AAAA"),
        ("app", "shop"),
        ("image", "ghcr.io/acme/shop:1"),
    ]
    .iter()
    .map(|(k, v)| (bluegreen::action::inputs::env_name(k), v.to_string()))
    .collect()
}
