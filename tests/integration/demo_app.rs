//! The demo app's own behaviour, which the deploy tests rely on: readiness delay, error
//! spread, exit after N requests, and draining in-flight requests on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Demo, free_port, http_get};

#[test]
fn becomes_ready_after_the_delay() {
    let demo = Demo::start(free_port(), "blue", "v1", &["--ready-after", "400"]);
    let (status, _, body) = http_get(&demo.health_url());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("starting"), "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let (status, slot, body) = http_get(&demo.health_url());
    assert_eq!((status, slot.as_str()), (200, "blue"), "{body}");
    assert!(body.contains("\"version\":\"v1\""), "{body}");
}

#[test]
fn error_rate_is_spread_evenly() {
    let demo = Demo::start(free_port(), "green", "v2", &["--error-rate", "0.25"]);
    let url = format!("http://127.0.0.1:{}/", demo.port);
    let statuses: Vec<u16> = (0..8).map(|_| http_get(&url).0).collect();
    assert_eq!(statuses, [200, 200, 200, 500, 200, 200, 200, 500]);
    // Health answers are not counted or failed.
    assert_eq!(http_get(&demo.health_url()).0, 200);
}

#[test]
fn exits_after_the_configured_number_of_requests() {
    let demo = Demo::start(free_port(), "blue", "v1", &["--exit-after", "2"]);
    let url = format!("http://127.0.0.1:{}/", demo.port);
    assert_eq!(http_get(&url).0, 200);
    assert_eq!(http_get(&url).0, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert!(TcpStream::connect(("127.0.0.1", demo.port)).is_err());
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits() {
    let port = free_port();
    let mut child = std::process::Command::new(crate::support::DEMO_APP)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--delay", "600"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_for_port(port, Duration::from_secs(10));
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).unwrap();
    in_flight
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: a pid we spawned and a valid signal.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let started = Instant::now();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_request_can_ask_to_be_slow() {
    let demo = Demo::start(free_port(), "blue", "v1", &[]);
    let started = Instant::now();
    let (status, _, _) = http_get(&format!("http://127.0.0.1:{}/work?delay_ms=300", demo.port));
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}
