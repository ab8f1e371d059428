//! `loadgen`: the open-loop HTTP load generator of the zero-downtime benchmark
//! (`scripts/bench-zero-downtime`).
//!
//! Open loop: request N is due at `start + N / rate` and its latency is measured from that
//! moment, so a stall shows up as latency and failures instead of silently lowering the
//! request rate. A failed request is never retried: a client that does not retry (any POST)
//! would have seen it.
//!
//! `loadgen run` writes one line per request (`due_epoch_ms,latency_ms,outcome,slot`, the
//! outcome an HTTP status or `connect`, `reset`, `timeout`, `protocol`, the slot the answer's
//! `X-Bluegreen-Slot` header named, if any); `loadgen report` summarises
//! such a file per time window; `loadgen marks` turns the orchestrator's time-stamped job log
//! into the spans of its phases; `loadgen chart` draws requests, failures, latency and phases
//! as an SVG chart.

mod chart;
mod records;
mod windows;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Print the phases of a job log whose lines start with the epoch time in microseconds,
    /// as marks (`start_ms,end_ms,label`).
    Marks(MarksArgs),
    /// Draw recorded requests and marked phases as an SVG chart.
    Chart(ChartArgs),
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

#[derive(Debug, clap::Args)]
struct MarksArgs {
    /// The time-stamped job log.
    #[arg(long)]
    log: String,
}

#[derive(Debug, clap::Args)]
struct ChartArgs {
    /// The records written by `run`.
    #[arg(long)]
    records: String,
    /// Marks (`start_ms,end_ms,label` per line).
    #[arg(long)]
    marks: String,
    /// The chart's title.
    #[arg(long)]
    title: String,
    /// Width of one time bucket, in milliseconds.
    #[arg(long, default_value_t = 100)]
    bucket_ms: u128,
    /// Where to write the SVG.
    #[arg(long)]
    out: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
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
        Command::Report(args) => windows::report(&read(&args.records), &args.windows),
        Command::Marks(args) => {
            for m in records::marks_from_log(&read(&args.log)) {
                println!("{},{},{}", m.start_ms, m.end_ms, m.label);
            }
        }
        Command::Chart(args) => {
            let svg = chart::render(
                &records::parse_records(&read(&args.records)),
                &records::parse_marks(&read(&args.marks)),
                &args.title,
                args.bucket_ms,
            );
            std::fs::write(&args.out, svg)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", args.out));
        }
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
    // Requests sent later than they were due because every client was busy: the rate was
    // more than this machine (or the target) could take, and the records then measure the
    // generator's own queue as much as the target.
    let late = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let jobs = Arc::clone(&jobs);
        let late = Arc::clone(&late);
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
                if job.due.elapsed() > LATE {
                    late.fetch_add(1, Ordering::Relaxed);
                }
                let (outcome, slot) = request(&mut conn, addr, shape, method, target, timeout);
                let latency = job.due.elapsed().as_secs_f64() * 1000.0;
                let _ = records.send(format!(
                    "{},{latency:.2},{outcome},{slot}",
                    job.due_epoch_ms
                ));
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
    let late = late.load(Ordering::Relaxed);
    if late > 0 {
        eprintln!(
            "loadgen: {late} requests went out more than {} ms after they were due: {} requests/s is more than this machine and target can take with {} clients; their latency and the windows' figures measure the generator's queue too",
            LATE.as_millis(),
            args.rate,
            args.clients
        );
    }
}

/// A request sent this much after it was due was held up by the generator itself.
const LATE: Duration = Duration::from_millis(100);

/// Sends one request, reusing `conn` when the shape keeps connections; the outcome (the
/// HTTP status or the kind of failure) and the slot the answer named (empty for none).
fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    shape: Shape,
    method: &str,
    target: &str,
    timeout: Duration,
) -> (String, String) {
    let keep = shape != Shape::Fresh;
    if conn.is_none() || !keep {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                let _ = stream.set_read_timeout(Some(timeout));
                let _ = stream.set_write_timeout(Some(timeout));
                let _ = stream.set_nodelay(true);
                *conn = Some(BufReader::new(stream));
            }
            Err(e) => return (classify(&e), String::new()),
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
        Ok((status, server_keeps, slot)) => {
            if !keep || !server_keeps {
                *conn = None;
            }
            (status.to_string(), slot)
        }
        Err(kind) => {
            *conn = None;
            (kind, String::new())
        }
    }
}

/// Reads one response; (status, whether the server keeps the connection open, the slot its
/// `X-Bluegreen-Slot` header names).
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<(u16, bool, String), String> {
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
    let (mut length, mut chunked, mut keeps, mut slot) = (0usize, false, true, String::new());
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
                "x-bluegreen-slot" => slot = value,
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
    Ok((status, keeps, slot))
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
