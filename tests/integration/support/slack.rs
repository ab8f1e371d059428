//! An HTTP server of the test's own standing in for Slack.

use std::net::TcpListener;
use std::time::Duration;

use super::free_port;

/// An HTTP server standing in for Slack: records every request body and answers with
/// `status` (or never answers when `hang`). Lives until the test process ends.
pub struct SlackRecorder {
    pub url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SlackRecorder {
    /// A recorder answering `status`, or hanging without an answer when `hang`.
    pub fn start(status: u16, hang: bool) -> SlackRecorder {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/services/T000/B000/SECRETTOKEN",
            listener.local_addr().unwrap().port()
        );
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = std::sync::Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                if hang {
                    std::thread::sleep(Duration::from_secs(60));
                    continue;
                }
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        SlackRecorder { url, bodies }
    }

    /// A webhook URL on a loopback port where nothing listens: every post is refused.
    pub fn refusing() -> SlackRecorder {
        SlackRecorder {
            url: format!(
                "http://127.0.0.1:{}/services/T000/B000/SECRETTOKEN",
                free_port()
            ),
            bodies: std::sync::Arc::default(),
        }
    }

    /// The bodies received so far, parsed as JSON.
    pub fn payloads(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON ({e}): {b}")))
            .collect()
    }
}
