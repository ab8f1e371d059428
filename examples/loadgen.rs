//! `loadgen`: the open-loop HTTP load generator of the zero-downtime benchmark
//! (`scripts/bench-zero-downtime`).
//!
//! Open loop: request N is due at `start + N / rate` and its latency is measured from that
//! moment, so a stall shows up as latency and failures instead of silently lowering the
//! request rate. A failed request is never retried: a client that does not retry (any POST)
//! would have seen it.
//!
//! `loadgen run` writes one line per request (`due_epoch_ms,latency_ms,outcome`, the outcome
//! an HTTP status or `connect`, `reset`, `timeout`, `protocol`); `loadgen report` summarises
//! such a file per time window.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};

/// Open-loop HTTP load for the zero-downtime benchmark.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send requests at a constant rate and record each one.
    Run(RunArgs),
    /// Summarise recorded requests per time window.
    Report(ReportArgs),
}

/// How connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// Persistent connections, reused for request after request.
    Keepalive,
    /// A new connection for every request (`Connection: close`).
    Fresh,
    /// Persistent connections; a share of the requests are slow POSTs.
    Mixed,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Address of the server, e.g. 127.0.0.1:8080.
    #[arg(long)]
    target: String,
    /// Requests per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long to send, in seconds.
    #[arg(long)]
    duration: f64,
    /// How connections are used.
    #[arg(long, value_enum, default_value_t = Shape::Keepalive)]
    shape: Shape,
    /// Path of ordinary requests.
    #[arg(long, default_value = "/")]
    path: String,
    /// Path of the slow POSTs of the mixed shape.
    #[arg(long, default_value = "/upload?delay_ms=200")]
    slow_path: String,
    /// Share of requests that are slow POSTs in the mixed shape.
    #[arg(long, default_value_t = 0.2)]
    slow_share: f64,
    /// Time limit of one request, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Concurrent clients (each with its own connection).
    #[arg(long, default_value_t = 96)]
    clients: usize,
    /// Where to write the records.
    #[arg(long)]
    out: String,
    /// Stop early once this file exists (the benchmark creates it when its deploys are
    /// done); --duration stays the upper bound.
    #[arg(long)]
    until_file: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The records written by `run`.
    #[arg(long)]
    records: String,
    /// A window as LABEL:START_EPOCH_MS:END_EPOCH_MS (repeatable).
    #[arg(long = "window")]
    windows: Vec<String>,
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// One request to send.
struct Job {
    due: Instant,
    due_epoch_ms: u128,
    slow: bool,
}

fn main() {
    match Cli::parse().command {
        Command::Run(args) => run(&args),
        Command::Report(args) => report(&args),
    }
}

fn run(args: &RunArgs) {
    let addr: SocketAddr = args
        .target
        .to_socket_addrs()
        .expect("target resolves")
        .next()
        .expect("target has an address");
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    let jobs = Arc::new(Mutex::new(jobs_rx));
    let (records_tx, records_rx) = mpsc::channel::<String>();
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let jobs = Arc::clone(&jobs);
        let records = records_tx.clone();
        let (shape, path, slow_path) = (args.shape, args.path.clone(), args.slow_path.clone());
        workers.push(std::thread::spawn(move || {
            let mut conn: Option<BufReader<TcpStream>> = None;
            loop {
                let job = match jobs.lock().expect("job queue").recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let (method, target) = if job.slow {
                    ("POST", &slow_path)
                } else {
                    ("GET", &path)
                };
                let outcome = request(&mut conn, addr, shape, method, target, timeout);
                let latency = job.due.elapsed().as_secs_f64() * 1000.0;
                let _ = records.send(format!("{},{latency:.2},{outcome}", job.due_epoch_ms));
            }
        }));
    }
    drop(records_tx);
    let writer = {
        let out = args.out.clone();
        std::thread::spawn(move || {
            let mut file =
                std::io::BufWriter::new(std::fs::File::create(&out).expect("records file"));
            for line in records_rx {
                writeln!(file, "{line}").expect("records written");
            }
        })
    };
    let total = (args.duration * f64::from(args.rate)).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let start = Instant::now();
    let start_epoch = epoch_ms();
    for n in 0..total {
        if n % 50 == 0
            && let Some(file) = &args.until_file
            && std::path::Path::new(file).exists()
        {
            break;
        }
        let offset = interval * n as u32;
        let due = start + offset;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // An even spread of slow requests: request n is slow when the running count of
        // slow requests due grows at n.
        let share = if args.shape == Shape::Mixed {
            args.slow_share
        } else {
            0.0
        };
        let slow = ((n + 1) as f64 * share).floor() > (n as f64 * share).floor();
        let _ = jobs_tx.send(Job {
            due,
            due_epoch_ms: start_epoch + offset.as_millis(),
            slow,
        });
    }
    drop(jobs_tx);
    for w in workers {
        let _ = w.join();
    }
    let _ = writer.join();
}

