//! Putting back what a failed switch changed: the nftables rule, the previous include
//! (reloaded if nginx had loaded the new one), and a `switch-failed` line in the history.

use crate::clock::now_rfc3339;
use crate::error::Error;
use crate::fsutil::write_atomic;
use crate::input::Slot;
use crate::nft::Route;
use crate::state::HistoryEvent;

use super::request::SwitchRequest;

/// What a switch changed so far, for putting it back.
pub(super) struct Undo {
    pub(super) old_file: Option<String>,
    pub(super) master: Option<u32>,
    pub(super) file_written: bool,
    pub(super) reloaded: bool,
    /// In nftables mode, once the rules were touched: where they led before, if anywhere.
    pub(super) nft_previous: Option<Option<Route>>,
    /// Each reload of nginx so far, with the client connections open at it.
    pub(super) reloads: Vec<Option<u32>>,
}

impl SwitchRequest {
    /// Puts back what the switch changed: the nftables rule, the previous include (reloaded
    /// if nginx had loaded the new one, waiting until the restored one serves). Records the
    /// failure in history and builds the error to return.
    pub(super) fn undo(
        &self,
        undo: &mut Undo,
        to: Slot,
        stage: &'static str,
        reason: String,
    ) -> Error {
        let mut reason = reason;
        let mut restored = true;
        if let (Some(nft), Some(previous)) = (self.nft(), undo.nft_previous) {
            let put_back = match previous {
                Some(route) => nft.retarget(&route, self.store.dir()),
                None => nft.remove(),
            };
            if let Err(e) = put_back {
                reason.push_str(&format!("; restoring the nftables rule failed too: {e}"));
                restored = false;
            }
        }
        if undo.file_written {
            let restore = match &undo.old_file {
                Some(text) => {
                    write_atomic(self.config.upstream_file.as_path(), text.as_bytes(), 0o644)
                }
                None => std::fs::remove_file(self.config.upstream_file.as_path())
                    .map_err(|e| Error::io("remove", self.config.upstream_file.as_path(), e)),
            };
            match restore {
                Ok(()) => {
                    if undo.reloaded
                        && let Err((_, e)) = self.reload_counted(undo)
                    {
                        reason.push_str(&format!(
                            "; reloading the restored configuration failed: {e}"
                        ));
                    }
                }
                Err(e) => {
                    reason.push_str(&format!(
                        "; restoring the previous upstream failed too: {e}"
                    ));
                    restored = false;
                }
            }
        }
        let _ = self.store.record(&HistoryEvent {
            ts: now_rfc3339(),
            event: "switch-failed".into(),
            app: self.app.to_string(),
            from: None,
            to: Some(to),
            version: self.intent.version.as_ref().map(|v| v.as_str().to_owned()),
            detail: Some(format!("{stage}: {reason}")),
            receipt: None,
            pid: std::process::id(),
        });
        Error::SwitchFailed {
            to: to.to_string(),
            stage,
            reason,
            restored,
            reloads: undo.reloads.clone(),
        }
    }
}
