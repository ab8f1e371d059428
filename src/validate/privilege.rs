//! Who the deploy user is on this host. A user that is not root but may use the Docker
//! daemon, or write the directory of nginx's include (which root's nginx loads: an
//! `access_log` there is a file root writes), can make itself root; so can anyone holding
//! its SSH key. Validation says so, as a warning that names what it found, so that the key
//! is kept as root's would be.

use crate::sys;

use super::request::{CheckResult, CheckStatus, ValidateRequest};
use crate::fsutil::parent_dir;

/// The Docker daemon's socket, where `DOCKER_HOST` does not name another.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

impl ValidateRequest {
    /// A warning for a deploy user that is not root yet can become root here, naming how;
    /// none for root, or for a user that can do neither.
    pub(super) fn privilege_check(&self) -> Option<CheckResult> {
        if sys::euid() == 0 {
            return None;
        }
        let mut powers = Vec::new();
        let socket = std::path::Path::new(DOCKER_SOCKET);
        if self.runtime.uses_docker()
            && std::env::var_os("DOCKER_HOST").is_none()
            && sys::may_write(socket)
        {
            powers.push(format!(
                "may use the Docker daemon ({DOCKER_SOCKET} is writable to it: the docker group), which runs containers as root"
            ));
        }
        let include_dir = parent_dir(&self.upstream_file);
        if sys::dir_writable(include_dir).is_ok() {
            powers.push(format!(
                "may write {}, whose files root's nginx loads (a log directive there is a file root writes)",
                include_dir.display()
            ));
        }
        if powers.is_empty() {
            return None;
        }
        let user = sys::user_name();
        let powers = powers.join(", and ");
        Some(if crate::gate::answering() {
            CheckResult::new(
                "privilege",
                CheckStatus::Pass,
                format!(
                    "{user} is not root, but {powers}: either lets it become root on this host; the key of this run is restricted by bluegreen gate, which lets it do neither"
                ),
            )
        } else {
            CheckResult::new(
                "privilege",
                CheckStatus::Warn,
                format!(
                    "{user} is not root, but {powers}: either lets it, and anyone holding its SSH key, become root on this host; keep the deploy key as secret as root's, or restrict it to deploying with bluegreen gate (README: A restricted deploy key)"
                ),
            )
        })
    }
}
