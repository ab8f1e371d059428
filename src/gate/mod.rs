//! The restricted deploy key: what `bluegreen gate`, the forced command of an
//! `authorized_keys` line, lets a key run on the host, decided here without running anything.
//!
//! A key in a repository's secrets is the most exposed credential a deploy has. With
//! `restrict,command="/usr/local/lib/bluegreen/bluegreen gate --apps shop"` in front of it,
//! sshd runs the gate whatever the client asked, with the request in
//! `SSH_ORIGINAL_COMMAND`. The gate lets through exactly what the action sends
//! ([`Request::of`]): its start of the helper (answered by the installed helper, never a
//! shipped one), and an image's inspection; not `docker load` (`image-transfer: ssh`),
//! whose stream names its own tags.
//! Everything else is refused with one line. The plan the start reads is then checked
//! ([`Policy::refusals`]): one of the named apps, an operation that deploys (no setup, no
//! switch by hand),
//! the docker runtime with `docker-args` that keep the container in its box, the default
//! paths, and nothing that runs a command of the plan's choosing on the host (hooks,
//! templates, other nginx or nft commands).

use std::path::{Path, PathBuf};

use crate::config;
use crate::deploy::{DeployPlan, Operation};
use crate::exec::CommandLine;
use crate::input::{AppName, HostPath, Image, Slot, SlotPorts};
use crate::runtime::Runtime;
use crate::state::State;

pub use answering::{answering, mark_answering};

mod answering;
mod docker_args;
#[cfg(test)]
mod tests;

/// An app's state directory by default, `{app}` standing for its name.
pub const STATE_DIR_PATTERN: &str = "/var/lib/bluegreen/{app}";
/// An app's upstream include by default, `{app}` standing for its name.
pub const UPSTREAM_FILE_PATTERN: &str = "/etc/nginx/conf.d/bluegreen-{app}.conf";

/// A request the gate lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The action's start of the helper: the installed helper reads the plan on stdin.
    Deploy,
    /// `docker image inspect --format {{.Id}} IMAGE` (does the host have the image?).
    InspectImage(Image),
}

impl Request {
    /// The request `original` (sshd's `SSH_ORIGINAL_COMMAND`) makes, or the one line that
    /// refuses it.
    pub fn of(original: Option<&str>) -> Result<Request, String> {
        let Some(original) = original.filter(|c| !c.trim().is_empty()) else {
            return Err(
                "refused: this key runs bluegreen's deploy requests only, not a shell".into(),
            );
        };
        let argv = shell_words::split(original)
            .map_err(|_| "refused: the request is not a command line".to_owned())?;
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["sh", "-c", script, "sh", ..] if *script == crate::action::ship::RUN => {
                Ok(Request::Deploy)
            }
            ["sh", "-c", script, ..] if *script == crate::action::ship::UPLOAD => Err(
                "refused: the helper is installed on this host for this key, and uploads are not taken"
                    .into(),
            ),
            ["docker", "image", "inspect", "--format", "{{.Id}}", image] => image
                .parse()
                .map(Request::InspectImage)
                .map_err(|_| "refused: not an image reference".to_owned()),
            ["docker", "load", ..] => Err(
                "refused: docker load (image-transfer: ssh) through this key could replace any image of the host, since a saved image names its own tags: push to a registry the host pulls from"
                    .into(),
            ),
            [program, ..] => Err(format!(
                "refused: `{}`: this key runs bluegreen's deploy requests only",
                program.chars().take(40).collect::<String>()
            )),
            [] => Err("refused: an empty request".into()),
        }
    }

    /// The command that answers a request other than [`Request::Deploy`].
    pub fn command(&self) -> Option<CommandLine> {
        match self {
            Request::Deploy => None,
            Request::InspectImage(image) => Some(CommandLine::new([
                "docker",
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                image.as_str(),
            ])),
        }
    }
}

