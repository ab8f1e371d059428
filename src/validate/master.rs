//! Whether a reload of nginx can be confirmed here (reload mode, where every switch
//! reloads): the switch watches nginx's master replace its workers, and finds that master
//! by the pid file, by the verify URL's port, or as the only one on the host. Where it
//! cannot (several nginx instances and no pid file that names one), a reload is confirmed
//! only by a verify answer that names the slot, and without a verify URL the switch fails
//! rather than take a reload on trust: validation says so first (a warning, or a failure
//! where nothing could confirm), and names the setting that fixes it.

use crate::nginx::{FoundBy, MasterFound, MasterMissing, search_master};

use std::path::Path;

use super::request::{Audience, CheckResult, CheckStatus, ValidateRequest};

impl ValidateRequest {
    /// The `nginx-master` check: passes naming the master a reload is watched through;
    /// when none can be told apart, warns, or fails for a run with no verify URL.
    pub(super) fn master_check(&self) -> CheckResult {
        let found = search_master(&self.nginx_pid_file, self.verify_port);
        master_verdict(&self.nginx_pid_file, self.verify_port, self.audience, found)
    }
}

/// The check's result for what the search found.
fn master_verdict(
    pid_file: &Path,
    verify_port: Option<u16>,
    audience: Audience,
    found: Result<MasterFound, MasterMissing>,
) -> CheckResult {
    let name = "nginx-master";
    let pid_file = pid_file.display();
    match found {
        Ok(MasterFound { pid, by }) => {
            let how = match by {
                FoundBy::PidFile => format!("named by {pid_file}"),
                FoundBy::Port(port) => format!("the one listening on port {port}"),
                FoundBy::OnlyOne => "the only nginx master on this host".to_owned(),
            };
            CheckResult::new(
                name,
                CheckStatus::Pass,
                format!("a reload is confirmed by watching nginx's master, pid {pid} ({how})"),
            )
        }
        Err(MasterMissing { masters }) => {
            let setting = audience.name("nginx-pid-file", "--nginx-pid-file");
            let seen = match masters {
                0 => "no nginx master process is visible from here".to_owned(),
                n => format!("{n} nginx masters run on this host"),
            };
            let fix = format!("set {setting} to the pid file of the nginx that serves this app");
            let (status, outcome) = match (verify_port, audience) {
                (Some(port), _) => (
                    CheckStatus::Warn,
                    format!(
                        ", none alone listening on port {port}: a reload cannot be watched, so it is confirmed only when the verify URL's answer names the slot (X-Bluegreen-Slot header or JSON \"slot\"), and otherwise the switch fails; {fix}"
                    ),
                ),
                (None, Audience::Action) => (
                    CheckStatus::Fail,
                    format!(
                        ", and there is no verify-url to confirm by: no reload could be confirmed, so the switch would fail; {fix}, or verify-url to the app's URL through nginx whose answer names the slot"
                    ),
                ),
                (None, Audience::Helper) => (
                    CheckStatus::Warn,
                    format!(
                        ": switch-traffic can confirm a reload only by --verify-url, where the answer names the slot (and by its port, where one master alone listens on it); {fix}"
                    ),
                ),
            };
            CheckResult::new(
                name,
                status,
                format!("{seen}, {pid_file} names none{outcome}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID_FILE: &str = "/run/nginx.pid";

    fn verdict(port: Option<u16>, found: Result<MasterFound, MasterMissing>) -> CheckResult {
        master_verdict(Path::new(PID_FILE), port, Audience::Action, found)
    }

    #[test]
    fn each_way_of_finding_the_master_is_named() {
        let found = |by| verdict(None, Ok(MasterFound { pid: 42, by }));
        let by_file = found(FoundBy::PidFile);
        assert_eq!(by_file.status, CheckStatus::Pass);
        assert!(
            by_file.detail.contains("pid 42 (named by /run/nginx.pid)"),
            "{}",
            by_file.detail
        );
        let by_port = found(FoundBy::Port(8080)).detail;
        assert!(
            by_port.contains("pid 42 (the one listening on port 8080)"),
            "{by_port}"
        );
        let only = found(FoundBy::OnlyOne).detail;
        assert!(
            only.contains("pid 42 (the only nginx master on this host)"),
            "{only}"
        );
    }

    #[test]
    fn no_master_to_watch_warns_or_fails_by_what_else_could_confirm_a_reload() {
        let missing = |masters| Err(MasterMissing { masters });
        let warned_by_port = verdict(Some(8080), missing(2));
        let action_without_url = verdict(None, missing(2));
        let by_hand = master_verdict(Path::new(PID_FILE), None, Audience::Helper, missing(0));
        for (check, status, starts, setting) in [
            (
                &warned_by_port,
                CheckStatus::Warn,
                "2 nginx masters run on this host, /run/nginx.pid names none, none alone listening on port 8080:",
                "set nginx-pid-file to",
            ),
            (
                &action_without_url,
                CheckStatus::Fail,
                "2 nginx masters run on this host, /run/nginx.pid names none, and there is no verify-url to confirm by: no reload could be confirmed, so the switch would fail;",
                "set nginx-pid-file to",
            ),
            (
                &by_hand,
                CheckStatus::Warn,
                "no nginx master process is visible from here, /run/nginx.pid names none: switch-traffic can confirm a reload only by --verify-url",
                "set --nginx-pid-file to",
            ),
        ] {
            assert_eq!(check.status, status, "{}", check.detail);
            assert!(check.detail.starts_with(starts), "{}", check.detail);
            assert!(check.detail.contains(setting), "{}", check.detail);
        }
    }
}
