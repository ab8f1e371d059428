//! Traffic steps end to end, through act, sshd, nginx and Docker: steps under load in both
//! switch modes, judged on the requests nginx logged (in nftables mode without a reload, the
//! access log being on from the first deploy); a canary that fails a fifth of its
//! requests (its health URL stays fine) sent back within its first step; an app that never
//! names its slot, judged on the kernel's counts in the default mode; a pause then a
//! promote, a pause then an abort; a host-side run killed mid-step, which leaves both
//! slots serving, and a rerun that converges; and the helpers by hand (`switch-traffic
//! --weight`, `monitor --access-log`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{
    APP, MONITOR, Site, Target, Traffic, assert_result, demo_image, http_get, run,
};

/// Which slot answered each of `n` requests through nginx (every answer must be a 200).
fn sample(t: &Target, n: usize) -> BTreeMap<String, usize> {
    let mut by_slot = BTreeMap::new();
    for _ in 0..n {
        let (status, slot, body) = http_get(&t.site.nginx.url("/"));
        assert_eq!(status, 200, "{body}");
        *by_slot.entry(slot).or_insert(0) += 1;
    }
    by_slot
}

/// The shares (target, served) of each canary step the run's log reports as it ends.
fn steps_in(log: &str) -> Vec<(u32, f64)> {
    log.lines()
        .filter(|line| line.contains("ok canary step (") || line.contains("FAILED canary step ("))
        .filter_map(|line| {
            let (_, rest) = line.split_once("% to green: it served ")?;
            let target: u32 = line[..line.find("% to green")?]
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            let served: f64 = rest.split('%').next()?.parse().ok()?;
            Some((target, served))
        })
        .collect()
}

/// The pids of the target's nginx workers (a reload replaces them).
fn nginx_workers(t: &Target) -> String {
    let master = std::fs::read_to_string(t.site.nginx.pid_file()).unwrap();
    let master = master.trim();
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap()
}

/// The live slot state records (the app under test may not name its slot).
fn active_in_state(t: &Target) -> String {
    let text = std::fs::read_to_string(t.state_dir().join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["active"].as_str().unwrap_or_default().to_owned()
}

fn canary_in_state(t: &Target) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(t.state_dir().join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state.get("canary").cloned()
}

#[test]
fn steps_under_load_move_the_share_they_name_and_lose_nothing_in_both_modes() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("v", &[]);
    for mode in ["reload", "nftables"] {
        let t = Target::new(&format!("e2e-steps-{mode}"));
        let base = [("IMAGE", image.as_str()), ("SWITCH_MODE", mode)];
        assert_result(&t.run(&[base[0], base[1], ("VERSION", "v1")]), "deployed");
        t.settled();
        let workers_before = nginx_workers(&t);
        let traffic = Traffic::start(t.site.nginx.url("/"));
        let run = t.run(&[
            base[0],
            base[1],
            ("VERSION", "v2"),
            ("TRAFFIC_STEPS", "20,50,100"),
            // The traffic makes about 40 requests a second, and nftables picks each new
            // connection's slot at random: in a 4 s step green's share of 20% fell below
            // canary-min-requests (20) in about 1 run of 200 at that rate, far more often
            // on a busy machine. 6 s: about 48 expected, below 20 about once in 10^6.
            ("STEP_SECONDS", "6"),
        ]);
        let (requests, bad) = traffic.finish();
        assert_result(&run, "deployed");
        if mode == "nftables" {
            // The access log was on from the first deploy: the steps, the switch and the
            // first use of traffic steps change nothing of nginx's (no reload).
            assert_eq!(nginx_workers(&t), workers_before, "{}", run.log);
        }
        let steps = steps_in(&run.log);
        assert_eq!(
            steps.iter().map(|s| s.0).collect::<Vec<_>>(),
            [20, 50],
            "{mode}: {}",
            run.log
        );
        for (target, served) in &steps {
            assert!(
                (served - f64::from(*target)).abs() <= 15.0,
                "{mode}: step {target}% served {served}%\n{}",
                run.log
            );
        }
        assert!(
            !run.log.contains("too few requests"),
            "{mode}: steps must be judged on traffic\n{}",
            run.log
        );
        assert!(requests > 200, "{mode}: too little traffic: {requests}");
        assert!(
            bad.is_empty(),
            "{mode}: {} of {requests} failed: {bad:?}",
            bad.len()
        );
        assert_eq!(t.live(), ("green".into(), "v2".into()));
        assert_eq!(canary_in_state(&t), None, "{mode}: the canary ended");
    }
}

