//! The checks of what the deploy user may do, for set-ups where it is not root: whether
//! the reload command may reload nginx (asked without reloading), and the advice for a
//! program missing from the user's PATH. Messages name the setting to change, as the
//! reader knows it ([`Audience`](super::Audience)).

use crate::exec::CommandLine;
use crate::sys;

use super::request::{COMMAND_TIMEOUT, CheckResult, CheckStatus, ValidateRequest};

/// The advice for a program that is not on the PATH, naming the setting that names it
/// (`nginx` is in /usr/sbin, which a non-root login's PATH often lacks).
pub(super) fn not_on_path(e: &crate::error::Error, setting: &str) -> Option<String> {
    let crate::error::Error::Spawn { argv, source } = e else {
        return None;
    };
    (source.kind() == std::io::ErrorKind::NotFound).then(|| {
        let program = argv.split_whitespace().next().unwrap_or_default();
        if program.contains('/') {
            // A path given in full: the PATH has nothing to do with it.
            return format!(
                "{program} does not exist: check the path in {setting} (nginx is usually /usr/sbin/nginx)"
            );
        }
        format!(
            "{program} is not on the PATH of {} ({}): give its full path in {setting} (nginx is usually /usr/sbin/nginx)",
            sys::user_name(),
            std::env::var("PATH").unwrap_or_default()
        )
    })
}

/// The file name of a program given by name or path (`/usr/bin/sudo` is `sudo`).
fn program_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The arguments of `sudo -n` that ask whether sudo would run the command of `args`
/// (everything after `sudo` in a command line): `-l` and the command, keeping the options
/// that say as whom (`-u`, `-g`) and leaving out the others.
fn sudo_listing(args: &[String]) -> Vec<String> {
    /// sudo's options that take a value.
    const WITH_VALUE: [&str; 10] = ["-u", "-g", "-U", "-C", "-h", "-p", "-r", "-t", "-T", "-D"];
    let mut listing = vec!["-l".to_owned()];
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" || !arg.starts_with('-') {
            listing.extend(std::iter::once(arg).filter(|a| *a != "--").cloned());
            listing.extend(rest.cloned());
            break;
        }
        if WITH_VALUE.contains(&arg.as_str()) {
            let value = rest.next().cloned().unwrap_or_default();
            if arg == "-u" || arg == "-g" {
                listing.extend([arg.clone(), value]);
            }
        } else if arg.starts_with("--user=") || arg.starts_with("--group=") {
            listing.push(arg.clone());
        }
    }
    listing
}

impl ValidateRequest {
    /// Whether the reload command may do its work, without reloading: `sudo -n -l` for a
    /// command run by sudo, else the right to signal nginx's master.
    pub(super) fn check_reload(&self, reload: &CommandLine) -> CheckResult {
        let setting = self.audience.name("nginx-reload-command", "--reload-cmd");
        let name = "nginx-reload";
        let user = sys::user_name();
        let argv = reload.argv();
        let program = program_name(&argv[0]);
        if program == "sudo" {
            let probe =
                CommandLine::new([argv[0].as_str(), "-n"]).with_args(sudo_listing(&argv[1..]));
            return match probe.run(COMMAND_TIMEOUT) {
                Ok(_) => CheckResult::new(
                    name,
                    CheckStatus::Pass,
                    format!("sudo lets {user} run `{reload}` without a password"),
                ),
                Err(e) => CheckResult::new(
                    name,
                    CheckStatus::Fail,
                    not_on_path(&e, setting).unwrap_or_else(|| format!(
                        "sudo does not let {user} run `{reload}` without a password ({setting}), so the switch could not reload nginx: add a sudoers line such as `{user} ALL=(root) NOPASSWD: /usr/sbin/nginx -s reload` (visudo -f /etc/sudoers.d/bluegreen)"
                    )),
                ),
            };
        }
        if sys::euid() == 0 {
            return CheckResult::new(name, CheckStatus::Pass, format!("`{reload}` runs as root"));
        }
        if program != "nginx" {
            // A program of the user's own (systemctl, a script): only running it would say.
            return CheckResult::new(
                name,
                CheckStatus::Warn,
                format!(
                    "cannot tell without running it whether {user} may reload nginx with `{reload}`"
                ),
            );
        }
        let Some(master) = crate::nginx::find_master(&self.nginx_pid_file, None) else {
            return CheckResult::new(
                name,
                CheckStatus::Warn,
                format!(
                    "no running nginx master found from {}: cannot tell whether {user} may reload it",
                    self.nginx_pid_file.display()
                ),
            );
        };
        match sys::process_uid(master) {
            Some(uid) if uid != sys::euid() => CheckResult::new(
                name,
                CheckStatus::Fail,
                format!(
                    "nginx's master (pid {master}) runs as uid {uid}, and {user} may not signal it, so `{reload}` would fail at the switch: set {setting} to `sudo nginx -s reload` and let sudo allow it (`{user} ALL=(root) NOPASSWD: /usr/sbin/nginx -s reload`)"
                ),
            ),
            _ => CheckResult::new(
                name,
                CheckStatus::Pass,
                format!("{user} may signal nginx's master (pid {master})"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_missing_program_is_told_apart_from_a_missing_path() {
        let missing = |program: &str| {
            let e = CommandLine::new([program, "-t"])
                .run(std::time::Duration::from_secs(5))
                .unwrap_err();
            not_on_path(&e, "nginx-test-command").unwrap()
        };
        let bare = missing("no-such-nginx-here");
        assert!(bare.contains("is not on the PATH of"), "{bare}");
        let full = missing("/nonexistent/sbin/nginx");
        assert!(
            full.starts_with(
                "/nonexistent/sbin/nginx does not exist: check the path in nginx-test-command"
            ),
            "{full}"
        );
    }

    #[test]
    fn sudo_is_asked_about_the_command_as_the_user_it_runs_it_as() {
        assert_eq!(
            sudo_listing(&words("nginx -s reload")),
            words("-l nginx -s reload")
        );
        assert_eq!(
            sudo_listing(&words("-n -u www -E /usr/sbin/nginx -s reload")),
            words("-l -u www /usr/sbin/nginx -s reload")
        );
        assert_eq!(
            sudo_listing(&words("-p prompt -- nginx -s reload")),
            words("-l nginx -s reload")
        );
        assert_eq!(program_name("/usr/bin/sudo"), "sudo");
        assert_eq!(program_name("sudo"), "sudo");
    }
}
