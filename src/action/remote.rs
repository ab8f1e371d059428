//! The SSH side of the orchestrator: one multiplexed connection per host (the `openssh`
//! crate driving the system's `ssh` with a control socket, using the files of
//! [`super::credentials`]), and remote commands whose arguments are quoted once, here.

use std::process::Output;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::error::{Error, Result};
use crate::exec::tail;

use crate::input::HostPort;

use super::credentials::Credentials;
use super::interrupt::{CANCEL_GRACE, Interrupts};

/// Longest line read from a host's event stream: a result with a log tail and a diff fits
/// many times over; a longer one is refused rather than held in memory.
pub const MAX_HOST_LINE: u64 = 4 << 20;

/// Most of a host command's stderr read into memory (its tail is reported).
const MAX_HOST_STDERR: u64 = 1 << 20;

/// How long the SSH master connection stays up with no command using it.
const MASTER_IDLE_SECONDS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(60).unwrap();

/// How to reach a host.
#[derive(Debug, Clone)]
pub struct ConnectOptions<'a> {
    /// The SSH user.
    pub username: &'a str,
    /// Key and known_hosts files.
    pub credentials: &'a Credentials,
    /// Accept any host key (warned about by the caller).
    pub insecure: bool,
    /// `user@bastion:port` to jump through.
    pub proxy_jump: Option<&'a str>,
}

/// One open connection to a host.
pub struct Remote {
    session: Session,
    /// The host with its SSH port.
    host: String,
}

impl Remote {
    /// Opens the host's master connection, checking its key against known_hosts.
    pub async fn connect(host: &HostPort, options: &ConnectOptions<'_>) -> Result<Remote> {
        let mut builder = SessionBuilder::default();
        builder
            .user(options.username.to_owned())
            .port(host.port)
            .keyfile(&options.credentials.key)
            .user_known_hosts_file(&options.credentials.known_hosts)
            .known_hosts_check(if options.insecure {
                KnownHosts::Accept
            } else {
                KnownHosts::Strict
            })
            .config_file(&options.credentials.config)
            .control_directory(options.credentials.control_dir())
            // A killed orchestrator cannot close the connection: with nothing using it, the
            // master connection closes itself after a minute instead of lingering.
            .control_persist(ControlPersist::IdleFor(MASTER_IDLE_SECONDS))
            .connect_timeout(Duration::from_secs(20))
            .server_alive_interval(Duration::from_secs(15));
        if let Some(jump) = options.proxy_jump {
            builder.jump_hosts([jump]);
        }
        let session = builder
            .connect_mux(&host.host)
            .await
            .map_err(|e| Error::Remote {
                host: host.to_string(),
                detail: format!("cannot connect: {}", describe_ssh_error(&e)),
            })?;
        Ok(Remote {
            session,
            host: host.to_string(),
        })
    }