/// Sends one request, reusing `conn` when the shape keeps connections; the outcome is the
/// HTTP status or the kind of failure.
fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    shape: Shape,
    method: &str,
    target: &str,
    timeout: Duration,
) -> String {
    let keep = shape != Shape::Fresh;
    if conn.is_none() || !keep {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(Some(timeout));
                let _ = stream.set_write_timeout(Some(timeout));
                let _ = stream.set_nodelay(true);
                *conn = Some(BufReader::new(stream));
            }
            Err(e) => return classify(&e),
        }
    }
    let reader = conn.as_mut().expect("connected above");
    let body = if method == "POST" {
        "x".repeat(512)
    } else {
        String::new()
    };
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if keep { "keep-alive" } else { "close" }
    );
    let outcome = reader
        .get_mut()
        .write_all(head.as_bytes())
        .map_err(|e| classify(&e))
        .and_then(|()| read_response(reader));
    match outcome {
        Ok((status, server_keeps)) => {
            if !keep || !server_keeps {
                *conn = None;
            }
            status.to_string()
        }
        Err(kind) => {
            *conn = None;
            kind
        }
    }
}

/// Reads one response; (status, whether the server keeps the connection open).
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<(u16, bool), String> {
    let mut line = String::new();
    let n = reader.read_line(&mut line).map_err(|e| classify(&e))?;
    if n == 0 {
        return Err("reset".into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("protocol")?;
    let (mut length, mut chunked, mut keeps) = (0usize, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| classify(&e))? == 0 {
            return Err("reset".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_ascii_lowercase();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().map_err(|_| "protocol")?,
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => keeps = value != "close",
                _ => {}
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| classify(&e))?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| "protocol")?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| classify(&e))?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).map_err(|e| classify(&e))?;
    }
    Ok((status, keeps))
}

fn classify(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connect",
        WouldBlock | TimedOut => "timeout",
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => "reset",
        _ => "protocol",
    }
    .into()
}

/// What one window saw.
#[derive(Debug, Default)]
struct Summary {
    requests: u64,
    non_2xx: u64,
    connect: u64,
    reset: u64,
    timeout: u64,
    other: u64,
    latencies: Vec<f64>,
    successes_at: Vec<u128>,
}

fn report(args: &ReportArgs) {
    let text = std::fs::read_to_string(&args.records).expect("records readable");
    let mut windows: Vec<(String, u128, u128, Summary)> = args
        .windows
        .iter()
        .map(|w| {
            let mut parts = w.split(':');
            let label = parts.next().expect("window label").to_owned();
            let start = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("window start");
            let end = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("window end");
            (label, start, end, Summary::default())
        })
        .collect();
    for line in text.lines() {
        let mut fields = line.split(',');
        let (Some(due), Some(latency), Some(outcome)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(due), Ok(latency)) = (due.parse::<u128>(), latency.parse::<f64>()) else {
            continue;
        };
        for (_, _, _, s) in windows
            .iter_mut()
            .filter(|(_, s, e, _)| (*s..*e).contains(&due))
        {
            s.requests += 1;
            s.latencies.push(latency);
            match outcome.parse::<u16>() {
                Ok(200..=299) => s.successes_at.push(due + latency as u128),
                Ok(_) => s.non_2xx += 1,
                Err(_) => match outcome {
                    "connect" => s.connect += 1,
                    "reset" => s.reset += 1,
                    "timeout" => s.timeout += 1,
                    _ => s.other += 1,
                },
            }
        }
    }
    println!(
        "window,requests,failed,non_2xx,connect,reset,timeout,other,longest_gap_ms,p50_ms,p99_ms"
    );
    for (label, start, end, mut s) in windows {
        s.latencies.sort_by(f64::total_cmp);
        s.successes_at.sort_unstable();
        let pct = |p: f64| {
            if s.latencies.is_empty() {
                0.0
            } else {
                let rank = ((p / 100.0) * s.latencies.len() as f64).ceil() as usize;
                s.latencies[rank.clamp(1, s.latencies.len()) - 1]
            }
        };
        let mut gap = 0u128;
        let mut last = start;
        for &t in &s.successes_at {
            gap = gap.max(t.saturating_sub(last));
            last = t;
        }
        gap = gap.max(end.saturating_sub(last));
        let failed = s.non_2xx + s.connect + s.reset + s.timeout + s.other;
        println!(
            "{label},{},{failed},{},{},{},{},{},{gap},{:.1},{:.1}",
            s.requests,
            s.non_2xx,
            s.connect,
            s.reset,
            s.timeout,
            s.other,
            pct(50.0),
            pct(99.0)
        );
    }
}
