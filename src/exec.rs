//! The one place that runs external programs (nginx, docker, the user's commands).
//!
//! Commands are argv vectors, never shell strings: a command the user configures as text
//! (`--test-cmd "docker exec web nginx -t"`) is split into words once, with shell-like
//! quoting rules but no shell, so nothing in it is ever interpreted.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How many bytes of a command's stderr an error keeps.
const STDERR_EXCERPT_BYTES: usize = 2000;

/// How many bytes of each of a command's streams are kept: the end of what it printed. A
/// command that prints without end (`yes` as a hook) costs this much memory, no more.
pub const OUTPUT_KEEP_BYTES: usize = 1 << 20;

/// How output that was cut begins: the line that says so.
pub const OUTPUT_CUT_MARK: &str = "[earlier output cut";

/// A program and its arguments. In JSON (a deploy plan) it is its words, `["nginx", "-t"]`,
/// read back through the same check as a parsed command (not empty); variables added with
/// [`CommandLine::with_env`] belong to commands built on the host and are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct CommandLine {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    own_group: bool,
}

impl CommandLine {
    /// A command line from its words.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandLine {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            own_group: false,
        }
    }

    /// Splits a user-supplied command string into words (quotes group words; `$`, `;`, `|`
    /// and the like are plain characters). `what` names the option in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let argv =
            shell_words::split(text).map_err(|e| Error::invalid(what, format!("{text:?}: {e}")))?;
        if argv.is_empty() {
            return Err(Error::invalid(what, "the command is empty"));
        }
        Ok(CommandLine {
            argv,
            env: Vec::new(),
            own_group: false,
        })
    }

    /// A copy with more arguments appended.
    pub fn with_args<I, S>(&self, more: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = self.argv.clone();
        argv.extend(more.into_iter().map(Into::into));
        CommandLine {
            argv,
            env: self.env.clone(),
            own_group: self.own_group,
        }
    }

    /// A copy that runs with `name=value` added to its environment. Values travel in the
    /// environment, never in the command text, so they are never interpreted.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A copy that runs in a process group of its own, killed whole at its timeout: for
    /// the user's commands (hooks), so `sh -c 'migrate & wait'` leaves nothing running.
    /// Other commands stay in ours, where a terminal can still ask for a sudo password.
    pub fn in_own_group(mut self) -> Self {
        self.own_group = true;
        self
    }

    /// The variables added to the environment.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The words: program first.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Replaces this process with the command, which keeps its stdin, stdout and stderr
    /// (a stream of any size passes straight through). Returns only when it cannot start.
    pub fn exec_in_place(&self) -> Error {
        use std::os::unix::process::CommandExt;
        let source = std::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .exec();
        Error::Spawn {
            argv: self.to_string(),
            source,
        }
    }

    /// Runs the command with stdin closed, waiting up to `timeout`; a command still
    /// running then is killed (with every process it started, when it runs in a group of
    /// its own: [`CommandLine::in_own_group`]). Returns its output when it exits 0.
    pub fn run(&self, timeout: Duration) -> Result<CommandOutput> {
        self.checked(self.run_unchecked(timeout)?)
    }

    /// Runs the command like [`CommandLine::run`] with `input` on its stdin (a ruleset for
    /// `nft -f -`: nothing passes through a file someone else could swap).
    pub fn run_with_input(&self, input: &[u8], timeout: Duration) -> Result<CommandOutput> {
        self.checked(self.spawn_and_wait(Some(input), timeout)?)
    }

    fn checked(&self, output: CommandOutput) -> Result<CommandOutput> {
        if output.status.success() {
            Ok(output)
        } else {
            Err(Error::CommandFailed {
                argv: self.to_string(),
                status: describe_status(output.status),
                stderr: output.excerpt(),
            })
        }
    }

    /// Runs the command like [`CommandLine::run`] but returns its output whatever its exit
    /// status. Errors only when it cannot be started or times out.
    pub fn run_unchecked(&self, timeout: Duration) -> Result<CommandOutput> {
        self.spawn_and_wait(None, timeout)
    }

    fn spawn_and_wait(&self, input: Option<&[u8]>, timeout: Duration) -> Result<CommandOutput> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.own_group {
            command.process_group(0);
        }
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            argv: self.to_string(),
            source,
        })?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            let input = input.to_vec();
            // On a thread: a command that does not read its input must not block us; a
            // broken pipe is the command's to report.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&input);
            });
        }
        // Drain both pipes on threads so a chatty command cannot block on a full pipe.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_with_timeout(&mut child, timeout, self.own_group).ok_or_else(|| {
            Error::CommandTimedOut {
                argv: self.to_string(),
                timeout,
            }
        })?;
        Ok(CommandOutput {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }
}

impl TryFrom<Vec<String>> for CommandLine {
    type Error = Error;

    fn try_from(argv: Vec<String>) -> Result<Self> {
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Err(Error::invalid("command", "the command is empty"));
        }
        Ok(CommandLine::new(argv))
    }
}

impl From<CommandLine> for Vec<String> {
    fn from(cmd: CommandLine) -> Vec<String> {
        cmd.argv
    }
}

impl fmt::Display for CommandLine {
    /// The words joined with shell quoting where needed, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_words::join(&self.argv))
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it printed on stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything it printed on stderr (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// The tail of stderr (or of stdout when stderr is empty), trimmed, at most a few lines.
    pub fn excerpt(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        tail(text.trim(), STDERR_EXCERPT_BYTES)
    }
}

/// The last `max` bytes of `text`, cut at a character boundary, marked when cut.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// "exit status 1" or "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Reads a pipe to its end on a thread, keeping the last [`OUTPUT_KEEP_BYTES`] (marked
/// when earlier output was cut). The result is collected with [`collect`], which stops
/// waiting shortly after the command exits: a daemon the command left behind may hold the
/// pipe open forever.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let kept = pipe
            .map(|p| read_tail(p, OUTPUT_KEEP_BYTES))
            .unwrap_or_default();
        let _ = tx.send(kept);
    });
    rx
}

/// Everything `pipe` gives until its end, of which the last `keep` bytes are kept (with a
/// line saying so when more came): memory stays bounded whatever the writer prints.
fn read_tail(mut pipe: impl Read, keep: usize) -> String {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut cut = false;
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if buf.len() > 2 * keep {
            buf.drain(..buf.len() - keep);
            cut = true;
        }
    }
    if buf.len() > keep {
        buf.drain(..buf.len() - keep);
        cut = true;
    }
    let text = String::from_utf8_lossy(&buf);
    if cut {
        format!("{OUTPUT_CUT_MARK}: only the last {keep} bytes are kept]\n{text}")
    } else {
        text.into_owned()
    }
}

fn collect(output: mpsc::Receiver<String>) -> String {
    output
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default()
}

/// The longest pause between two looks at a running command: how late its end may be
/// noticed (a deploy runs a dozen commands in a row, so this adds up).
const WAIT_POLL_MAX: Duration = Duration::from_millis(2);

/// Waits up to `timeout` for `child`; then kills it, with its whole process group when it
/// leads one (`group`).
fn wait_with_timeout(child: &mut Child, timeout: Duration, group: bool) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(250);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(WAIT_POLL_MAX);
            }
            _ => {
                // The whole group: a shell's children (`sh -c 'migrate & wait'`) too.
                if group && let Ok(pgid) = i32::try_from(child.id()) {
                    // SAFETY: kill(2) with a negative pid signals that process group only.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
