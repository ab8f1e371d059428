//! monitor through a real nginx: passing, failing on 5xx, on 4xx (a mistyped URL) and on
//! slow answers, and rolling back by itself.

use crate::support::{MONITOR, Site, run};

fn watch(site: &Site, extra: &[&str]) -> crate::support::Run {
    let url = site.nginx.url("/");
    let mut args = vec!["--url", url.as_str(), "--json"];
    args.extend(extra);
    run(&MONITOR, &args)
}

/// Runs monitor on `site`'s URL with `--rollback-on-fail`, `extra` and the switch's options.
fn watch_rolling_back(site: &Site, extra: &[&str]) -> crate::support::Run {
    let url = site.nginx.url("/");
    let mut args: Vec<String> = ["--url", url.as_str(), "--rollback-on-fail"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    args.extend(site.switch_args());
    run(&MONITOR, &args)
}

#[test]
fn a_healthy_slot_passes() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let r = watch(&site, &["--duration", "1.5", "--interval", "50"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["passed"], true);
    assert_eq!(report["failures"], 0);
    let requests = report["requests"].as_u64().unwrap();
    assert!((20..=31).contains(&requests), "{report}");
    assert!(
        report["longest_gap_ms"].as_u64().unwrap() < 1000,
        "{report}"
    );
}

#[test]
fn server_errors_fail_the_watch_early() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &["--error-rate", "0.5"]);
    let r = watch(&site, &["--duration", "10", "--interval", "50"]);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(report["stopped_early"], true, "{report}");
    assert!(report["duration_ms"].as_u64().unwrap() < 5000, "{report}");
    assert!(
        report["reasons"][0]
            .as_str()
            .unwrap()
            .contains("error rate"),
        "{report}"
    );
    assert!(
        report["first_failure"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{report}"
    );
}

#[test]
fn slow_answers_fail_the_p95_limit() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &["--delay", "120"]);
    let r = watch(
        &site,
        &["--duration", "1", "--interval", "50", "--max-p95-ms", "60"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(report["failures"], 0);
    assert!(report["p95_ms"].as_u64().unwrap() >= 120, "{report}");
    assert!(
        report["reasons"][0].as_str().unwrap().contains("p95"),
        "{report}"
    );
}

#[test]
fn a_failing_release_is_rolled_back() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &["--error-rate", "1"]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    assert_eq!(
        site.switch(&["--to", "green", "--app-version", "v2"]).code,
        0
    );
    assert_eq!(site.served_slot(), "green");

    let r = watch_rolling_back(&site, &["--json", "--duration", "10", "--interval", "50"]);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(report["rollback"]["rolled_back"], true, "{report}");
    assert_eq!(report["rollback"]["to"], "blue");
    assert_eq!(site.served_slot(), "blue");
    let state = site.state();
    assert_eq!(
        (&state["active"], &state["previous"]),
        (&"blue".into(), &"green".into())
    );
    // The engine's rollback: its switch, then the run's own line.
    let history = site.history();
    let [.., switch, run] = &history[..] else {
        panic!("{history:?}")
    };
    assert_eq!(switch["event"], "rollback");
    assert!(
        switch["detail"].as_str().unwrap().contains("error rate"),
        "{switch}"
    );
    assert_eq!(run["event"], "rollback-run");
    assert!(
        run["detail"]
            .as_str()
            .unwrap()
            .contains("monitor failed: error rate"),
        "{run}"
    );
}

#[test]
fn rollback_without_a_previous_slot_is_refused_up_front() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let r = watch_rolling_back(&site, &["--duration", "5"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no previous slot"), "{}", r.stderr);
}

#[test]
fn the_maintenance_port_given_reaches_the_rollback() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let blue_port = site.blue_port.to_string();
    let r = watch_rolling_back(
        &site,
        &["--duration", "5", "--maintenance-port", &blue_port],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("maintenance-port {blue_port} is a slot's port")),
        "{}",
        r.stderr
    );
}

#[test]
fn rollback_is_refused_up_front_while_a_canary_runs() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    for (slot, version) in [("green", "v2"), ("blue", "v1")] {
        assert_eq!(
            site.switch(&["--to", slot, "--app-version", version]).code,
            0
        );
    }
    let canary = site.switch(&["--to", "green", "--app-version", "v2", "--weight", "10"]);
    assert_eq!(canary.code, 0, "{canary:?}");
    let r = watch_rolling_back(&site, &[]);
    // The rollback's own refusal, before any request of the watch.
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("a canary of v2 is in progress in green"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("monitor:"), "{}", r.stderr);
}

#[test]
fn bad_input_is_a_usage_error() {
    for args in [
        &["--url", "http://127.0.0.1/", "--max-error-rate", "2"][..],
        &["--url", "http://127.0.0.1/", "--duration", "-1"],
        &["--url", "http://127.0.0.1/", "--rollback-on-fail"],
        &["--url", "127.0.0.1"],
    ] {
        let r = run(&MONITOR, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
    }
}

/// A server on loopback that answers every request with 404, as a mistyped URL would get.
fn not_found_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/typo", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    url
}

#[test]
fn a_url_that_answers_404_fails_the_watch_unless_accepted() {
    let url = not_found_server();
    let args = [
        "--url",
        url.as_str(),
        "--duration",
        "1",
        "--interval",
        "50",
        "--json",
    ];
    let r = run(&MONITOR, &args);
    assert_eq!(r.code, 1, "a 404 is a failed request by default: {r:?}");
    assert_eq!(r.json()["passed"], false);
    let mut accepting = args.to_vec();
    accepting.extend(["--accept-status", "200-499"]);
    let r = run(&MONITOR, &accepting);
    assert_eq!(r.code, 0, "{r:?}");
}
