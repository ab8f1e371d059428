//! Steady traffic through nginx during a test, remembering every answer that was not a 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Requests nginx on fresh connections every 20 ms until stopped; remembers every answer
/// that was not a 200.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl Traffic {
    pub fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let worker = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_idle_connections(0)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let (mut requests, mut bad) = (0, Vec::new());
            // Bounded: at most 10 minutes of requests.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                requests += 1;
                match agent.get(&url).call() {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => bad.push(format!("HTTP {}", r.status())),
                    Err(e) => bad.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (requests, bad)
        });
        Traffic { stop, worker }
    }

    /// Stops and returns (requests made, failed answers).
    pub fn finish(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.worker.join().unwrap()
    }
}
