//! A second Docker daemon of the test's own, and an app's nftables table removed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A second Docker daemon of the test's own (own data root and socket, in a network
/// namespace of its own so it cannot touch the host's networks), for a runner whose images
/// differ from the host's. Only for images: it runs no containers. Stopped on drop.
pub struct SecondDocker {
    child: Child,
    host: String,
    netns: String,
}

impl SecondDocker {
    /// Starts dockerd with its files in `dir` and waits until it answers.
    pub fn start(dir: &Path) -> SecondDocker {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let socket = dir.join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let netns = format!("bg-docker-{}", std::process::id());
        let created = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap();
        assert!(created.success(), "cannot create network namespace {netns}");
        // nsenter joins only the network namespace (`ip netns exec` would also hide the
        // cgroup mounts dockerd needs).
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("/usr/sbin/dockerd")
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args([
                "-H",
                &host,
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("dockerd starts");
        let second = SecondDocker { child, host, netns };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .env("DOCKER_HOST", &second.host)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return second;
            }
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its DOCKER_HOST value.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for SecondDocker {
    fn drop(&mut self) {
        // SAFETY: kill with a pid we spawned and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .status();
    }
}

/// The nftables table of an app's switch, removed when dropped.
pub struct NftTable(String);

impl NftTable {
    /// The table switch-traffic uses for `app`.
    pub fn of_app(app: &str) -> NftTable {
        NftTable(format!("bluegreen_{}", app.replace('-', "_")))
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.0])
            .status();
    }
}
