//! Faults and hostile input against the real action, sshd, nginx and Docker: the host-side
//! run killed with SIGKILL at each phase boundary, the orchestrator killed, a dropped SSH
//! connection, a broken nginx config, a squatted port, a Slack endpoint that refuses, fails
//! or hangs, two deploys at once, shell metacharacters in every string that reaches the host,
//! a host printing workflow commands, and secrets in logs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::action::{ActRun, Target, assert_result};
use crate::support::{SlackRecorder, demo_image, http_get};

/// Requests nginx on fresh connections every 20 ms until stopped; remembers every answer
/// that was not a 200.
struct Traffic {
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl Traffic {
    fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let worker = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_idle_connections(0)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let (mut requests, mut bad) = (0, Vec::new());
            // Bounded: at most 10 minutes of requests.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                requests += 1;
                match agent.get(&url).call() {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => bad.push(format!("HTTP {}", r.status())),
                    Err(e) => bad.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (requests, bad)
        });
        Traffic { stop, worker }
    }

    /// Stops and returns (requests made, failed answers).
    fn finish(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.worker.join().unwrap()
    }
}

/// The pid of the host-side run holding the app's lock, once one does.
fn lock_holder(t: &Target) -> Option<i32> {
    let text = std::fs::read_to_string(t.state_dir().join("lock")).ok()?;
    let holder: serde_json::Value = serde_json::from_str(&text).ok()?;
    holder["pid"].as_i64().map(|p| p as i32)
}

/// Where to kill the host-side run.
#[derive(Debug, Clone, Copy)]
enum Point {
    AfterLock,
    AfterStandbyStarted,
    AfterUpstreamWritten,
    DuringMonitor,
}

fn reached(t: &Target, point: Point) -> bool {
    match point {
        Point::AfterLock => true,
        Point::AfterStandbyStarted => t.container_running("green"),
        Point::AfterUpstreamWritten => std::fs::read_to_string(&t.site.nginx.upstream_file)
            .is_ok_and(|text| text.contains(&format!(":{};", t.site.green_port))),
        Point::DuringMonitor => std::fs::read_to_string(t.state_dir().join("state.json"))
            .is_ok_and(|text| text.contains("\"active\": \"green\"")),
    }
}

