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
use crate::fsutil::sha256_hex;
use crate::maintenance_server::Closed;
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
    let outcome = e.phase(Phase::Setup, |me| {
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
            me.run.result.upstream_diff = Some(diff);
            return Ok((Outcome::Unchanged, "dry run: nothing changed".to_owned()));
        }
        crate::maintenance_server::install_page(
            &store.pages_dir(),
            Closed::NotDeployed,
            &plan.app,
            None,
        )?;
        for (written, f) in files.iter().enumerate() {
            if let Err(err) = me.host.write_file(&f.path, &f.wanted) {
                put_back(me, &files[..written]);
                return Err(err.into());
            }
            done.push(format!("wrote {}", f.path.display()));
        }
        if !files.is_empty() {
            let warnings = apply(me, &files)?;
            for w in &warnings {
                me.log(&format!("warning: {w}"));
            }
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
    });
    if outcome.is_err() && !dir_existed && !plan.dry_run {
        // A refused first setup leaves the host as it found it: its files are put back,
        // and the state directory it made (the lock, the placeholder page) goes too.
        e.unlock();
        match std::fs::remove_dir_all(store.dir()) {
            Ok(()) => e.log(&format!(
                "removed the state directory {} this setup created",
                store.dir().display()
            )),
            Err(err) => e.log(&format!(
                "warning: could not remove the state directory {} this setup created: {err}",
                store.dir().display()
            )),
        }
    }
    outcome
}

/// The include, when setup writes it: setup's placeholder where there is no include yet
/// (or setup's own placeholder is there); `None` where a deploy wrote it.
fn planned_include(e: &Engine) -> Result<Option<Planned>, Failure> {
    let plan = e.plan;
    let path = plan.switch.upstream_file.as_path();
    let current = e.host.read_file(path)?;
    if let (None, Some(live)) = (
        &current,
        plan.store().read(&plan.app).and_then(|s| s.active),
    ) {
        return Err(Error::CheckFailed(format!(
            "state records {live} as live but the include {} is missing: a placeholder would take the site down; `bluegreen switch-traffic --app {} --to {live}` writes it again",
            path.display(),
            plan.app
        ))
        .into());
    }
    if current
        .as_deref()
        .is_some_and(|text| !crate::maintenance_server::is_placeholder(text, &plan.app))
    {
        return Ok(None);
    }
    check_port_free(e, current.as_deref())?;
    let wanted = crate::maintenance_server::include(
        &plan.app,
        Closed::NotDeployed,
        plan.maintenance.port.get(),
        None,
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

/// Refuses the plan's maintenance port when another program listens on it (another app's
/// maintenance server among them): nginx's reload would fail to bind it, or answer with
/// that app's page. nginx listening on it for this app (`include`, the app's include now,
/// says so) is no reason.
pub(super) fn check_port_free(e: &Engine, include: Option<&str>) -> Result<(), Failure> {
    let port = e.plan.maintenance.port.get();
    if include.is_some_and(|text| crate::maintenance_server::claims_port(text, &e.plan.app, port)) {
        return Ok(());
    }
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
    let current = e.host.read_file(path)?;
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

/// Tests the configuration setup wrote (`files`) and reloads nginx; returns nginx's
/// warnings. A configuration nginx refuses, or one in which it would ignore the server
/// block, puts the files back (and nginx reloaded, if it may have loaded them).
fn apply(e: &Engine, files: &[Planned]) -> Result<Vec<String>, Failure> {
    let switch = &e.plan.switch;
    let refuse = |why: String, reloaded: bool| -> Failure {
        put_back(e, files);
        if reloaded {
            let _ = e.host.reload_nginx(switch);
        }
        Error::CheckFailed(format!("{why}; setup put its files back")).into()
    };
    let tested = e
        .host
        .run(&switch.test_cmd, crate::nginx::COMMAND_TIMEOUT)
        .map_err(|err| refuse(format!("nginx refused the configuration: {err}"), false))?;
    let mut warnings: Vec<String> = format!("{}\n{}", tested.stderr, tested.stdout)
        .lines()
        .filter(|line| line.contains("[warn]"))
        .map(|line| format!("nginx -t: {}", line.trim()))
        .collect();
    if let Some(line) = warnings.iter().find(|w| names_conflict(w, e)) {
        let advice = if e.plan.site.server_names.as_str() == crate::config::defaults::SERVER_NAME {
            "give server-name"
        } else {
            "choose another server-name"
        };
        return Err(refuse(
            format!(
                "nginx would ignore the server block for {} on {} ({line}): another server block has that name on that port (Debian's default site has server_name _ on port 80); {advice}, or remove the other block",
                e.plan.site.server_names, e.plan.site.listen
            ),
            false,
        ));
    }
    match e.host.reload_nginx(switch) {
        Ok(true) => {}
        Ok(false) => warnings.push(format!(
            "the reload could not be confirmed: {} names no running nginx and there is not exactly one nginx master on this host (give nginx-pid-file)",
            switch.nginx_pid_file
        )),
        Err((stage, why)) => {
            return Err(refuse(format!("nginx {stage} failed: {why}"), stage != "reload"));
        }
    }
    Ok(warnings)
}

/// Whether nginx's warning `line` says it ignores one of the plan's server names
/// (`conflicting server name "NAME" on ADDRESS, ignored`).
fn names_conflict(line: &str, e: &Engine) -> bool {
    let Some(rest) = line.split("conflicting server name \"").nth(1) else {
        return false;
    };
    let name = rest.split('"').next().unwrap_or("");
    e.plan
        .site
        .server_names
        .as_str()
        .split(' ')
        .any(|mine| mine == name)
}

/// Puts the files setup wrote back as they were.
fn put_back(e: &Engine, files: &[Planned]) {
    for f in files {
        let _ = match &f.current {
            Some(text) => e.host.write_file(&f.path, text),
            None => e.host.remove_file(&f.path),
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
