//! The preflight checks of a run, a method of the [`Engine`]: the host's own checks
//! (`crate::validate`, through the engine's host), and those that need the plan: the
//! user's upstream template renders, the compose file has the services the plan names,
//! and the app name on the Docker host is this deployment's (claimed by the first run that
//! goes on).

use crate::config::{self, defaults};
use crate::error::Error;
use crate::exec::CommandLine;
use crate::input::{ServiceName, Slot, SwitchMode};
use crate::runtime;
use crate::upstream::{UpstreamContext, routed_slot};
use crate::validate::{Audience, CheckResult, CheckStatus, ValidateRequest};

use super::engine::{Engine, Failure};
use super::protocol::Phase;
use super::slots::INSPECT_TIMEOUT;

impl Engine<'_> {
    /// The preflight checks; fails listing every failed check. A run that goes on (not a
    /// dry run, every check passed, and `may_claim`) claims the app name on the Docker host.
    pub(super) fn validate(&mut self, may_claim: bool) -> Result<(), Failure> {
        let plan = self.plan;
        let request = ValidateRequest {
            audience: Audience::Action,
            // Only reload mode reloads nginx on every switch.
            reload_cmd: (self.switch.mode == SwitchMode::Reload)
                .then(|| self.switch.reload_cmd.clone()),
            nginx_pid_file: self.switch.nginx_pid_file.as_path().to_path_buf(),
            verify_port: self.switch.verify_url.as_ref().map(|url| url.port()),
            app: plan.app.clone(),
            store: plan.store(),
            upstream_file: self.switch.upstream_file.as_path().to_path_buf(),
            test_cmd: self.switch.test_cmd.clone(),
            runtime: plan.runtime.runtime,
            docker_cmd: CommandLine::new([defaults::DOCKER_CMD]),
            min_free_disk_mb: plan.min_free_disk_mb,
            memory_check: plan.memory_check,
            min_free_memory_mb: plan.min_free_memory_mb,
            ports: plan.ports,
            tcp: plan.check_tcp.clone(),
            tcp_timeout: config::seconds(defaults::TCP_TIMEOUT),
            nft: self.switch.nft(&plan.app),
            boot: (self.switch.mode == SwitchMode::Nftables).then(|| self.boot_path()),
        };
        self.phase(Phase::Validate, |me| {
            let mut report = me.host.validate(&request);
            report.checks.extend(me.template_check());
            report.checks.extend(me.compose_check());
            if plan.runtime.runtime.uses_docker() {
                // The claim is made only by a run that goes on: a failed check changes nothing.
                let goes_on = may_claim
                    && !plan.dry_run
                    && report.checks.iter().all(|c| c.status != CheckStatus::Fail);
                report.checks.push(match me.claim_app(goes_on) {
                    Ok(()) => CheckResult::new(
                        "app-claim",
                        CheckStatus::Pass,
                        format!("{} on this Docker host is this deployment's", plan.app),
                    ),
                    Err(e) => CheckResult::new("app-claim", CheckStatus::Fail, e.to_string()),
                });
            }
            for c in &report.checks {
                me.log(&format!("{} {}: {}", c.status.as_str(), c.name, c.detail));
            }
            // A warning of validation is the run's too: the summary and the annotations
            // carry it, not only the validate lines (a state warning is the one loading
            // the state gives, and is kept once).
            let warned: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Warn)
                .map(|c| c.detail.clone())
                .collect();
            me.add_warnings(&warned);
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            if failed.is_empty() {
                Ok(((), format!("{} checks passed", report.checks.len())))
            } else {
                Err(Error::CheckFailed(format!(
                    "{} of {} checks failed: {}",
                    failed.len(),
                    report.checks.len(),
                    failed.join("; ")
                ))
                .into())
            }
        })
    }

    /// The check of the user's upstream template: it reads and renders (for the standby),
    /// so a broken one stops the run before a standby starts. None without one.
    fn template_check(&self) -> Option<CheckResult> {
        let path = self.plan.upstream_template.as_ref()?;
        let (app, ports) = (&self.plan.app, self.plan.ports);
        let reload = self.switch.mode == SwitchMode::Reload;
        let checked = self.template().and_then(|template| {
            for slot in [Slot::Blue, Slot::Green] {
                let text = template.render(&UpstreamContext::new(app, slot, ports, None))?;
                // In reload mode the file says where traffic goes: reconcile, status and a
                // rebuilt state read it back.
                if reload && routed_slot(&text, ports, app) != Some(slot) {
                    return Err(Error::invalid(
                        "upstream-template",
                        format!(
                            "{path} rendered for {slot} does not read back as routing to {slot} (port {}): keep one `server 127.0.0.1:{{{{ port }}}}` line of the live slot, or the `# bluegreen: app={{{{ app }}}} slot={{{{ slot }}}}` marker line",
                            ports.port(slot)
                        ),
                    ));
                }
            }
            Ok(())
        });
        Some(match checked {
            Ok(()) => CheckResult::new(
                "upstream-template",
                CheckStatus::Pass,
                format!("{path} renders for both slots"),
            ),
            Err(e) => CheckResult::new("upstream-template", CheckStatus::Fail, e.to_string()),
        })
    }

    /// The check of the compose file (compose runtime): compose reads it, and the services
    /// `compose-services` names are in it; without that input, a file of several services
    /// is a warning (each runs once per slot). None under other runtimes.
    fn compose_check(&mut self) -> Option<CheckResult> {
        let plan = self.plan;
        let commands = self.commands();
        let spec = self.slot_spec(
            Slot::Blue,
            plan.version.as_str(),
            plan.runtime.image.as_ref(),
        );
        let cmd = commands.services(&spec)?;
        let file = plan
            .runtime
            .compose_file
            .as_ref()
            .map_or("", |f| f.as_str());
        let check = |status, detail: String| Some(CheckResult::new("compose-file", status, detail));
        let listed = match self.host.run(&cmd, INSPECT_TIMEOUT) {
            Ok(out) => out.stdout,
            Err(e) => {
                return check(
                    CheckStatus::Fail,
                    format!("compose cannot read {file}: {e}"),
                );
            }
        };
        let services: Vec<&str> = listed.split_whitespace().collect();
        let wanted = &plan.runtime.compose_services;
        let missing: Vec<&str> = wanted
            .iter()
            .map(ServiceName::as_str)
            .filter(|w| !services.contains(w))
            .collect();
        if !missing.is_empty() {
            return check(
                CheckStatus::Fail,
                format!(
                    "compose-services names {} that {file} does not have (it has: {})",
                    missing.join(", "),
                    services.join(", ")
                ),
            );
        }
        if wanted.is_empty() && services.len() > 1 {
            return check(
                CheckStatus::Warn,
                format!(
                    "every service of {file} runs once per slot ({}): twice during a deploy, and for good with retire: keep, each slot with volumes of its own; name the services that take part with compose-services",
                    services.join(", ")
                ),
            );
        }
        check(
            CheckStatus::Pass,
            format!("{file} has the services {}", services.join(", ")),
        )
    }

    /// Makes sure `APP-blue` and `APP-green` on this Docker host are this deployment's: the
    /// first deployment of an app name claims it for its state directory; another
    /// deployment of the same name (another state directory) is refused, as its slots
    /// share the container names. Nothing to claim without Docker.
    /// Without `create`, only checks that no other deployment holds the claim.
    pub(super) fn claim_app(&self, create: bool) -> Result<(), Error> {
        if !self.plan.runtime.runtime.uses_docker() {
            return Ok(());
        }
        let docker = CommandLine::new([defaults::DOCKER_CMD]);
        let app = &self.plan.app;
        // One directory, however it is written (a trailing slash, a link on the way).
        let dir = self.plan.state_dir.as_path();
        let ours = std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.components().collect())
            .display()
            .to_string();
        let ours = ours.as_str();
        let owner = |me: &Self| {
            me.host
                .run(&runtime::claim_owner(&docker, app), INSPECT_TIMEOUT)
                .ok()
                .map(|out| out.stdout.trim().to_owned())
        };
        let owner = match owner(self) {
            Some(owner) => owner,
            None if !create => return Ok(()),
            None => {
                self.host
                    .run(&runtime::claim(&docker, app, ours), INSPECT_TIMEOUT)?;
                owner(self).unwrap_or_default()
            }
        };
        if owner == ours {
            return Ok(());
        }
        let volume = runtime::claim_volume(app);
        let owner = if owner.is_empty() {
            format!("a directory its volume {volume} does not name")
        } else {
            owner
        };
        Err(Error::CheckFailed(format!(
            "another deployment of {app} on this Docker host keeps its state in {owner}, and its slots are the containers {app}-blue and {app}-green too: give this deployment another app name, or use that state-dir; if that deployment is gone (or its state moved here), `docker volume rm {volume}` hands the name over"
        )))
    }
}
