//! Writing to a GitHub Actions log: groups, annotations, masks, and relaying text from a
//! remote host inside `::stop-commands::` so the host cannot issue workflow commands.

use std::io::Write;

use super::credentials::random_token;

/// The job log (stdout), with a fresh stop-commands token.
pub struct JobLog {
    token: String,
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
        }
    }

    fn print(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Starts a collapsible group.
    pub fn group(&self, title: &str) {
        self.print(&format!("::group::{}", escape_data(title)));
    }

    /// Ends the current group.
    pub fn end_group(&self) {
        self.print("::endgroup::");
    }

    /// A plain line of our own.
    pub fn info(&self, line: &str) {
        self.print(line);
    }

    /// Text that came from a host: printed with workflow commands switched off.
    pub fn relay(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        self.print(&format!("::stop-commands::{}", self.token));
        for line in lines {
            self.print(line);
        }
        self.print(&format!("::{}::", self.token));
    }

    /// An error annotation.
    pub fn error(&self, message: &str) {
        self.print(&format!("::error::{}", escape_data(message)));
    }

    /// A warning annotation.
    pub fn warning(&self, message: &str) {
        self.print(&format!("::warning::{}", escape_data(message)));
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
