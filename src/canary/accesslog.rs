//! nginx's own record of each request to the app, as the include we own asks for it, and
//! what the lines of one step say about each slot.
//!
//! The include declares a log format (JSON, one line per request) and an `access_log` for
//! the requests proxied to the app's upstream. Each line carries, per upstream attempt, the
//! address nginx connected to, the upstream's status and response time, and the slot the
//! response named in its `X-Bluegreen-Slot` header.
//!
//! A request is put down to a slot by the port nginx connected to (reload mode: each slot
//! has its own `server` line). In nftables mode nginx only ever sees the service port, and
//! the slot is told by the `X-Bluegreen-Slot` header the app sends (the variable
//! `BLUEGREEN_SLOT` tells it its slot). Where the app names its slot, a failure that names
//! none (the connection failed before any answer) is counted against the new slot: a canary
//! is never let off for a failure nobody can place. Where the answers do not name their slot,
//! the log cannot tell the slots apart, and says so ([`StepTraffic::slots_unnamed`]).

use std::io::{BufRead, Read, Seek, SeekFrom};

use super::latency::LatencyHistogram;

/// The longest line a step reads: ours are a few hundred bytes; a longer one is skipped, so
/// a flood of odd lines cannot make the reader hold more than this at once.
const LINE_MAX_BYTES: usize = 16 * 1024;

/// Of the answers of a step, the largest share that may name no slot for the log still to
/// tell the slots apart (a few failures before any answer; not an app that never says).
const MOST_UNNAMED: f64 = 0.1;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{AppName, Slot, SlotPorts};

/// The nginx directives, for the http context, that write the app's access log to `path`:
/// a `map` choosing the requests proxied to the app's upstream, the log format, and the
/// `access_log` line.
/// A path nginx's configuration cannot carry as a plain quoted string (`$` starts a
/// variable there) gets a comment saying the log is off.
///
/// The log format is `bluegreen_APP` (`-` written `_`); the map's variable is named after a
/// digest of the app name, since nginx's variable names must fit its hash buckets
/// (`variables_hash_bucket_size`, 64 bytes by default), which a long app name would not.
pub fn log_directives(app: &AppName, path: &Path) -> String {
    let name = format!("bluegreen_{}", app.as_str().replace('-', "_"));
    let chosen = format!(
        "bluegreen_log_{}",
        &crate::fsutil::sha256_hex(app.as_str().as_bytes())[..12]
    );
    let Some(shown) = crate::nginx::quotable_path(path) else {
        return format!(
            "# No access log for canary steps: nginx cannot take the path {:?} as it is.\n",
            path.display().to_string()
        );
    };
    format!(
        "# The record of each request that bluegreen judges canary steps on.\n\
         map $proxy_host ${chosen} {{\n    \\{app} 1;\n    default 0;\n}}\n\
         log_format {name} escape=json '{{\"t\":\"$msec\",\"addr\":\"$upstream_addr\",\"status\":\"$upstream_status\",\"ms\":\"$upstream_response_time\",\"slot\":\"$upstream_http_x_bluegreen_slot\"}}';\n\
         access_log \"{shown}\" {name} if=${chosen};\n"
    )
}

/// One line of the log.
#[derive(Debug, Deserialize)]
struct Line {
    /// When nginx wrote it (`$msec`: seconds since the epoch, to the millisecond); empty
    /// in lines of an include from before it was logged.
    #[serde(default)]
    t: String,
    addr: String,
    status: String,
    ms: String,
    slot: String,
}

/// The app's access log.
#[derive(Debug, Clone)]
pub struct AccessLog {
    path: PathBuf,
}

impl AccessLog {
    /// The log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AccessLog { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long it is now: where the lines of a step about to begin start.
    pub fn end(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// The complete lines written since `offset` (from the start when the file is now
    /// shorter: it was rotated), put down to the slots of `ports`, with `canary` the new
    /// slot. A missing file has no lines.
    pub fn since(&self, offset: u64, ports: SlotPorts, canary: Slot) -> Result<StepTraffic> {
        self.read(offset, ports, canary, None)
    }

    /// What the lines of the last `seconds` before now say (of at most the log's last
    /// `most_bytes`): the window a canary's baseline is read from. Lines that carry no time
    /// (written before the log had one) count as in the window.
    pub fn recent(
        &self,
        seconds: f64,
        most_bytes: u64,
        ports: SlotPorts,
        canary: Slot,
    ) -> Result<StepTraffic> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let start = self.end().saturating_sub(most_bytes);
        self.read(start, ports, canary, Some(now - seconds))
    }

