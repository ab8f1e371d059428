//! nginx's own record of each request to the app, as the include we own asks for it, and
//! reading the lines written in a window of time.
//!
//! The include declares a log format (JSON, one line per request) and an `access_log` for
//! the requests proxied to the app's upstream. Each line carries when nginx wrote it, its
//! final status, and per upstream attempt the address nginx connected to, the upstream's
//! status and response time, and the slot the response named in its `X-Bluegreen-Slot`
//! header. What the lines say about each slot, and reading a window of them as such, is
//! `traffic.rs`'s business.

use std::io::{BufRead, Read, Seek, SeekFrom};

/// The longest line a step reads: ours are a few hundred bytes; a longer one is skipped, so
/// a flood of odd lines cannot make the reader hold more than this at once.
const LINE_MAX_BYTES: usize = 16 * 1024;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::input::AppName;

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
         log_format {name} escape=json '{{\"t\":\"$msec\",\"code\":\"$status\",\"probe\":\"$http_x_bluegreen_probe\",\"addr\":\"$upstream_addr\",\"status\":\"$upstream_status\",\"ms\":\"$upstream_response_time\",\"slot\":\"$upstream_http_x_bluegreen_slot\"}}';\n\
         access_log \"{shown}\" {name} if=${chosen};\n"
    )
}

/// One line of the log.
#[derive(Debug, Deserialize)]
pub(super) struct Line {
    /// When nginx wrote it (`$msec`: seconds since the epoch, to the millisecond); empty
    /// in lines of an include from before it was logged.
    #[serde(default)]
    pub(super) t: String,
    /// The status nginx answered the client with (`$status`: the upstream's, or nginx's
    /// own 502 or 504 when the upstream failed, or 499 when the client went away); empty
    /// in lines of an include from before it was logged.
    #[serde(default)]
    pub(super) code: String,
    /// Set on a request of ours (the watch's probes, a switch's verify): not a user's.
    #[serde(default)]
    pub(super) probe: String,
    /// Each attempt's upstream address (`$upstream_addr`).
    pub(super) addr: String,
    /// Each attempt's upstream status (`$upstream_status`).
    pub(super) status: String,
    /// Each attempt's upstream response time in seconds (`$upstream_response_time`).
    pub(super) ms: String,
    /// The slot the answer named (`X-Bluegreen-Slot`).
    pub(super) slot: String,
}

impl Line {
    /// The port of the last upstream address nginx tried.
    pub(super) fn last_port(&self) -> Option<u16> {
        self.addr.rsplit([',', ':']).next()?.trim().parse().ok()
    }

    /// When nginx wrote it, in seconds since the epoch (`None` in an older line).
    pub(super) fn written(&self) -> Option<f64> {
        self.t.parse().ok()
    }

    /// Whether nginx answered the client with a 5xx; in an older line without the final
    /// status, whether the last attempt failed (a 5xx, or no answer).
    pub(super) fn failed(&self) -> bool {
        match self.code.parse::<u16>() {
            Ok(code) => code >= 500,
            Err(_) => self
                .status
                .rsplit([',', ':'])
                .next()
                .and_then(|s| s.trim().parse::<u16>().ok())
                .is_none_or(|s| s >= 500),
        }
    }
}

/// The app's access log.
#[derive(Debug, Clone)]
pub struct AccessLog {
    path: PathBuf,
    /// The port of nginx's own maintenance server: its 503s are the page, not failures.
    maintenance_port: Option<u16>,
}

impl AccessLog {
    /// The log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AccessLog {
            path: path.into(),
            maintenance_port: None,
        }
    }

    /// The same log, leaving out the requests nginx sent to its maintenance server on
    /// `port` (maintenance mode, and setup's placeholder before a first deploy).
    pub fn beside_maintenance(self, port: u16) -> Self {
        AccessLog {
            maintenance_port: Some(port),
            ..self
        }
    }

    /// Whether nginx has written it at all.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long it is now: where the lines of a step about to begin start.
    pub fn end(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Hands each complete line of a user's request from `offset` (from the start when the
    /// file is now shorter: it was rotated) to `visit`, up to the length the file has now
    /// (lines nginx writes meanwhile belong to the next window). A missing file has no
    /// lines. Skipped: a line that is not ours, our own probes, and the requests nginx's
    /// maintenance server answered.
    pub(super) fn each_line(&self, offset: u64, mut visit: impl FnMut(&Line)) -> Result<()> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
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
            if let Ok(parsed) =
                serde_json::from_str::<Line>(String::from_utf8_lossy(&line).trim_end())
                && parsed.probe.is_empty()
                && self
                    .maintenance_port
                    .is_none_or(|port| parsed.last_port() != Some(port))
            {
                visit(&parsed);
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::StepTraffic;
    use crate::canary::traffic::tests::{line, ports};
    use crate::input::Slot;

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
            // A line from before the log had times: maybe long ago, so not in the window.
            line("127.0.0.1:21000", "500", "0.001", ""),
            at(now - 5.0, "200"),
            at(now - 1.0, "502"),
            at(now - 0.5, "200"),
        ];
        std::fs::write(log.path(), lines.join("\n") + "\n").unwrap();
        let w = log.recent(60.0, 1 << 20, ports(), Slot::Green).unwrap();
        assert_eq!((w.all.requests, w.all.errors), (3, 1), "{w:?}");
        // Only the last bytes are read: here, the last line and a half.
        let tail = lines[5].len() as u64 + 20;
        let w = log.recent(600.0, tail, ports(), Slot::Green).unwrap();
        assert_eq!(w.all.requests, 1, "{w:?}");
    }

    #[test]
    fn our_probes_and_the_maintenance_page_are_not_users_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let lines = [
            line("127.0.0.1:3002", "200", "0.001", ""),
            r#"{"probe":"1","addr":"127.0.0.1:3002","status":"200","ms":"0.001","slot":""}"#
                .to_owned(),
            r#"{"code":"503","addr":"127.0.0.1:8099","status":"503","ms":"0.000","slot":""}"#
                .to_owned(),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let all = AccessLog::new(&path)
            .since(0, ports(), Slot::Green)
            .unwrap();
        assert_eq!(
            (all.all.requests, all.all.errors),
            (2, 1),
            "the probe is left out"
        );
        let users = AccessLog::new(&path)
            .beside_maintenance(8099)
            .since(0, ports(), Slot::Green)
            .unwrap();
        assert_eq!(
            (users.all.requests, users.all.errors),
            (1, 0),
            "and the page's 503"
        );
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
            d.contains(r#"'{"t":"$msec","code":"$status","probe":"$http_x_bluegreen_probe","addr":"$upstream_addr","#),
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
