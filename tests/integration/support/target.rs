//! A whole throwaway target host driven through the real action.yml by act: sshd, nginx
//! and Docker on loopback, a unique app name, a Slack stand-in, and the action's binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{NftTable, Site, SlackRecorder, Sshd, current_user, free_port, http_get};

/// One throwaway target host: sshd, nginx, Docker, a unique app name.
pub struct Target {
    pub site: Site,
    pub sshd: Sshd,
    pub app: String,
    bin_dir: tempfile::TempDir,
    pub slack: SlackRecorder,
    /// The service port of the nftables mode.
    pub service_port: u16,
    /// The port of nginx's maintenance server (and setup's placeholder).
    pub maintenance_port: u16,
    /// Inputs every run of this target gets (before a run's own).
    inputs: Vec<(String, String)>,
    _table: NftTable,
}

/// What an act run left: the action's outputs, the job log, act's exit code.
#[derive(Debug)]
pub struct ActRun {
    pub outputs: HashMap<String, String>,
    pub log: String,
}

impl ActRun {
    pub fn output(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }
}

impl Target {
    /// The directory the action takes its binaries from.
    pub fn bin_dir(&self) -> &Path {
        self.bin_dir.path()
    }

    pub fn new(app: &str) -> Target {
        Target::build(app, Site::adopting, |site| {
            Sshd::start(&site.tmp.path().join("sshd"))
        })
    }

    /// A target whose nginx is fresh (nothing of the app in it, no server block): a host
    /// to set up. Every run gets the `listen` input of the server block setup writes.
    pub fn bare(app: &str) -> Target {
        let t = Target::build(app, Site::bare, |site| {
            Sshd::start(&site.tmp.path().join("sshd"))
        });
        let listen = format!("127.0.0.1:{}", t.site.nginx.port);
        t.with_input("LISTEN", &listen)
    }

    /// A target as a new user's host is: Debian's nginx with its default site (see
    /// [`Site::debian`]), nothing of the app yet. Every run gets the `listen` input of the
    /// server block setup writes: the port alone, on every address, as the default site's.
    pub fn debian(app: &str) -> Target {
        let t = Target::build(app, Site::debian, |site| {
            Sshd::start(&site.tmp.path().join("sshd"))
        });
        let listen = t.site.nginx.port.to_string();
        t.with_input("LISTEN", &listen)
    }

    /// A target that `user` (not root, home `home`) logs in to: the target's files can be
    /// read by others (nginx's pid file, sshd's authorized keys), as on a real host.
    pub fn for_user(app: &str, user: &str, home: &Path) -> Target {
        Target::build(app, Site::adopting, |site| {
            use std::os::unix::fs::PermissionsExt;
            let readable = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(site.tmp.path(), readable).unwrap();
            Sshd::start_for_home(&site.tmp.path().join("sshd"), home)
        })
        .with_input("USERNAME", user)
    }

    fn build(app: &str, site: fn(&str) -> Site, sshd: impl FnOnce(&Site) -> Sshd) -> Target {
        let app = format!("{app}-{}", free_port());
        let site = site(&app);
        let sshd = sshd(&site);
        let bin_dir = tempfile::tempdir().unwrap();
        for (name, path) in [
            ("bluegreen", env!("CARGO_BIN_EXE_bluegreen")),
            ("bluegreen-action", env!("CARGO_BIN_EXE_bluegreen-action")),
        ] {
            std::os::unix::fs::symlink(path, bin_dir.path().join(name)).unwrap();
        }
        Target {
            _table: NftTable::of_app(&app),
            site,
            sshd,
            app,
            bin_dir,
            slack: SlackRecorder::start(200, false),
            service_port: free_port(),
            maintenance_port: free_port(),
            inputs: Vec::new(),
        }
    }

    /// The same target, giving every run input `name` (BG_ form) = `value`.
    pub fn with_input(mut self, name: &str, value: &str) -> Target {
        self.inputs.push((name.to_owned(), value.to_owned()));
        self
    }