#[test]
fn a_canary_failing_a_fifth_of_its_requests_is_rolled_back_within_its_first_step() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let good = demo_image("v", &[]);
    let bad = demo_image("fails-20", &[("DEMO_ERROR_RATE", "0.2")]);
    let t = Target::new("e2e-badcanary");
    assert_result(&t.run(&[("IMAGE", &good), ("VERSION", "v1")]), "deployed");
    t.settled();
    let traffic = Traffic::start(t.site.nginx.url("/"));
    let started = Instant::now();
    let run = t.run(&[
        ("IMAGE", &bad),
        ("VERSION", "v2"),
        ("TRAFFIC_STEPS", "25,50"),
        // Long enough that green's 25% of the traffic's ~40 requests a second is always
        // above canary-min-requests (20), as above: about 60 expected.
        ("STEP_SECONDS", "6"),
    ]);
    let took = started.elapsed();
    let (requests, failed) = traffic.finish();
    assert_result(&run, "rolled-back");
    assert_eq!(
        steps_in(&run.log).len(),
        1,
        "one step, then back: {}",
        run.log
    );
    assert!(
        run.log.contains("the new slot's error rate"),
        "judged on the requests it served: {}",
        run.log
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    t.settled();
    assert!(!t.container_running("green"), "the canary is stopped");
    assert_eq!(canary_in_state(&t), None);
    // What users saw: only the canary's own failures, during its one step.
    assert!(
        failed.iter().all(|f| f.starts_with("HTTP 500")),
        "{failed:?} of {requests}"
    );
    assert!(
        sample(&t, 20).keys().all(|slot| slot == "blue"),
        "everything back on blue"
    );
}

/// What `clients` steady traffics saw: (requests, answers not accepted).
fn finish_all(clients: Vec<Traffic>) -> (u32, Vec<String>) {
    clients.into_iter().map(Traffic::finish).fold(
        (0, Vec::new()),
        |(requests, mut bad), (n, more)| {
            bad.extend(more);
            (requests + n, bad)
        },
    )
}

/// The lines of the canary steps a run's log reports.
fn step_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("ok canary step (") || line.contains("FAILED canary step ("))
        .collect()
}

