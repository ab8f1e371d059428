//! What the holder of an app's lock writes into the lock file, and what a run kept
//! waiting (or its error) says about it. Its own module so that the error type can name it
//! without importing the lock, which returns that error.

use serde::{Deserialize, Serialize};

/// Who holds a lock, as written by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock (RFC 3339, UTC).
    pub started_at: String,
    /// What it is doing, e.g. `switch-traffic --to green`.
    pub purpose: String,
}
