//! End-to-end tests of the real action.yml, run by act on this machine (self-hosted
//! platform) against a real sshd, nginx and Docker on loopback, with an HTTP server of the
//! test's own in place of Slack.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{
    NftTable, SecondDocker, Site, SlackRecorder, Sshd, current_user, demo_image, free_port,
    http_get,
};

/// One throwaway target host: sshd, nginx, Docker, a unique app name.
pub(crate) struct Target {
    pub(crate) site: Site,
    pub(crate) sshd: Sshd,
    pub(crate) app: String,
    bin_dir: tempfile::TempDir,
    pub(crate) slack: SlackRecorder,
}

/// What an act run left: the action's outputs, the job log, act's exit code.
#[derive(Debug)]
pub(crate) struct ActRun {
    pub(crate) outputs: HashMap<String, String>,
    pub(crate) log: String,
}

impl ActRun {
    pub(crate) fn output(&self, name: &str) -> &str {
        self.outputs.get(name).map(String::as_str).unwrap_or("")
    }
}

impl Target {
    /// The directory the action takes its binaries from.
    pub(crate) fn bin_dir(&self) -> &Path {
        self.bin_dir.path()
    }

    pub(crate) fn new(app: &str) -> Target {
        let app = format!("{app}-{}", free_port());
        let site = Site::adopting(&app);
        let sshd = Sshd::start(&site.tmp.path().join("sshd"));
        let bin_dir = tempfile::tempdir().unwrap();
        for (name, path) in [
            ("bluegreen", env!("CARGO_BIN_EXE_bluegreen")),
            ("bluegreen-action", env!("CARGO_BIN_EXE_bluegreen-action")),
        ] {
            std::os::unix::fs::symlink(path, bin_dir.path().join(name)).unwrap();
        }
        Target {
            site,
            sshd,
            app,
            bin_dir,
            slack: SlackRecorder::start(200, false),
        }
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
            ("DRAIN_SECONDS", "0".to_owned()),
            ("STOP_TIMEOUT", "5".to_owned()),
            ("MIN_FREE_DISK_MB", "100".to_owned()),
            ("NOTIFY_ON", "failure".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Runs the action with the target's inputs plus `extra` (input name in BG_ form).
    pub(crate) fn run(&self, extra: &[(&str, &str)]) -> ActRun {
        self.run_with(extra, &self.sshd.known_hosts, &[])
    }

    /// Runs the action with `known_hosts` as that secret and `runner_env` in the runner's
    /// environment.
    pub(crate) fn run_with(
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
    fn act(
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
        ActRun { outputs, log }
    }

    /// The slot and version nginx serves now.
    pub(crate) fn live(&self) -> (String, String) {
        let (status, slot, body) = http_get(&self.site.nginx.url("/"));
        assert_eq!(status, 200, "{body}");
        (
            slot,
            body.split_whitespace().nth(1).unwrap_or("").to_owned(),
        )
    }

    pub(crate) fn container_running(&self, slot: &str) -> bool {
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

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.site.state_dir.clone()
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
    }
}

pub(crate) fn assert_result(run: &ActRun, result: &str) {
    assert_eq!(run.output("result"), result, "{}", run.log);
}

#[test]
fn deploys_to_blue_then_green_then_blue() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-cycle");
    let connections_before = t.sshd.connections();

    let first = t.run(&[("IMAGE", &image), ("VERSION", "v1")]);
    assert_result(&first, "deployed");
    assert_eq!(first.output("active-slot"), "blue");
    assert_eq!(first.output("previous-slot"), "");
    assert_eq!(first.output("version"), "v1");
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(first.log.contains("uploaded and verified"), "{}", first.log);
    assert_eq!(
        t.sshd.connections() - connections_before,
        1,
        "one SSH connection per deploy"
    );

    let second = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    assert_result(&second, "deployed");
    assert_eq!(
        (second.output("active-slot"), second.output("previous-slot")),
        ("green", "blue")
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    assert!(second.log.contains("host already has"), "{}", second.log);
    assert!(!t.container_running("blue"), "the old slot is retired");
    assert!(second.output("duration-seconds").parse::<f64>().unwrap() > 0.0);

    let third = t.run(&[("IMAGE", &image), ("VERSION", "v3")]);
    assert_result(&third, "deployed");
    assert_eq!(
        (third.output("active-slot"), third.output("previous-slot")),
        ("blue", "green")
    );
    assert_eq!(t.live(), ("blue".into(), "v3".into()));

    // The same version again changes nothing.
    let again = t.run(&[("IMAGE", &image), ("VERSION", "v3")]);
    assert_result(&again, "unchanged");
    assert_eq!(t.live(), ("blue".into(), "v3".into()));
    assert!(t.slack.payloads().is_empty(), "no Slack message on success");
}

#[test]
fn a_standby_that_never_gets_healthy_is_not_switched_to() {
    let good = demo_image("v", &[]);
    let sick = demo_image("unhealthy", &[("DEMO_HEALTH", "unhealthy")]);
    let t = Target::new("e2e-sick");
    assert_result(&t.run(&[("IMAGE", &good), ("VERSION", "v1")]), "deployed");

    let run = t.run(&[("IMAGE", &sick), ("VERSION", "v2"), ("HEALTH_TIMEOUT", "3")]);
    assert_result(&run, "failed");
    assert_eq!(run.output("outcome"), "failure");
    assert_eq!(run.output("active-slot"), "blue");
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(
        !t.container_running("green"),
        "the failed standby is stopped"
    );
    assert!(run.log.contains("log of the failed slot"), "{}", run.log);

    let payloads = t.slack.payloads();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let text = payloads[0].to_string();
    assert!(
        payloads[0]["text"].as_str().unwrap().contains("failed"),
        "{text}"
    );
    assert!(text.contains("health-check standby"), "{text}");
    assert!(text.contains(&t.app), "{text}");
    assert!(
        !run.log.contains("SECRETTOKEN"),
        "the webhook leaked into the log"
    );
}

#[test]
fn a_release_failing_after_the_switch_is_rolled_back() {
    let good = demo_image("v", &[]);
    let broken = demo_image("broken", &[("DEMO_ERROR_RATE", "1")]);
    let t = Target::new("e2e-broken");
    assert_result(&t.run(&[("IMAGE", &good), ("VERSION", "v1")]), "deployed");

    let monitor_url = t.site.nginx.url("/");
    let run = t.run(&[
        ("IMAGE", &broken),
        ("VERSION", "v2"),
        ("MONITOR_URL", &monitor_url),
        ("MONITOR_DURATION", "10"),
    ]);
    assert_result(&run, "rolled-back");
    assert_eq!(
        (run.output("active-slot"), run.output("previous-slot")),
        ("blue", "green")
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    let history = std::fs::read_to_string(t.state_dir().join("history.jsonl")).unwrap();
    assert!(history.contains("\"event\":\"rollback\""), "{history}");
    let payloads = t.slack.payloads();
    assert_eq!(payloads.len(), 1);
    assert!(
        payloads[0]["text"]
            .as_str()
            .unwrap()
            .contains("rolled-back"),
        "{:?}",
        payloads[0]
    );
}

#[test]
fn the_rollback_command_goes_back_to_the_previous_slot() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-rollback");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v2")]), "deployed");
    assert!(!t.container_running("blue"));

    let run = t.run(&[("COMMAND", "rollback")]);
    assert_result(&run, "rolled-back");
    assert_eq!(run.output("outcome"), "success", "{}", run.log);
    assert_eq!(
        (run.output("active-slot"), run.output("previous-slot")),
        ("blue", "green")
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(t.slack.payloads().is_empty());

    let status = t.run(&[("COMMAND", "status")]);
    assert_result(&status, "unchanged");
    assert!(
        status.log.contains("active blue, previous green"),
        "{}",
        status.log
    );
}

