//! Whether a reload of nginx can be confirmed here: the switch watches nginx's master
//! replace its workers, and finds that master by the pid file, by the verify URL's port, or
//! as the only one on the host. Where it cannot (several nginx instances and no pid file
//! that names one), a reload is confirmed only by an answer that names the slot, and the
//! switch fails rather than take a reload on trust: validation says so first, and names
//! the setting that fixes it.

use crate::nginx::{FoundBy, MasterFound, MasterMissing, search_master};

use std::path::Path;

use super::{Audience, CheckResult, CheckStatus, ValidateRequest};

impl ValidateRequest {
    /// The `nginx-master` check: passes naming the master a reload is watched through;
    /// warns when none can be told apart.
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
            let port = verify_port.map_or(
                ", and no verify URL's port was given to find it by".to_owned(),
                |p| format!(", none alone listening on port {p}"),
            );
            CheckResult::new(
                name,
                CheckStatus::Warn,
                format!(
                    "{seen}, {pid_file} names none{port}: a reload cannot be watched, so it is confirmed only when the verify URL's answer names the slot (X-Bluegreen-Slot header or JSON \"slot\"), and otherwise the switch fails; set {setting} to the pid file of the nginx that serves this app"
                ),
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
    fn several_masters_and_no_pid_file_warn_naming_the_setting() {
        let action = verdict(Some(8080), Err(MasterMissing { masters: 2 }));
        let by_hand = master_verdict(
            Path::new(PID_FILE),
            None,
            Audience::Helper,
            Err(MasterMissing { masters: 0 }),
        );
        for (check, starts, setting) in [
            (
                &action,
                "2 nginx masters run on this host, /run/nginx.pid names none, none alone listening on port 8080:",
                "set nginx-pid-file to",
            ),
            (
                &by_hand,
                "no nginx master process is visible from here, /run/nginx.pid names none, and no verify URL's port was given to find it by:",
                "set --nginx-pid-file to",
            ),
        ] {
            assert_eq!(check.status, CheckStatus::Warn);
            assert!(check.detail.starts_with(starts), "{}", check.detail);
            assert!(check.detail.contains(setting), "{}", check.detail);
        }
    }
}
