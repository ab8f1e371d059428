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
//! ([`Policy::refusals`]): one of the named apps, an operation that deploys (no setup),
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

/// Set once this process answers a restricted key's request (see [`answering`]).
static ANSWERING: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// Records that this process answers a request through the gate: what it runs came
/// through a restricted key.
pub fn mark_answering() {
    let _ = ANSWERING.set(());
}

/// Whether this process answers a request through the gate (a check that warns about what
/// the deploy key could do says the key is restricted instead).
pub fn answering() -> bool {
    ANSWERING.get().is_some()
}

/// An app's state directory by default, `{app}` standing for its name.
pub const STATE_DIR_PATTERN: &str = "/var/lib/bluegreen/{app}";
/// An app's upstream include by default, `{app}` standing for its name.
pub const UPSTREAM_FILE_PATTERN: &str = "/etc/nginx/conf.d/bluegreen-{app}.conf";

/// `docker run` options without a value that keep a container in its box.
const FLAGS: [&str; 4] = [
    "--init",
    "--read-only",
    "--no-healthcheck",
    "--oom-kill-disable",
];

/// `docker run` options whose value, whatever it is, keeps a container in its box.
const PLAIN_OPTIONS: [&str; 32] = [
    "-e",
    "--env",
    "-m",
    "--memory",
    "--memory-reservation",
    "--memory-swap",
    "--cpus",
    "--cpu-shares",
    "--pids-limit",
    "--ulimit",
    "--add-host",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--health-cmd",
    "--health-interval",
    "--health-retries",
    "--health-timeout",
    "--health-start-period",
    "--shm-size",
    "--tmpfs",
    "--stop-signal",
    "--stop-timeout",
    "--hostname",
    "--dns",
    "--dns-search",
    "--dns-option",
    "--entrypoint",
    "--cap-drop",
    "--group-add",
    "--expose",
];

