//! Writing to a GitHub Actions log: groups, annotations, masks, and relaying text from a
//! remote host inside `::stop-commands::` so the host cannot issue workflow commands.

use std::io::Write;

use super::credentials::random_token;

/// The job log (stdout), with a fresh stop-commands token; a host's part of it, when many
/// hosts run side by side, puts the host's name before each of its lines.
#[derive(Clone)]
pub struct JobLog {
    token: String,
    /// Put before each line of text (`[web1:22] `), empty for none.
    prefix: String,
    /// Whether phases become collapsible groups (not while hosts run side by side, whose
    /// groups would interleave).
    groups: bool,
}

impl Default for JobLog {
    fn default() -> Self {
        Self::new()
    }
}

impl JobLog {
    /// A log with a random stop-commands token.
    pub fn new() -> Self {
        JobLog {
            token: random_token(),
            prefix: String::new(),
            groups: true,
        }
    }

    /// The same log for one host of several: each line starts with `[host] `, and phases
    /// are groups only when `groups` (the host runs alone).
    pub fn for_host(&self, host: &str, groups: bool) -> JobLog {
        JobLog {
            token: self.token.clone(),
            prefix: format!("[{host}] "),
            groups,
        }
    }

    /// The same log for a host running side by side with others for a while (connecting,
    /// going back with the fleet): no groups, whose lines would interleave.
    pub fn side_by_side(&self) -> JobLog {
        JobLog {
            groups: false,
            ..self.clone()
        }
    }

    fn print(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Starts a collapsible group (a plain line while hosts run side by side).
    pub fn group(&self, title: &str) {
        if self.groups {
            self.print(&format!("::group::{}", escape_data(&self.prefixed(title))));
        } else {
            self.info(&format!("{title} ..."));
        }
    }

    /// Ends the current group.
    pub fn end_group(&self) {
        if self.groups {
            self.print("::endgroup::");
        }
    }

    /// A plain line of our own.
    pub fn info(&self, line: &str) {
        self.print(&self.prefixed(line));
    }

    fn prefixed(&self, line: &str) -> String {
        format!("{}{line}", self.prefix)
    }

    /// Text that came from a host: printed with workflow commands switched off.
    pub fn relay(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        self.print(&format!("::stop-commands::{}", self.token));
        for line in lines {
            self.print(&self.prefixed(line));
        }
        self.print(&format!("::{}::", self.token));
    }

    /// An error annotation.
    pub fn error(&self, message: &str) {
        self.print(&format!(
            "::error::{}",
            escape_data(&self.prefixed(message))
        ));
    }

    /// A warning annotation.
    pub fn warning(&self, message: &str) {
        self.print(&format!(
            "::warning::{}",
            escape_data(&self.prefixed(message))
        ));
    }

    /// Masks every line of a secret in the rest of the log.
    pub fn mask(&self, secret: &str) {
        for line in secret.lines().map(str::trim).filter(|l| !l.is_empty()) {
            self.print(&format!("::add-mask::{}", escape_data(line)));
        }
    }
}

/// Escapes a workflow command's data part (`%`, CR, LF), so text can never end the command
/// or start another.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_break_out_of_a_command() {
        assert_eq!(
            escape_data("boom\n::set-output name=x::1 100%"),
            "boom%0A::set-output name=x::1 100%25"
        );
    }
}