#[test]
fn a_dry_run_changes_nothing() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-dry");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let upstream = std::fs::read_to_string(&t.site.nginx.upstream_file).unwrap();
    let state = std::fs::read_to_string(t.state_dir().join("state.json")).unwrap();

    let run = t.run(&[("IMAGE", &image), ("VERSION", "v2"), ("DRY_RUN", "true")]);
    assert_result(&run, "unchanged");
    assert!(
        run.log
            .contains(&format!("+    server 127.0.0.1:{};", t.site.green_port)),
        "{}",
        run.log
    );
    assert!(run.log.contains("plan: start"), "{}", run.log);
    assert_eq!(
        std::fs::read_to_string(&t.site.nginx.upstream_file).unwrap(),
        upstream
    );
    assert_eq!(
        std::fs::read_to_string(t.state_dir().join("state.json")).unwrap(),
        state
    );
    assert!(!t.container_running("green"));
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
}

#[test]
fn a_second_deploy_while_one_holds_the_lock_reports_the_holder() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-lock");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let held = bluegreen::lock::AppLock::acquire(
        &t.state_dir(),
        &t.app,
        "deploy v9 by someone else",
        std::time::Duration::ZERO,
    )
    .unwrap();
    let run = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    drop(held);
    assert_result(&run, "failed");
    assert!(run.log.contains("deploy v9 by someone else"), "{}", run.log);
    assert!(
        run.log.contains(&format!("pid {}", std::process::id())),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
}