/// `docker run` options taken with a value the gate checks.
const CHECKED_OPTIONS: [&str; 9] = [
    "-l",
    "--label",
    "--log-driver",
    "--log-opt",
    "--network",
    "--net",
    "-v",
    "--volume",
    "--mount",
];

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
        if plan.operation == Operation::Setup {
            no.push("command setup: setting a host up is root's, not this key's".into());
        }
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
        no.extend(self.docker_args_refusals(app, &runtime.docker_args));
        no
    }

    /// Whether `image` is of a repository this key deploys: its name as written (without
    /// its tag or digest) is one given, to the letter (docker reads `docker.io/NAME` as
    /// another registry's than `NAME` may be).
    pub fn allows_image(&self, image: &Image) -> bool {
        let reference = image.as_str();
        let name = reference.split('@').next().unwrap_or(reference);
        let last = name.rfind('/').map_or(0, |i| i + 1);
        let name = match name[last..].find(':') {
            Some(colon) => &name[..last + colon],
            None => name,
        };
        self.images.iter().any(|allowed| allowed == name)
    }

    /// The state directory of `app` this key uses.
    pub fn state_dir_of(&self, app: &AppName) -> String {
        self.state_dir.replace("{app}", app.as_str())
    }

    /// Why `args` (the plan's `docker-args` for `app`) would let the container out of its
    /// box: only options known to keep it in are taken, bind mounts only of the allowed
    /// directories, volumes only the app's own.
    pub fn docker_args_refusals(&self, app: &AppName, args: &[String]) -> Vec<String> {
        let mut no = Vec::new();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let (option, inline) = match word.split_once('=') {
                Some((o, v)) if o.starts_with("--") => (o, Some(v.to_owned())),
                _ => (word.as_str(), None),
            };
            let flag = FLAGS.contains(&option);
            let known =
                flag || PLAIN_OPTIONS.contains(&option) || CHECKED_OPTIONS.contains(&option);
            let value = match inline {
                _ if flag => None,
                Some(v) => Some(v),
                None if known => match words.next() {
                    Some(v) => Some(v.clone()),
                    None => {
                        no.push(format!("docker-args {option}: a value is missing"));
                        continue;
                    }
                },
                // An option this key does not take: its value, if it has one, goes with it,
                // so that it is refused once.
                None if option.starts_with('-')
                    && words.clone().next().is_some_and(|w| !w.starts_with('-')) =>
                {
                    words.next().cloned()
                }
                None => None,
            };
            let shown = match &value {
                Some(v) => format!("{option} {v}"),
                None => option.to_owned(),
            };
            let refused = |why: String| Some(format!("docker-args {shown}: {why}"));
            let problem = match (option, value.as_deref()) {
                (o, _) if FLAGS.contains(&o) => None,
                ("-e" | "--env", Some(pair)) => (!pair.contains('='))
                    .then(|| "NAME=VALUE only: a NAME alone copies the host's value into the container".to_owned())
                    .and_then(refused),
                ("--ulimit", Some(limit)) => {
                    let name = limit.split('=').next().unwrap_or("");
                    matches!(name, "rtprio" | "nice" | "memlock")
                        .then(|| "rtprio, nice and memlock let a container starve the host".to_owned())
                        .and_then(refused)
                }
                (o, Some(_)) if PLAIN_OPTIONS.contains(&o) => None,
                ("-l" | "--label", Some(label)) => {
                    let key = label.split('=').next().unwrap_or("");
                    (key.starts_with("bluegreen.") || key.starts_with("com.docker.compose."))
                        .then(|| {
                            "bluegreen's own labels (bluegreen.*) and compose's say which app and slot a container is: not the key's to set".to_owned()
                        })
                        .and_then(refused)
                }
                ("--log-driver", Some(driver)) => (!matches!(driver, "json-file" | "local" | "none"))
                    .then(|| "the daemon (root) would send the output where the key says: json-file, local or none only".to_owned())
                    .and_then(refused),
                ("--log-opt", Some(opt)) => {
                    let key = opt.split('=').next().unwrap_or("");
                    (!matches!(key, "max-size" | "max-file" | "compress"))
                        .then(|| "max-size, max-file and compress only".to_owned())
                        .and_then(refused)
                }
                ("--network" | "--net", Some(n)) => (n != "bridge" && !self.networks.iter().any(|m| m == n))
                    .then(|| {
                        format!(
                            "not a network this key may join (bridge, {})",
                            if self.networks.is_empty() {
                                "and none given with bluegreen gate --network".to_owned()
                            } else {
                                self.networks.join(", ")
                            }
                        )
                    })
                    .and_then(refused),
                ("-v" | "--volume", Some(v)) => self.volume_problem(app, v).and_then(refused),
                ("--mount", Some(m)) => self.mount_problem(app, m).and_then(refused),
                (other, _) if other.starts_with('-') => refused(
                    "not among the options this key may pass (they keep the container in its box: no --privileged, host namespaces, added capabilities, devices or security options)".into(),
                ),
                (other, _) => Some(format!(
                    "docker-args {other}: a word that is no option (docker would take it for the image)"
                )),
            };
            no.extend(problem);
        }
        no
    }

    /// What is wrong with `-v VALUE` for `app`, if anything. `SOURCE:TARGET[:OPTIONS]`
    /// names a bind mount when docker reads SOURCE as a path (it starts with `/`, `.` or
    /// `~`: docker makes `./x` absolute from the current directory, the deploy user's home
    /// here), which must be a directory given as it is; else a named volume, which must be
    /// the app's own (`APP-…` or `APP_…`: another's volume holds another's data). A lone
    /// TARGET is an anonymous volume, the container's own.
    fn volume_problem(&self, app: &AppName, value: &str) -> Option<String> {
        // A lone target is an anonymous volume: nothing to check.
        let (source, rest) = value.split_once(':')?;
        if let Some((_target, options)) = rest.split_once(':')
            && options.split(',').any(|o| !matches!(o, "ro" | "rw"))
        {
            return Some(format!("the options {options}: ro or rw only"));
        }
        if source.starts_with(['/', '.', '~', '\\']) {
            return (!self.is_dir_given(Path::new(source))).then(|| self.not_a_dir(source));
        }
        volume_of_app(app, source)
    }

    /// What is wrong with `--mount VALUE` for `app`, if anything: read as docker reads it,
    /// a bind mount of a directory given as it is, a volume of the app's own (or anonymous)
    /// with no driver options, or a tmpfs. Quotes and repeated or unknown fields are refused,
    /// since docker's reading of them (CSV, the last of a repeated field) could differ.
    fn mount_problem(&self, app: &AppName, value: &str) -> Option<String> {
        if value.contains(['"', '\'']) {
            return Some("quotes are not taken".into());
        }
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for field in value.split(',') {
            let (key, val) = field.split_once('=').unwrap_or((field, ""));
            if fields.iter().any(|(k, _)| *k == key) {
                return Some(format!("{key} is given twice"));
            }
            if !matches!(
                key,
                "type"
                    | "source"
                    | "src"
                    | "target"
                    | "destination"
                    | "dst"
                    | "readonly"
                    | "ro"
                    | "tmpfs-size"
                    | "tmpfs-mode"
                    | "volume-nocopy"
            ) {
                return Some(format!("the field {key} is not taken"));
            }
            fields.push((key, val));
        }
        let field = |names: &[&str]| {
            fields
                .iter()
                .find(|(k, _)| names.contains(k))
                .map(|(_, v)| *v)
        };
        let sources = fields
            .iter()
            .filter(|(k, _)| matches!(*k, "source" | "src"))
            .count();
        if sources > 1 {
            return Some("its source is given twice".into());
        }
        let source = field(&["source", "src"]).unwrap_or("");
        match field(&["type"]).unwrap_or("volume") {
            "bind" => (!self.is_dir_given(Path::new(source))).then(|| self.not_a_dir(source)),
            "volume" if source.is_empty() => None,
            "volume" => volume_of_app(app, source),
            "tmpfs" => None,
            other => Some(format!("type {other} is not taken")),
        }
    }

    fn not_a_dir(&self, source: &str) -> String {
        format!(
            "{source} is not a directory this key may give a container ({})",
            named(&self.dirs, "--dir")
        )
    }

    /// Whether `path` is one of the directories given (a trailing `/` aside).
    fn is_dir_given(&self, path: &Path) -> bool {
        self.dirs
            .iter()
            .any(|dir| dir.components().eq(path.components()))
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

/// What is wrong with the volume `name` for `app`, if anything: it must be named by
/// docker's rules and be the app's own (`APP_…`).
fn volume_of_app(app: &AppName, name: &str) -> Option<String> {
    let docker_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    // `_` is in no app name, so `APP_` is no other app's prefix (`shop-` would be
    // `shop-admin`'s too).
    let own = name.starts_with(&format!("{app}_"));
    (!docker_name || !own).then(|| {
        format!("a volume of this key's app is named {app}_… (another's holds another's data)")
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::ship;

    fn policy() -> Policy {
        Policy {
            dirs: vec![
                PathBuf::from("/srv/shop/uploads"),
                PathBuf::from("/srv/shop/media"),
            ],
            networks: vec!["shopnet".into()],
            ..Policy::defaults(vec!["shop".parse().unwrap()])
        }
    }

    fn shop() -> AppName {
        "shop".parse().unwrap()
    }

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_actions_requests_pass_and_everything_else_gets_one_line() {
        let start = shell_words::join(["sh", "-c", ship::RUN, "sh", "x86_64=abc"]);
        assert_eq!(Request::of(Some(&start)), Ok(Request::Deploy));
        assert_eq!(
            Request::of(Some("docker image inspect --format '{{.Id}}' shop:2")),
            Ok(Request::InspectImage("shop:2".parse().unwrap()))
        );
        let upload = shell_words::join(["sh", "-c", ship::UPLOAD, "sh", "/x/bluegreen", "abc"]);
        for (request, said) in [
            (
                None,
                "refused: this key runs bluegreen's deploy requests only, not a shell",
            ),
            (
                Some(""),
                "refused: this key runs bluegreen's deploy requests only, not a shell",
            ),
            (
                Some("id"),
                "refused: `id`: this key runs bluegreen's deploy requests only",
            ),
            (
                Some("sh -c 'id; cat /etc/shadow'"),
                "refused: `sh`: this key runs bluegreen's deploy requests only",
            ),
            (
                Some(upload.as_str()),
                "refused: the helper is installed on this host for this key, and uploads are not taken",
            ),
            (
                Some("docker run --privileged -v /:/host alpine"),
                "refused: `docker`: this key runs bluegreen's deploy requests only",
            ),
            (
                Some("'unclosed"),
                "refused: the request is not a command line",
            ),
        ] {
            assert_eq!(Request::of(request), Err(said.to_owned()), "{request:?}");
        }
    }

    #[test]
    fn docker_args_that_keep_the_container_in_its_box_pass() {
        let ok = args(&[
            "--memory",
            "512m",
            "-e",
            "RUST_LOG=info",
            "--env=A=b",
            "--init",
            "-v",
            "/srv/shop/uploads:/data",
            "-v",
            "shop_cache:/cache",
            "-v",
            "/srv/shop/uploads:/u:ro",
            "-e",
            "EMPTY=",
            "--ulimit",
            "nofile=4096:8192",
            "-v",
            "/scratch",
            "--mount",
            "type=volume,source=shop_media,target=/m",
            "-l",
            "team=web",
            "--log-driver",
            "local",
            "--log-opt",
            "max-size=10m",
            "--mount",
            "type=bind,source=/srv/shop/media,target=/media,readonly",
            "--mount",
            "type=tmpfs,target=/tmp",
            "--network",
            "shopnet",
        ]);
        assert_eq!(
            policy().docker_args_refusals(&shop(), &ok),
            Vec::<String>::new()
        );
    }

    #[test]
    fn docker_args_that_escape_the_container_are_each_refused() {
        let p = policy();
        assert_eq!(
            p.docker_args_refusals(&shop(), &args(&["--privileged", "-v", "/:/host"])),
            [
                "docker-args --privileged: not among the options this key may pass (they keep the container in its box: no --privileged, host namespaces, added capabilities, devices or security options)",
                "docker-args -v /:/host: / is not a directory this key may give a container (/srv/shop/uploads, /srv/shop/media)",
            ]
        );
        for bad in [
            &["--privileged"][..],
            &["--pid=host"],
            &["--pid", "host"],
            &["--ipc=host"],
            &["--uts=host"],
            &["--userns=host"],
            &["--cap-add", "SYS_ADMIN"],
            &["--cap-add=ALL"],
            &["--device", "/dev/sda"],
            &["--security-opt", "seccomp=unconfined"],
            &["--volumes-from", "other"],
            &["--network", "host"],
            &["--net=container:db"],
            &["-v", "/:/host"],
            &["-v", "/srv/shop/uploads/../../../etc:/etc2"],
            &["-v", "/srv/shop/uploads/link:/data"],
            &["--network", "otherapp_db"],
            &["-v", ".:/h"],
            &["-v", "./../..:/host"],
            &["-v", "~/.ssh:/k"],
            &["-v", "billing_pgdata:/x"],
            &["-v", "shop-admin_pgdata:/x"],
            &["--mount", "type=volume,src=shop-admin-blue_db,target=/x"],
            &["-v", "/srv/shop/uploads:/u:rshared"],
            &["-v", "/srv/shop/uploads:/u:z"],
            &["-e", "AWS_SECRET_ACCESS_KEY"],
            &["--env=HTTP_PROXY"],
            &["--ulimit", "rtprio=99"],
            &["--mount", "type=volume,type=bind,source=/,target=/host"],
            &[
                "--mount",
                "type=bind,source=/srv/shop/uploads,source=/,target=/host",
            ],
            &["--mount", "\"type=bind\",source=/,target=/host"],
            &["--mount", "type=volume,src=billing_data,target=/x"],
            &[
                "--mount",
                "type=bind,src=/srv/shop/uploads,target=/u,bind-propagation=rshared",
            ],
            &["-l", "bluegreen.app=billing"],
            &["--label=com.docker.compose.project=billing-green"],
            &["--log-driver", "syslog"],
            &["--log-opt", "syslog-address=unix:///run/docker.sock"],
            &["--volume=/var/run/docker.sock:/var/run/docker.sock"],
            &["--mount", "type=bind,source=/etc,target=/etc2"],
            &[
                "--mount",
                "type=volume,target=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/",
            ],
            &["--env-file", "/root/.env"],
            &["--privileged=true"],
            &["--label-file", "/etc/shadow"],
            &["--runtime", "runc"],
            &["--gpus", "all"],
            &["--sysctl", "net.ipv4.ip_forward=1"],
            &["alpine"],
            &["--memory"],
        ] {
            let refusals = p.docker_args_refusals(&shop(), &args(bad));
            assert_eq!(refusals.len(), 1, "{bad:?}: {refusals:?}");
            assert!(refusals[0].starts_with("docker-args "), "{refusals:?}");
        }
    }

    #[test]
    fn what_root_gives_a_container_must_be_root_s_to_swap() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let safe = tmp.path().join("data");
        std::fs::create_dir(&safe).unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(shared.join("data")).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let env = tmp.path().join("env");
        std::fs::write(&env, "A=b\n").unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o666)).unwrap();
        let given = Policy {
            dirs: vec![safe.clone(), shared.join("data"), link.clone()],
            env_files: vec![env.clone()],
            ..policy()
        };
        let said = given.unsafe_given();
        let about = |path: &Path| {
            said.iter()
                .filter(|l| l.contains(&*path.display().to_string()))
                .count()
        };
        assert_eq!(about(&link), 1, "{said:?}");
        assert!(
            said.iter()
                .any(|l| l.starts_with(&format!("--dir {}: not a directory", link.display())))
        );
        assert!(
            said.iter().any(|l| l.starts_with(&format!(
                "--dir {}: its parent must be root's alone",
                shared.join("data").display()
            ))),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|l| l.starts_with(&format!("--env-file {}: not root's alone", env.display()))),
            "{said:?}"
        );
    }

    #[test]
    fn an_image_is_of_a_given_repository_to_the_letter() {
        let p = Policy {
            images: vec!["ghcr.io/acme/shop".into(), "shop".into()],
            ..policy()
        };
        let allows = |reference: &str| p.allows_image(&reference.parse().unwrap());
        assert!(allows("ghcr.io/acme/shop:v2"));
        assert!(allows(
            "ghcr.io/acme/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(allows(
            "ghcr.io/acme/shop:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(allows("shop:2"));
        for other in [
            "docker.io/ghcr.io/acme/shop:x",
            "library/ghcr.io/acme/shop:x",
            "docker.io/library/shop:2",
            "ghcr.io/acme/shop-admin:v1",
            "ghcr.io/acme/billing:v1",
            "evil.io/ghcr.io/acme/shop:v1",
        ] {
            assert!(!allows(other), "{other}");
        }
    }
}
