//! Getting things onto a host. The helper binary: the runner has one per machine type,
//! each known by its sha256; the host keeps the one for its machine in a private directory
//! named by that sum. One remote call checks the host's copy (owner, directory mode, sum) and
//! starts it in place; only when the host lacks it does the runner upload it (verified
//! again after the upload) and call again. (The image, with `image-transfer: ssh`, is
//! [`super::image`]'s.)

use std::path::PathBuf;

use crate::fsutil::sha256_hex;

use crate::error::{Error, Result};

use super::remote::Remote;

/// What the host runs to start the helper: the sums per machine type (`x86_64=SUM`) are its
/// arguments; it picks the one for `uname -m` and, when the cached copy is the user's own in
/// a directory nobody else may write, runs `bluegreen deploy` in place of itself (stdin,
/// the plan, goes to it), telling it the sum it must have: the helper hashes its own
/// running image before it reads the plan (see [`crate::cli::deploy`]). Otherwise it says
/// what it lacks on a line starting with [`NEED`] and exits 97; so does a helper whose sum
/// is not the one expected.
pub(crate) const RUN: &str = r#"m=$(uname -m)
sha=
for pair in "$@"; do
  case "$pair" in "$m="*) sha=${pair#*=} ;; esac
done
if [ -z "$sha" ]; then echo "bluegreen-ship: unsupported $m"; exit 97; fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/bin/$sha"
helper="$dir/bluegreen"
if [ -O "$dir" ] && [ -O "$helper" ] && [ -x "$helper" ]; then
  case "$(ls -ld "$dir")" in
    ?????w* | ????????w*) ;;
    *) exec "$helper" deploy --control-stdin --expect-sha256 "$sha" ;;
  esac
fi
echo "bluegreen-ship: need $m $helper"
exit 97"#;

/// How the host's answer starts when it did not start the helper (it lacks it, or its
/// machine type has none).
pub const NEED: &str = "bluegreen-ship: ";

/// Upload run on the host: stdin to a temp file, checked against the expected sum, then
/// moved into place in a directory only the user may write; a mismatch leaves nothing
/// behind.
pub(crate) const UPLOAD: &str = r#"set -e
umask 077
mkdir -p "${1%/*}"
chmod 700 "${1%/*}"
tmp="$1.tmp.$$"
cat > "$tmp"
sum=$(sha256sum "$tmp")
sum=${sum%% *}
if [ "$sum" != "$2" ]; then rm -f "$tmp"; echo "checksum mismatch after upload: got $sum" >&2; exit 1; fi
chmod 700 "$tmp"
mv -f "$tmp" "$1""#;

/// The machine an ELF binary is built for, as `uname -m` names it.
pub fn elf_machine(binary: &[u8]) -> Option<&'static str> {
    if binary.len() < 20 || &binary[..4] != b"\x7fELF" {
        return None;
    }
    match u16::from_le_bytes([binary[18], binary[19]]) {
        0x3e => Some("x86_64"),
        0xb7 => Some("aarch64"),
        _ => None,
    }
}

/// A helper binary the runner can ship.
struct Candidate {
    machine: &'static str,
    sha256: String,
    bytes: Vec<u8>,
}

/// The helpers at hand, one per machine type.
pub struct Helpers {
    candidates: Vec<Candidate>,
}

/// What the host said instead of starting the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// It lacks the helper for `machine`, which belongs at `path`.
    Upload {
        /// The host's machine type.
        machine: String,
        /// Where the helper goes.
        path: String,
    },
    /// No helper at hand is built for this machine type.
    Unsupported(String),
}

