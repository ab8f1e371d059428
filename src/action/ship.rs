//! Getting the helper binary onto a host: kept in a private directory named by its sha256,
//! uploaded only when the host lacks exactly that file, and verified after the upload.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::remote::Remote;

/// Probe run on the host with the helper's sha256: prints the machine type, the helper's
/// path in the user's cache directory, and its checksum when it is there.
const PROBE: &str = r#"uname -m
helper="${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen/bin/$1/bluegreen"
echo "$helper"
if [ -x "$helper" ]; then sha256sum "$helper"; fi"#;

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

/// Makes sure the host has the helper at `local`; uploads it when it does not.
pub async fn ensure_helper(remote: &Remote, local: &Path) -> Result<Shipped> {
    let binary = std::fs::read(local).map_err(|e| Error::io("read helper", local, e))?;
    let machine = elf_machine(&binary).ok_or_else(|| {
        Error::invalid(
            "helper",
            format!(
                "{} is not an x86_64 or aarch64 Linux binary",
                local.display()
            ),
        )
    })?;
    let sha256 = sha256_hex(&binary);
    let probe = remote.run(&["sh", "-c", PROBE, "sh", &sha256], b"").await?;
    let mut lines = probe.lines();
    let host_machine = lines.next().unwrap_or("").trim();
    let path = lines.next().unwrap_or("").trim().to_owned();
    if !path.starts_with('/') {
        return Err(Error::Remote {
            host: remote.host().to_owned(),
            detail: format!("cannot find the user's cache directory (got {path:?})"),
        });
    }
    if host_machine != machine {
        return Err(Error::Remote {
            host: remote.host().to_owned(),
            detail: format!("the host is {host_machine:?} but the helper is built for {machine}"),
        });
    }
    let present = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .is_some_and(|sum| sum == sha256);
    if present {
        return Ok(Shipped {
            path,
            uploaded_bytes: 0,
            sha256,
        });
    }
    remote
        .run(&["sh", "-c", UPLOAD, "sh", &path, &sha256], &binary)
        .await?;
    Ok(Shipped {
        path,
        uploaded_bytes: binary.len() as u64,
        sha256,
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
