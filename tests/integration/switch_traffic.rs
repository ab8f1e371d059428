//! switch-traffic against a real nginx: successful switches with verification, every undo
//! path, the lock, state recovery, dry runs and bad input.

use std::time::Duration;

use bluegreen::lock::AppLock;

use crate::support::{APP, SWITCH_TRAFFIC, Site, run};

fn upstream_text(site: &Site) -> String {
    std::fs::read_to_string(&site.nginx.upstream_file).unwrap()
}

#[test]
fn switch_to_green_is_verified_and_recorded() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    assert_eq!(site.served_slot(), "blue");
    let before = upstream_text(&site);

    let r = site.switch(&["--to", "green", "--app-version", "v2", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["from"], "blue");
    assert_eq!(report["to"], "green");
    assert_eq!(report["workers_restarted"], true);
    assert_eq!(report["verified_slot"], true);
    // No state yet: rebuilt from the upstream file, with a warning.
    assert!(r.stderr.contains("missing; rebuilt"), "{}", r.stderr);

    for _ in 0..5 {
        assert_eq!(site.served_slot(), "green");
    }
    let state = site.state();
    assert_eq!(state["active"], "green");
    assert_eq!(state["previous"], "blue");
    assert_eq!(state["slots"]["green"]["version"], "v2");
    assert_eq!(state["slots"]["green"]["port"], site.green_port);
    let history = site.history();
    let last = history.last().unwrap();
    assert_eq!(
        (&last["event"], &last["from"], &last["to"], &last["version"]),
        (
            &"switch".into(),
            &"blue".into(),
            &"green".into(),
            &"v2".into()
        )
    );
    let backup = std::fs::read_to_string(site.state_dir.join("upstream.backup")).unwrap();
    assert_eq!(backup, before);
    assert!(upstream_text(&site).contains(&format!("server 127.0.0.1:{};", site.green_port)));
}

#[test]
fn a_switch_to_a_slot_that_does_not_answer_is_refused_unless_forced() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let before = upstream_text(&site);
    let r = site.switch(&["--to", "green", "--health-timeout", "1s"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("not switching: green") && r.stderr.contains("does not answer healthy"),
        "{r:?}"
    );
    assert_eq!(upstream_text(&site), before, "nothing changed");
    assert!(!site.state_dir.join("state.json").exists());
    assert_eq!(site.served_slot(), "blue");

    // Forced, the health check is skipped (the switch's own verification still runs).
    let forced = site.switch(&["--to", "green", "--skip-health-check-dangerous"]);
    assert!(
        !forced.stderr.contains("does not answer healthy"),
        "{forced:?}"
    );
}

#[test]
fn to_previous_goes_back_and_forth() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    assert_eq!(site.switch(&["--to", "green"]).code, 0);

    let r = site.switch(&["--to", "previous"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("from green to blue"), "{}", r.stdout);
    assert_eq!(site.served_slot(), "blue");
    assert_eq!(site.state()["previous"], "green");

    assert_eq!(site.switch(&["--to", "previous"]).code, 0);
    assert_eq!(site.served_slot(), "green");
    assert_eq!(site.state()["active"], "green");
}

#[test]
fn failing_nginx_test_restores_the_previous_upstream() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    let before = upstream_text(&site);
    let template = site.tmp.path().join("broken.j2");
    // Missing semicolon: renders fine, nginx -t rejects it.
    std::fs::write(
        &template,
        "upstream {{ app }} { server 127.0.0.1:{{ port }} }\n",
    )
    .unwrap();

    let r = site.switch(&[
        "--to",
        "green",
        "--template",
        &template.display().to_string(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("failed at nginx test"), "{}", r.stderr);
    assert!(
        r.stderr.contains("previous upstream restored"),
        "{}",
        r.stderr
    );
    assert_eq!(upstream_text(&site), before);
    assert_eq!(site.served_slot(), "blue");
    assert!(!site.state_dir.join("state.json").exists());
    let failed = site.history();
    assert_eq!(failed.last().unwrap()["event"], "switch-failed");
}

#[test]
fn a_reload_that_starts_no_workers_is_undone() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    let before = upstream_text(&site);
    // `true` exits 0 like `nginx -s reload` does even when nginx rejects the reload.
    let r = site.switch(&[
        "--to",
        "green",
        "--reload-cmd",
        "true",
        "--reload-timeout",
        "1",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("reload confirmation"), "{}", r.stderr);
    assert_eq!(upstream_text(&site), before);
    assert_eq!(site.served_slot(), "blue");
}

#[test]
fn verification_against_the_wrong_slot_is_undone() {
    require!(Nginx);
    let site = Site::new();
    let blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    let before = upstream_text(&site);
    // A verify URL that can only ever answer from blue.
    let r = site.switch(&[
        "--to",
        "green",
        "--verify-url",
        &blue.health_url(),
        "--verify-timeout",
        "1",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("still served by slot \"blue\""),
        "{}",
        r.stderr
    );
    assert_eq!(upstream_text(&site), before);
    // nginx was reloaded back to the restored file.
    for _ in 0..5 {
        assert_eq!(site.served_slot(), "blue");
    }
}

#[test]
fn a_held_lock_blocks_a_second_switch_and_can_be_waited_for() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    std::fs::create_dir_all(&site.state_dir).unwrap();
    let held = AppLock::acquire(&site.state_dir, APP, "deploy run 42", Duration::ZERO).unwrap();

    let r = site.switch(&["--to", "green", "--lock-timeout", "1"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("waited 0s of 1s"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("pid {}", std::process::id())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("deploy run 42"), "{}", r.stderr);
    assert_eq!(site.served_slot(), "blue");

    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(held);
    });
    let r = site.switch(&["--to", "green", "--lock-timeout", "10"]);
    releaser.join().unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(site.served_slot(), "green");
}

#[test]
fn corrupt_state_is_rebuilt_from_the_upstream_file() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    std::fs::create_dir_all(&site.state_dir).unwrap();
    std::fs::write(site.state_dir.join("state.json"), "{\"format\": 1, \"act").unwrap();

    let r = site.switch(&["--to", "green"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("corrupt"), "{}", r.stderr);
    let state = site.state();
    assert_eq!(
        (&state["active"], &state["previous"]),
        (&"green".into(), &"blue".into())
    );
}

#[test]
fn dry_run_shows_the_diff_and_changes_nothing() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let before = upstream_text(&site);
    let r = site.switch(&["--to", "green", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("-    server 127.0.0.1:{};", site.blue_port)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("+    server 127.0.0.1:{};", site.green_port)),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("nothing was changed"), "{}", r.stdout);
    assert_eq!(upstream_text(&site), before);
    assert!(!site.state_dir.exists());
}

