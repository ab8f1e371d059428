//! Cancelled runs against the real action, sshd, nginx and Docker: the orchestrator gets
//! SIGINT as GitHub's runner sends it to a cancelled step, at each stage of a deploy. Before
//! the switch the host abandons the standby and lets go of the lock at once, and a new run
//! started right away converges; after the switch the host finishes its watch on its own.
//! The site answers throughout.

use std::time::{Duration, Instant};

use bluegreen::lock::AppLock;

use crate::support::{ActRun, Target, Traffic, assert_result, demo_image};

/// Sends SIGINT to the target's orchestrator once `ready` says so; the interrupted run.
fn interrupt_when(t: &Target, inputs: &[(&str, &str)], ready: impl Fn(&Target) -> bool) -> ActRun {
    std::thread::scope(|s| {
        let deploy = s.spawn(|| t.run(inputs));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !(ready(t) && t.orchestrator_pids().len() == 1) {
            assert!(
                Instant::now() < deadline && !deploy.is_finished(),
                "never ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in t.orchestrator_pids() {
            // SAFETY: the orchestrator of this test's own run.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        deploy.join().unwrap()
    })
}

/// What the host wrote into history about each run, oldest first.
fn runs_in_history(t: &Target) -> Vec<String> {
    let history = std::fs::read_to_string(t.state_dir().join("history.jsonl")).unwrap();
    history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "deploy")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether the green slot's app has answered HTTP at all (503 while it is not ready) for
/// half a second, `first` holding when it first did: `docker run` has returned by then,
/// and the standby phase has recorded its image, so the deploy is in its standby health
/// check (the app is ready only after 3 s). The container running alone is seen a moment
/// before `docker run` returns, still in the phase before.
fn green_app_answered_a_while(t: &Target, first: &std::cell::Cell<Option<Instant>>) -> bool {
    let answers = ureq::get(&format!("http://127.0.0.1:{}/health", t.site.green_port))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .is_ok();
    if answers && first.get().is_none() {
        first.set(Some(Instant::now()));
    }
    first
        .get()
        .is_some_and(|at| at.elapsed() > Duration::from_millis(500))
}

#[test]
fn a_cancel_during_the_standby_health_check_abandons_it_and_a_new_run_converges() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("slow", &[("DEMO_READY_AFTER", "3000")]);
    let t = Target::new("e2e-cancel-health");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let traffic = Traffic::start(t.site.nginx.url("/"));
    let started = Instant::now();
    let first_answer = std::cell::Cell::new(None);
    let run = interrupt_when(&t, &[("IMAGE", &image), ("VERSION", "v2")], |t| {
        t.container_running("green") && green_app_answered_a_while(t, &first_answer)
    });
    assert_result(&run, "cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the cancel took {:?}",
        started.elapsed()
    );
    assert!(run.log.contains("cancelled by the runner"), "{}", run.log);
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(!t.container_running("green"), "the standby is abandoned");
    let runs = runs_in_history(&t);
    assert!(
        runs.last()
            .unwrap()
            .starts_with("cancelled at health-check"),
        "{runs:?}"
    );
    let payloads = t.slack.payloads();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    assert!(
        payloads[0]["text"].as_str().unwrap().contains("cancelled"),
        "{:?}",
        payloads[0]
    );
    // The lock is free at once: a new run does not wait.
    let again = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    assert_result(&again, "deployed");
    assert!(!again.log.contains("is locked by"), "{}", again.log);
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    let (_, bad) = traffic.finish();
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn a_cancel_while_waiting_for_the_lock_changes_nothing() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-cancel-lock");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let held = AppLock::acquire(&t.state_dir(), &t.app, "a test", Duration::ZERO).unwrap();
    let started = Instant::now();
    let run = interrupt_when(&t, &[("IMAGE", &image), ("VERSION", "v2")], |t| {
        // This target's host-side run has started (its helper lives under the sshd's
        // directory), and so waits for the lock.
        let helper = t.sshd.dir.as_os_str().as_encoded_bytes();
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            cmdline.starts_with(helper) && cmdline.windows(15).any(|w| w == b"--control-stdin")
        })
    });
    drop(held);
    assert_result(&run, "cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(!t.container_running("green"));
}

#[test]
fn a_cancel_during_the_watch_leaves_the_host_to_finish_it() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-cancel-watch").with_input("MONITOR_DURATION", "10");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let traffic = Traffic::start(t.site.nginx.url("/"));
    let started = Instant::now();
    let run = interrupt_when(&t, &[("IMAGE", &image), ("VERSION", "v2")], |t| {
        std::fs::read_to_string(t.state_dir().join("state.json"))
            .is_ok_and(|text| text.contains("\"active\": \"green\""))
    });
    // The runner reports within its grace period, long before the 10 s watch ends.
    assert_result(&run, "cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(run.log.contains("finishes its watch"), "{}", run.log);
    // A new run started at once waits for the host to finish, then finds v2 live.
    let again = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    assert_result(&again, "unchanged");
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    let runs = runs_in_history(&t);
    assert!(
        runs.len() == 3 && runs[1].starts_with("deployed") && runs[2].starts_with("unchanged"),
        "the host finished the cancelled run's watch: {runs:?}"
    );
    let (_, bad) = traffic.finish();
    assert!(bad.is_empty(), "{bad:?}");
}
