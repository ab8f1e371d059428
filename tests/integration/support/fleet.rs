//! A throwaway fleet (`scripts/fleet-target`): hosts in network and mount namespaces of
//! their own, each with its sshd, nginx and demo-app slots; and the orchestrator that
//! `action.yml` runs, run against it with the fleet's inputs. Stopped on drop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::http_get;

/// The orchestrator `action.yml` runs.
pub const ORCHESTRATOR: &str = env!("CARGO_BIN_EXE_bluegreen-action");

/// A fleet of hosts, set up and serving v1.
pub struct Fleet {
    dir: PathBuf,
    env: HashMap<String, String>,
    /// How many hosts.
    pub count: usize,
}

/// What an orchestrator run left: its outputs, its job log, the job summary.
pub struct FleetRun {
    pub outputs: HashMap<String, String>,
    pub log: String,
    pub summary: String,
}

impl FleetRun {
    pub fn output(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }
}

impl Fleet {
    /// `count` hosts, set up (`command: setup`) and serving v1, deployed a batch at once.
    pub fn serving_v1(count: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap().keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fleet-target");
        let out = Command::new(&script)
            .args(["start", dir.to_str().unwrap(), &count.to_string()])
            .env("DEMO_APP", env!("CARGO_BIN_EXE_demo-app"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleet-target start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let fleet = Fleet { dir, env, count };
        let setup = fleet.run(&[("COMMAND", "setup"), ("BATCH_SIZE", "100%")]);
        assert_eq!(
            setup.output("result"),
            "changed",
            "{}\n{}\n{}",
            setup.log,
            setup.summary,
            fleet.sshd_logs()
        );
        let v1 = fleet.run(&[("BATCH_SIZE", "100%")]);
        assert_eq!(
            v1.output("result"),
            "deployed",
            "{}\n{}\n{}",
            v1.log,
            v1.summary,
            fleet.sshd_logs()
        );
        for n in 1..=count {
            assert_eq!(fleet.serving(n), ("blue".into(), "v1".into()));
        }
        fleet
    }

    /// Host `n`'s address, as the `host` input names it.
    pub fn host(&self, n: usize) -> String {
        self.env["BG_HOST"]
            .split(',')
            .nth(n - 1)
            .unwrap()
            .to_owned()
    }

    /// Runs the orchestrator with the fleet's inputs and `extra` (input names in BG_ form).
    pub fn run(&self, extra: &[(&str, &str)]) -> FleetRun {
        let child = self.spawn(extra, &self.dir.join("log"));
        let out = child.wait_with_output().unwrap();
        self.finished(out.status, &self.dir.join("log"))
    }

    /// Starts the orchestrator like [`Fleet::run`], its job log going to `log`.
    pub fn spawn(&self, extra: &[(&str, &str)], log: &Path) -> std::process::Child {
        let mut inputs: HashMap<String, String> = self
            .env
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("BG_")?.to_owned(), v.clone())))
            .collect();
        inputs.insert(
            "MAX_P95_MS".into(),
            super::BUSY_MACHINE_MAX_P95_MS.to_string(),
        );
        for (k, v) in extra {
            inputs.insert((*k).to_owned(), (*v).to_owned());
        }
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap();
        let _ = std::fs::remove_file(self.dir.join("outputs"));
        let _ = std::fs::remove_file(self.dir.join("summary.md"));
        let log_file = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(ORCHESTRATOR);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INPUT_SSH_KEY", read("ssh_key"))
            .env("INPUT_KNOWN_HOSTS", read("known_hosts"))
            .env("RUNNER_TEMP", &self.dir)
            .env("BLUEGREEN_HELPERS", env!("CARGO_BIN_EXE_bluegreen"))
            .env("GITHUB_OUTPUT", self.dir.join("outputs"))
            .env("GITHUB_STEP_SUMMARY", self.dir.join("summary.md"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        for (k, v) in inputs {
            cmd.env(format!("INPUT_{k}"), v);
        }
        cmd.spawn().unwrap()
    }

    /// What a run that ended with `status`, its job log in `log`, left.
    pub fn finished(&self, status: std::process::ExitStatus, log: &Path) -> FleetRun {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let outputs: HashMap<String, String> = std::fs::read_to_string(self.dir.join("outputs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(
            status.code().is_some(),
            "the orchestrator was killed: {log}"
        );
        FleetRun {
            outputs,
            log,
            summary: std::fs::read_to_string(self.dir.join("summary.md")).unwrap_or_default(),
        }
    }

    /// The slot and version host `n` serves now, through its nginx.
    pub fn serving(&self, n: usize) -> (String, String) {
        let (status, slot, body) = http_get(&self.env[&format!("WEB_URL_{n}")]);
        assert_eq!(status, 200, "host {n}: {body}");
        (
            slot,
            body.split_whitespace().nth(1).unwrap_or("").to_owned(),
        )
    }

    /// Host `n`'s next slot runs the demo app with `args` too (a fault).
    pub fn break_next_slot(&self, n: usize, args: &str) {
        std::fs::write(self.dir.join(format!("h{n}/demo-args")), args).unwrap();
    }

    /// Ends every sshd process of host `n`: its listener and the connections it serves.
    pub fn kill_sshd(&self, n: usize) {
        let ns = &self.env[&format!("NETNS_{n}")];
        let pids = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sshd" {
                // SAFETY: kill with a pid of the fleet's own namespace and a valid signal.
                unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
            }
        }
    }

    /// The end of every host's sshd log, for a failure's message.
    pub fn sshd_logs(&self) -> String {
        (1..=self.count)
            .map(|n| {
                let log = std::fs::read_to_string(self.dir.join(format!("h{n}/sshd.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("sshd of host {n}:\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Host `n`'s history, one line per event.
    pub fn history(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("h{n}/state/history.jsonl")))
            .unwrap_or_default()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // A failed test shows what the hosts' sshd saw before their files go.
        if std::thread::panicking() {
            eprintln!("{}", self.sshd_logs());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fleet-target");
        let _ = Command::new(script)
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}