#[test]
fn bad_input_is_refused_before_anything_changes() {
    require!(Nginx);
    let site = Site::new();
    let before = upstream_text(&site);
    let state_dir = site.state_dir.display().to_string();
    let upstream = site.nginx.upstream_file.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--app", "Bad_Name", "--to", "green"], "app name"),
        (&["--app", APP, "--to", "purple"], "blue, green or previous"),
        (
            &[
                "--app",
                APP,
                "--to",
                "green",
                "--blue-port",
                "3001",
                "--green-port",
                "3001",
            ],
            "different ports",
        ),
        (
            &["--app", APP, "--to", "green", "--blue-port", "0"],
            "1 to 65535",
        ),
        (
            &["--app", APP, "--to", "green", "--green-port", "70000"],
            "1 to 65535",
        ),
        (
            &["--app", APP, "--to", "green", "--verify-timeout", "-5"],
            "negative",
        ),
        (
            &[
                "--app",
                APP,
                "--to",
                "green",
                "--verify-url",
                "localhost/health",
            ],
            "invalid URL",
        ),
        (
            &[
                "--app",
                APP,
                "--to",
                "green",
                "--app-version",
                "v1; rm -rf /",
            ],
            "version",
        ),
        (
            &[
                "--app",
                APP,
                "--to",
                "green",
                "--reload-cmd",
                "nginx 'unterminated",
            ],
            "--reload-cmd",
        ),
        (&["--app", APP, "--to", "previous"], "no previous slot"),
    ];
    for (args, expected) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state-dir", &state_dir, "--upstream-file", &upstream]);
        all.extend(
            [
                "--nginx-pid-file",
                "/nonexistent.pid",
                "--verify-url",
                "http://127.0.0.1:1/",
            ]
            .iter()
            .filter(|_| !args.contains(&"--verify-url")),
        );
        let r = run(&SWITCH_TRAFFIC, &all);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(expected),
            "{args:?}: expected {expected:?} in {}",
            r.stderr
        );
        assert_eq!(upstream_text(&site), before, "{args:?}");
    }
    assert!(!site.state_dir.exists());
}

/// One request on an open keep-alive connection: (status line, slot header).
fn keepalive_get(conn: &mut std::io::BufReader<std::net::TcpStream>) -> (String, String) {
    use std::io::{BufRead, Read, Write};
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    let (mut length, mut slot) = (0, String::new());
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if let Some(v) = lower.strip_prefix("x-bluegreen-slot:") {
            slot = v.trim().to_owned();
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).unwrap();
    (status.trim().to_owned(), slot)
}

#[test]
fn nftables_mode_switches_without_reloading_nginx() {
    require!(Nginx, Nftables);
    let app = format!("nft-{}", crate::support::free_port());
    let site = Site::adopting(&app);
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    let _table = crate::support::NftTable::of_app(&app);
    let service_port = crate::support::free_port();
    let switch = site.nftables_switch(&app, service_port);

    // The first switch points nginx at the service port (one reload).
    let first = switch("blue");
    assert_eq!(first.code, 0, "{first:?}");
    assert!(upstream_text(&site).contains(&format!("server 127.0.0.1:{service_port};")));
    assert_eq!(site.served_slot(), "blue");
    let include = upstream_text(&site);
    let master: u32 = std::fs::read_to_string(site.nginx.pid_file())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let workers = bluegreen::nginx::children(master);
    let mut conn = std::io::BufReader::new(
        std::net::TcpStream::connect(("127.0.0.1", site.nginx.port)).unwrap(),
    );
    assert_eq!(keepalive_get(&mut conn).1, "blue");

    // Later switches move only the rule: no reload, and open client connections live on.
    let second = switch("green");
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.json()["workers_restarted"], false);
    assert_eq!(second.json()["verified_slot"], true);
    assert_eq!(site.served_slot(), "green");
    assert_eq!(upstream_text(&site), include, "the include did not change");
    assert_eq!(
        bluegreen::nginx::children(master),
        workers,
        "nginx was not reloaded"
    );
    let (status, slot) = keepalive_get(&mut conn);
    assert_eq!(
        (status.as_str(), slot.as_str()),
        ("HTTP/1.1 200 OK", "green")
    );

    let back = switch("previous");
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(keepalive_get(&mut conn).1, "blue");
    assert_eq!(site.state()["active"], "blue");
}
