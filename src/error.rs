//! The one error type of the library and the exit codes the binaries map it to.
//!
//! Every variant carries what a person needs to act on it: the path, the command line, the
//! exit status, an excerpt of stderr, the holder of a lock. Binaries print the error and exit
//! with [`Error::exit_code`].

use std::path::PathBuf;
use std::time::Duration;

use crate::lock::holder::LockHolder;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the check ran and failed (unhealthy, thresholds exceeded, switch undone).
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code: bad usage or input; nothing was changed.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: the environment got in the way (I/O, a missing program, a held lock).
pub const EXIT_ENVIRONMENT: u8 = 3;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given by the user is not acceptable. Nothing was changed.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input (for example `--app`).
        what: String,
        /// Why it was refused.
        reason: String,
    },

    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing, as a verb phrase ("write", "read state file").
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A program could not be started at all.
    #[error("could not run `{argv}`: {source}")]
    Spawn {
        /// The command line, quoted for display.
        argv: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A program ran and exited unsuccessfully.
    #[error("`{argv}` failed ({status}){}", stderr_suffix(stderr))]
    CommandFailed {
        /// The command line, quoted for display.
        argv: String,
        /// How it ended ("exit status 1", "killed by signal 9").
        status: String,
        /// The last lines of its stderr (or stdout when stderr was empty).
        stderr: String,
    },

    /// A program did not finish in time and was killed.
    #[error("`{argv}` did not finish within {}", humantime::format_duration(*timeout))]
    CommandTimedOut {
        /// The command line, quoted for display.
        argv: String,
        /// The limit it exceeded.
        timeout: Duration,
    },

    /// Another process holds the per-app lock.
    #[error("{}", lock_held_message(app, holder.as_ref(), *waited))]
    LockHeld {
        /// The app whose lock is held.
        app: String,
        /// Who holds it, when the holder wrote its details.
        holder: Option<LockHolder>,
        /// How long we waited before giving up.
        waited: Duration,
    },

    /// The upstream template could not be rendered.
    #[error("cannot render the upstream template {name}: {detail}")]
    Template {
        /// The template's name (a path, or "built-in").
        name: String,
        /// minijinja's explanation, with line information.
        detail: String,
    },

    /// A switch was attempted and undone: the previous upstream file is back in place.
    #[error("switch to {to} failed at {stage}: {reason}{}", if *restored { " (previous upstream restored)" } else { "" })]
    SwitchFailed {
        /// The slot we tried to switch to.
        to: String,
        /// Which step failed: "nginx test", "reload", "reload confirmation", "verify".
        stage: &'static str,
        /// What went wrong.
        reason: String,
        /// Whether everything the switch changed was put back: the rule, the include, and
        /// nginx reloaded onto it where it had loaded the new one.
        restored: bool,
        /// The reloads of nginx the attempt and its undoing made, each with the client
        /// connections open to nginx at it (`None`: not counted), for the run's receipt.
        reloads: Vec<Option<u32>>,
    },

    /// A check ran and failed; the message says why.
    #[error("{0}")]
    CheckFailed(String),

    /// The run was asked to stop before traffic moved, and stopped.
    #[error("{}", .0.describe())]
    Cancelled(crate::cancel::CancelReason),

    /// Talking to a remote host over SSH failed.
    #[error("{host}: {detail}")]
    Remote {
        /// The host.
        host: String,
        /// What failed, with the remote command and its stderr where there was one.
        detail: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The documented exit code for this error.
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }

    /// Which kind of error this is: travels with the message across the SSH boundary and
    /// into `--json` output.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Io { .. } => ErrorKind::Io,
            Error::Spawn { .. } => ErrorKind::Spawn,
            Error::CommandFailed { .. } => ErrorKind::CommandFailed,
            Error::CommandTimedOut { .. } => ErrorKind::CommandTimedOut,
            Error::LockHeld { .. } => ErrorKind::LockHeld,
            Error::Template { .. } => ErrorKind::Template,
            Error::SwitchFailed { .. } => ErrorKind::SwitchFailed,
            Error::CheckFailed(_) => ErrorKind::CheckFailed,
            Error::Remote { .. } => ErrorKind::Remote,
            Error::Cancelled(_) => ErrorKind::Cancelled,
        }
    }
}

/// The kind of an [`Error`], without its details: what a result carries across the SSH
/// boundary (with the message) and what decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A value given by the user is not acceptable.
    InvalidInput,
    /// A file system operation failed.
    Io,
    /// A program could not be started.
    Spawn,
    /// A program exited unsuccessfully.
    CommandFailed,
    /// A program did not finish in time.
    CommandTimedOut,
    /// Another process holds the app lock.
    LockHeld,
    /// A template could not be rendered.
    Template,
    /// A switch was attempted and undone.
    SwitchFailed,
    /// A check ran and failed.
    CheckFailed,
    /// Talking to a host over SSH failed.
    Remote,
    /// The run was cancelled before traffic moved.
    Cancelled,
}

impl ErrorKind {
    /// The documented exit code of errors of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::InvalidInput | ErrorKind::Template => EXIT_BAD_INPUT,
            ErrorKind::SwitchFailed | ErrorKind::CheckFailed | ErrorKind::Cancelled => {
                EXIT_CHECK_FAILED
            }
            ErrorKind::Io
            | ErrorKind::Spawn
            | ErrorKind::CommandFailed
            | ErrorKind::CommandTimedOut
            | ErrorKind::LockHeld
            | ErrorKind::Remote => EXIT_ENVIRONMENT,
        }
    }

    /// The kind's name, as `--json` output spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Io => "io",
            ErrorKind::Spawn => "spawn",
            ErrorKind::CommandFailed => "command-failed",
            ErrorKind::CommandTimedOut => "command-timed-out",
            ErrorKind::LockHeld => "lock-held",
            ErrorKind::Template => "template",
            ErrorKind::SwitchFailed => "switch-failed",
            ErrorKind::CheckFailed => "check-failed",
            ErrorKind::Remote => "remote",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// An error as a run reports it: its kind and its message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunError {
    /// What kind of error (decides the exit code).
    pub kind: ErrorKind,
    /// The whole message.
    pub message: String,
}

impl From<&Error> for RunError {
    fn from(e: &Error) -> Self {
        RunError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

fn lock_held_message(app: &str, holder: Option<&LockHolder>, waited: Duration) -> String {
    let waited = if waited.is_zero() {
        String::new()
    } else {
        format!(" (waited {})", humantime::format_duration(waited))
    };
    match holder {
        Some(h) => format!(
            "app {app} is locked by pid {} since {} for \"{}\"{waited}",
            h.pid, h.started_at, h.purpose
        ),
        None => format!("app {app} is locked by another process{waited}"),
    }
}