    /// The complete lines from `offset` (see [`AccessLog::since`]), only those written at
    /// `not_before` (seconds since the epoch) or later when it is given.
    fn read(
        &self,
        offset: u64,
        ports: SlotPorts,
        canary: Slot,
        not_before: Option<f64>,
    ) -> Result<StepTraffic> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StepTraffic::default());
            }
            Err(e) => return Err(Error::io("open", self.path.display().to_string(), e)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", self.path.display().to_string(), e))?
            .len();
        let start = if len < offset { 0 } else { offset };
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("read", self.path.display().to_string(), e))?;
        // Up to the length seen now: lines nginx writes meanwhile belong to the next step.
        let mut reader = std::io::BufReader::new(file.take(len - start));
        let mut traffic = StepTraffic::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(LINE_MAX_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io("read", self.path.display().to_string(), e))?;
            if read == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                if line.len() <= LINE_MAX_BYTES {
                    break; // the last line, still being written
                }
                // Longer than any line of ours: skip to its end.
                skip_line(&mut reader)
                    .map_err(|e| Error::io("read", self.path.display().to_string(), e))?;
                continue;
            }
            // nginx passes bytes of a header through as they came: a line may not be UTF-8.
            traffic.add_line(&String::from_utf8_lossy(&line), ports, canary, not_before);
        }
        traffic.finish();
        Ok(traffic)
    }
}

/// What the log says about one slot in a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotTraffic {
    /// Upstream attempts put down to the slot.
    pub requests: u64,
    /// Those that failed: a 5xx answer, or no answer at all.
    pub errors: u64,
    /// The 95th percentile of their upstream response times, in milliseconds.
    pub p95_ms: u64,
    #[serde(skip)]
    times_ms: LatencyHistogram,
}

impl SlotTraffic {
    /// The share of its requests that failed (0 with no requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// One line for people, the same for either slot: `green: 0 of 202 failed, p95 12 ms`.
    pub fn describe(&self, slot: Slot) -> String {
        format!(
            "{slot}: {} of {} failed, p95 {} ms",
            self.errors, self.requests, self.p95_ms
        )
    }

    fn add(&mut self, failed: bool, ms: Option<u64>) {
        self.requests += 1;
        self.errors += u64::from(failed);
        if let Some(ms) = ms {
            self.times_ms.add(ms);
        }
    }

    fn finish(&mut self) {
        self.p95_ms = self.times_ms.percentile(95);
    }
}

/// What the log says about both slots in a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTraffic {
    /// The slot that was live before.
    pub stable: SlotTraffic,
    /// The new slot (including failures nobody could place, where the app names its slot).
    pub canary: SlotTraffic,
    /// Failures that named no slot.
    pub unplaced_failures: u64,
    /// Successful answers that named no slot (nftables mode, an app without the header).
    pub unplaced: u64,
    /// Too many answers named no slot to tell the slots apart (nftables mode with an app
    /// that does not send `X-Bluegreen-Slot`): the log cannot judge the step.
    #[serde(default)]
    pub slots_unnamed: bool,
    /// Every upstream attempt of the step, whichever slot served it (for the estimate of
    /// [`super::estimate`], where the slots cannot be told apart).
    #[serde(default)]
    pub all: SlotTraffic,
}

impl StepTraffic {
    /// The share of the placed requests the new slot served, in percent.
    pub fn canary_percent(&self) -> f64 {
        let placed = self.stable.requests + self.canary.requests;
        if placed == 0 {
            0.0
        } else {
            100.0 * self.canary.requests as f64 / placed as f64
        }
    }

    #[cfg(test)]
    fn from_lines(text: &str, ports: SlotPorts, canary: Slot) -> StepTraffic {
        let mut t = StepTraffic::default();
        for line in text.lines() {
            t.add_line(line, ports, canary, None);
        }
        t.finish();
        t
    }

