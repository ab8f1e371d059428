//! The wall clock as state, history and the lock file write it.

/// The current time as RFC 3339 UTC with seconds, for state and history.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