/// Reruns the v2 deploy after an interrupted one: it must converge on v2 (deploying it, or
/// finding it already live) with no manual cleanup. Returns the rerun.
fn rerun_converges(t: &Target, image: &str) -> ActRun {
    let again = t.run(&[("IMAGE", image), ("VERSION", "v2")]);
    let result = again.output("result").to_owned();
    assert!(
        result == "deployed" || result == "unchanged",
        "{result}: {}",
        again.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    again
}

/// Deploys v1, then deploys v2 and SIGKILLs the host-side run at `point`; checks nginx
/// kept answering throughout and that a rerun converges on v2 without manual cleanup.
fn kill_at(point: Point) {
    let image = demo_image("v", &[]);
    let t = Target::new(&format!("e2e-kill-{}", format!("{point:?}").to_lowercase()));
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let traffic = Traffic::start(t.site.nginx.url("/"));

    let (run, killed) = std::thread::scope(|s| {
        let deploy = s.spawn(|| {
            t.run(&[
                ("IMAGE", &image),
                ("VERSION", "v2"),
                ("MONITOR_DURATION", "6"),
            ])
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut killed = None;
        while killed.is_none() && Instant::now() < deadline && !deploy.is_finished() {
            if let Some(pid) = lock_holder(&t).filter(|_| reached(&t, point)) {
                // SAFETY: the pid is our own host-side run, named in the lock it holds.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = Some(pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (deploy.join().unwrap(), killed)
    });
    assert!(
        killed.is_some(),
        "the run never reached {point:?}: {}",
        run.log
    );
    assert_result(&run, "failed");
    assert!(run.log.contains("ended without a result"), "{}", run.log);
    let (status, _, _) = http_get(&t.site.nginx.url("/"));
    assert_eq!(status, 200);

    let again = rerun_converges(&t, &image);
    let state = std::fs::read_to_string(t.state_dir().join("state.json")).unwrap();
    assert!(state.contains("\"active\": \"green\""), "{state}");
    if matches!(point, Point::AfterUpstreamWritten) {
        // Killed between writing the upstream file and recording state: the rerun has to
        // bring the two back together first.
        assert!(again.log.contains("reconcile"), "{}", again.log);
    }
    let (requests, bad) = traffic.finish();
    assert!(requests > 50, "too little traffic to judge: {requests}");
    assert!(
        bad.is_empty(),
        "{} of {requests} requests failed: {bad:?}",
        bad.len()
    );
}

#[test]
fn sigkill_after_the_lock() {
    kill_at(Point::AfterLock);
}

#[test]
fn sigkill_after_the_standby_started() {
    kill_at(Point::AfterStandbyStarted);
}

#[test]
fn sigkill_after_the_upstream_was_written() {
    kill_at(Point::AfterUpstreamWritten);
}

#[test]
fn sigkill_during_the_watch() {
    kill_at(Point::DuringMonitor);
}

/// Deploys v1, then v2 and calls `interrupt` once the v2 standby runs; checks that the
/// interrupted run failed, that nginx answered throughout, and that a rerun converges on
/// v2 once the host-side run, which finishes on its own, has let go of the lock.
fn interrupt_mid_deploy(label: &str, interrupt: impl Fn(&Target)) -> (Target, ActRun) {
    let image = demo_image("slow", &[("DEMO_READY_AFTER", "2000")]);
    let t = Target::new(label);
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let traffic = Traffic::start(t.site.nginx.url("/"));
    let run = std::thread::scope(|s| {
        let deploy = s.spawn(|| t.run(&[("IMAGE", &image), ("VERSION", "v2")]));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !t.container_running("green") && Instant::now() < deadline && !deploy.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        interrupt(&t);
        deploy.join().unwrap()
    });
    assert_eq!(run.output("outcome"), "failure", "{}", run.log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lock_holder(&t).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    rerun_converges(&t, &image);
    let (_, bad) = traffic.finish();
    assert!(bad.is_empty(), "{bad:?}");
    (t, run)
}

#[test]
fn a_dropped_ssh_connection_leaves_a_healthy_site_and_a_rerun_converges() {
    let (_target, run) = interrupt_mid_deploy("e2e-drop", |t| {
        // End sshd's session processes: the connection drops mid-deploy.
        for pid in bluegreen::nginx::children(t.sshd.pid()) {
            // SAFETY: children of the sshd this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    // The orchestrator survives a dropped connection and reports it.
    assert_result(&run, "failed");
}

#[test]
fn sigkill_of_the_orchestrator_leaves_a_healthy_site_and_a_rerun_converges() {
    let (t, _) = interrupt_mid_deploy("e2e-killrunner", |t| {
        // The runner side dies mid-deploy: the orchestrator this test's act run started.
        let orchestrator = t.bin_dir().join("bluegreen-action");
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline.starts_with(orchestrator.as_os_str().as_encoded_bytes()) {
                let pid: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
                // SAFETY: the orchestrator process of this test's own run.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed += 1;
            }
        }
        assert_eq!(killed, 1, "the orchestrator was not found");
    });
    // Nobody is left to close the killed run's SSH master connection: it closes itself once
    // idle for a minute (the host-side run, which it carried, has ended by now).
    let master = format!("-p {} ", t.sshd.port);
    let deadline = Instant::now() + Duration::from_secs(120);
    let lingering = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.starts_with("ssh ") && cmdline.contains(" -M ") && cmdline.contains(&master)
        })
    };
    while lingering() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        !lingering(),
        "the SSH master connection of the killed run is still up"
    );
}

#[test]
fn a_broken_nginx_config_fails_validation_and_changes_nothing() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-broken-nginx");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let upstream = std::fs::read_to_string(&t.site.nginx.upstream_file).unwrap();
    t.site.nginx.break_config();
    let run = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    assert_result(&run, "failed");
    assert!(run.log.contains("validate failed"), "{}", run.log);
    assert!(run.log.contains("nginx:"), "{}", run.log);
    assert_eq!(
        std::fs::read_to_string(&t.site.nginx.upstream_file).unwrap(),
        upstream
    );
    assert!(!t.container_running("green"));
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
}

#[test]
fn a_squatted_standby_port_fails_validation_naming_the_port() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-squat");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let squatter = std::net::TcpListener::bind(("127.0.0.1", t.site.green_port)).unwrap();
    let run = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    drop(squatter);
    assert_result(&run, "failed");
    assert!(
        run.log.contains(&format!(
            "port {} of standby slot green is held by another process",
            t.site.green_port
        )),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
}

/// A failing deploy with Slack behind `slack`: the result stays `failed`, a warning says
/// the notification failed, and the whole run stays bounded.
fn failed_deploy_with(slack: SlackRecorder, label: &str) -> ActRun {
    let good = demo_image("v", &[]);
    let sick = demo_image("unhealthy", &[("DEMO_HEALTH", "unhealthy")]);
    let mut t = Target::new(label);
    assert_result(&t.run(&[("IMAGE", &good), ("VERSION", "v1")]), "deployed");
    t.slack = slack;
    let started = Instant::now();
    let run = t.run(&[("IMAGE", &sick), ("VERSION", "v2"), ("HEALTH_TIMEOUT", "2")]);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the run took {:?}",
        started.elapsed()
    );
    assert_result(&run, "failed");
    assert!(run.log.contains("Slack notification failed"), "{}", run.log);
    assert!(!run.log.contains("SECRETTOKEN"), "the webhook leaked");
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    run
}

#[test]
fn a_slack_endpoint_answering_500_changes_nothing() {
    let run = failed_deploy_with(SlackRecorder::start(500, false), "e2e-slack500");
    assert!(run.log.contains("HTTP 500"), "{}", run.log);
}

#[test]
fn a_hanging_slack_endpoint_is_given_up_on() {
    let run = failed_deploy_with(SlackRecorder::start(200, true), "e2e-slackhang");
    assert!(run.log.contains("no answer within 10 s"), "{}", run.log);
}

#[test]
fn a_refusing_slack_endpoint_changes_nothing() {
    let run = failed_deploy_with(SlackRecorder::refusing(), "e2e-slackrefuse");
    assert!(run.log.contains("connection failed"), "{}", run.log);
}

#[test]
fn of_two_deploys_at_once_exactly_one_proceeds() {
    let image = demo_image("slow", &[("DEMO_READY_AFTER", "2000")]);
    let t = Target::new("e2e-race");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| t.run(&[("IMAGE", &image), ("VERSION", "v2")]));
        let b = s.spawn(|| t.run(&[("IMAGE", &image), ("VERSION", "v3")]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let results = [a.output("result"), b.output("result")];
    assert!(
        results.contains(&"deployed") && results.contains(&"failed"),
        "{results:?}"
    );
    let loser = if a.output("result") == "failed" {
        &a
    } else {
        &b
    };
    assert!(loser.log.contains("is locked by pid"), "{}", loser.log);
}

#[test]
fn shell_metacharacters_never_run_on_the_host() {
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-meta");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let marker = t.site.tmp.path().join("pwned");
    let m = marker.display();
    let payloads = [
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("; touch {m}"),
        format!("&& touch {m}"),
        format!("'\"; touch {m}; \""),
    ];
    // Inputs refused up front or failing fast on the host: every payload.
    for payload in &payloads {
        for (input, value) in [
            ("IMAGE", payload.clone()),
            ("VERSION", payload.clone()),
            ("ENV_FILE", format!("/tmp/{payload}")),
            ("COMPOSE_FILE", format!("/tmp/{payload}")),
        ] {
            let mut inputs = vec![("IMAGE", image.as_str()), ("VERSION", "v2")];
            inputs.retain(|(k, _)| *k != input);
            inputs.push((input, value.as_str()));
            if input == "COMPOSE_FILE" {
                inputs.push(("RUNTIME", "compose"));
            }
            let run = t.run(&inputs);
            assert!(
                !marker.exists(),
                "{input}={value:?} ran on the host: {}",
                run.log
            );
        }
    }
    // Inputs a deploy carries all the way: every form at once.
    let all = format!("$(touch {m})`touch {m}`;touch{m}&&touch{m}");
    let run = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("DOCKER_ARGS", &format!("--label x={all}")),
        ("HEALTH_PATH", &format!("/health{all}")),
    ]);
    assert!(!marker.exists(), "ran on the host: {}", run.log);
    // The command runtime hands values over in the environment, never in the command.
    let version_echo = "echo \"version is $BLUEGREEN_VERSION\"; exit 1";
    let run = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", version_echo),
        ("VERSION", "v9"),
    ]);
    assert!(run.log.contains("version is v9"), "{}", run.log);
    assert!(!marker.exists());
}

