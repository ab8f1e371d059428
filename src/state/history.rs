//! `history.jsonl`: one JSON object per event, appended (see [`super::StateStore::record`]).

use serde::{Deserialize, Serialize};

use crate::canary::Receipt;
use crate::input::Slot;

/// One line of `history.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEvent {
    /// When it happened (RFC 3339, UTC).
    pub ts: String,
    /// What happened: `switch`, `rollback`, `switch-failed`.
    pub event: String,
    /// The app.
    pub app: String,
    /// The slot traffic left (or would have left).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<Slot>,
    /// The slot traffic went to (or would have gone to).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<Slot>,
    /// The version in the `to` slot, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// Extra detail: a failure reason, a rollback cause.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// What the run cost the users (a run that moved traffic, with the access log on).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub receipt: Option<Receipt>,
    /// The process that recorded it.
    pub pid: u32,
}

impl HistoryEvent {
    /// Parses one line of `history.jsonl`.
    pub fn parse(line: &str) -> std::result::Result<HistoryEvent, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    /// One line for people: `2026-11-23T10:00:00Z switch blue -> green v42 (detail)`.
    pub fn describe(&self) -> String {
        let slot = |s: Option<Slot>| s.map_or("-", Slot::as_str);
        let mut text = format!(
            "{} {} {} -> {} {}",
            self.ts,
            self.event,
            slot(self.from),
            slot(self.to),
            self.version.as_deref().unwrap_or("-")
        );
        if let Some(d) = &self.detail {
            text.push_str(&format!(" ({d})"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_round_trip_and_describe_themselves() {
        let event = HistoryEvent {
            ts: "t".into(),
            event: "switch".into(),
            app: "shop".into(),
            from: Some(Slot::Blue),
            to: Some(Slot::Green),
            version: Some("v2".into()),
            detail: None,
            receipt: None,
            pid: 7,
        };
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(HistoryEvent::parse(&line).unwrap(), event);
        assert_eq!(event.describe(), "t switch blue -> green v2");
        assert!(HistoryEvent::parse("{\"ts\":").is_err());
    }
}