#[test]
fn an_app_that_never_names_its_slot_is_judged_on_the_kernels_counts() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let anonymous = ("DEMO_ANONYMOUS", "true");
    let live_failing_1 = demo_image("anon-fails-1", &[anonymous, ("DEMO_ERROR_RATE", "0.01")]);
    let healthy = demo_image("anon", &[anonymous]);
    let failing_20 = demo_image("anon-fails-20", &[anonymous, ("DEMO_ERROR_RATE", "0.2")]);
    let failing_all = demo_image("anon-fails-100", &[anonymous, ("DEMO_ERROR_RATE", "1")]);
    // Every page in 300 ms (far above the live slot's p95 plus canary-p95-margin-ms 100),
    // its health URL answering at once.
    let slow = demo_image("anon-slow", &[anonymous, ("DEMO_DELAY", "300ms")]);
    let t = Target::new("e2e-anon");
    // The default mode: nftables, where nginx sees only the service port.
    assert_result(
        &t.run(&[("IMAGE", &live_failing_1), ("VERSION", "v1")]),
        "deployed",
    );
    t.settled();
    let steps = [("TRAFFIC_STEPS", "10,50"), ("STEP_SECONDS", "5")];
    let clients: Vec<Traffic> = (0..4)
        .map(|_| Traffic::start(t.site.nginx.url("/")))
        .collect();

    // A healthy release beside a live slot that fails 1% of its pages passes both steps.
    let run = t.run(&[("IMAGE", &healthy), ("VERSION", "v2"), steps[0], steps[1]]);
    assert_result(&run, "deployed");
    let lines = step_lines(&run.log);
    assert_eq!(lines.len(), 2, "{}", run.log);
    assert!(
        lines
            .iter()
            .all(|l| l.contains("ok canary step") && l.contains("estimated at")),
        "judged on the kernel's counts, not on probes: {}",
        run.log
    );
    let live = || (active_in_state(&t), t.live().1);
    assert_eq!(live(), ("green".into(), "v2".into()));
    t.settled();

    // Releases whose pages fail or are slow (their health URL answers) go back at the
    // first 10% step.
    // Clients wait on a slow slot, so fewer requests reach it: its step is longer, so that
    // it always holds canary-min-requests of them.
    let failing = "the new slot's error rate, estimated at";
    let longer = ("STEP_SECONDS", "12");
    for (image, version, reason, step) in [
        (&failing_20, "v3", failing, steps[1]),
        (&failing_all, "v4", failing, steps[1]),
        (&slow, "v5", "the new slot's p95 is above", longer),
    ] {
        let run = t.run(&[("IMAGE", image), ("VERSION", version), steps[0], step]);
        assert_result(&run, "rolled-back");
        let lines = step_lines(&run.log);
        assert_eq!(lines.len(), 1, "one step, then back: {}", run.log);
        assert!(
            lines[0].contains("FAILED canary step")
                && lines[0].contains("10% to blue")
                && lines[0].contains(reason),
            "{}",
            run.log
        );
        assert_eq!(live(), ("green".into(), "v2".into()));
        t.settled();
    }
    let (requests, failed) = finish_all(clients);
    // What users saw: the live slot's failures while v1 served, and the canaries' own.
    assert!(
        failed.iter().all(|f| f.starts_with("HTTP 500")),
        "{failed:?} of {requests}"
    );
    eprintln!("users saw {} of {requests} requests fail", failed.len());
}

#[test]
fn a_paused_canary_keeps_its_share_until_promoted() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-promote");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let paused = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("TRAFFIC_STEPS", "30,60"),
        ("STEP_SECONDS", "2"),
        ("CANARY_PAUSE_AT", "30"),
        ("CANARY_MIN_REQUESTS", "1"),
    ]);
    assert_result(&paused, "paused");
    t.settled();
    let canary = canary_in_state(&t).expect("state records the canary");
    assert_eq!(
        (
            canary["slot"].as_str(),
            canary["share"].as_u64(),
            canary["paused"].as_bool()
        ),
        (Some("green"), Some(30), Some(true)),
        "{canary}"
    );
    let seen = sample(&t, 60);
    assert!(
        seen.get("green").is_some_and(|n| *n >= 6) && seen.get("blue").is_some_and(|n| *n >= 20),
        "both slots serve while paused: {seen:?}"
    );
    let status = t.run(&[("COMMAND", "status")]);
    assert!(
        status
            .log
            .contains("canary: green (v2) gets 30% of new requests, paused"),
        "{}",
        status.log
    );
    let promoted = t.run(&[
        ("COMMAND", "promote"),
        ("TRAFFIC_STEPS", "30,60"),
        ("STEP_SECONDS", "2"),
        ("CANARY_MIN_REQUESTS", "1"),
    ]);
    assert_result(&promoted, "deployed");
    assert_eq!(
        steps_in(&promoted.log)
            .iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        [60]
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    t.settled();
    assert_eq!(canary_in_state(&t), None);
    assert!(!t.container_running("blue"), "v1 retired after the promote");
    let again = t.run(&[("COMMAND", "promote"), ("TRAFFIC_STEPS", "30,60")]);
    assert_result(&again, "failed");
    assert!(again.log.contains("nothing to promote"), "{}", again.log);
}