impl Helpers {
    /// Reads and hashes the helper binaries at `paths`.
    pub fn read(paths: &[PathBuf]) -> Result<Helpers> {
        let mut candidates = Vec::new();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|e| Error::io("read helper", path, e))?;
            let machine = elf_machine(&bytes).ok_or_else(|| {
                Error::invalid(
                    "helper",
                    format!(
                        "{} is not an x86_64 or aarch64 Linux binary",
                        path.display()
                    ),
                )
            })?;
            candidates.push(Candidate {
                machine,
                sha256: sha256_hex(&bytes),
                bytes,
            });
        }
        Ok(Helpers { candidates })
    }

    /// The helpers in words: machine type and the start of the sum of each.
    pub fn describe(&self) -> String {
        self.candidates
            .iter()
            .map(|c| format!("{} sha256 {}", c.machine, &c.sha256[..12]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The remote command that starts the run: checks the host's copy and runs it.
    pub fn run_argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec!["sh".into(), "-c".into(), RUN.into(), "sh".into()];
        argv.extend(
            self.candidates
                .iter()
                .map(|c| format!("{}={}", c.machine, c.sha256)),
        );
        argv
    }

    /// Reads a line of the host's answer: what it lacks, if the line says so.
    pub fn need(line: &str) -> Option<Need> {
        let rest = line.strip_prefix(NEED)?;
        let mut words = rest.splitn(3, ' ');
        match (words.next()?, words.next(), words.next()) {
            ("need", Some(machine), Some(path)) => Some(Need::Upload {
                machine: machine.to_owned(),
                path: path.to_owned(),
            }),
            ("unsupported", Some(machine), None) => Some(Need::Unsupported(machine.to_owned())),
            _ => None,
        }
    }

    /// Uploads the helper for `machine` to `path` on the host and verifies it there;
    /// returns the bytes sent.
    pub async fn upload(&self, remote: &Remote, machine: &str, path: &str) -> Result<u64> {
        let candidate = self
            .candidates
            .iter()
            .find(|c| c.machine == machine)
            .ok_or_else(|| self.unsupported(remote.host(), machine))?;
        if !path.starts_with('/') {
            return Err(Error::Remote {
                host: remote.host().to_owned(),
                detail: format!("cannot find the user's cache directory (got {path:?})"),
            });
        }
        remote
            .run(
                &["sh", "-c", UPLOAD, "sh", path, &candidate.sha256],
                &candidate.bytes,
            )
            .await?;
        Ok(candidate.bytes.len() as u64)
    }

    /// The error for a host of an unsupported machine type.
    pub fn unsupported(&self, host: &str, machine: &str) -> Error {
        Error::Remote {
            host: host.to_owned(),
            detail: format!(
                "the host is {machine:?} but the helpers at hand are built for {}",
                self.candidates
                    .iter()
                    .map(|c| c.machine)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machines() {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[18] = 0x3e;
        assert_eq!(elf_machine(&header), Some("x86_64"));
        header[18] = 0xb7;
        assert_eq!(elf_machine(&header), Some("aarch64"));
        assert_eq!(elf_machine(b"#!/bin/sh\n"), None);
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(elf_machine(&me), Some(std::env::consts::ARCH));
    }

    #[test]
    fn the_hosts_answer_says_what_it_lacks() {
        assert_eq!(
            Helpers::need(
                "bluegreen-ship: need x86_64 /home/deploy/.cache/bluegreen/bin/ab/bluegreen"
            ),
            Some(Need::Upload {
                machine: "x86_64".into(),
                path: "/home/deploy/.cache/bluegreen/bin/ab/bluegreen".into()
            })
        );
        assert_eq!(
            Helpers::need("bluegreen-ship: unsupported riscv64"),
            Some(Need::Unsupported("riscv64".into()))
        );
        assert_eq!(
            Helpers::need(r#"{"event":"log","line":"bluegreen-ship: need x"}"#),
            None
        );
        assert_eq!(Helpers::need("bluegreen-ship: need"), None);
    }

    /// Runs the host's start script with its cache under `cache`; its stdout.
    fn run_start_script(cache: &std::path::Path, sha: &str) -> String {
        let machine = std::env::consts::ARCH;
        let out = std::process::Command::new("sh")
            .args(["-c", RUN, "sh", &format!("{machine}={sha}")])
            .env("XDG_CACHE_HOME", cache)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_cached_helper_runs_only_from_a_private_directory_of_the_user() {
        use std::os::unix::fs::PermissionsExt;
        let cache = tempfile::tempdir().unwrap();
        let sha = "ab12";
        let dir = cache.path().join("bluegreen/bin").join(sha);
        std::fs::create_dir_all(&dir).unwrap();
        // A stand-in helper that says how it was started.
        let helper = dir.join("bluegreen");
        std::fs::write(&helper, "#!/bin/sh\necho started \"$@\"\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o700)).unwrap();
        let set_mode =
            |mode| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();

        set_mode(0o700);
        assert_eq!(
            run_start_script(cache.path(), sha),
            format!("started deploy --control-stdin --expect-sha256 {sha}\n")
        );
        let need = format!(
            "bluegreen-ship: need {} {}\n",
            std::env::consts::ARCH,
            helper.display()
        );
        for writable_by_others in [0o770, 0o707] {
            set_mode(writable_by_others);
            assert_eq!(
                run_start_script(cache.path(), sha),
                need,
                "{writable_by_others:o}"
            );
        }
        set_mode(0o700);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            assert_eq!(
                run_start_script(cache.path(), sha),
                need,
                "another user's directory"
            );
        }
    }
}