/// What root allowed the key when it wrote the `authorized_keys` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The apps it may deploy.
    pub apps: Vec<AppName>,
    /// Directories of the host a container may be given as bind mounts, each as it is
    /// (not a path inside it: a container that writes there could plant a link).
    pub dirs: Vec<PathBuf>,
    /// Env files the plan may name (`env-file`), root's.
    pub env_files: Vec<PathBuf>,
    /// Docker networks a container may join (`--network`), besides the default bridge.
    pub networks: Vec<String>,
    /// The slots' ports of apps that do not use the defaults, until their state records
    /// them.
    pub ports: Vec<(AppName, SlotPorts)>,
    /// The image repositories a plan may deploy (`ghcr.io/org/shop`): another app's image
    /// would give its contents away.
    pub images: Vec<String>,
    /// An app's state directory, `{app}` standing for its name.
    pub state_dir: String,
    /// An app's upstream include, `{app}` standing for its name.
    pub upstream_file: String,
    /// The directory nginx writes the access logs in.
    pub log_dir: HostPath,
    /// Where the boot unit of the nftables mode is installed.
    pub systemd_unit_dir: HostPath,
    /// The root-owned directory of the helper root runs.
    pub boot_helper_dir: HostPath,
    /// The nginx test command plans must name (the default, or root's, with sudo).
    pub test_cmd: CommandLine,
    /// The nginx reload command plans must name.
    pub reload_cmd: CommandLine,
    /// The nft command plans must name.
    pub nft_cmd: CommandLine,
}

impl Policy {
    /// The policy of the defaults for `apps`: the default paths and commands, no
    /// directory for containers.
    pub fn defaults(apps: Vec<AppName>) -> Policy {
        use config::defaults;
        let parsed = |text: &str| text.parse().expect("every default parses (tested)");
        Policy {
            apps,
            dirs: Vec::new(),
            env_files: Vec::new(),
            networks: Vec::new(),
            ports: Vec::new(),
            images: Vec::new(),
            state_dir: STATE_DIR_PATTERN.into(),
            upstream_file: UPSTREAM_FILE_PATTERN.into(),
            log_dir: parsed(defaults::LOG_DIR),
            systemd_unit_dir: parsed(defaults::SYSTEMD_UNIT_DIR),
            boot_helper_dir: parsed(defaults::BOOT_HELPER_DIR),
            test_cmd: CommandLine::parse(defaults::TEST_CMD, "test").expect("the default parses"),
            reload_cmd: CommandLine::parse(defaults::RELOAD_CMD, "reload")
                .expect("the default parses"),
            nft_cmd: CommandLine::parse(defaults::NFT_CMD, "nft").expect("the default parses"),
        }
    }

