//! `demo-app`: a small HTTP app to deploy in tests, demos and benchmarks.
//!
//! `GET /health` answers JSON with its status, slot and version; every other path answers
//! with its version. Behaviour a deploy must cope with can be switched on by flags or
//! environment: start unhealthy, become healthy after a delay, answer 500s, answer slowly,
//! exit after N requests, never name its slot. A request can ask to be slow with
//! `?delay_ms=N`. On SIGTERM it stops accepting, finishes the requests in flight,
//! closes idle keep-alive connections, and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bluegreen::input::{parse_fraction, parse_millis, parse_seconds};
use clap::{Parser, ValueEnum};

/// Largest request head accepted.
const MAX_HEAD_BYTES: u64 = 16 * 1024;
/// Largest request body read (the rest of a larger one is refused).
const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// How often an idle connection checks whether the app is draining.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// What /health reports once the app is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Health {
    /// 200 {"status":"healthy"}.
    Healthy,
    /// 200 {"status":"degraded"}.
    Degraded,
    /// 503 {"status":"unhealthy"}.
    Unhealthy,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A demo HTTP app for blue-green deploys.
#[derive(Debug, Parser)]
#[command(
    disable_version_flag = true,
    after_help = "Example:\n  demo-app --listen 127.0.0.1:3001 --slot blue --app-version v1 --ready-after 2s"
)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "DEMO_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// Slot name reported in answers.
    #[arg(long, env = "BLUEGREEN_SLOT", default_value = "unknown")]
    slot: String,

    /// Version reported in answers.
    #[arg(long, env = "BLUEGREEN_VERSION", default_value = "dev")]
    app_version: String,

    /// What /health reports once ready.
    #[arg(long, env = "DEMO_HEALTH", value_enum, default_value_t = Health::Healthy)]
    health: Health,

    /// /health answers 503 "starting" until this long after start (milliseconds, or 2s...).
    #[arg(long, env = "DEMO_READY_AFTER", default_value = "0", value_parser = parse_millis)]
    ready_after: Duration,

    /// Fraction of non-health requests answered with 500 (0 to 1, spread evenly).
    #[arg(long, env = "DEMO_ERROR_RATE", default_value = "0", value_parser = parse_fraction)]
    error_rate: f64,

    /// Delay before answering a non-health request (milliseconds, or 1s...).
    #[arg(long, env = "DEMO_DELAY", default_value = "0", value_parser = parse_millis)]
    delay: Duration,

    /// Exit with status 1 after answering this many requests (simulates a crash).
    #[arg(long, env = "DEMO_EXIT_AFTER")]
    exit_after: Option<u64>,

    /// Never say which slot answers (no X-Bluegreen-Slot header, no "slot" in /health),
    /// like most apps.
    #[arg(long, env = "DEMO_ANONYMOUS")]
    anonymous: bool,

    /// Longest time to wait for in-flight requests after SIGTERM (seconds, or 500ms...).
    #[arg(long, env = "DEMO_DRAIN_TIMEOUT", default_value = "30", value_parser = parse_seconds)]
    drain_timeout: Duration,
}

/// State shared by all connections.
struct App {
    config: Config,
    started: Instant,
    draining: AtomicBool,
    requests: AtomicU64,
    non_health_requests: AtomicU64,
    open_connections: AtomicUsize,
}

struct Request {
    path: String,
    keep_alive: bool,
}

fn main() -> ExitCode {
    let config = Config::parse();
    let listener = match TcpListener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-app: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(3);
        }
    };
    let local = listener
        .local_addr()
        .expect("bound listener has an address");
    eprintln!(
        "demo-app: listening on {local}, slot {}, version {}",
        config.slot, config.app_version
    );
    let app = Arc::new(App {
        config,
        started: Instant::now(),
        draining: AtomicBool::new(false),
        requests: AtomicU64::new(0),
        non_health_requests: AtomicU64::new(0),
        open_connections: AtomicUsize::new(0),
    });
    watch_signals(Arc::clone(&app), local);
    for stream in listener.incoming() {
        if app.draining.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        app.open_connections.fetch_add(1, Ordering::SeqCst);
        let app = Arc::clone(&app);
        std::thread::spawn(move || {
            let _ = serve_connection(&app, stream);
            app.open_connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
    drop(listener);
    let deadline = Instant::now() + app.config.drain_timeout;
    while app.open_connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "demo-app: drained, {} connections left open, exiting",
        app.open_connections.load(Ordering::SeqCst)
    );
    ExitCode::SUCCESS
}

/// On SIGTERM or SIGINT: mark the app draining and wake the accept loop so it stops.
fn watch_signals(app: Arc<App>, local: SocketAddr) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).expect("signal handler installs");
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("demo-app: signal received, draining");
            app.draining.store(true, Ordering::SeqCst);
            let wake = if local.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], local.port()))
            } else {
                local
            };
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
    });
}

