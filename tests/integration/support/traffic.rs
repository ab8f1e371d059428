//! Steady traffic through nginx during a test, remembering every answer that was not
//! accepted (a 200, unless the test says what else to accept) and how many of each status
//! came.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether an answer (status, `Retry-After` header, body) is acceptable.
pub type Accept = fn(u16, Option<&str>, &str) -> bool;

/// Requests nginx on fresh connections every 20 ms until stopped; remembers every answer
/// that was not accepted.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<Seen>,
}

/// What the traffic saw.
pub struct Seen {
    /// How many answers came with each status.
    pub statuses: BTreeMap<u16, u32>,
    /// Every answer not accepted, and every request that got no answer.
    pub bad: Vec<String>,
}

impl Traffic {
    /// Traffic that accepts only 200s.
    pub fn start(url: String) -> Traffic {
        Traffic::accepting(url, |status, _, _| status == 200)
    }

    /// Traffic that accepts what `accept` says.
    pub fn accepting(url: String, accept: Accept) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let worker = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_idle_connections(0)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let mut seen = Seen {
                statuses: BTreeMap::new(),
                bad: Vec::new(),
            };
            // Bounded: at most 10 minutes of requests.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match agent.get(&url).call() {
                    Ok(mut r) => {
                        let status = r.status().as_u16();
                        *seen.statuses.entry(status).or_default() += 1;
                        let retry_after = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = r.body_mut().read_to_string().unwrap_or_default();
                        if !accept(status, retry_after.as_deref(), &body) {
                            seen.bad.push(format!("HTTP {status}: {body}"));
                        }
                    }
                    Err(e) => seen.bad.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        Traffic { stop, worker }
    }

    /// Stops and returns (requests made, answers not accepted).
    pub fn finish(self) -> (u32, Vec<String>) {
        let seen = self.finish_seen();
        let answered: u32 = seen.statuses.values().sum();
        let unanswered = seen.bad.iter().filter(|b| !b.starts_with("HTTP ")).count() as u32;
        (answered + unanswered, seen.bad)
    }

    /// Stops and returns all it saw.
    pub fn finish_seen(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.worker.join().unwrap()
    }
}
