//! The wall clock as state, history and the lock file write it, and as nginx logs it.

/// The current time as RFC 3339 UTC with seconds, for state and history.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The current time in seconds since the epoch, to the microsecond: as nginx's `$msec`
/// writes it in the access log.
pub fn now_epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
