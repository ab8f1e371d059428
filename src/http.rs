//! One HTTP GET, done defensively: bounded in time (connect, headers and body together),
//! bounded in memory (the body is read up to a cap and the rest dropped), redirects never
//! followed, proxies from the environment ignored. Used by health-check, monitor and the
//! verification step of switch-traffic.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::input::HttpUrl;

/// How much of a response body is read; the rest is never downloaded into memory.
pub const BODY_LIMIT_BYTES: u64 = 64 * 1024;

/// How many characters of a body are kept for messages.
const BODY_EXCERPT_CHARS: usize = 300;

/// The response header an app (or nginx) can use to say which slot answered.
pub const SLOT_HEADER: &str = "x-bluegreen-slot";

/// The outcome of one request.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Probe {
    /// The server answered with a status line (whatever the status).
    Answered {
        /// HTTP status code.
        status: u16,
        /// The start of the body (at most [`BODY_LIMIT_BYTES`]).
        #[serde(skip)]
        body: String,
        /// The value of the `X-Bluegreen-Slot` response header, if any.
        #[serde(skip)]
        slot_header: Option<String>,
        /// Time from sending to the end of the (capped) body.
        elapsed_ms: u64,
    },
    /// No usable answer: refused, reset, timed out, malformed.
    Failed {
        /// What went wrong.
        error: String,
        /// Time until the failure.
        elapsed_ms: u64,
    },
}

impl Probe {
    /// Time the request took, in milliseconds.
    pub fn elapsed_ms(&self) -> u64 {
        match self {
            Probe::Answered { elapsed_ms, .. } | Probe::Failed { elapsed_ms, .. } => *elapsed_ms,
        }
    }

    /// A string field of the body, when the body is a JSON object that has it.
    pub fn json_str(&self, field: &str) -> Option<String> {
        let Probe::Answered { body, .. } = self else {
            return None;
        };
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        value.get(field)?.as_str().map(str::to_owned)
    }

    /// The slot the answer says it came from: the `X-Bluegreen-Slot` header, else the JSON
    /// body's `slot` field.
    pub fn reported_slot(&self) -> Option<String> {
        let said = match self {
            Probe::Answered {
                slot_header: Some(s),
                ..
            } => Some(s.clone()),
            _ => self.json_str("slot"),
        };
        // Through a restricted key, only a slot's name: any other text is an answer's, not
        // the key's to read.
        said.filter(|s| !crate::gate::answering() || matches!(s.as_str(), "blue" | "green"))
    }

    /// One line for people: `HTTP 503: {"status":"starting"}` or the connection error.
    pub fn describe(&self) -> String {
        match self {
            // Through a restricted key, an answer's text is not the key's to read: a probe
            // of a loopback service would hand it out.
            Probe::Answered { status, .. } if crate::gate::answering() => {
                format!("HTTP {status} (body withheld from a restricted key)")
            }
            Probe::Answered { status, body, .. } => {
                let excerpt: String = body.trim().chars().take(BODY_EXCERPT_CHARS).collect();
                let excerpt = excerpt.replace(['\n', '\r'], " ");
                let cut = if body.trim().chars().count() > BODY_EXCERPT_CHARS {
                    "..."
                } else {
                    ""
                };
                if excerpt.is_empty() {
                    format!("HTTP {status} (empty body)")
                } else {
                    format!("HTTP {status}: {excerpt}{cut}")
                }
            }
            Probe::Failed { error, .. } => error.clone(),
        }
    }
}

/// The header every request of ours carries: nginx logs it, and the access log's readers
/// leave such lines out of the users' requests.
pub const PROBE_HEADER: &str = "x-bluegreen-probe";

/// A reusable HTTP client with the defensive settings above.
#[derive(Debug, Clone)]
pub struct Prober {
    agent: ureq::Agent,
    site_host: Option<String>,
}

