//! Getting the helper binary onto a host: the one built for the host's machine type, kept
//! in a private directory named by its sha256, uploaded only when the host lacks exactly
//! that file, and verified after the upload. One round trip when the host has it.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::remote::Remote;

/// Probe run on the host with the sha256 of each candidate helper: prints the machine type,
/// then for each candidate its path in the user's cache directory and, when it is there,
/// its checksum (a line of its own starting with `sum `).
const PROBE: &str = r#"uname -m
for sha in "$@"; do
  helper="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/bin/$sha/bluegreen"
  echo "$helper"
  if [ -x "$helper" ]; then echo "sum $(sha256sum "$helper")"; fi
done"#;

/// Upload run on the host: stdin to a temp file, checked against the expected sum, then
/// moved into place; a mismatch leaves nothing behind.
const UPLOAD: &str = r#"set -e
umask 077
mkdir -p "${1%/*}"
tmp="$1.tmp.$$"
cat > "$tmp"
sum=$(sha256sum "$tmp")
sum=${sum%% *}
if [ "$sum" != "$2" ]; then rm -f "$tmp"; echo "checksum mismatch after upload: got $sum" >&2; exit 1; fi
chmod 700 "$tmp"
mv -f "$tmp" "$1""#;

/// The helper as it is on the host.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// Its absolute path on the host.
    pub path: String,
    /// Bytes sent (0 when the host already had it).
    pub uploaded_bytes: u64,
    /// Its sha256.
    pub sha256: String,
}

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

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A helper binary the runner can ship.
struct Candidate {
    machine: &'static str,
    sha256: String,
    bytes: Vec<u8>,
}

/// Makes sure the host has the helper built for its machine, out of `helpers` (one per
/// machine type); uploads it when the host lacks it.
pub async fn ensure_helper(remote: &Remote, helpers: &[PathBuf]) -> Result<Shipped> {
    let mut candidates = Vec::new();
    for path in helpers {
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
    let mut argv = vec!["sh", "-c", PROBE, "sh"];
    argv.extend(candidates.iter().map(|c| c.sha256.as_str()));
    let probe = remote.run(&argv, b"").await?;
    let mut lines = probe.lines().map(str::trim);
    let host_machine = lines.next().unwrap_or("").to_owned();
    // Each candidate's path, and whether its checksum line followed it.
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    for line in lines {
        match line.strip_prefix("sum ") {
            Some(sum) => {
                if let Some(last) = found.last_mut() {
                    last.1 = sum.split_whitespace().next().map(str::to_owned);
                }
            }
            None => found.push((line.to_owned(), None)),
        }
    }
    let Some((index, candidate)) = candidates
        .iter()
        .enumerate()
        .find(|(_, c)| c.machine == host_machine)
    else {
        let have: Vec<&str> = candidates.iter().map(|c| c.machine).collect();
        return Err(Error::Remote {
            host: remote.host().to_owned(),
            detail: format!(
                "the host is {host_machine:?} but the helpers at hand are built for {}",
                have.join(", ")
            ),
        });
    };
    let (path, present_sum) = found.get(index).cloned().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(Error::Remote {
            host: remote.host().to_owned(),
            detail: format!("cannot find the user's cache directory (got {path:?})"),
        });
    }
    if present_sum.as_deref() == Some(candidate.sha256.as_str()) {
        return Ok(Shipped {
            path,
            uploaded_bytes: 0,
            sha256: candidate.sha256.clone(),
        });
    }
    remote
        .run(
            &["sh", "-c", UPLOAD, "sh", &path, &candidate.sha256],
            &candidate.bytes,
        )
        .await?;
    Ok(Shipped {
        path,
        uploaded_bytes: candidate.bytes.len() as u64,
        sha256: candidate.sha256.clone(),
    })
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
    fn sha256_of_known_text() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
