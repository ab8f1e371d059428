//! Putting back what a failed switch changed, from its journal (`execute.rs`): the previous
//! include (reloaded if nginx may have loaded the new one), the nftables rule, and a
//! `switch-failed` line in the history. The error says whether everything was put back.

use crate::clock::now_rfc3339;
use crate::error::Error;
use crate::input::Slot;
use crate::state::HistoryEvent;

use super::execute::Executor;

impl Executor<'_> {
    /// Puts back what the switch changed: the previous include (reloaded if nginx may have
    /// loaded the new one, waiting until the restored one serves), then the nftables rule.
    /// Records the failure in history and builds the error to return: `restored` only when
    /// everything was put back.
    pub(super) fn undo(&mut self, to: Slot, stage: &'static str, reason: String) -> Error {
        let mut reason = reason;
        let mut restored = true;
        // The include first: nginx back on the slot it served before any rule it may lead
        // through is taken away (a rule removed first would leave nginx's workers pointed at
        // a service port leading nowhere until the reload).
        if self.journal.file_written {
            let include = self.request.config.upstream_file.as_path();
            let restore = match &self.journal.old_file {
                Some(text) => self.host.write(include, text),
                None => self.host.remove(include),
            };
            match restore {
                Ok(()) => {
                    if self.journal.reloaded
                        && let Err((_, e)) = self.reload_counted()
                    {
                        reason.push_str(&format!(
                            "; reloading the restored configuration failed: {e}"
                        ));
                        restored = false;
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
        if let Some((nft, previous)) = self.journal.rule_before.clone() {
            let put_back = match previous {
                Some(route) => self.host.load_rule(&nft, &route, true),
                // A load that failed may have made no table: none is what there was.
                None => self
                    .host
                    .remove_rule(&nft)
                    .or_else(|e| match self.host.read_rule(&nft) {
                        Ok(None) => Ok(()),
                        _ => Err(e),
                    }),
            };
            if let Err(e) = put_back {
                reason.push_str(&format!("; restoring the nftables rule failed too: {e}"));
                restored = false;
            }
        }
        let request = self.request;
        let _ = request.store.record(&HistoryEvent {
            ts: now_rfc3339(),
            event: "switch-failed".into(),
            app: request.app.to_string(),
            from: None,
            to: Some(to),
            version: request
                .intent
                .version
                .as_ref()
                .map(|v| v.as_str().to_owned()),
            detail: Some(format!("{stage}: {reason}")),
            receipt: None,
            pid: std::process::id(),
        });
        Error::SwitchFailed {
            to: to.to_string(),
            stage,
            reason,
            restored,
            reloads: self.journal.reloads.clone(),
        }
    }
}