    /// Counts one line of the log (one that is not ours, or written before `not_before`,
    /// is skipped).
    fn add_line(&mut self, text: &str, ports: SlotPorts, canary: Slot, not_before: Option<f64>) {
        let Ok(line) = serde_json::from_str::<Line>(text.trim_end()) else {
            return;
        };
        let written = line.t.parse::<f64>().ok();
        if let (Some(written), Some(not_before)) = (written, not_before)
            && written < not_before
        {
            return;
        }
        let addrs = fields(&line.addr);
        let statuses = fields(&line.status);
        let times = fields(&line.ms);
        let named: Option<Slot> = line.slot.parse().ok();
        for (i, addr) in addrs.iter().enumerate() {
            let last = i + 1 == addrs.len();
            let failed = statuses
                .get(i)
                .and_then(|s| s.parse::<u16>().ok())
                .is_none_or(|s| s >= 500);
            let ms = times
                .get(i)
                .and_then(|s| s.parse::<f64>().ok())
                .map(|secs| (secs * 1000.0).round() as u64);
            let slot = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .and_then(|p| ports.slot_of(p))
                .or(named.filter(|_| last));
            self.all.add(failed, ms);
            match slot {
                Some(s) if s == canary => self.canary.add(failed, ms),
                Some(_) => self.stable.add(failed, ms),
                None if failed => self.unplaced_failures += 1,
                None => self.unplaced += 1,
            }
        }
    }

    /// Settles the figures once every line is counted.
    fn finish(&mut self) {
        let placed = self.stable.requests + self.canary.requests;
        let unnamed = self.unplaced as f64 / (placed + self.unplaced).max(1) as f64;
        if unnamed > MOST_UNNAMED {
            self.slots_unnamed = true;
        } else {
            for _ in 0..self.unplaced_failures {
                self.canary.add(true, None);
            }
        }
        self.stable.finish();
        self.canary.finish();
        self.all.finish();
    }
}

