//! The setup operation (`command: setup`, `bluegreen setup`): prepares a host that has
//! nginx for the app's first deploy, leaving nothing to do by hand:
//! - the state directory, owned by the user running it, mode 0755;
//! - the upstream include, when there is none: setup's placeholder, with nginx answering
//!   503 "not deployed yet" until the first deploy takes the include over (nginx refuses a
//!   `proxy_pass` to an upstream that does not exist, so the server block needs it);
//! - the server block (`server-name`, `listen`), proxying to the app's upstream; TLS is left
//!   to the user's configuration or certbot, and the file says so;
//! - in nftables mode, the boot path of the switch;
//! - then `nginx -t` and a reload, when an nginx file changed; a refused configuration puts
//!   the files back as they were.
//!
//! Idempotent: a second run changes nothing and says so. An include a deploy wrote is never
//! touched, and a server block edited since setup wrote it (by hand, by certbot) is kept,
//! with the difference shown. `dry-run` shows every file it would write, as a diff.

use std::path::PathBuf;

use crate::error::Error;
use crate::fsutil::{read_optional, sha256_hex, write_atomic};
use crate::maintenance::Closed;
use crate::upstream::unified_diff;

use super::engine::{Engine, Failure};
use super::protocol::{Outcome, Phase};

/// The server block's template.
const SERVER_TEMPLATE: &str = include_str!("../../templates/server.conf.j2");

/// The first words of the server block's first line; the line goes on with the sha256 of
/// the rest of the file as setup wrote it.
const SERVER_HEADER: &str = "# Written by bluegreen setup, sha256 ";

/// One file setup writes: where, what it holds now, and what setup would write there.
struct Planned {
    path: PathBuf,
    current: Option<String>,
    wanted: String,
}

impl Planned {
    fn changes(&self) -> bool {
        self.current.as_deref() != Some(self.wanted.as_str())
    }

    fn diff(&self) -> String {
        unified_diff(
            self.current.as_deref().unwrap_or(""),
            &self.wanted,
            &self.path,
        )
    }
}

/// Prepares the host for the app.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    let store = plan.store();
    let dir_existed = store.dir().is_dir();
    if !plan.dry_run {
        e.lock()?;
    }
    e.phase(Phase::Setup, |me| {
        let mut done = Vec::new();
        if !dir_existed {
            done.push(format!(
                "created the state directory {}",
                store.dir().display()
            ));
        }
        let include = planned_include(me)?;
        let (server, kept) = planned_server(me)?;
        if let Some(kept) = kept {
            me.log(&format!("warning: {kept}"));
            me.add_warnings(&[kept]);
        }
        let files: Vec<Planned> = include
            .into_iter()
            .chain(server)
            .filter(Planned::changes)
            .collect();
        if plan.dry_run {
            let diff: String = files.iter().map(Planned::diff).collect();
            for f in &files {
                me.log(&format!("plan: write {}", f.path.display()));
            }
            if !dir_existed {
                me.log(&format!(
                    "plan: create the state directory {}",
                    store.dir().display()
                ));
            }
            if me.switch.nft(&plan.app).is_some()
                && let Some(missing) = me.boot_path().missing()
            {
                me.log(&format!("plan: install the boot path ({missing})"));
            }
            me.result.upstream_diff = Some(diff);
            return Ok((Outcome::Unchanged, "dry run: nothing changed".to_owned()));
        }
        crate::maintenance::install_page(&store.pages_dir(), Closed::NotDeployed, &plan.app, None)?;
        for f in &files {
            write_atomic(&f.path, f.wanted.as_bytes(), 0o644)?;
            done.push(format!("wrote {}", f.path.display()));
        }
        if !files.is_empty() {
            let warnings = apply(me).inspect_err(|_| put_back(&files))?;
            me.add_warnings(&warnings);
            done.push("nginx took the configuration (nginx -t, reload)".into());
        }
        if me.switch.nft(&plan.app).is_some() {
            done.extend(me.install_boot_path());
        }
        for line in &done {
            me.log(line);
        }
        Ok(if done.is_empty() {
            (
                Outcome::Unchanged,
                "everything was in place: nothing changed".to_owned(),
            )
        } else {
            (Outcome::Changed, done.join("; "))
        })
    })
}