impl Prober {
    /// A client that keeps connections alive between requests when `keep_alive` is true
    /// (monitor), or opens a fresh connection for every request (health checks, so each
    /// answer proves the server still accepts connections).
    pub fn new(keep_alive: bool) -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections(if keep_alive { 4 } else { 0 })
            .max_idle_connections_per_host(if keep_alive { 4 } else { 0 })
            .user_agent(concat!("bluegreen/", env!("CARGO_PKG_VERSION")))
            .build();
        Prober {
            agent: config.into(),
            site_host: None,
        }
    }

    /// The same client asking as `site_host` (when given) wherever a URL names its host by
    /// address or as localhost: nginx picks a server block by the Host header, and a
    /// request to `http://127.0.0.1/` would otherwise reach the default one (Debian's
    /// "Welcome to nginx" site), not the app's.
    pub fn for_site(mut self, site_host: Option<&str>) -> Self {
        self.site_host = site_host.map(str::to_owned);
        self
    }

    /// The Host a request to `url` carries in place of the URL's own, if any.
    fn host_for(&self, url: &HttpUrl) -> Option<&str> {
        self.site_host.as_deref().filter(|_| url.names_an_address())
    }

    /// `url` as messages name it: with the Host it is asked as, where that is the site's.
    pub fn asked(&self, url: &HttpUrl) -> String {
        match self.host_for(url) {
            Some(host) => format!("{url} (asked as {host})"),
            None => url.to_string(),
        }
    }

    /// Advice for an answer from the wrong server block: a request by address with no
    /// site name reaches the port's default one. Empty where the site was asked by name.
    pub fn by_address_advice(&self, url: &HttpUrl) -> &'static str {
        if self.site_host.is_none() && url.names_an_address() {
            " (asked by address, nginx answers from the port's default server block, which may not be the app's: give server-name, as setup does, or --site-host)"
        } else {
            ""
        }
    }

    /// GETs `url`, giving up after `timeout` (the whole exchange, body included).
    pub fn get(&self, url: &HttpUrl, timeout: Duration) -> Probe {
        let started = Instant::now();
        let elapsed_ms = || started.elapsed().as_millis() as u64;
        // Marked as ours, so that the access log tells the watch's probes from the users'
        // requests (see `canary::accesslog`).
        let mut request = self.agent.get(url.as_str()).header(PROBE_HEADER, "1");
        if let Some(host) = self.host_for(url) {
            request = request.header("host", host);
        }
        let result = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call();
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                return Probe::Failed {
                    error: describe_error(&e, timeout),
                    elapsed_ms: elapsed_ms(),
                };
            }
        };
        let status = response.status().as_u16();
        let slot_header = response
            .headers()
            .get(SLOT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        let read = response
            .body_mut()
            .as_reader()
            .take(BODY_LIMIT_BYTES)
            .read_to_end(&mut bytes);
        if let Err(e) = read {
            return Probe::Failed {
                error: format!("HTTP {status}, then reading the body failed: {e}"),
                elapsed_ms: elapsed_ms(),
            };
        }
        Probe::Answered {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            slot_header,
            elapsed_ms: elapsed_ms(),
        }
    }
}

fn describe_error(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!(
            "no complete answer within {}",
            humantime::format_duration(timeout)
        ),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Host header of one request `prober` sends to a listener of ours, named `host`
    /// in the URL.
    fn host_header_sent(prober: &Prober, host: &str) -> String {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url: HttpUrl = format!("http://{host}:{}/", listener.local_addr().unwrap().port())
            .parse()
            .unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut host = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = value.trim().to_owned();
                }
                line.clear();
            }
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            host
        });
        let probe = prober.get(&url, Duration::from_secs(5));
        assert!(
            matches!(probe, Probe::Answered { status: 204, .. }),
            "{probe:?}"
        );
        server.join().unwrap()
    }

    #[test]
    fn a_url_by_address_is_asked_as_the_site_and_named_so() {
        let site = Prober::new(false).for_site(Some("shop.example.com"));
        assert_eq!(host_header_sent(&site, "127.0.0.1"), "shop.example.com");
        let plain = Prober::new(false);
        assert!(host_header_sent(&plain, "127.0.0.1").starts_with("127.0.0.1:"));

        let by_address: HttpUrl = "http://127.0.0.1/health".parse().unwrap();
        let by_name: HttpUrl = "https://shop.example.com/health".parse().unwrap();
        assert_eq!(
            site.asked(&by_address),
            "http://127.0.0.1/health (asked as shop.example.com)"
        );
        assert_eq!(site.asked(&by_name), "https://shop.example.com/health");
        assert_eq!(site.by_address_advice(&by_address), "");
        assert!(plain.by_address_advice(&by_address).contains("--site-host"));
        assert_eq!(plain.by_address_advice(&by_name), "");
        for (url, by_address) in [
            ("http://[::1]:8080/", true),
            ("http://LOCALHOST/", true),
            ("http://10.0.0.5/", true),
            ("http://shop.example.com/", false),
        ] {
            let url: HttpUrl = url.parse().unwrap();
            assert_eq!(url.names_an_address(), by_address, "{url}");
        }
    }
}