    fn env(&self) -> Vec<(String, String)> {
        let nginx = &self.site.nginx;
        [
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", self.sshd.port.to_string()),
            ("USERNAME", current_user()),
            ("APP", self.app.clone()),
            ("BLUE_PORT", self.site.blue_port.to_string()),
            ("GREEN_PORT", self.site.green_port.to_string()),
            ("UPSTREAM_FILE", nginx.upstream_file.display().to_string()),
            ("NGINX_TEST_COMMAND", nginx.test_cmd()),
            ("NGINX_RELOAD_COMMAND", nginx.reload_cmd()),
            ("NGINX_PID_FILE", nginx.pid_file().display().to_string()),
            ("VERIFY_URL", nginx.url("/health")),
            ("STATE_DIR", self.site.state_dir.display().to_string()),
            ("PULL", "never".to_owned()),
            ("HEALTH_TIMEOUT", "20".to_owned()),
            ("MONITOR_DURATION", "2".to_owned()),
            ("MAX_P95_MS", super::BUSY_MACHINE_MAX_P95_MS.to_string()),
            ("DRAIN_SECONDS", "0".to_owned()),
            ("STOP_TIMEOUT", "5".to_owned()),
            ("MIN_FREE_DISK_MB", "100".to_owned()),
            // The tests' images share one repository, bluegreen-demo: a clean-up after
            // one test's deploy would remove another's.
            ("KEEP_IMAGES", "0".to_owned()),
            ("NOTIFY_ON", "failure".to_owned()),
            // The default switch mode picks nftables here: each target its own service
            // port, and its boot path in a directory of its own.
            ("SERVICE_PORT", self.service_port.to_string()),
            ("MAINTENANCE_PORT", self.maintenance_port.to_string()),
            (
                "SYSTEMD_UNIT_DIR",
                self.site.tmp.path().join("systemd").display().to_string(),
            ),
            (
                "BOOT_HELPER_DIR",
                self.site
                    .tmp
                    .path()
                    .join("lib/bluegreen")
                    .display()
                    .to_string(),
            ),
            ("LOG_DIR", self.site.log_dir().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(self.inputs.iter().cloned())
        .collect()
    }

    /// Runs the action with the target's inputs plus `extra` (input name in BG_ form).
    pub fn run(&self, extra: &[(&str, &str)]) -> ActRun {
        self.run_with(extra, &self.sshd.known_hosts, &[])
    }

    /// Runs the action with `known_hosts` as that secret and `runner_env` in the runner's
    /// environment.
    pub fn run_with(
        &self,
        extra: &[(&str, &str)],
        known_hosts: &str,
        runner_env: &[(&str, &str)],
    ) -> ActRun {
        let bin_dir = format!("BLUEGREEN_BIN_DIR={}", self.bin_dir.path().display());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        self.act(root, extra, known_hosts, runner_env, &[bin_dir.as_str()])
    }

    /// Runs act in the checkout at `repo`; `raw_env` entries are NAME=VALUE for the runner.
    pub fn act(
        &self,
        repo: &Path,
        extra: &[(&str, &str)],
        known_hosts: &str,
        runner_env: &[(&str, &str)],
        raw_env: &[&str],
    ) -> ActRun {
        let work = tempfile::tempdir().unwrap();
        let output_file = work.path().join("outputs");
        let mut env: HashMap<String, String> = self.env().into_iter().collect();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut cmd = Command::new("act");
        cmd.current_dir(repo)
            .args(["workflow_dispatch", "-W", "tests/e2e/deploy.yml"])
            .args(["-P", "ubuntu-latest=-self-hosted"])
            // The workflow caches nothing; without the cache server act holds no port.
            .arg("--no-cache-server")
            .args(["-s", "SSH_KEY", "-s", "KNOWN_HOSTS", "-s", "SLACK_WEBHOOK"])
            .env("SSH_KEY", &self.sshd.user_key)
            .env("KNOWN_HOSTS", known_hosts)
            .env("SLACK_WEBHOOK", &self.slack.url)
            // A cache of its own, so act runs of parallel tests never share a workspace.
            .env("XDG_CACHE_HOME", work.path().join("cache"))
            .args([
                "--env",
                &format!("BG_OUTPUT_FILE={}", output_file.display()),
            ]);
        for (k, v) in &env {
            cmd.args(["--env", &format!("BG_{k}={v}")]);
        }
        for (k, v) in runner_env {
            cmd.args(["--env", &format!("{k}={v}")]);
        }
        for pair in raw_env {
            cmd.args(["--env", pair]);
        }
        let out = cmd.output().expect("act runs");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "act failed to run the workflow:\n{log}"
        );
        let outputs = std::fs::read_to_string(&output_file)
            .unwrap_or_else(|e| panic!("no outputs ({e}):\n{log}"))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut log = log;
        if log.contains("FAILED connect") {
            // Why sshd turned the connection away is in its own log.
            log.push_str(&format!("\nsshd's log:\n{}", self.sshd.log_tail()));
        }
        ActRun { outputs, log }
    }

    /// The slot and version nginx serves now.
    pub fn live(&self) -> (String, String) {
        let (status, slot, body) = http_get(&self.site.nginx.url("/"));
        assert_eq!(status, 200, "{body}");
        (
            slot,
            body.split_whitespace().nth(1).unwrap_or("").to_owned(),
        )
    }

    pub fn container_running(&self, slot: &str) -> bool {
        let out = Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{.State.Running}}",
                &format!("{}-{slot}", self.app),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    }

    /// The pids of this target's running orchestrators (not their TCP relays).
    pub fn orchestrator_pids(&self) -> Vec<i32> {
        let orchestrator = self.bin_dir().join("bluegreen-action");
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let relay = cmdline.windows(11).any(|w| w == b"--tcp-proxy");
            if cmdline.starts_with(orchestrator.as_os_str().as_encoded_bytes()) && !relay {
                pids.extend(
                    entry
                        .file_name()
                        .to_str()
                        .and_then(|p| p.parse::<i32>().ok()),
                );
            }
        }
        pids
    }

    pub fn state_dir(&self) -> PathBuf {
        self.site.state_dir.clone()
    }

    /// Waits until no host-side run holds the app's lock: a deploy's result comes before
    /// its retire, which the host finishes on its own.
    pub fn settled(&self) {
        let lock = self.state_dir().join("lock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::read_to_string(&lock).is_ok_and(|holder| !holder.is_empty()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the host-side run still holds the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args([
                "rm",
                "--force",
                &format!("{}-blue", self.app),
                &format!("{}-green", self.app),
            ])
            .output();
        // The compose runtime's projects, also when a test failed before its own clean-up.
        for slot in ["blue", "green"] {
            let project = format!("{}-{slot}", self.app);
            let listed = Command::new("docker")
                .args(["ps", "--all", "--quiet", "--filter"])
                .arg(format!("label=com.docker.compose.project={project}"))
                .output();
            let ids = listed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            for id in ids.unwrap_or_default().split_whitespace() {
                let _ = Command::new("docker").args(["rm", "--force", id]).output();
            }
            let network = format!("{project}_default");
            let _ = Command::new("docker")
                .args(["network", "rm", &network])
                .output();
        }
        let _ = Command::new("docker")
            .args(["volume", "rm", &format!("bluegreen-claim-{}", self.app)])
            .output();
    }
}

pub fn assert_result(run: &ActRun, result: &str) {
    assert_eq!(run.output("result"), result, "{}", run.log);
}
