//! health-check against the demo app and against hostile servers of the test's own.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{Demo, HEALTH_CHECK, free_port, run};

fn check(url: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["--url", url, "--json"];
    args.extend(extra);
    run(&HEALTH_CHECK, &args)
}

#[test]
fn healthy_app_passes_after_the_threshold() {
    let demo = Demo::start(free_port(), "green", "v2", &[]);
    let r = check(
        &demo.health_url(),
        &["--healthy-threshold", "3", "--interval", "50"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["healthy"], true);
    assert_eq!(report["attempts"], 3);
    assert_eq!(report["consecutive_healthy"], 3);
}

#[test]
fn slow_starting_app_is_waited_for() {
    let demo = Demo::start(free_port(), "green", "v2", &["--ready-after", "700"]);
    let r = check(&demo.health_url(), &["--timeout", "10", "--interval", "50"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert!(report["attempts"].as_u64().unwrap() > 2, "{report}");
    assert!(
        report["first_healthy_ms"].as_u64().unwrap() >= 600,
        "{report}"
    );
}

#[test]
fn unhealthy_app_times_out_with_the_last_answer() {
    let demo = Demo::start(free_port(), "green", "v2", &["--health", "unhealthy"]);
    let started = Instant::now();
    let r = run(
        &HEALTH_CHECK,
        &[
            "--url",
            &demo.health_url(),
            "--timeout",
            "1",
            "--interval",
            "100",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(r.stdout.contains("HTTP 503"), "{}", r.stdout);
    assert!(r.stdout.contains("\"unhealthy\""), "{}", r.stdout);
}

#[test]
fn json_status_unhealthy_with_200_is_not_healthy() {
    let body = r#"{"status":"unhealthy"}"#;
    let port = serve_forever(move |_| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let r = check(
        &format!("http://127.0.0.1:{port}/health"),
        &["--timeout", "0.5"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.json()["last_problem"]
            .as_str()
            .unwrap()
            .contains("body reports status"),
        "{r:?}"
    );
}

#[test]
fn degraded_needs_allow_degraded() {
    let demo = Demo::start(free_port(), "green", "v2", &["--health", "degraded"]);
    let strict = check(&demo.health_url(), &["--timeout", "0.5"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    let lenient = check(&demo.health_url(), &["--timeout", "5", "--allow-degraded"]);
    assert_eq!(lenient.code, 0, "{lenient:?}");
}

#[test]
fn connection_refused_is_reported() {
    let port = free_port();
    let r = check(
        &format!("http://127.0.0.1:{port}/health"),
        &["--timeout", "0.5"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.json()["last_answer"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{r:?}"
    );
}

#[test]
fn redirects_are_not_followed() {
    let port = serve_forever(|_| {
        b"HTTP/1.1 302 Found\r\nLocation: /health\r\nContent-Length: 0\r\n\r\n".to_vec()
    });
    let r = check(
        &format!("http://127.0.0.1:{port}/health"),
        &["--timeout", "0.5"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.json()["last_answer"]
            .as_str()
            .unwrap()
            .contains("HTTP 302"),
        "{r:?}"
    );
}

#[test]
fn a_huge_body_is_read_only_up_to_the_cap() {
    // 200 MiB announced and streamed: the checker must neither buffer it nor hang.
    let port = serve_stream(|stream| {
        let size: usize = 200 * 1024 * 1024;
        let _ = stream
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    // Under a 64 MiB data limit: buffering the body would abort the checker.
    let url = format!("http://127.0.0.1:{port}/health");
    let r = run(
        "prlimit",
        &[
            "--data=67108864",
            HEALTH_CHECK.as_str(),
            "--url",
            &url,
            "--healthy-threshold",
            "1",
            "--timeout",
            "10",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_trickling_body_cannot_outlast_the_timeout() {
    let port = serve_stream(|stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        for _ in 0..600 {
            if stream.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let started = Instant::now();
    let r = check(
        &format!("http://127.0.0.1:{port}/health"),
        &["--timeout", "2", "--request-timeout", "1"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    for args in [
        &["--url", "not a url"][..],
        &["--url", "ftp://127.0.0.1/"],
        &["--url", "http://127.0.0.1/", "--timeout", "-1"],
        &["--url", "http://127.0.0.1/", "--healthy-threshold", "0"],
        &["--url", "http://127.0.0.1/", "--accept-status", "700"],
    ] {
        let r = run(&HEALTH_CHECK, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("invalid"), "{args:?}: {}", r.stderr);
    }
}

/// A server of the test's own answering every connection with `answer(request)`.
fn serve_forever(answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> u16 {
    serve_stream(move |stream| {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        let _ = stream.write_all(&answer(&buf[..n]));
    })
}

/// A server of the test's own handing each connection to `handle` on its own thread.
/// It lives until the test process ends.
fn serve_stream(handle: impl Fn(&mut std::net::TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let handle = std::sync::Arc::clone(&handle);
            std::thread::spawn(move || handle(&mut stream));
        }
    });
    port
}