fn serve_connection(app: &App, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE_POLL))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(app, &mut reader)? else {
            return Ok(());
        };
        let served = app.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let (status, content_type, body) = answer(app, &request);
        // Checked after answering: a request that was in flight when draining began is the
        // last one on its connection.
        let keep_alive = request.keep_alive && !app.draining.load(Ordering::SeqCst);
        let slot_header = if app.config.anonymous {
            String::new()
        } else {
            format!("X-Bluegreen-Slot: {}\r\n", app.config.slot)
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{slot_header}X-Bluegreen-Version: {}\r\nConnection: {}\r\n\r\n",
            body.len(),
            app.config.app_version,
            if keep_alive { "keep-alive" } else { "close" }
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(body.as_bytes())?;
        writer.flush()?;
        if app.config.exit_after.is_some_and(|n| served >= n) {
            eprintln!("demo-app: exiting after {served} requests as configured");
            std::process::exit(1);
        }
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Reads one request; `None` when the client closed the connection, or when the app is
/// draining and the connection is idle.
fn read_request(app: &App, reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let mut limited = reader.by_ref().take(MAX_HEAD_BYTES - head.len() as u64);
        match limited.read_until(b'\n', &mut head) {
            Ok(0) => return Ok(None),
            Ok(_) if head.ends_with(b"\r\n\r\n") || head == b"\r\n" => {
                if head == b"\r\n" {
                    head.clear();
                    continue;
                }
                break;
            }
            Ok(_) if head.len() as u64 >= MAX_HEAD_BYTES => return Ok(None),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if head.is_empty() && app.draining.load(Ordering::SeqCst) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let _method = request_line.next().unwrap_or("");
    let path = request_line.next().unwrap_or("/").to_owned();
    let http10 = request_line.next() == Some("HTTP/1.0");
    let mut content_length = 0u64;
    let mut connection = String::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().unwrap_or(0),
                "connection" => connection = value.to_ascii_lowercase(),
                _ => {}
            }
        }
    }
    if content_length > MAX_BODY_BYTES {
        return Ok(None);
    }
    let mut body = reader.by_ref().take(content_length);
    let mut read = 0u64;
    let mut buf = [0u8; 8192];
    while read < content_length {
        match body.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => read += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let keep_alive = if http10 {
        connection == "keep-alive"
    } else {
        connection != "close"
    };
    Ok(Some(Request { path, keep_alive }))
}

/// The delay a request asks for with `?delay_ms=N` (at most 10 s), for load tests that need
/// slow requests in flight.
fn requested_delay(path: &str) -> Duration {
    let ms = path
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("delay_ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_millis(ms.min(10_000))
}

/// Status line, content type and body for a request.
fn answer(app: &App, request: &Request) -> (&'static str, &'static str, String) {
    let cfg = &app.config;
    if request.path == "/health" || request.path.starts_with("/health?") {
        let ready = app.started.elapsed() >= cfg.ready_after;
        let status = if ready {
            cfg.health.as_str()
        } else {
            "starting"
        };
        let code = if ready && cfg.health != Health::Unhealthy {
            "200 OK"
        } else {
            "503 Service Unavailable"
        };
        let mut body = serde_json::json!({
            "status": status,
            "version": cfg.app_version,
        });
        if !cfg.anonymous {
            body["slot"] = cfg.slot.clone().into();
        }
        return (code, "application/json", format!("{body}\n"));
    }
    let delay = cfg.delay + requested_delay(&request.path);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let n = app.non_health_requests.fetch_add(1, Ordering::SeqCst) + 1;
    // Request n fails when the running count of failures due grows at n: an even spread.
    let fails = (n as f64 * cfg.error_rate).floor() > ((n - 1) as f64 * cfg.error_rate).floor();
    if fails {
        return (
            "500 Internal Server Error",
            "text/plain",
            format!(
                "demo-app {} ({}) failed on purpose\n",
                cfg.app_version, cfg.slot
            ),
        );
    }
    (
        "200 OK",
        "text/plain",
        format!("demo-app {} ({})\n", cfg.app_version, cfg.slot),
    )
}
