//! `image-transfer: ssh`: the image goes from the runner's Docker to each host's, without a
//! registry, skipped for a host that has that image ID already.
//!
//! One host: `docker save` streamed straight into its `docker load`, the save and the send
//! overlapping. A fleet: the image is saved once per run (`docker save` to a file in a
//! private directory of the runner's temp directory, on the first host that lacks it), and
//! that file is streamed into `docker load` on every host that lacks the image, side by
//! side: one save for the fleet, and a slow host does not hold back the others. The
//! directory, with whatever an interrupted save left in it, is removed when the run ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::exec::{describe_status, tail};

use super::credentials::random_token;
use super::github::JobLog;
use super::remote::Remote;

/// How long the runner's `docker image inspect` may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The image saved on the runner, ready to stream.
#[derive(Debug)]
struct Saved {
    /// The image ID (`sha256:…`).
    id: String,
    /// The `docker save` file.
    path: PathBuf,
    /// Its size.
    bytes: u64,
}

/// Why the image could not be saved, kept so that every host is told the same.
#[derive(Debug, Clone)]
struct SaveFailed {
    argv: String,
    status: String,
    stderr: String,
}

impl From<Error> for SaveFailed {
    fn from(e: Error) -> SaveFailed {
        match e {
            Error::CommandFailed {
                argv,
                status,
                stderr,
            } => SaveFailed {
                argv,
                status,
                stderr,
            },
            other => SaveFailed {
                argv: "docker save".into(),
                status: other.to_string(),
                stderr: String::new(),
            },
        }
    }
}

/// One run's image shipment: the image named by the plan, saved at most once.
pub struct ImageShipment {
    image: String,
    /// The runner's docker program (`docker`; a test's recorder).
    docker: String,
    /// Whether the run has one host (the save is streamed, not kept).
    one_host: bool,
    /// The private directory the saved file goes in, made when it is first needed.
    dir: PathBuf,
    saved: OnceCell<std::result::Result<Saved, SaveFailed>>,
}

impl ImageShipment {
    /// The shipment of `image` to `hosts` hosts, saved (for more than one) into a private
    /// directory under `base` by `docker`.
    pub fn new(image: &str, docker: &str, base: &Path, hosts: usize) -> ImageShipment {
        ImageShipment {
            image: image.to_owned(),
            docker: docker.to_owned(),
            one_host: hosts == 1,
            dir: base.join(format!("bluegreen-image-{}", random_token())),
            saved: OnceCell::new(),
        }
    }

    /// Gets the image onto the host behind `remote`, unless it has that image ID already;
    /// says what was done. In a fleet, the first host that lacks it has the runner save it
    /// (said once in `log`); the others wait for that save and stream the same file.
    pub async fn send(&self, remote: &Remote, log: &JobLog) -> Result<((), String)> {
        let inspect = inspect_argv(&self.image);
        let on_host = remote.output(&inspect, b"").await?;
        let host_id = String::from_utf8_lossy(&on_host.stdout).trim().to_owned();
        let local_id = self.local_id().await?;
        if on_host.status.success() && host_id == local_id {
            return Ok((
                (),
                format!("host already has {} ({})", self.image, short_id(&local_id)),
            ));
        }
        if self.one_host {
            let bytes = self.stream_save(remote).await?;
            return Ok((
                (),
                format!(
                    "streamed {} ({}, {bytes} bytes) over SSH",
                    self.image,
                    short_id(&local_id)
                ),
            ));
        }
        let saved = self.saved(log).await?;
        let file = tokio::fs::File::open(&saved.path)
            .await
            .map_err(|e| Error::io("open the saved image", &saved.path, e))?;
        let bytes = remote.pipe_from(file, &LOAD_ARGV).await?;
        Ok((
            (),
            format!(
                "streamed {} ({}, {bytes} bytes) over SSH from the run's one docker save",
                self.image,
                short_id(&saved.id)
            ),
        ))
    }

