//! Faults against the real action, sshd, nginx and Docker: the host-side run killed with
//! SIGKILL at each phase boundary, the orchestrator killed, a dropped SSH connection, a
//! broken nginx config, a squatted port, a Slack endpoint that refuses, fails or hangs, and
//! two deploys at once. Hostile input is in `hostile.rs`.

use std::time::{Duration, Instant};

use crate::support::{ActRun, Target, Traffic, assert_result};
use crate::support::{SlackRecorder, demo_image, http_get};

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
    /// Reload mode: the upstream file names the new slot, state does not yet.
    AfterUpstreamWritten,
    /// nftables mode: the rule leads to the new slot, state does not say so yet.
    AfterRuleMoved,
    DuringMonitor,
}

fn reached(t: &Target, point: Point) -> bool {
    match point {
        Point::AfterLock => true,
        Point::AfterStandbyStarted => t.container_running("green"),
        Point::AfterUpstreamWritten => std::fs::read_to_string(&t.site.nginx.upstream_file)
            .is_ok_and(|text| text.contains(&format!(":{};", t.site.green_port))),
        Point::AfterRuleMoved => std::process::Command::new("nft")
            .args([
                "list",
                "table",
                "ip",
                &format!("bluegreen_{}", t.app.replace('-', "_")),
            ])
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .contains(&format!("dnat to 127.0.0.1:{}", t.site.green_port))
            }),
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
    let t = match point {
        Point::AfterUpstreamWritten => t.with_input("SWITCH_MODE", "reload"),
        _ => t,
    };
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
    assert!(
        run.log
            .lines()
            .any(|l| l.contains("::error::") && l.contains("ended without a result")),
        "{}",
        run.log
    );
    let (status, _, _) = http_get(&t.site.nginx.url("/"));
    assert_eq!(status, 200);

    let again = rerun_converges(&t, &image);
    let state = std::fs::read_to_string(t.state_dir().join("state.json")).unwrap();
    assert!(state.contains("\"active\": \"green\""), "{state}");
    if matches!(point, Point::AfterUpstreamWritten | Point::AfterRuleMoved) {
        // Killed between moving traffic and recording state: the rerun has to bring the
        // two back together first.
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
    require!(Root, Nginx, Sshd, Docker, Act);
    kill_at(Point::AfterLock);
}

#[test]
fn sigkill_after_the_standby_started() {
    require!(Root, Nginx, Sshd, Docker, Act);
    kill_at(Point::AfterStandbyStarted);
}

#[test]
fn sigkill_after_the_upstream_was_written() {
    require!(Root, Nginx, Sshd, Docker, Act);
    kill_at(Point::AfterUpstreamWritten);
}

#[test]
fn sigkill_after_the_rule_moved() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    kill_at(Point::AfterRuleMoved);
}

#[test]
fn sigkill_during_the_watch() {
    require!(Root, Nginx, Sshd, Docker, Act);
    kill_at(Point::DuringMonitor);
}

/// Deploys v1, then v2 and calls `interrupt` once the v2 standby runs; checks that the
/// interrupted run failed, that the host-side run, seeing its connection close before the
/// switch, abandoned the standby and let go of the lock, that nginx answered throughout,
/// and that a rerun converges on v2.
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
    // The host noticed the closed connection before the switch: it abandoned the standby
    // instead of finishing a deploy nobody watches.
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(!t.container_running("green"), "the standby was abandoned");
    rerun_converges(&t, &image);
    let (_, bad) = traffic.finish();
    assert!(bad.is_empty(), "{bad:?}");
    (t, run)
}

#[test]
fn a_dropped_ssh_connection_leaves_a_healthy_site_and_a_rerun_converges() {
    require!(Root, Nginx, Sshd, Docker, Act);
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
    require!(Root, Nginx, Sshd, Docker, Act);
    let (t, _) = interrupt_mid_deploy("e2e-killrunner", |t| {
        // The runner side dies mid-deploy: the orchestrator this test's act run started.
        let pids = t.orchestrator_pids();
        assert_eq!(pids.len(), 1, "the orchestrator was not found");
        // SAFETY: the orchestrator process of this test's own run.
        unsafe { libc::kill(pids[0], libc::SIGKILL) };
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
    require!(Root, Nginx, Sshd, Docker, Act);
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
    require!(Root, Nginx, Sshd, Docker, Act);
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
    require!(Root, Nginx, Sshd, Docker, Act);
    let run = failed_deploy_with(SlackRecorder::start(500, false), "e2e-slack500");
    assert!(run.log.contains("HTTP 500"), "{}", run.log);
}

#[test]
fn a_hanging_slack_endpoint_is_given_up_on() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let run = failed_deploy_with(SlackRecorder::start(200, true), "e2e-slackhang");
    assert!(run.log.contains("no answer within 10 s"), "{}", run.log);
}

#[test]
fn a_refusing_slack_endpoint_changes_nothing() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let run = failed_deploy_with(SlackRecorder::refusing(), "e2e-slackrefuse");
    assert!(run.log.contains("connection failed"), "{}", run.log);
}

#[test]
fn of_two_deploys_at_once_one_waits_for_the_other_and_both_go_live_in_turn() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("slow", &[("DEMO_READY_AFTER", "2000")]);
    let t = Target::new("e2e-race");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| t.run(&[("IMAGE", &image), ("VERSION", "v2")]));
        let b = s.spawn(|| t.run(&[("IMAGE", &image), ("VERSION", "v3")]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_result(&a, "deployed");
    assert_result(&b, "deployed");
    // Exactly one of them waited, naming the other as the holder of the lock.
    let waited: Vec<&ActRun> = [&a, &b]
        .into_iter()
        .filter(|r| r.log.contains("is locked by pid"))
        .collect();
    assert_eq!(waited.len(), 1, "{}\n{}", a.log, b.log);
    // The one that waited went live last.
    let last = waited[0].output("version").to_owned();
    assert_eq!(t.live().1, last);
}