    /// Every reason the gate refuses `plan`, one line each; empty when it may run.
    /// `recorded` is the app's state on the host, if any: the slots' ports and the service
    /// port must be the ones it records (else the default service port), since nginx and
    /// the nftables rule take over connections to those loopback ports, and a port of the
    /// key's choosing could be another program's.
    pub fn refusals(&self, plan: &DeployPlan, recorded: Option<&State>) -> Vec<String> {
        let mut no = Vec::new();
        let app = &plan.app;
        if !self.apps.contains(app) {
            no.push(format!(
                "app {app}: this key deploys {} only",
                self.apps
                    .iter()
                    .map(AppName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match plan.operation {
            Operation::Setup => {
                no.push("command setup: setting a host up is root's, not this key's".into())
            }
            // The action never sends it: a switch by hand is `switch-traffic` on the host.
            Operation::Switch => no.push(
                "command switch: a switch by hand is run on the host, not through this key".into(),
            ),
            _ => {}
        }
        self.where_refusals(plan, &mut no);
        self.port_refusals(plan, recorded, &mut no);
        self.content_refusals(plan, &mut no);
        no.extend(self.docker_args_refusals(app, &plan.runtime.docker_args));
        no
    }

    /// The paths and commands of `plan` that are not the key's: each must be the one root
    /// gave the gate.
    fn where_refusals(&self, plan: &DeployPlan, no: &mut Vec<String>) {
        let app = &plan.app;
        let upstream_file = self.upstream_file.replace("{app}", app.as_str());
        // The server block beside the include: a deploy reads the site's name from it.
        let server_file = upstream_file
            .parse()
            .map(|include| config::default_server_file(app, &include).to_string())
            .unwrap_or_default();
        let paths = [
            ("state-dir", &plan.state_dir, self.state_dir_of(app)),
            ("upstream-file", &plan.switch.upstream_file, upstream_file),
            ("server-file", &plan.site.server_file, server_file),
            ("log-dir", &plan.switch.log_dir, self.log_dir.to_string()),
            (
                "systemd-unit-dir",
                &plan.systemd_unit_dir,
                self.systemd_unit_dir.to_string(),
            ),
            (
                "boot-helper-dir",
                &plan.boot_helper_dir,
                self.boot_helper_dir.to_string(),
            ),
        ];
        for (input, given, allowed) in paths {
            if given.to_string() != allowed {
                no.push(format!("{input} {given}: this key uses {allowed} only"));
            }
        }
        let commands = [
            ("nginx-test-command", &plan.switch.test_cmd, &self.test_cmd),
            ("reload-command", &plan.switch.reload_cmd, &self.reload_cmd),
            ("nft-command", &plan.switch.nft_cmd, &self.nft_cmd),
        ];
        for (input, given, allowed) in commands {
            if given != allowed {
                no.push(format!(
                    "{input}: this key runs `{}` only",
                    allowed.argv().join(" ")
                ));
            }
        }
    }

    /// The slots' ports and the service port of `plan`, when they are not those `recorded`
    /// (else given, else the defaults).
    fn port_refusals(&self, plan: &DeployPlan, recorded: Option<&State>, no: &mut Vec<String>) {
        let app = &plan.app;
        let recorded_ports = recorded.and_then(|s| {
            let port = |slot| s.slots.get(slot).port;
            SlotPorts::new(port(Slot::Blue)?, port(Slot::Green)?).ok()
        });
        let ports = recorded_ports
            .or_else(|| self.ports.iter().find(|(a, _)| a == app).map(|(_, p)| *p))
            .unwrap_or_else(default_ports);
        if ports != plan.ports {
            no.push(format!(
                "blue-port {} and green-port {}: this key takes {} and {} only (the ones the app's state records, else those given with bluegreen gate --ports, else the defaults)",
                plan.ports.port(Slot::Blue),
                plan.ports.port(Slot::Green),
                ports.port(Slot::Blue),
                ports.port(Slot::Green)
            ));
        }
        let service_port = plan.switch.service_port.get();
        let expected = recorded
            .and_then(|s| s.service_port)
            .unwrap_or_else(|| config::default_service_port(app, plan.ports).get());
        if service_port != expected {
            no.push(format!(
                "service-port {service_port}: this key takes {expected} only (the one the app's state records, else the default)"
            ));
        }
    }

    /// What `plan` would run or show on the host of its own choosing: another image, probes
    /// off the host, hooks, a template, a page, another runtime, an env file.
    fn content_refusals(&self, plan: &DeployPlan, no: &mut Vec<String>) {
        if let Some(image) = plan
            .runtime
            .image
            .as_ref()
            .filter(|i| !self.allows_image(i))
        {
            no.push(format!(
                "image {}: not of a repository this key deploys ({})",
                image.as_str(),
                if self.images.is_empty() {
                    "none given with bluegreen gate --image".to_owned()
                } else {
                    self.images.join(", ")
                }
            ));
        }
        for (input, url) in [
            ("verify-url", &plan.switch.verify_url),
            ("monitor-url", &plan.watch.url),
        ] {
            if let Some(url) = url.as_ref().filter(|u| !u.is_loopback()) {
                no.push(format!(
                    "{input} {}: this key's probes stay on the host (localhost, 127.0.0.1, [::1]): an answer's text can reach the log",
                    url.as_str()
                ));
            }
        }
        if plan.upstream_template.is_some() {
            no.push("upstream-template: a template of the key's choosing is not taken".into());
        }
        let hooks = &plan.hooks;
        for (input, given) in [
            ("pre-switch-command", &hooks.pre_switch),
            ("post-switch-command", &hooks.post_switch),
            ("step-command", &hooks.step),
        ] {
            if given.is_some() {
                no.push(format!(
                    "{input}: commands on the host are not run for this key"
                ));
            }
        }
        if plan.maintenance.page.is_some() {
            no.push(
                "maintenance-page: a file of the host is not served for this key (the built-in page is)"
                    .into(),
            );
        }
        let runtime = &plan.runtime;
        if runtime.runtime != Runtime::Docker {
            no.push(format!(
                "runtime {}: this key deploys with the docker runtime only",
                runtime.runtime
            ));
        }
        if let Some(file) = &runtime.env_file
            && !self.env_files.iter().any(|f| f == file.as_path())
        {
            no.push(format!(
                "env-file {file}: not one this key may give a container ({})",
                named(&self.env_files, "--env-file")
            ));
        }
    }

    /// Whether `image` is of a repository this key deploys: its name as written (without
    /// its tag or digest) is one given, to the letter (docker reads `docker.io/NAME` as
    /// another registry's than `NAME` may be).
    pub fn allows_image(&self, image: &Image) -> bool {
        self.images.iter().any(|allowed| allowed == image.name())
    }

    /// The state directory of `app` this key uses.
    pub fn state_dir_of(&self, app: &AppName) -> String {
        self.state_dir.replace("{app}", app.as_str())
    }

    /// Why what root gave this key is not safe to give a container, if it is not: each
    /// directory must be one (no link) in a directory that is root's alone, so that no one
    /// (a container writing inside it included) can swap it for a link to elsewhere; each
    /// env file must be root's alone. Checked at every request, on the host.
    pub fn unsafe_given(&self) -> Vec<String> {
        let mut no = Vec::new();
        for dir in &self.dirs {
            let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
            let parent = dir
                .parent()
                .map_or(Err("it has no parent".to_owned()), |p| {
                    crate::owners::root_only(p)
                });
            match (is_dir, parent) {
                (true, Ok(())) if !mounted_nosuid_nodev(dir) => no.push(format!(
                    "--dir {}: its file system is not mounted nosuid,nodev (a container running as root could leave a setuid program or a device there)",
                    dir.display()
                )),
                (true, Ok(())) => {}
                (false, _) => no.push(format!(
                    "--dir {}: not a directory (a link is not taken)",
                    dir.display()
                )),
                (true, Err(why)) => no.push(format!(
                    "--dir {}: its parent must be root's alone ({why})",
                    dir.display()
                )),
            }
        }
        for file in &self.env_files {
            if let Err(why) = crate::owners::root_only(file) {
                no.push(format!(
                    "--env-file {}: not root's alone ({why})",
                    file.display()
                ));
            }
        }
        no
    }
}

/// The slots' default ports.
fn default_ports() -> SlotPorts {
    use config::defaults::{BLUE_PORT, GREEN_PORT};
    let port = |text: &str| text.parse().expect("the defaults parse");
    SlotPorts::new(port(BLUE_PORT), port(GREEN_PORT)).expect("the defaults differ")
}

/// Whether the file system holding `dir` is mounted `nosuid,nodev`.
fn mounted_nosuid_nodev(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stats` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return false;
    }
    let needed = libc::ST_NOSUID | libc::ST_NODEV;
    stats.f_flag & needed == needed
}

/// `paths` for a message, or that none was given with `flag`.
fn named(paths: &[PathBuf], flag: &str) -> String {
    if paths.is_empty() {
        return format!("none was given: bluegreen gate {flag}");
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