#[test]
fn a_host_key_that_does_not_match_is_refused_before_anything_is_sent() {
    let t = Target::new("e2e-hostkey");
    let other = Sshd::start(&t.site.tmp.path().join("other-sshd"));
    let wrong = other
        .known_hosts
        .replacen(&other.port.to_string(), &t.sshd.port.to_string(), 1);
    let run = t.run_with(
        &[("IMAGE", "bluegreen-demo:v"), ("VERSION", "v1")],
        &wrong,
        &[],
    );
    assert_result(&run, "failed");
    assert!(run.log.contains("cannot connect"), "{}", run.log);
    assert_eq!(t.sshd.connections(), 0);
    assert!(!t.state_dir().exists());
}

#[test]
fn the_command_runtime_needs_no_docker() {
    let t = Target::new("e2e-command");
    let pids = t.site.tmp.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    // Starts the demo app for the slot in the background and stops it by its pid file.
    let script = format!(
        "pidfile={pids}/$BLUEGREEN_SLOT.pid; \
         if [ -f \"$pidfile\" ]; then kill \"$(cat \"$pidfile\")\" 2>/dev/null; rm -f \"$pidfile\"; fi; \
         if [ \"$BLUEGREEN_ACTION\" = start ]; then \
           {app} --listen 127.0.0.1:$BLUEGREEN_PORT --app-version \"$BLUEGREEN_VERSION\" </dev/null >/dev/null 2>&1 & \
           echo $! > \"$pidfile\"; \
         fi",
        pids = pids.display(),
        app = env!("CARGO_BIN_EXE_demo-app"),
    );
    let first = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", &script),
        ("VERSION", "c1"),
    ]);
    assert_result(&first, "deployed");
    assert_eq!(t.live(), ("blue".into(), "c1".into()));
    let second = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", &script),
        ("VERSION", "c2"),
    ]);
    assert_result(&second, "deployed");
    assert_eq!(t.live(), ("green".into(), "c2".into()));
    assert!(!pids.join("blue.pid").exists(), "the old slot was stopped");
    let green_pid = std::fs::read_to_string(pids.join("green.pid")).unwrap();
    let _ = Command::new("kill").arg(green_pid.trim()).status();
}

#[test]
fn the_compose_runtime_runs_one_project_per_slot() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-compose");
    let compose = t.site.tmp.path().join("compose.yml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: ${BLUEGREEN_IMAGE}\n    ports:\n      - \"127.0.0.1:${BLUEGREEN_PORT}:8080\"\n    environment:\n      BLUEGREEN_SLOT: ${BLUEGREEN_SLOT}\n      BLUEGREEN_VERSION: ${BLUEGREEN_VERSION}\n",
    )
    .unwrap();
    let compose = compose.display().to_string();
    let inputs = |version: &'static str| {
        vec![
            ("RUNTIME", "compose"),
            ("COMPOSE_FILE", compose.as_str()),
            ("IMAGE", image.as_str()),
            ("VERSION", version),
        ]
    };
    let first = t.run(&inputs("k1"));
    assert_result(&first, "deployed");
    assert_eq!(t.live(), ("blue".into(), "k1".into()));
    let second = t.run(&inputs("k2"));
    assert_result(&second, "deployed");
    assert_eq!(t.live(), ("green".into(), "k2".into()));
    for slot in ["blue", "green"] {
        let _ = Command::new("docker-compose")
            .args([
                "-p",
                &format!("{}-{slot}", t.app),
                "-f",
                &compose,
                "down",
                "--timeout",
                "1",
            ])
            .env("BLUEGREEN_IMAGE", &image)
            .env("BLUEGREEN_PORT", "1")
            .output();
    }
}