#[test]
fn a_paused_canary_is_aborted_back_to_the_live_slot() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    // Reload mode: the split is nginx's weighted upstream. A long app name (39 characters):
    // the include's names must still fit nginx's hash buckets.
    let t = Target::new("e2e-abort-with-a-long-app-name-xx").with_input("SWITCH_MODE", "reload");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let paused = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("TRAFFIC_STEPS", "50"),
        ("STEP_SECONDS", "2"),
        ("CANARY_PAUSE_AT", "50"),
        ("CANARY_MIN_REQUESTS", "1"),
    ]);
    assert_result(&paused, "paused");
    t.settled();
    let upstream = std::fs::read_to_string(&t.site.nginx.upstream_file).unwrap();
    assert!(upstream.contains("weight=50;"), "{upstream}");
    let seen = sample(&t, 20);
    assert_eq!(
        (seen.get("blue"), seen.get("green")),
        (Some(&10), Some(&10)),
        "one nginx worker (the test nginx has one): its weighted round robin splits exactly"
    );
    let aborted = t.run(&[("COMMAND", "abort")]);
    assert_result(&aborted, "rolled-back");
    t.settled();
    assert!(sample(&t, 20).keys().all(|slot| slot == "blue"));
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert!(!t.container_running("green"), "the canary is stopped");
    assert_eq!(canary_in_state(&t), None);
    let history = std::fs::read_to_string(t.state_dir().join("history.jsonl")).unwrap();
    assert!(history.contains("\"event\":\"abort\""), "{history}");
    assert_eq!(
        aborted.output("version"),
        "v1",
        "the version live after the abort"
    );

    // Nothing left to abort: refused, and said as a failure in the log, not only the summary.
    let again = t.run(&[("COMMAND", "abort")]);
    assert_result(&again, "failed");
    assert!(
        again.log.contains("FAILED: nothing to abort"),
        "{}",
        again.log
    );
    assert!(
        again.log.contains("::error::nothing to abort"),
        "{}",
        again.log
    );
}

#[test]
fn a_run_killed_mid_step_leaves_both_slots_serving_and_a_rerun_converges() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-killstep");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            t.run(&[
                ("IMAGE", &image),
                ("VERSION", "v2"),
                ("TRAFFIC_STEPS", "40"),
                ("STEP_SECONDS", "60"),
            ])
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while canary_in_state(&t).is_none() {
            assert!(Instant::now() < deadline, "no canary step began");
            std::thread::sleep(Duration::from_millis(100));
        }
        let holder = std::fs::read_to_string(t.state_dir().join("lock")).unwrap();
        let pid: i32 = serde_json::from_str::<serde_json::Value>(&holder).unwrap()["pid"]
            .as_i64()
            .unwrap() as i32;
        // SAFETY: kill has no memory preconditions; the pid is the host-side run's.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let killed = run.join().unwrap();
        assert_ne!(killed.output("result"), "deployed", "{}", killed.log);
    });
    let seen = sample(&t, 40);
    assert!(
        seen.contains_key("blue") && seen.contains_key("green"),
        "the split stays and both slots answer: {seen:?}"
    );
    let rerun = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("TRAFFIC_STEPS", "40"),
        ("STEP_SECONDS", "2"),
        ("CANARY_MIN_REQUESTS", "1"),
    ]);
    assert_result(&rerun, "deployed");
    assert!(
        rerun.log.contains("replaces the canary of v2 in green"),
        "{}",
        rerun.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    assert!(sample(&t, 20).keys().all(|slot| slot == "green"));
    assert_eq!(canary_in_state(&t), None);
}

