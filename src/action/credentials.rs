//! What the orchestrator writes for ssh for the length of a run: the key and known_hosts in
//! a private directory under `$RUNNER_TEMP`, an ssh_config that trusts only those host keys
//! (for the host and a bastion alike), and a short private directory for the control
//! socket, all removed when the run ends.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Longest path of a directory that can hold the SSH control socket: a Unix socket path
/// must fit in 108 bytes, and the socket's own name under it takes about 50.
const MAX_CONTROL_DIR_LEN: usize = 56;

/// The `ProxyCommand` that runs this program as the TCP leg of the connection (see
/// [`super::proxy`]), for an ssh_config: the program's path quoted for the shell ssh runs it
/// with, `%` doubled for ssh's own expansion.
pub fn tcp_proxy_command(program: &Path) -> String {
    let program = shell_words::quote(&program.to_string_lossy()).replace('%', "%%");
    format!("{program} --tcp-proxy %h %p")
}

/// The key and known_hosts files, in a private directory removed on drop, and the private
/// directory of the SSH control socket.
#[derive(Debug)]
pub struct Credentials {
    dir: PathBuf,
    control_dir: PathBuf,
    /// The private key file (mode 0600).
    pub key: PathBuf,
    /// The known_hosts file (mode 0600).
    pub known_hosts: PathBuf,
    /// An ssh_config naming both for every host, so a ProxyJump bastion (whose ssh does
    /// not inherit command-line options) is checked and authenticated the same way.
    pub config: PathBuf,
}

/// Which host keys ssh trusts, for the target and for a bastion alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeys {
    /// Only the keys in the `known-hosts` input: never the system's known_hosts files, and
    /// an unknown or changed key is refused.
    KnownOnly,
    /// Any key (`insecure-skip-host-key-check`); nothing is recorded.
    AcceptAny,
}

impl Credentials {
    /// Writes `key` and `known_hosts` into a new mode-0700 directory under `base`, with an
    /// ssh_config that trusts `host_keys`; with `proxy_command`, the TCP leg of every
    /// connection goes through it.
    pub fn write(
        base: &Path,
        key: &str,
        known_hosts: &str,
        host_keys: HostKeys,
        proxy_command: Option<&str>,
    ) -> Result<Credentials> {
        let private_dir = |dir: &Path| {
            fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(dir)
                .map_err(|e| Error::io("create private directory", dir, e))
        };
        let token = random_token();
        let dir = base.join(format!("bluegreen-{token}"));
        private_dir(&dir)?;
        // A short name of its own under the runner's temp directory (where action.yml's
        // clean-up step closes and removes it), or under /tmp when even that path is too
        // long for a socket.
        let control_name = format!("bg-{}", &token[..12]);
        let mut control_dir = base.join(&control_name);
        if control_dir.as_os_str().len() > MAX_CONTROL_DIR_LEN {
            control_dir = std::env::temp_dir().join(&control_name);
        }
        private_dir(&control_dir)?;
        let creds = Credentials {
            key: dir.join("id"),
            known_hosts: dir.join("known_hosts"),
            config: dir.join("ssh_config"),
            dir,
            control_dir,
        };
        // ssh refuses a key without its final newline.
        let key = format!("{}\n", key.trim_end());
        let known = format!("{}\n", known_hosts.trim_end());
        let (user_known_hosts, strict) = match host_keys {
            HostKeys::KnownOnly => (format!("\"{}\"", creds.known_hosts.display()), "yes"),
            HostKeys::AcceptAny => ("/dev/null".to_owned(), "no"),
        };
        let mut config = format!(
            "Host *\n  IdentityFile \"{}\"\n  IdentitiesOnly yes\n  UserKnownHostsFile {user_known_hosts}\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking {strict}\n  BatchMode yes\n",
            creds.key.display(),
        );
        if let Some(command) = proxy_command {
            config.push_str(&format!("  ProxyCommand {command}\n"));
        }
        for (path, text) in [
            (&creds.key, key.as_str()),
            (&creds.known_hosts, known.as_str()),
            (&creds.config, config.as_str()),
        ] {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(|e| Error::io("write", path, e))?;
        }
        Ok(creds)
    }

    /// The private directory of the SSH control socket.
    pub fn control_dir(&self) -> &Path {
        &self.control_dir
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.control_dir);
    }
}

/// 32 random hex characters from the kernel.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("the kernel provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials_under(base: &Path) -> Credentials {
        Credentials::write(
            base,
            "KEY",
            "host ssh-ed25519 AAAA",
            HostKeys::KnownOnly,
            None,
        )
        .unwrap()
    }

    #[test]
    fn the_control_socket_lives_under_a_short_runner_temp() {
        let base = tempfile::tempdir().unwrap();
        // As long as a GitHub-hosted runner's /home/runner/work/_temp.
        let runner_temp = base
            .path()
            .join("x".repeat(23usize.saturating_sub(base.path().as_os_str().len() + 1)));
        let creds = credentials_under(&runner_temp);
        assert!(
            creds.control_dir().starts_with(&runner_temp),
            "{:?}",
            creds.control_dir()
        );
        assert!(creds.key.starts_with(&runner_temp));
    }

    #[test]
    fn a_runner_temp_too_long_for_a_socket_path_moves_only_the_socket() {
        let base = tempfile::tempdir().unwrap();
        // As deep as a self-hosted runner's work directory can be.
        let deep = base.path().join("actions-runner/_work/_temp".repeat(3));
        let creds = credentials_under(&deep);
        assert!(
            creds.key.starts_with(&deep),
            "the key stays under RUNNER_TEMP"
        );
        assert!(!creds.control_dir().starts_with(&deep));
        assert!(creds.control_dir().as_os_str().len() <= MAX_CONTROL_DIR_LEN);
        let mode = fs::metadata(creds.control_dir()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        let control = creds.control_dir().to_owned();
        drop(creds);
        assert!(!control.exists(), "removed with the credentials");
    }
}