#[test]
fn image_transfer_over_ssh_reaches_a_host_without_the_image() {
    let t = Target::new("e2e-transfer");
    // The runner's Docker is a second daemon holding the image; the host's lacks it.
    let runner_docker = SecondDocker::start(&t.site.tmp.path().join("docker"));
    let tag = format!("bluegreen-demo:transfer-{}", t.sshd.port);
    let built = demo_image("v", &[]);
    let docker = |args: &[&str], host: Option<&str>| {
        let mut cmd = Command::new("docker");
        cmd.args(args);
        if let Some(h) = host {
            cmd.env("DOCKER_HOST", h);
        }
        cmd.output().unwrap()
    };
    assert!(docker(&["tag", &built, &tag], None).status.success());
    let saved = docker(&["save", &tag], None).stdout;
    let mut load = Command::new("docker")
        .args(["load", "--quiet"])
        .env("DOCKER_HOST", runner_docker.host())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &saved).unwrap();
    assert!(load.wait().unwrap().success());
    assert!(docker(&["rmi", &tag], None).status.success());
    assert!(!docker(&["image", "inspect", &tag], None).status.success());

    let runner_env = [("DOCKER_HOST", runner_docker.host())];
    let inputs = [
        ("IMAGE", tag.as_str()),
        ("VERSION", "t1"),
        ("IMAGE_TRANSFER", "ssh"),
    ];
    let run = t.run_with(&inputs, &t.sshd.known_hosts, &runner_env);
    assert_result(&run, "deployed");
    assert!(run.log.contains("over SSH"), "{}", run.log);
    assert!(
        docker(&["image", "inspect", &tag], None).status.success(),
        "the host has the image now"
    );
    assert_eq!(t.live(), ("blue".into(), "t1".into()));

    let again = t.run_with(
        &[
            ("IMAGE", tag.as_str()),
            ("VERSION", "t2"),
            ("IMAGE_TRANSFER", "ssh"),
        ],
        &t.sshd.known_hosts,
        &runner_env,
    );
    assert_result(&again, "deployed");
    assert!(again.log.contains("host already has"), "{}", again.log);
    let _ = docker(
        &[
            "rm",
            "--force",
            &format!("{}-blue", t.app),
            &format!("{}-green", t.app),
        ],
        None,
    );
    let _ = docker(&["rmi", &tag], None);
}

#[test]
fn deploys_through_a_proxy_jump_bastion() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-jump");
    // The bastion is a second sshd accepting the same key; both host keys are known.
    let bastion = Sshd::start_with_key(
        &t.site.tmp.path().join("bastion"),
        &t.sshd.dir.join("user_key.pub"),
    );
    let known = format!("{}\n{}", t.sshd.known_hosts, bastion.known_hosts);
    let jump = format!("{}@127.0.0.1:{}", current_user(), bastion.port);
    let run = t.run_with(
        &[("IMAGE", &image), ("VERSION", "j1"), ("PROXY_JUMP", &jump)],
        &known,
        &[],
    );
    assert_result(&run, "deployed");
    let bastion_log = std::fs::read_to_string(bastion.dir.join("sshd.log")).unwrap();
    assert_eq!(
        bastion.connections(),
        1,
        "no connection through the bastion:\n{bastion_log}\n{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "j1".into()));
}