#[test]
fn by_hand_a_weight_splits_traffic_and_monitor_judges_the_slots_share_of_the_log() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &["--error-rate", "0.5"]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );

    let refused = site.switch(&["--to", "blue", "--weight", "50"]);
    assert_eq!(refused.code, 2, "a weight to the live slot: {refused:?}");
    assert!(
        refused.stderr.contains("the live slot is blue"),
        "{refused:?}"
    );
    assert_eq!(site.state()["canary"], serde_json::Value::Null);

    let split = site.switch(&["--to", "green", "--weight", "50", "--app-version", "v2"]);
    assert_eq!(split.code, 0, "{split:?}");
    let upstream = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    assert!(upstream.contains("weight=50;"), "{upstream}");
    assert_eq!(site.state()["canary"]["share"], 50);
    assert_eq!(site.state()["active"], "blue", "blue stays the live slot");

    let traffic = Traffic::start(site.nginx.url("/"));
    let state_dir = site.state_dir.display().to_string();
    let log = site
        .log_dir()
        .join(format!("{APP}.access.log"))
        .display()
        .to_string();
    let green_health = format!("http://127.0.0.1:{}/health", site.green_port);
    let judged = run(
        &MONITOR,
        &[
            "--url",
            &green_health,
            "--duration",
            "3",
            "--app",
            APP,
            "--state-dir",
            &state_dir,
            "--blue-port",
            &site.blue_port.to_string(),
            "--green-port",
            &site.green_port.to_string(),
            "--access-log",
            &log,
            "--canary",
            "green",
            "--json",
        ],
    );
    let (_, failed) = traffic.finish();
    assert_eq!(judged.code, 1, "{judged:?}");
    let report = judged.json();
    let canary = &report["canary"];
    assert_eq!(canary["verdict"]["passed"], false, "{report}");
    assert_eq!(canary["verdict"]["judged_on_traffic"], true, "{report}");
    assert!(
        canary["traffic"]["canary"]["errors"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(canary["traffic"]["stable"]["errors"], 0, "{report}");
    assert!(!failed.is_empty(), "green's failures reached users");

    assert_eq!(site.switch(&["--to", "blue"]).code, 0);
    assert_eq!(site.state()["canary"], serde_json::Value::Null);
    for _ in 0..10 {
        assert_eq!(site.served_slot(), "blue");
    }
}

/// nginx's master opens the access log as root, following links: it never opens one in a
/// place the deploy user can write (its state directory), and a log directory that is not
/// root's alone gets no log at all.
#[test]
fn nginx_never_opens_an_access_log_the_deploy_user_could_redirect() {
    require!(Root, Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );

    // What the deploy user could plant: its state directory's old log path, a link to a
    // place only root may write.
    let root_only = site.tmp.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    let planted_target = root_only.join("written-by-root");
    std::os::unix::fs::symlink(&planted_target, site.state_dir.join("access.log")).unwrap();

    let split = site.switch(&["--to", "green", "--weight", "50", "--app-version", "v2"]);
    assert_eq!(split.code, 0, "{split:?}");
    let include = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    let log = site.log_dir().join(format!("{APP}.access.log"));
    assert!(
        include.contains(&format!("access_log \"{}\"", log.display())),
        "{include}"
    );
    for _ in 0..10 {
        site.served_slot();
    }
    assert!(!planted_target.exists(), "nginx followed the planted link");
    assert!(
        log.exists(),
        "nginx writes the log in the root-owned directory"
    );
    assert_eq!(site.switch(&["--to", "blue"]).code, 0);

    // A log directory someone else owns: no log, and the switch says why.
    std::os::unix::fs::chown(site.log_dir(), Some(65534), None).unwrap();
    let split = site.switch(&["--to", "green", "--weight", "50", "--app-version", "v2"]);
    assert_eq!(split.code, 0, "{split:?}");
    assert!(
        split.stderr.contains("no access log") || split.stdout.contains("no access log"),
        "{split:?}"
    );
    let include = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    assert!(!include.contains("access_log"), "{include}");
    assert_eq!(site.switch(&["--to", "blue"]).code, 0);
}