    /// The host with its SSH port (`web1:22`), as errors name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn remote_error(&self, argv: &[&str], detail: impl std::fmt::Display) -> Error {
        Error::Remote {
            host: self.host.clone(),
            detail: format!("`{}`: {detail}", shell_words::join(argv)),
        }
    }

    fn command(&self, argv: &[&str]) -> openssh::OwningCommand<&Session> {
        let mut cmd = self.session.command(argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    /// Starts `argv` on the host with stdin, stdout and stderr piped.
    async fn spawn_piped(&self, argv: &[&str]) -> Result<openssh::Child<&Session>> {
        self.command(argv)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.remote_error(argv, describe_ssh_error(&e)))
    }

    /// Runs `argv` on the host with `stdin` fed to it; its output, whatever its status.
    pub async fn output(&self, argv: &[&str], stdin: &[u8]) -> Result<Output> {
        let mut child = self.spawn_piped(argv).await?;
        let mut input = child.stdin().take().expect("stdin is piped");
        let feed = async {
            let result = input.write_all(stdin).await;
            drop(input);
            result
        };
        let (fed, output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|e| self.remote_error(argv, describe_ssh_error(&e)))?;
        if let Err(e) = fed
            && output.status.success()
        {
            return Err(self.remote_error(argv, format!("sending input failed: {e}")));
        }
        Ok(output)
    }

    /// Runs `argv` and requires exit status 0; its stdout.
    pub async fn run(&self, argv: &[&str], stdin: &[u8]) -> Result<String> {
        let out = self.output(argv, stdin).await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(self.remote_error(
                argv,
                format!(
                    "{}: {}",
                    crate::exec::describe_status(out.status),
                    tail(stderr.trim(), 2000)
                ),
            ))
        }
    }

    /// Runs `argv` with `stdin` and a newline, then keeps its stdin open as a control
    /// channel; hands each stdout line to `on_line` as it arrives, until the output ends or
    /// `on_line` says it has what it needs (returns false). At the first of `interrupts` it
    /// sends a `cancel` line and reads on for [`CANCEL_GRACE`] or until the second. Returns
    /// the exit status (None when the connection dropped, or when reading stopped early: the
    /// command then goes on on the host) and the tail of stderr, which ends with why the
    /// input could not be sent when it could not.
    ///
    /// A command may answer and end without reading its input (the host that lacks the
    /// helper says so and exits): its channel can close before the input is written, so a
    /// failed write is not the end; what the command printed is read all the same.
    pub async fn stream(
        &self,
        argv: &[&str],
        stdin: &[u8],
        interrupts: &Interrupts,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<(Option<i32>, String)> {
        let mut child = self.spawn_piped(argv).await?;
        let mut input = child.stdin().take().expect("stdin is piped");
        let mut sent = stdin.to_vec();
        sent.push(b'\n');
        let input_lost = input.write_all(&sent).await.err();
        let stdout = child.stdout().take().expect("stdout is piped");
        let stderr = child.stderr().take().expect("stderr is piped");
        // stderr is read alongside stdout: a command that fills its stderr pipe would
        // otherwise never get to end its stdout.
        let stderr_tail = read_bounded(stderr);
        tokio::pin!(stderr_tail);
        let lines = read_lines(stdout, &mut on_line);
        tokio::pin!(lines);
        let mut kept_stderr = None;
        let first = interrupts.reached(1);
        tokio::pin!(first);
        let second = interrupts.reached(2);
        tokio::pin!(second);
        let mut give_up_at = None;
        let ended = loop {
            tokio::select! {
                ended = &mut lines => break ended,
                kept = &mut stderr_tail, if kept_stderr.is_none() => kept_stderr = Some(kept),
                () = &mut first, if give_up_at.is_none() => {
                    // A host that cannot be told is on its own; it notices the closed
                    // channel when this process ends.
                    let _ = input.write_all(b"cancel\n").await;
                    let _ = input.flush().await;
                    give_up_at = Some(tokio::time::Instant::now() + CANCEL_GRACE);
                }
                () = &mut second, if give_up_at.is_some() => break LinesEnded::Stopped,
                () = tokio::time::sleep_until(give_up_at.unwrap_or_else(tokio::time::Instant::now)),
                    if give_up_at.is_some() => break LinesEnded::Stopped,
            }
        };
        drop(input);
        match ended {
            LinesEnded::Eof => {}
            // The command goes on on the host; its channel is closed with the connection.
            LinesEnded::Stopped => return Ok((None, String::new())),
            LinesEnded::TooLong => {
                return Err(self.remote_error(
                    argv,
                    format!("sent a line longer than {MAX_HOST_LINE} bytes; stopped reading"),
                ));
            }
        }
        let kept = match kept_stderr {
            Some(kept) => kept,
            None => stderr_tail.await,
        };
        let status = child.wait().await.ok().and_then(|s| s.code());
        let mut stderr = tail(String::from_utf8_lossy(&kept).trim(), 2000);
        if let Some(e) = input_lost {
            stderr.push_str(&format!(
                "{}the input could not be sent: {e}",
                if stderr.is_empty() { "" } else { "; " }
            ));
        }
        Ok((status, stderr))
    }

    /// Streams `input`, to its end, into `argv`'s stdin on the host (an image into
    /// `docker load`); returns how many bytes went across.
    pub async fn pipe_from(
        &self,
        mut input: impl tokio::io::AsyncRead + Unpin,
        argv: &[&str],
    ) -> Result<u64> {
        let mut child = self.spawn_piped(argv).await?;
        let mut remote_in = child.stdin().take().expect("stdin is piped");
        let copied = tokio::io::copy(&mut input, &mut remote_in).await;
        drop(remote_in);
        let remote = child
            .wait_with_output()
            .await
            .map_err(|e| self.remote_error(argv, describe_ssh_error(&e)))?;
        if !remote.status.success() {
            return Err(self.remote_error(
                argv,
                tail(String::from_utf8_lossy(&remote.stderr).trim(), 2000),
            ));
        }
        copied.map_err(|e| self.remote_error(argv, format!("stream broke: {e}")))
    }

    /// Whether the master connection is still up (it closes itself after a minute with
    /// nothing using it).
    pub async fn is_open(&self) -> bool {
        self.session.check().await.is_ok()
    }

    /// Closes the master connection.
    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// openssh's error with the ssh client's own explanation when it gave one.
fn describe_ssh_error(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// How reading a host's event lines ended.
enum LinesEnded {
    /// The output ended.
    Eof,
    /// The reader said it had what it needed.
    Stopped,
    /// A line passed [`MAX_HOST_LINE`].
    TooLong,
}

/// Hands each line of `stdout` (lossy UTF-8, without its line ending) to `on_line` until
/// the output ends, `on_line` returns false, or a line is longer than [`MAX_HOST_LINE`].
async fn read_lines(
    stdout: impl tokio::io::AsyncRead + Unpin,
    on_line: &mut impl FnMut(&str) -> bool,
) -> LinesEnded {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_HOST_LINE)
            .read_until(b'\n', &mut line)
            .await
            .unwrap_or(0);
        if read == 0 {
            return LinesEnded::Eof;
        }
        if line.last() != Some(&b'\n') && read as u64 == MAX_HOST_LINE {
            return LinesEnded::TooLong;
        }
        let text = String::from_utf8_lossy(&line);
        if !on_line(text.trim_end_matches(['\n', '\r'])) {
            return LinesEnded::Stopped;
        }
    }
}

/// Reads `stream` to its end, keeping the first [`MAX_HOST_STDERR`] bytes and dropping the
/// rest unread into memory.
async fn read_bounded(mut stream: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let _ = (&mut stream)
        .take(MAX_HOST_STDERR)
        .read_to_end(&mut kept)
        .await;
    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    kept
}