    /// The runner's image ID of the image (the saved one's, once it is saved).
    async fn local_id(&self) -> Result<String> {
        if let Some(Ok(saved)) = self.saved.get() {
            return Ok(saved.id.clone());
        }
        let inspect = &inspect_argv(&self.image)[1..];
        let out = tokio::time::timeout(INSPECT_TIMEOUT, self.docker(inspect))
            .await
            .map_err(|_| Error::CommandTimedOut {
                argv: self.shown(inspect),
                timeout: INSPECT_TIMEOUT,
            })??;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// `docker save IMAGE` streamed into the host's `docker load`; the bytes sent.
    async fn stream_save(&self, remote: &Remote) -> Result<u64> {
        let save = ["save", self.image.as_str()];
        let mut producer = tokio::process::Command::new(&self.docker)
            .args(save)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                argv: self.shown(&save),
                source,
            })?;
        let stdout = producer.stdout.take().expect("stdout is piped");
        let sent = remote.pipe_from(stdout, &LOAD_ARGV).await;
        let saved = producer
            .wait_with_output()
            .await
            .map_err(|source| Error::Spawn {
                argv: self.shown(&save),
                source,
            })?;
        if !saved.status.success() {
            return Err(Error::CommandFailed {
                argv: self.shown(&save),
                status: describe_status(saved.status),
                stderr: tail(String::from_utf8_lossy(&saved.stderr).trim(), 2000),
            });
        }
        sent
    }

    /// The saved image, saving it first when no host has asked yet.
    async fn saved(&self, log: &JobLog) -> Result<&Saved> {
        let saved = self
            .saved
            .get_or_init(|| async {
                let saved = self.save().await;
                if let Ok(s) = &saved {
                    log.info(&format!(
                        "image: saved {} ({}, {} bytes) on the runner, once for every host that lacks it",
                        self.image,
                        short_id(&s.id),
                        s.bytes
                    ));
                }
                saved
            })
            .await;
        saved.as_ref().map_err(|f| Error::CommandFailed {
            argv: f.argv.clone(),
            status: f.status.clone(),
            stderr: f.stderr.clone(),
        })
    }

    /// `docker save -o FILE IMAGE` into the private directory, with the image's ID read
    /// before and after it: a tag that moved during the save fails it (the file would not
    /// be the image that ID names).
    async fn save(&self) -> std::result::Result<Saved, SaveFailed> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io("create private directory", &self.dir, e))?;
        let path = self.dir.join("image.tar");
        let file = path.display().to_string();
        let inspect = &inspect_argv(&self.image)[1..];
        let before = self.docker(inspect).await?;
        self.docker(&["save", "-o", &file, &self.image]).await?;
        let id = self.docker(inspect).await?;
        if id != before {
            return Err(SaveFailed {
                argv: self.shown(&["save", "-o", &file, &self.image]),
                status: format!("{} was retagged while it was saved", self.image),
                stderr: String::new(),
            });
        }
        let bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io("read the size of the saved image", &path, e))?
            .len();
        Ok(Saved {
            id: String::from_utf8_lossy(&id).trim().to_owned(),
            path,
            bytes,
        })
    }

    /// Runs the runner's docker with `args`; its stdout.
    async fn docker(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = tokio::process::Command::new(&self.docker)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Spawn {
                argv: self.shown(args),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                argv: self.shown(args),
                status: describe_status(out.status),
                stderr: tail(String::from_utf8_lossy(&out.stderr).trim(), 2000),
            });
        }
        Ok(out.stdout)
    }

    /// The runner's docker command with `args`, quoted for display.
    fn shown(&self, args: &[&str]) -> String {
        shell_words::join(std::iter::once(self.docker.as_str()).chain(args.iter().copied()))
    }
}

impl Drop for ImageShipment {
    fn drop(&mut self) {
        // The saved file, or what an interrupted save left.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What loads the stream on the host.
const LOAD_ARGV: [&str; 3] = ["docker", "load", "--quiet"];

/// What asks a Docker for the image's ID.
fn inspect_argv(image: &str) -> [&str; 6] {
    ["docker", "image", "inspect", "--format", "{{.Id}}", image]
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_are_docker_s_own() {
        assert_eq!(
            inspect_argv("shop:1"),
            [
                "docker", "image", "inspect", "--format", "{{.Id}}", "shop:1"
            ]
        );
        assert_eq!(LOAD_ARGV, ["docker", "load", "--quiet"]);
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
