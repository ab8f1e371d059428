//! `image-transfer: ssh`: the image goes from the runner's Docker to each host's, without a
//! registry. It is saved once per run (`docker save` to a file in the runner's temp
//! directory, on the first host that lacks it), and that file is streamed into
//! `docker load` on every host that lacks the image, side by side: a fleet costs one save,
//! and a slow host does not hold back the others. A host that already has the image ID
//! gets nothing. The file is removed when the run ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::exec::{describe_status, tail};

use super::github::JobLog;
use super::remote::Remote;

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

/// One run's image shipment: the image named by the plan, saved at most once.
pub struct ImageShipment {
    image: String,
    /// The runner's docker program (`docker`; a test's recorder).
    docker: String,
    /// Where the saved file goes.
    file: PathBuf,
    saved: OnceCell<std::result::Result<Saved, SaveFailed>>,
}

impl ImageShipment {
    /// The shipment of `image`, to be saved (when a host needs it) into `dir` by `docker`.
    pub fn new(image: &str, docker: &str, dir: &Path) -> ImageShipment {
        ImageShipment {
            image: image.to_owned(),
            docker: docker.to_owned(),
            file: dir.join(format!("bluegreen-image-{}.tar", std::process::id())),
            saved: OnceCell::new(),
        }
    }

    /// Gets the image onto the host behind `remote`, unless it has that image ID already;
    /// says what was done. The first host that lacks it has the runner save it (said once
    /// in `log`); the others wait for that save and stream the same file.
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
        let saved = self.saved(log).await?;
        let bytes = remote.pipe_file(&saved.path, &LOAD_ARGV).await?;
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
        let out = self.docker(&inspect_argv(&self.image)[1..]).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
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

    /// `docker save -o FILE IMAGE`, then the ID of what was saved (the tag could have
    /// moved between an earlier look and the save: the ID is read after it).
    async fn save(&self) -> std::result::Result<Saved, SaveFailed> {
        let file = self.file.display().to_string();
        let failed = |e: Error| match e {
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
                argv: format!("{} save", self.docker),
                status: other.to_string(),
                stderr: String::new(),
            },
        };
        self.docker(&["save", "-o", &file, &self.image])
            .await
            .map_err(failed)?;
        let id = self
            .docker(&inspect_argv(&self.image)[1..])
            .await
            .map_err(failed)?;
        let bytes = std::fs::metadata(&self.file)
            .map(|m| m.len())
            .map_err(|e| SaveFailed {
                argv: format!("{} save -o {file}", self.docker),
                status: format!("left no file: {e}"),
                stderr: String::new(),
            })?;
        Ok(Saved {
            id: String::from_utf8_lossy(&id).trim().to_owned(),
            path: self.file.clone(),
            bytes,
        })
    }

    /// Runs the runner's docker with `args`; its stdout.
    async fn docker(&self, args: &[&str]) -> Result<Vec<u8>> {
        let shown =
            || shell_words::join(std::iter::once(self.docker.as_str()).chain(args.iter().copied()));
        let out = tokio::process::Command::new(&self.docker)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Spawn {
                argv: shown(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                argv: shown(),
                status: describe_status(out.status),
                stderr: tail(String::from_utf8_lossy(&out.stderr).trim(), 2000),
            });
        }
        Ok(out.stdout)
    }
}

impl Drop for ImageShipment {
    fn drop(&mut self) {
        if self.saved.get().is_some() {
            let _ = std::fs::remove_file(&self.file);
        }
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
