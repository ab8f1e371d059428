//! Whether this process answers a request that came through the gate: a process-wide mark
//! that the lower layers (the HTTP probes, the checks) read to withhold what a restricted
//! key must not see. Kept apart from the gate's policy so that they need nothing else of it.

/// Set once this process answers a restricted key's request (see [`answering`]).
static ANSWERING: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// Records that this process answers a request through the gate: what it runs came
/// through a restricted key.
pub fn mark_answering() {
    let _ = ANSWERING.set(());
}

/// Whether this process answers a request through the gate (a check that warns about what
/// the deploy key could do says the key is restricted instead).
pub fn answering() -> bool {
    ANSWERING.get().is_some()
}
