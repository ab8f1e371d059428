//! The `docker-args` a restricted key may pass: read as docker reads them, only options
//! that keep the container in its box, bind mounts only of the directories root gave the
//! gate, volumes only the app's own.

use std::path::Path;

use crate::input::AppName;

use super::{Policy, named};

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

impl Policy {
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
