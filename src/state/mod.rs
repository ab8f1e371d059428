//! Host-side state of one app: `state.json` (which slot is live, which was live before, the
//! port and version of each slot) and `history.jsonl` (one JSON object per event).
//!
//! State is written atomically. When it is missing or corrupt it is rebuilt from what nginx
//! is actually using (the upstream file) and the caller gets a warning to print: a deploy
//! tool must never refuse to run, or crash, because its own bookkeeping was lost.
//!
//! `document`: the content of `state.json`; `records`: what it says of each slot and of a
//! canary; `history`: the event lines; `store`: the state directory, where both are read
//! and written.

mod document;
mod history;
mod records;
mod store;

pub use document::{DEPLOYED_IMAGES_KEPT, STATE_FORMAT, State, parse_image_id};
pub use history::HistoryEvent;
pub use records::{CanaryRecord, MaintenanceRecord, SlotRecord, Slots};
pub use store::{Loaded, StateSource, StateStore};

#[cfg(test)]
mod tests;
