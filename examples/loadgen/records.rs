//! The files `loadgen` reads and writes: one line per request (`due_epoch_ms,latency_ms,
//! outcome,slot`) and one line per marked span of time (`start_epoch_ms,end_epoch_ms,label`, a
//! deploy's phase), plus turning the orchestrator's time-stamped job log into such spans.

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this HTTP status.
    Status(u16),
    /// The connection was refused.
    Connect,
    /// The connection was reset or closed before an answer.
    Reset,
    /// No answer in time.
    Timeout,
    /// Anything else (a malformed answer).
    Other,
}

impl Outcome {
    /// Parses the outcome field of a record.
    pub fn parse(field: &str) -> Outcome {
        match field.parse::<u16>() {
            Ok(status) => Outcome::Status(status),
            Err(_) => match field {
                "connect" => Outcome::Connect,
                "reset" => Outcome::Reset,
                "timeout" => Outcome::Timeout,
                _ => Outcome::Other,
            },
        }
    }

    /// Whether the request succeeded (a 2xx answer).
    pub fn ok(self) -> bool {
        matches!(self, Outcome::Status(200..=299))
    }
}

/// The slot an answer named in its `X-Bluegreen-Slot` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// blue
    Blue,
    /// green
    Green,
    /// No header (no answer, or an app that does not say).
    Unnamed,
}

/// One request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// When it was due (epoch ms); its latency counts from then.
    pub due_ms: u128,
    /// From due to the end of the answer or the failure.
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// The slot that answered, by its header.
    pub slot: Seen,
}

/// Parses a records file; lines that do not parse are skipped.
pub fn parse_records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            Some(Record {
                due_ms: fields.next()?.parse().ok()?,
                latency_ms: fields.next()?.parse().ok()?,
                outcome: Outcome::parse(fields.next()?),
                slot: match fields.next() {
                    Some("blue") => Seen::Blue,
                    Some("green") => Seen::Green,
                    _ => Seen::Unnamed,
                },
            })
        })
        .collect()
}

/// A labelled span of time (one phase of one deploy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Start (epoch ms).
    pub start_ms: u128,
    /// End (epoch ms).
    pub end_ms: u128,
    /// What happened then (`switch`, `health-check standby`, `docker rm + run`).
    pub label: String,
}

/// Parses a marks file; lines that do not parse are skipped.
pub fn parse_marks(text: &str) -> Vec<Mark> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ',');
            Some(Mark {
                start_ms: fields.next()?.parse().ok()?,
                end_ms: fields.next()?.parse().ok()?,
                label: fields.next()?.trim().to_owned(),
            })
        })
        .collect()
}

/// The phases in a job log of the orchestrator whose lines are prefixed with the epoch time
/// in microseconds they were printed at: each `::group::NAME` up to the next `::endgroup::`.
pub fn marks_from_log(stamped: &str) -> Vec<Mark> {
    let mut marks = Vec::new();
    let mut open: Option<(u128, String)> = None;
    for line in stamped.lines() {
        let Some((stamp, text)) = line.split_once(' ') else {
            continue;
        };
        let Ok(micros) = stamp.parse::<u128>() else {
            continue;
        };
        let ms = micros / 1000;
        if let Some(name) = text.strip_prefix("::group::") {
            open = Some((ms, name.trim().to_owned()));
        } else if text.starts_with("::endgroup::")
            && let Some((start_ms, label)) = open.take()
        {
            marks.push(Mark {
                start_ms,
                end_ms: ms,
                label,
            });
        }
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_skip_junk() {
        let r = parse_records("1000,1.50,200,green\nnonsense\n1010,3000.00,reset,\n1020,2.0,502\n");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].outcome, Outcome::Status(200));
        assert_eq!((r[0].slot, r[1].slot), (Seen::Green, Seen::Unnamed));
        assert!(r[0].outcome.ok());
        assert_eq!(r[1].outcome, Outcome::Reset);
        assert!(!r[2].outcome.ok());
    }

    #[test]
    fn groups_of_a_stamped_log_become_marks() {
        let log = "1000000 ::group::connect\n1165000 ok connect (165 ms): connected\n\
                   1166000 ::endgroup::\n1170000 ::group::switch\n\
                   1211000 ::stop-commands::abc\n1211500 ok switch (41 ms): ok\n\
                   1212000 ::endgroup::\n1300000 result: deployed\n";
        assert_eq!(
            marks_from_log(log),
            [
                Mark {
                    start_ms: 1000,
                    end_ms: 1166,
                    label: "connect".into()
                },
                Mark {
                    start_ms: 1170,
                    end_ms: 1212,
                    label: "switch".into()
                },
            ]
        );
        let text = "1000,1166,connect\n1170,1212,docker rm + run\n";
        assert_eq!(parse_marks(text)[1].label, "docker rm + run");
    }
}
