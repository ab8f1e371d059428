//! What a test needs of the machine, checked before it starts: a test names its needs with
//! [`require!`](crate::require) and is skipped, printing which are missing, where they are
//! not there, so the tests that need none run anywhere (a laptop without nginx or Docker).
//!
//! With `BLUEGREEN_REQUIRE_ALL=1` (set by `scripts/test`, so by CI) a missing need fails the
//! test instead: nothing is ever skipped there without anyone noticing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A program or privilege a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Root (sshd logins as this user, nftables, network namespaces, a second dockerd).
    Root,
    /// nginx from the system's packages.
    Nginx,
    /// OpenSSH's sshd and ssh-keygen.
    Sshd,
    /// A Docker engine that answers, and the musl target its test images are built with.
    Docker,
    /// act, which runs action.yml.
    Act,
    /// nftables that this process may change.
    Nftables,
    /// sudo, and runuser to run a check as another user.
    Sudo,
    /// Network namespaces (iproute2) and mount namespaces (util-linux's unshare), for a
    /// fleet of hosts on this machine.
    Namespaces,
}

impl Need {
    fn describe(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Nginx => "nginx (scripts/install-deps)",
            Need::Sshd => "sshd (scripts/install-deps)",
            Need::Docker => "a running Docker engine and the musl target (scripts/install-deps)",
            Need::Act => "act (scripts/install-deps)",
            Need::Nftables => "nftables with permission to change it",
            Need::Sudo => "sudo and runuser (scripts/install-deps)",
            Need::Namespaces => "ip netns and unshare (scripts/install-deps)",
        }
    }

    fn present(self) -> bool {
        static FOUND: OnceLock<[bool; 8]> = OnceLock::new();
        let found = FOUND.get_or_init(|| {
            [
                Need::Root,
                Need::Nginx,
                Need::Sshd,
                Need::Docker,
                Need::Act,
                Need::Nftables,
                Need::Sudo,
                Need::Namespaces,
            ]
            .map(Need::probe)
        });
        found[self as usize]
    }

    fn probe(self) -> bool {
        let starts = |program: &str| Command::new(program).arg("-?").output().is_ok();
        let answers = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        match self {
            // SAFETY: geteuid has no preconditions.
            Need::Root => (unsafe { libc::geteuid() }) == 0,
            Need::Nginx => answers(super::nginx::nginx_bin(), &["-v"]),
            Need::Sshd => Path::new("/usr/sbin/sshd").exists() && starts("ssh-keygen"),
            Need::Docker => {
                answers("docker", &["info", "--format", "{{.ServerVersion}}"])
                    && Command::new("rustup")
                        .args(["target", "list", "--installed"])
                        .output()
                        .is_ok_and(|o| {
                            String::from_utf8_lossy(&o.stdout)
                                .lines()
                                .any(|t| t == "x86_64-unknown-linux-musl")
                        })
            }
            Need::Act => answers("act", &["--version"]),
            Need::Nftables => answers("nft", &["list", "tables"]),
            Need::Sudo => answers("sudo", &["-n", "true"]) && answers("runuser", &["--version"]),
            Need::Namespaces => {
                answers("ip", &["netns", "list"]) && answers("unshare", &["--version"])
            }
        }
    }
}

/// Whether every one of `needs` is there. When some are missing: fails under
/// `BLUEGREEN_REQUIRE_ALL=1`, else prints why the test is skipped and returns false.
pub fn met(test: &str, needs: &[Need]) -> bool {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|n| !n.present())
        .map(|n| n.describe())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test} needs {}", missing.join(", "));
    if std::env::var_os("BLUEGREEN_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("{why}; BLUEGREEN_REQUIRE_ALL=1 forbids skipping it");
    }
    eprintln!("skipped: {why}");
    false
}

/// Skips the calling test, saying why, unless the machine has every need named:
/// `require!(Nginx, Docker);` at the top of a test.
macro_rules! require {
    ($($need:ident),+ $(,)?) => {
        if !$crate::support::require::met(
            concat!(module_path!(), ", line ", line!()),
            &[$($crate::support::require::Need::$need),+],
        ) {
            return;
        }
    };
}