/// Reads up to the end of the current line (or of the input).
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// The values of a multi-valued nginx variable (`a, b : c`: attempts within one upstream
/// are separated by commas, upstreams of internal redirects by colons), one per attempt.
fn fields(text: &str) -> Vec<&str> {
    text.split(", ")
        .flat_map(|group| group.split(" : "))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> SlotPorts {
        SlotPorts::new(3001, 3002).unwrap()
    }

    fn line(addr: &str, status: &str, ms: &str, slot: &str) -> String {
        format!(r#"{{"addr":"{addr}","status":"{status}","ms":"{ms}","slot":"{slot}"}}"#)
    }

    #[test]
    fn attempts_are_put_down_to_the_slot_nginx_connected_to() {
        let lines = [
            line("127.0.0.1:3001", "200", "0.004", "blue"),
            line("127.0.0.1:3002", "500", "0.010", "green"),
            // The canary refused; nginx tried the old slot next: a failure of the canary,
            // an answer of the old slot.
            line(
                "127.0.0.1:3002, 127.0.0.1:3001",
                "502, 200",
                "0.000, 0.003",
                "blue",
            ),
            "not json".to_owned(),
        ]
        .join("\n");
        let t = StepTraffic::from_lines(&lines, ports(), Slot::Green);
        assert_eq!((t.stable.requests, t.stable.errors), (2, 0));
        assert_eq!((t.canary.requests, t.canary.errors), (2, 2));
        assert_eq!(t.canary.p95_ms, 10);
        assert_eq!(t.canary_percent(), 50.0);
        // Both slots in one format, side by side in a step's line.
        assert_eq!(
            t.canary.describe(Slot::Green),
            "green: 2 of 2 failed, p95 10 ms"
        );
        assert_eq!(
            t.stable.describe(Slot::Blue),
            "blue: 0 of 2 failed, p95 4 ms"
        );
    }

    #[test]
    fn behind_the_service_port_the_header_names_the_slot_and_unplaced_failures_count_against_the_canary()
     {
        let lines = [
            line("127.0.0.1:3000", "200", "0.002", "blue"),
            line("127.0.0.1:3000", "200", "0.020", "green"),
            line("127.0.0.1:3000", "502", "0.000", ""),
        ];
        let named: Vec<String> = lines.iter().cycle().take(30).cloned().collect();
        let mut all = named.clone();
        all.push(line("127.0.0.1:3000", "200", "0.001", ""));
        let t = StepTraffic::from_lines(&all.join("\n"), ports(), Slot::Green);
        assert_eq!(t.stable.requests, 10);
        assert_eq!((t.canary.requests, t.canary.errors), (20, 10));
        assert_eq!(
            (t.unplaced_failures, t.unplaced, t.slots_unnamed),
            (10, 1, false)
        );
        // An app that never names its slot: nothing can be put down to the new slot.
        let anonymous: Vec<String> = (0..30)
            .map(|i| {
                line(
                    "127.0.0.1:3000",
                    if i % 10 == 0 { "502" } else { "200" },
                    "0.001",
                    "",
                )
            })
            .collect();
        let t = StepTraffic::from_lines(&anonymous.join("\n"), ports(), Slot::Green);
        assert!(t.slots_unnamed, "{t:?}");
        assert_eq!((t.canary.requests, t.stable.requests), (0, 0));
    }

    #[test]
    fn a_step_reads_only_complete_lines_written_since_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::new(dir.path().join("access.log"));
        assert_eq!(log.end(), 0);
        assert_eq!(
            log.since(0, ports(), Slot::Green).unwrap(),
            StepTraffic::default()
        );
        let before = line("127.0.0.1:3001", "200", "0.001", "");
        std::fs::write(log.path(), format!("{before}\n")).unwrap();
        let start = log.end();
        let during = line("127.0.0.1:3002", "200", "0.001", "");
        std::fs::write(log.path(), format!("{before}\n{during}\n{{\"addr\"")).unwrap();
        let t = log.since(start, ports(), Slot::Green).unwrap();
        assert_eq!((t.stable.requests, t.canary.requests), (0, 1));
        // Rotated (shorter than the offset): read from the start.
        let short = line("127.0.0.1:3002", "200", "1", "");
        std::fs::write(log.path(), format!("{short}\n")).unwrap();
        assert_eq!(
            log.since(start, ports(), Slot::Green)
                .unwrap()
                .canary
                .requests,
            1
        );
    }

    #[test]
    fn a_line_longer_than_any_of_ours_is_skipped_and_the_rest_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::new(dir.path().join("access.log"));
        let ok = line("127.0.0.1:3002", "200", "0.002", "");
        let huge = "x".repeat(3 * LINE_MAX_BYTES);
        std::fs::write(log.path(), format!("{ok}\n{huge}\n{ok}\n{huge}")).unwrap();
        let t = log.since(0, ports(), Slot::Green).unwrap();
        assert_eq!((t.canary.requests, t.canary.p95_ms), (2, 2));
    }

    #[test]
    fn a_recent_window_keeps_only_the_lines_of_its_last_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::new(dir.path().join("access.log"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let at = |t: f64, status: &str| {
            format!(
                r#"{{"t":"{t:.3}","addr":"127.0.0.1:21000","status":"{status}","ms":"0.002","slot":""}}"#
            )
        };
        let lines = [
            at(now - 120.0, "500"),
            at(now - 61.0, "500"),
            at(now - 5.0, "200"),
            at(now - 1.0, "502"),
            line("127.0.0.1:21000", "200", "0.001", ""),
        ];
        std::fs::write(log.path(), lines.join("\n") + "\n").unwrap();
        let w = log.recent(60.0, 1 << 20, ports(), Slot::Green).unwrap();
        assert_eq!((w.all.requests, w.all.errors), (3, 1), "{w:?}");
        // Only the last bytes are read: here, the last line and a half.
        let tail = lines[4].len() as u64 + 20;
        let w = log.recent(600.0, tail, ports(), Slot::Green).unwrap();
        assert_eq!(w.all.requests, 1, "{w:?}");
    }

    #[test]
    fn the_directives_log_only_the_apps_upstream() {
        let d = log_directives(
            &"shop-api".parse().unwrap(),
            Path::new("/var/lib/bg/access.log"),
        );
        assert!(
            d.contains("map $proxy_host $bluegreen_log_982d4486a936 {\n    \\shop-api 1;"),
            "{d}"
        );
        assert!(d.contains("access_log \"/var/lib/bg/access.log\" bluegreen_shop_api if=$bluegreen_log_982d4486a936;"), "{d}");
        assert!(
            d.contains(r#"'{"t":"$msec","addr":"$upstream_addr","#),
            "{d}"
        );
        let odd = log_directives(
            &"shop".parse().unwrap(),
            Path::new("/srv/state dir$1/access.log"),
        );
        assert!(
            odd.starts_with("# No access log") && !odd.contains("access_log "),
            "{odd}"
        );
    }
}