#[test]
fn a_host_cannot_issue_workflow_commands() {
    let t = Target::new("e2e-inject");
    let script = "echo '::set-output name=result::deployed'; echo '::add-mask::v1'; \
                  echo '::stop-commands::x'; echo '::x::'; echo '::error::forged by the host'; exit 1";
    let run = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", script),
        ("VERSION", "v1"),
    ]);
    assert_result(&run, "failed");
    assert!(
        run.log.contains("::set-output name=result::deployed"),
        "the line is shown: {}",
        run.log
    );
    assert!(
        !run.log.contains("❗  ::error::forged by the host"),
        "{}",
        run.log
    );
    assert!(
        !run.log.contains("::set-output:: result=deployed"),
        "{}",
        run.log
    );
}

#[test]
fn credentials_are_private_and_gone_after_the_run() {
    let t = Target::new("e2e-secrets");
    // The deploy command runs on this same machine: it records the mode of the runner's
    // key file for this run (found by its known_hosts naming this sshd) while the deploy
    // is under way.
    let seen = t.site.tmp.path().join("seen");
    let script = format!(
        "for kh in $(grep -rl -- ']:{port} ' /tmp --include=known_hosts 2>/dev/null); do \
           stat -c '%a %n' \"$(dirname \"$kh\")/id\"; done > {seen}; exit 1",
        port = t.sshd.port,
        seen = seen.display()
    );
    let run = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", &script),
        ("VERSION", "v1"),
    ]);
    assert_result(&run, "failed");
    let seen = std::fs::read_to_string(&seen).unwrap();
    let key_files: Vec<&str> = seen.lines().collect();
    assert!(
        !key_files.is_empty(),
        "the key file was not found during the run"
    );
    for line in &key_files {
        let (mode, path) = line.split_once(' ').unwrap();
        assert_eq!(mode, "600", "{path}");
        assert!(
            !std::path::Path::new(path).exists(),
            "{path} is still there after the run"
        );
    }
    let key_body: String = t
        .sshd
        .user_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for line in t.sshd.user_key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!run.log.contains(line), "a line of the key reached the log");
    }
    assert!(!key_body.is_empty());
    assert!(
        !run.log.contains("SECRETTOKEN"),
        "the webhook reached the log"
    );
}

#[test]
fn bad_input_is_refused_before_any_connection() {
    let t = Target::new("e2e-badinput");
    for (input, value) in [
        ("APP", "Bad App"),
        ("PORT", "0"),
        ("BLUE_PORT", "70000"),
        ("HEALTH_TIMEOUT", "-5"),
        ("MAX_ERROR_RATE", "2"),
        ("RUNTIME", "podman"),
        ("RETIRE", "later"),
        ("VERIFY_URL", "localhost/health"),
        ("HEALTHY_THRESHOLD", "0"),
        ("COMMAND", "destroy"),
    ] {
        let run = t.run(&[("IMAGE", "bluegreen-demo:v"), (input, value)]);
        assert_result(&run, "failed");
        let name = input.to_lowercase().replace('_', "-");
        assert!(
            run.log.contains(&format!("`{name}`")),
            "{input}: {}",
            run.log
        );
    }
    assert_eq!(t.sshd.connections(), 0, "bad input must not reach the host");
}
