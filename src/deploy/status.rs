//! The status operation (`command: status`): the host's state and its latest history.

use crate::fsutil::read_optional;
use crate::input::Slot;
use crate::state::HistoryEvent;

use super::engine::{Engine, Failure};
use super::protocol::{Outcome, Phase};

/// How many history lines status reports.
const STATUS_HISTORY_LINES: usize = 10;

/// Reports the state and the latest history lines.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let store = e.plan.store();
    let history = e.phase(Phase::Status, |me| {
        let state = me.load_state()?;
        let text = read_optional(&store.history_path())?.unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let first = lines.len().saturating_sub(STATUS_HISTORY_LINES);
        let tail: Vec<String> = lines[first..]
            .iter()
            .enumerate()
            .map(|(i, line)| match HistoryEvent::parse(line) {
                Ok(event) => event.describe(),
                Err(e) => format!(
                    "(line {} of history.jsonl is unreadable: {e})",
                    first + i + 1
                ),
            })
            .collect();
        for line in &tail {
            me.log(line);
        }
        let describe = |slot: Slot| {
            let r = state.slots.get(slot);
            format!(
                "{slot}: port {}, version {}",
                r.port.map_or("-".into(), |p| p.to_string()),
                r.version.as_deref().unwrap_or("-")
            )
        };
        Ok((
            tail,
            format!(
                "active {}, previous {}; {}; {}",
                state.active.map_or("none", Slot::as_str),
                state.previous.map_or("none", Slot::as_str),
                describe(Slot::Blue),
                describe(Slot::Green)
            ),
        ))
    })?;
    e.result.history = history;
    Ok(Outcome::Unchanged)
}
