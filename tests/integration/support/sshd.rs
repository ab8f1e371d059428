//! A real sshd on a loopback port with throwaway keys.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for_port};

/// A real sshd on a loopback port with a throwaway host key, accepting one throwaway user
/// key for the current user. Stopped on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// The user's private key text.
    pub user_key: String,
    /// The known_hosts line for this sshd.
    pub known_hosts: String,
}

impl Sshd {
    /// Starts sshd with its files in `dir` and a new user key.
    pub fn start(dir: &Path) -> Sshd {
        Sshd::launch(dir, None, &dir.join("home"))
    }

    /// Starts sshd with its files in `dir`, accepting the existing public key `authorized`.
    pub fn start_with_key(dir: &Path, authorized: &Path) -> Sshd {
        Sshd::launch(dir, Some(authorized), &dir.join("home"))
    }

    /// Starts sshd with its files in `dir` and a new user key, for a user whose home is
    /// `home` (a user that is not root: `dir` must be one it can read).
    pub fn start_for_home(dir: &Path, home: &Path) -> Sshd {
        Sshd::launch(dir, None, home)
    }

    fn launch(dir: &Path, authorized: Option<&Path>, home: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        // Sessions get a home of their own, as a deploy user's (no ~/.bashrc of this
        // machine's user runs for every command).
        std::fs::create_dir_all(home).unwrap();
        for name in ["host_key", "user_key"] {
            let status = Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "bluegreen-test",
                    "-f",
                ])
                .arg(dir.join(name))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let authorized = authorized.map_or_else(|| dir.join("user_key.pub"), Path::to_path_buf);
        std::fs::copy(authorized, dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
                 LogLevel VERBOSE\nMaxSessions 50\nMaxStartups 50\n\
                 SetEnv XDG_CACHE_HOME={h}/.cache HOME={h} \
                 PATH={h}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                h = home.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("sshd starts");
        wait_for_port(port, Duration::from_secs(10));
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let known_hosts = format!(
            "[127.0.0.1]:{port} {} {}",
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
            user_key: std::fs::read_to_string(dir.join("user_key")).unwrap(),
            known_hosts,
        }
    }

    /// The listening sshd's pid (its session processes are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Puts `options` (`restrict,command="..."`) in front of the user key in
    /// authorized_keys: from the next connection on, sshd runs that command for it.
    pub fn restrict(&self, options: &str) {
        let key = std::fs::read_to_string(self.dir.join("user_key.pub")).unwrap();
        std::fs::write(self.dir.join("authorized_keys"), format!("{options} {key}")).unwrap();
    }

    /// Runs the OpenSSH client with the user key, asking for `command` (none: a shell),
    /// with `stdin` fed to it; its exit code, stdout and stderr.
    pub fn ssh(&self, command: Option<&str>, stdin: &[u8]) -> (i32, String, String) {
        use std::io::Write;
        let known_hosts = self.dir.join("client_known_hosts");
        std::fs::write(&known_hosts, format!("{}\n", self.known_hosts)).unwrap();
        let mut child = Command::new("ssh")
            .args([
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
            ])
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-i")
            .arg(self.dir.join("user_key"))
            .args([
                "-p",
                &self.port.to_string(),
                "-l",
                &current_user(),
                "127.0.0.1",
            ])
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh starts");
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The last 40 lines of sshd's log, for a failure's message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// How many SSH connections sshd accepted so far.
    pub fn connections(&self) -> usize {
        std::fs::read_to_string(self.dir.join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user name the tests log in as over SSH (the current user).
pub fn current_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}