/// The include, when setup writes it: setup's placeholder where there is no include yet
/// (or setup's own placeholder is there); `None` where a deploy wrote it.
fn planned_include(e: &Engine) -> Result<Option<Planned>, Failure> {
    let plan = e.plan;
    let path = plan.switch.upstream_file.as_path();
    let current = read_optional(path)?;
    if current
        .as_deref()
        .is_some_and(|text| !crate::maintenance::is_placeholder(text, &plan.app))
    {
        return Ok(None);
    }
    let port = plan.maintenance.port.get();
    let held_by_nginx = current
        .as_deref()
        .and_then(|text| crate::upstream::marker_word(text, &plan.app, "placeholder="))
        == Some(port.to_string().as_str());
    if !held_by_nginx {
        check_port_free(e, port)?;
    }
    let wanted = crate::maintenance::include(
        &plan.app,
        Closed::NotDeployed,
        plan.maintenance.port.get(),
        plan.maintenance.retry_after_seconds,
        &plan.store().pages_dir(),
        "",
    )?;
    Ok(Some(Planned {
        path: path.to_path_buf(),
        current,
        wanted,
    }))
}

/// Refuses `port` for nginx's maintenance server when another program listens on it: the
/// reload would fail to bind it, after a wait, and be put back.
pub(super) fn check_port_free(e: &Engine, port: u16) -> Result<(), Failure> {
    match e.host.port_taken(port) {
        Some(owner) => Err(Error::invalid(
            "maintenance-port",
            format!(
                "port {port} is in use by {owner}: nginx's server that answers 503 for {} needs a port of its own (each app on a host its own)",
                e.plan.app
            ),
        )
        .into()),
        None => Ok(()),
    }
}

/// The server block, and why an existing one is kept instead of it: one that is not as
/// setup wrote it was edited since.
fn planned_server(e: &Engine) -> Result<(Option<Planned>, Option<String>), Failure> {
    let plan = e.plan;
    let path = plan.site.server_file.as_path();
    let body = server_block(e);
    let wanted = format!("{SERVER_HEADER}{}\n{body}", sha256_hex(body.as_bytes()));
    let current = read_optional(path)?;
    let planned = Planned {
        path: path.to_path_buf(),
        current,
        wanted,
    };
    match planned.current.as_deref() {
        Some(text) if planned.changes() && !as_setup_wrote(text) => {
            let kept = format!(
                "{} is not as setup wrote it (edited by hand, or by certbot): kept as it is; remove it to have setup write it again. The difference:\n{}",
                path.display(),
                planned.diff()
            );
            Ok((None, Some(kept)))
        }
        _ => Ok((Some(planned), None)),
    }
}

/// Whether `text` is a server block exactly as setup wrote it (its header's sum matches).
fn as_setup_wrote(text: &str) -> bool {
    let Some((header, body)) = text.split_once('\n') else {
        return false;
    };
    header.strip_prefix(SERVER_HEADER) == Some(sha256_hex(body.as_bytes()).as_str())
}

/// The server block of the app.
fn server_block(e: &Engine) -> String {
    let plan = e.plan;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("server.conf", SERVER_TEMPLATE)
        .and_then(|()| env.get_template("server.conf"))
        .and_then(|t| {
            t.render(minijinja::context! {
                app => plan.app.as_str(),
                listen => plan.site.listen.as_str(),
                server_names => plan.site.server_names.as_str(),
            })
        })
        .map(|text| format!("{}\n", text.trim_end()))
        .expect("the built-in server block renders with its variables (tested)")
}

/// Tests the configuration and reloads nginx; returns nginx's warnings.
fn apply(e: &Engine) -> Result<Vec<String>, Failure> {
    let switch = &e.plan.switch;
    let tested = e
        .host
        .run(&switch.test_cmd, crate::nginx::COMMAND_TIMEOUT)
        .map_err(|err| {
            Error::CheckFailed(format!(
                "nginx refused the configuration, so setup put its files back: {err}"
            ))
        })?;
    let warnings = format!("{}\n{}", tested.stderr, tested.stdout)
        .lines()
        .filter(|line| line.contains("[warn]"))
        .map(|line| format!("nginx -t: {}", line.trim()))
        .collect();
    e.host.reload_nginx(switch).map_err(|(stage, why)| {
        Error::CheckFailed(format!(
            "nginx {stage} failed, so setup put its files back: {why}"
        ))
    })?;
    Ok(warnings)
}

/// Puts the files setup wrote back as they were (a refused configuration).
fn put_back(files: &[Planned]) {
    for f in files {
        let _ = match &f.current {
            Some(text) => write_atomic(&f.path, text.as_bytes(), 0o644),
            None => std::fs::remove_file(&f.path).map_err(|e| Error::io("remove", &f.path, e)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_block_is_as_setup_wrote_it_only_while_its_sum_matches() {
        let body = "server {\n}\n";
        let text = format!("{SERVER_HEADER}{}\n{body}", sha256_hex(body.as_bytes()));
        assert!(as_setup_wrote(&text));
        assert!(!as_setup_wrote(
            &text.replace("server {", "server { listen 443 ssl;")
        ));
        assert!(!as_setup_wrote(body));
    }
}