/// A copy of this checkout (tracked and untracked files, as they are now) in a new git
/// repository, so a test can commit release sums into it.
fn checkout_copy(dest: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .output()
        .unwrap();
    for name in String::from_utf8(files.stdout)
        .unwrap()
        .split('\0')
        .filter(|n| !n.is_empty())
    {
        let from = root.join(name);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    for args in [
        &["init", "--quiet"][..],
        &["add", "--all"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "--quiet",
            "-m",
            "copy",
        ],
    ] {
        assert!(
            Command::new("git")
                .current_dir(dest)
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
}

/// A release archive for this machine holding the test build of both binaries.
fn release_archive(dir: &Path, name: &str) -> Vec<u8> {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_bluegreen"), stage.join("bluegreen")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_bluegreen-action"),
        stage.join("bluegreen-action"),
    )
    .unwrap();
    let archive = dir.join(name);
    let status = Command::new("tar")
        .args(["-czf"])
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .args(["bluegreen", "bluegreen-action"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(archive).unwrap()
}

/// Serves `body` at `/PATH` and 404 elsewhere, standing in for the release host.
fn serve_file(path: String, body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let wanted = request.split_whitespace().nth(1) == Some(path.as_str());
            let (status, body) = if wanted {
                ("200 OK", &body[..])
            } else {
                ("404 Not Found", &b""[..])
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    base
}

/// Runs the action from a checkout whose committed sums match the genuine archive, while
/// the release host serves `served` (the genuine archive or a tampered one).
fn run_released(t: &Target, tamper: bool) -> ActRun {
    let repo = t.site.tmp.path().join("repo");
    checkout_copy(&repo);
    let version = std::fs::read_to_string(repo.join("release/VERSION"))
        .unwrap()
        .trim()
        .to_owned();
    let name = format!(
        "bluegreen-v{version}-{}-unknown-linux-musl.tar.gz",
        std::env::consts::ARCH
    );
    let genuine = release_archive(t.site.tmp.path(), &name);
    let sum = bluegreen::action::ship::sha256_hex(&genuine);
    std::fs::write(
        repo.join(format!("release/v{version}.sha256")),
        format!("{sum}  {name}\n"),
    )
    .unwrap();
    let mut served = genuine;
    if tamper {
        let last = served.len() - 1;
        served[last] ^= 0xff;
    }
    let base = serve_file(format!("/v{version}/{name}"), served);
    let image = demo_image("v", &[]);
    t.act(
        &repo,
        &[("IMAGE", &image), ("VERSION", "r1")],
        &t.sshd.known_hosts,
        &[("BLUEGREEN_RELEASE_BASE_URL", &base)],
        &[],
    )
}

#[test]
fn a_release_archive_matching_the_committed_sum_is_used() {
    let t = Target::new("e2e-release");
    let run = run_released(&t, false);
    assert_result(&run, "deployed");
    assert!(run.log.contains("downloading bluegreen-v"), "{}", run.log);
    assert_eq!(t.live(), ("blue".into(), "r1".into()));
}

#[test]
fn a_tampered_release_archive_is_refused() {
    let t = Target::new("e2e-tampered");
    let run = run_released(&t, true);
    assert_result(&run, "failed");
    assert!(run.log.contains("checksum mismatch"), "{}", run.log);
    assert!(run.log.contains("refusing to use it"), "{}", run.log);
    assert_eq!(t.sshd.connections(), 0, "nothing reached the host");
    assert!(!t.state_dir().exists());
    let payloads = t.slack.payloads();
    assert_eq!(
        payloads.len(),
        1,
        "the failure before the deploy is notified"
    );
    assert!(
        payloads[0]["text"]
            .as_str()
            .unwrap()
            .contains("could not start"),
        "{:?}",
        payloads[0]
    );
}

#[test]
fn the_nftables_switch_mode_keeps_client_connections_open() {
    use std::io::{BufRead, BufReader, Read, Write};
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-nft");
    let _table = NftTable::of_app(&t.app);
    let service_port = free_port().to_string();
    let inputs = |version: &'static str| {
        vec![
            ("IMAGE", image.as_str()),
            ("VERSION", version),
            ("SWITCH_MODE", "nftables"),
            ("SERVICE_PORT", service_port.as_str()),
        ]
    };
    assert_result(&t.run(&inputs("n1")), "deployed");
    let mut conn =
        BufReader::new(std::net::TcpStream::connect(("127.0.0.1", t.site.nginx.port)).unwrap());
    let mut ask = || {
        conn.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let mut body = vec![0; length];
        conn.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    };
    assert_eq!(ask().trim(), "demo-app n1 (blue)");
    assert_result(&t.run(&inputs("n2")), "deployed");
    assert_eq!(
        ask().trim(),
        "demo-app n2 (green)",
        "the same client connection reaches the new slot"
    );
    assert_eq!(t.live(), ("green".into(), "n2".into()));
}

#[test]
fn insecure_mode_connects_without_known_hosts_and_says_so() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-insecure");
    let run = t.run_with(
        &[
            ("IMAGE", &image),
            ("VERSION", "i1"),
            ("INSECURE_SKIP_HOST_KEY_CHECK", "true"),
        ],
        "ignored in insecure mode",
        &[],
    );
    assert_result(&run, "deployed");
    assert!(
        run.log.contains("host's identity is not verified"),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "i1".into()));
}
