//! End-to-end tests of the real action.yml, run by act on this machine (self-hosted
//! platform) against a real sshd, nginx and Docker on loopback, with an HTTP server of the
//! test's own in place of Slack.

use std::process::Command;

use crate::support::{Demo, NftTable, Target, assert_result, demo_image, free_port};

#[test]
fn deploys_to_blue_then_green_then_blue() {
    require!(Root, Nginx, Sshd, Docker, Act);
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
        first.log.matches("ship helpers (").count(),
        1,
        "the upload is the one ship-helpers phase: {}",
        first.log
    );
    // The default switch mode, on a host where nft is permitted.
    assert_eq!(first.output("switch-mode"), "nftables");
    assert!(
        first
            .log
            .contains("switch mode: nftables (auto: `nft list tables` answers)"),
        "{}",
        first.log
    );
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
    assert!(
        !second.log.contains("uploaded and verified"),
        "the host keeps the helper: {}",
        second.log
    );
    assert!(!second.log.contains("ship helpers ("), "{}", second.log);
    assert!(
        second.log.contains("retire: blue is stopped"),
        "{}",
        second.log
    );
    t.settled();
    assert!(!t.container_running("blue"), "the old slot is retired");
    let unit = t
        .site
        .tmp
        .path()
        .join("systemd")
        .join(format!("bluegreen-restore-{}.service", t.app));
    assert!(unit.exists(), "the nftables deploy installs its boot path");
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
    require!(Root, Nginx, Sshd, Docker, Act);
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
    require!(Root, Nginx, Sshd, Docker, Act);
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
fn the_rollback_command_refuses_a_retired_port_another_process_holds() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-rollback-squat");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v2")]), "deployed");
    t.settled();
    assert!(!t.container_running("blue"));
    // Another local process takes the retired slot's port and answers healthy, even with
    // blue's slot header.
    let _squatter = Demo::start(t.site.blue_port, "blue", "squatter", &[]);
    let run = t.run(&[("COMMAND", "rollback")]);
    assert_result(&run, "failed");
    assert!(
        run.log.contains("another process holds the port"),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
}

#[test]
fn the_rollback_command_goes_back_to_the_previous_slot() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-rollback");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v2")]), "deployed");
    t.settled();
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
    // What nginx really routes to (here the nftables rule), beside what state says.
    assert!(
        status.log.contains(
            "nginx routes to blue; state: active blue, previous green, switched by nftables"
        ),
        "{}",
        status.log
    );
}

#[test]
fn a_dry_run_changes_nothing() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-dry");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let upstream = std::fs::read_to_string(&t.site.nginx.upstream_file).unwrap();
    let state = std::fs::read_to_string(t.state_dir().join("state.json")).unwrap();

    let run = t.run(&[("IMAGE", &image), ("VERSION", "v2"), ("DRY_RUN", "true")]);
    assert_result(&run, "unchanged");
    // The diff adds a route to green: the nftables rule here (the default mode), the
    // upstream's server line in reload mode.
    let green = format!("127.0.0.1:{}", t.site.green_port);
    assert!(
        run.log.lines().any(|l| l
            .split("| ")
            .nth(1)
            .is_some_and(|d| d.starts_with('+') && d.contains(&green))),
        "{}",
        run.log
    );
    assert!(run.log.contains("plan: start"), "{}", run.log);
    assert!(
        run.log
            .contains("result: unchanged (dry run: nothing was changed; what it showed is what a run would do)"),
        "{}",
        run.log
    );
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
    require!(Root, Nginx, Sshd, Docker, Act);
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
    let run = t.run(&[("IMAGE", &image), ("VERSION", "v2"), ("LOCK_TIMEOUT", "2")]);
    drop(held);
    assert_result(&run, "failed");
    assert!(run.log.contains("deploy v9 by someone else"), "{}", run.log);
    assert!(run.log.contains("waited 0s of 2s"), "{}", run.log);
    assert!(
        run.log.contains(&format!("pid {}", std::process::id())),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
}

#[test]
fn the_command_runtime_needs_no_docker() {
    require!(Root, Nginx, Sshd, Docker, Act);
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
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-compose");
    let compose = t.site.tmp.path().join("compose.yml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: ${BLUEGREEN_IMAGE}\n    ports:\n      - \"127.0.0.1:${BLUEGREEN_PORT}:8080\"\n    environment:\n      BLUEGREEN_SLOT: ${BLUEGREEN_SLOT}\n      BLUEGREEN_VERSION: ${BLUEGREEN_VERSION}\n    depends_on:\n      - worker\n  worker:\n    image: ${BLUEGREEN_IMAGE}\n",
    )
    .unwrap();
    let compose = compose.display().to_string();
    let inputs = |version: &'static str| {
        vec![
            ("RUNTIME", "compose"),
            ("COMPOSE_FILE", compose.as_str()),
            ("COMPOSE_SERVICES", "web"),
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
    // Only the named service runs in the slots: the worker it depends on is the user's.
    for slot in ["blue", "green"] {
        let listed = Command::new("docker")
            .args(["ps", "--all", "--format", "{{.Names}}", "--filter"])
            .arg(format!("label=com.docker.compose.project={}-{slot}", t.app))
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&listed.stdout).to_string();
        assert!(!names.contains("worker"), "{slot}: {names}");
    }
    // Without the input, the two-service file is a warning that says what happens.
    let mut all = inputs("k3");
    all.retain(|(name, _)| *name != "COMPOSE_SERVICES");
    let third = t.run(&all);
    assert_result(&third, "deployed");
    assert!(
        third.log.contains("runs once per slot (worker, web)"),
        "{}",
        third.log
    );
}

#[test]
fn the_nftables_switch_mode_keeps_client_connections_open() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
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
fn a_second_deployment_of_the_same_app_name_is_refused() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-twice");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v2")]), "deployed");
    t.settled();
    // The same app name with a state directory of its own: its slots would be the same
    // containers, and its retire would stop the other deployment's live one.
    let other = t.site.tmp.path().join("other-state");
    let run = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v3"),
        ("STATE_DIR", &other.display().to_string()),
    ]);
    assert_result(&run, "failed");
    assert!(
        run.log.contains(&format!(
            "another deployment of {} on this Docker host keeps its state in {}",
            t.app,
            t.state_dir().display()
        )),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    assert!(t.container_running("green"));
}
