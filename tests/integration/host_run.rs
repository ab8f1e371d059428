//! The host-side run by itself: a plan piped into the real `bluegreen deploy` against a real
//! nginx, with the command runtime starting and stopping the demo app as plain processes.
//! No sshd, act or Docker: this is the engine as a host runs it, events and exit codes
//! included.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bluegreen::deploy::{
    DeployPlan, HealthSpec, HookSpec, MaintenanceSpec, Operation, Retire, RetireSpec, SiteSpec,
    WatchSpec,
};
use bluegreen::exec::CommandLine;
use bluegreen::input::{SlotPorts, SwitchMode};
use bluegreen::lock::AppLock;
use bluegreen::runtime::{Pull, Runtime, RuntimeSpec};
use bluegreen::switch::SwitchConfig;
use serde_json::Value;

use crate::support::{BLUEGREEN, DEMO_APP, Site, free_port};

/// The command runtime's script: the demo app in the background, one pid file per slot.
const SLOT_SCRIPT: &str = r#"pidfile="$SLOT_PIDS/$BLUEGREEN_SLOT.pid"
if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
if [ "$BLUEGREEN_ACTION" = start ]; then
  "$DEMO_APP" --listen "127.0.0.1:$BLUEGREEN_PORT" --slot "$BLUEGREEN_SLOT" \
    --app-version "$BLUEGREEN_VERSION" </dev/null >/dev/null 2>&1 &
  echo $! > "$pidfile"
fi"#;

/// A local target for `bluegreen deploy`: nginx, and a directory for the slots' pid files;
/// the slots' processes are ended by pid when dropped.
pub(crate) struct HostRun {
    site: Site,
    pids: PathBuf,
}

impl HostRun {
    pub(crate) fn new(app: &str) -> HostRun {
        let site = Site::adopting(app);
        let pids = site.tmp.path().join("pids");
        std::fs::create_dir_all(&pids).unwrap();
        HostRun { site, pids }
    }

    pub(crate) fn plan(&self, app: &str, version: &str) -> DeployPlan {
        let nginx = &self.site.nginx;
        let path = |p: &Path| p.display().to_string().parse().unwrap();
        DeployPlan {
            operation: Operation::Deploy,
            dry_run: false,
            purpose: format!("deploy {version} by the host-run test"),
            app: app.parse().unwrap(),
            version: version.parse().unwrap(),
            state_dir: path(&self.site.state_dir),
            ports: SlotPorts::new(self.site.blue_port, self.site.green_port).unwrap(),
            runtime: RuntimeSpec {
                runtime: Runtime::Command,
                image: None,
                container_port: "8080".parse().unwrap(),
                env_file: None,
                docker_args: Vec::new(),
                compose_file: None,
                compose_services: Vec::new(),
                deploy_command: Some(SLOT_SCRIPT.into()),
                pull: Pull::Never,
            },
            health: HealthSpec {
                path: "/health".parse().unwrap(),
                timeout: Duration::from_secs(3),
                healthy_threshold: NonZeroU32::new(2).unwrap(),
            },
            switch: SwitchConfig {
                mode: SwitchMode::Reload,
                service_port: "1".parse().unwrap(),
                service_port_given: true,
                upstream_file: path(&nginx.upstream_file),
                test_cmd: CommandLine::parse(&nginx.test_cmd(), "test").unwrap(),
                reload_cmd: CommandLine::parse(&nginx.reload_cmd(), "reload").unwrap(),
                nginx_pid_file: path(&nginx.pid_file()),
                reload_timeout: Duration::from_secs(10),
                verify_url: Some(nginx.url("/health").parse().unwrap()),
                verify_timeout: Duration::from_secs(10),
                site_host: None,
                nft_cmd: CommandLine::new(["nft"]),
                log_dir: "/nonexistent/log".parse().unwrap(),
                access_log: false,
            },
            upstream_template: None,
            watch: WatchSpec {
                url: None,
                duration: Duration::from_secs(1),
                max_error_rate: "0.01".parse().unwrap(),
                max_p95_ms: crate::support::BUSY_MACHINE_MAX_P95_MS,
                accept_status: "200-399".parse().unwrap(),
                rollback_on_failure: true,
                max_failed_requests: None,
                failed_elsewhere: 0,
            },
            canary: None,
            hooks: HookSpec::none(),
            retire: RetireSpec {
                old_slot: Retire::Stop,
                drain: Duration::ZERO,
                stop_timeout: Duration::from_secs(5),
                keep_images: 0,
            },
            maintenance: MaintenanceSpec {
                port: free_port().try_into().unwrap(),
                ..MaintenanceSpec::defaults()
            },
            site: SiteSpec::defaults(&app.parse().unwrap(), &path(&nginx.upstream_file)),
            lock_timeout: Duration::ZERO,
            systemd_unit_dir: "/nonexistent/systemd".parse().unwrap(),
            boot_helper_dir: "/nonexistent/lib/bluegreen".parse().unwrap(),
            min_free_disk_mb: 1,
            memory_check: bluegreen::validate::MemoryCheck::Off,
            min_free_memory_mb: 0,
            check_tcp: Vec::new(),
            expect_live: None,
            hand_switch: None,
        }
    }

    /// Pipes `plan` into `bluegreen deploy` with `env` added; its exit code and events.
    fn deploy(&self, plan: &DeployPlan, env: &[(&str, &str)]) -> (i32, Vec<Value>) {
        let mut child = Command::new(BLUEGREEN)
            .arg("deploy")
            .env("SLOT_PIDS", &self.pids)
            .env("DEMO_APP", DEMO_APP)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let json = serde_json::to_vec(plan).unwrap();
        child.stdin.take().unwrap().write_all(&json).unwrap();
        let out = child.wait_with_output().unwrap();
        let events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (out.status.code().unwrap_or(-1), events)
    }

    fn running(&self, slot: &str) -> bool {
        std::fs::read_to_string(self.pids.join(format!("{slot}.pid")))
            .is_ok_and(|pid| Path::new(&format!("/proc/{}", pid.trim())).exists())
    }
}

impl Drop for HostRun {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.pids)
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(pid) = std::fs::read_to_string(entry.path()) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn phases_started(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["event"] == "phase-start")
        .map(|e| e["phase"].as_str().unwrap())
        .collect()
}

/// The result event; only the retire's events may follow it.
fn result(events: &[Value]) -> &Value {
    let at = events
        .iter()
        .position(|e| e["event"] == "result")
        .expect("a result event");
    for after in &events[at + 1..] {
        let phase = after["phase"].as_str().or(after["phase"]["phase"].as_str());
        assert!(
            after["event"] == "log" || phase == Some("retire"),
            "only the retire follows the result: {after}"
        );
    }
    &events[at]
}

#[test]
fn a_plan_piped_into_bluegreen_deploy_goes_live_phase_by_phase() {
    require!(Nginx);
    let app = "hostrun";
    let h = HostRun::new(app);

    let (code, events) = h.deploy(&h.plan(app, "v1"), &[]);
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(result(&events)["result"], "deployed");
    assert_eq!(h.site.served_slot(), "blue");

    let (code, events) = h.deploy(&h.plan(app, "v2"), &[]);
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(
        phases_started(&events),
        [
            "lock",
            "validate",
            "deploy-standby",
            "health-check",
            "switch",
            "monitor",
            "retire"
        ]
    );
    let r = result(&events);
    assert_eq!(
        (r["active_slot"].as_str(), r["previous_slot"].as_str()),
        (Some("green"), Some("blue"))
    );
    assert_eq!(h.site.nginx.get("/").1, "green");
    assert!(!h.running("blue"), "the old slot is retired");
    assert!(h.running("green"));
}

#[test]
fn a_standby_that_never_gets_healthy_exits_1_and_leaves_the_live_slot_serving() {
    require!(Nginx);
    let app = "hostrun-sick";
    let h = HostRun::new(app);
    assert_eq!(h.deploy(&h.plan(app, "v1"), &[]).0, 0);

    let (code, events) = h.deploy(&h.plan(app, "v2"), &[("DEMO_HEALTH", "unhealthy")]);
    assert_eq!(code, 1, "{events:#?}");
    let r = result(&events);
    assert_eq!(r["result"], "failed");
    assert_eq!(r["failed_phase"], "health-check");
    assert_eq!(r["error"]["kind"], "check-failed");
    assert_eq!(h.site.served_slot(), "blue");
    assert!(!h.running("green"), "the failed standby is stopped");
    assert!(h.running("blue"));
}

#[test]
fn a_held_lock_exits_3_naming_the_holder() {
    require!(Nginx);
    let app = "hostrun-locked";
    let h = HostRun::new(app);
    std::fs::create_dir_all(&h.site.state_dir).unwrap();
    let _held =
        AppLock::acquire(&h.site.state_dir, app, "a deploy by hand", Duration::ZERO).unwrap();
    let (code, events) = h.deploy(&h.plan(app, "v1"), &[]);
    assert_eq!(code, 3, "{events:#?}");
    let error = &result(&events)["error"];
    assert_eq!(error["kind"], "lock-held");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("a deploy by hand"),
        "{error}"
    );
    assert!(!h.running("blue"), "nothing was started");
}

#[test]
fn the_user_s_upstream_template_is_rendered_and_hand_edits_are_warned_about() {
    require!(Nginx);
    let app = "hostrun-template";
    let h = HostRun::new(app);
    let template = h.site.tmp.path().join("upstream.j2");
    std::fs::write(
        &template,
        "# bluegreen: app={{ app }} slot={{ slot }} version={{ version }}\nupstream {{ app }} {\n    server 127.0.0.1:{{ port }};\n    keepalive 4;\n}\n",
    )
    .unwrap();
    let with_template = |version: &str| DeployPlan {
        upstream_template: Some(template.display().to_string().parse().unwrap()),
        ..h.plan(app, version)
    };
    let (code, events) = h.deploy(&with_template("v1"), &[]);
    assert_eq!(code, 0, "{events:#?}");
    let upstream = || std::fs::read_to_string(&h.site.nginx.upstream_file).unwrap();
    assert!(upstream().contains("keepalive 4;"), "{}", upstream());
    assert_eq!(h.site.served_slot(), "blue");

    // A hand edit is replaced at the next switch, with a warning naming the input; a dry
    // run says so too, and changes nothing.
    let edited = format!("{}# a line added by hand\n", upstream());
    std::fs::write(&h.site.nginx.upstream_file, &edited).unwrap();
    let dry = DeployPlan {
        dry_run: true,
        ..with_template("v2")
    };
    let (code, events) = h.deploy(&dry, &[]);
    assert_eq!(code, 0, "{events:#?}");
    assert!(
        result(&events)["warnings"]
            .to_string()
            .contains("was edited by hand"),
        "{events:#?}"
    );
    assert_eq!(upstream(), edited);
    let (code, events) = h.deploy(&with_template("v2"), &[]);
    assert_eq!(code, 0, "{events:#?}");
    let warnings = result(&events)["warnings"].to_string();
    assert!(
        warnings.contains("was edited by hand since bluegreen last wrote it")
            && warnings.contains("upstream-template"),
        "{warnings}"
    );
    assert!(!upstream().contains("by hand"), "{}", upstream());
    let kept = h.site.state_dir.join("upstream.hand-edited");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), edited);

    // Without a hand edit, no such warning.
    let (code, events) = h.deploy(&with_template("v3"), &[]);
    assert_eq!(code, 0, "{events:#?}");
    assert!(
        !result(&events)["warnings"]
            .to_string()
            .contains("edited by hand"),
        "{events:#?}"
    );
}

#[test]
fn a_broken_upstream_template_fails_validation_and_starts_nothing() {
    require!(Nginx);
    let app = "hostrun-bad-template";
    let h = HostRun::new(app);
    let template = h.site.tmp.path().join("upstream.j2");
    std::fs::write(
        &template,
        "upstream {{ app }} { server 127.0.0.1:{{ prot }}; }\n",
    )
    .unwrap();
    let plan = DeployPlan {
        upstream_template: Some(template.display().to_string().parse().unwrap()),
        ..h.plan(app, "v1")
    };
    let (code, events) = h.deploy(&plan, &[]);
    assert_eq!(code, 1, "{events:#?}");
    let r = result(&events);
    assert_eq!(r["failed_phase"], "validate", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream-template"),
        "{r}"
    );
    assert!(!h.running("blue"), "nothing was started");

    // A template whose file would not say where traffic goes (both ports, no marker).
    std::fs::write(
        &template,
        "upstream {{ app }} {\n    server 127.0.0.1:{{ blue_port }};\n    server 127.0.0.1:{{ green_port }} backup;\n}\n",
    )
    .unwrap();
    let (code, events) = h.deploy(&plan, &[]);
    assert_eq!(code, 1, "{events:#?}");
    let message = result(&events)["error"]["message"].to_string();
    assert!(
        message.contains("does not read back as routing to blue"),
        "{message}"
    );
    assert!(!h.running("blue"), "nothing was started");
}

#[test]
fn a_dependency_that_refuses_connections_stops_the_deploy_at_validation() {
    require!(Nginx);
    let app = "hostrun-deps";
    let h = HostRun::new(app);
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up: bluegreen::input::HostPort =
        format!("127.0.0.1:{}", listening.local_addr().unwrap().port())
            .parse()
            .unwrap();
    let down: bluegreen::input::HostPort = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let plan = DeployPlan {
        check_tcp: vec![up.clone(), down.clone()],
        ..h.plan(app, "v1")
    };
    let (code, events) = h.deploy(&plan, &[]);
    assert_eq!(code, 1, "{events:#?}");
    let r = result(&events);
    assert_eq!(r["failed_phase"], "validate", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("tcp {down}")), "{message}");
    assert!(!message.contains(&format!("tcp {up}")), "{message}");
    assert!(!h.running("blue"), "nothing was started");

    let plan = DeployPlan {
        check_tcp: vec![up],
        ..h.plan(app, "v1")
    };
    let (code, events) = h.deploy(&plan, &[]);
    assert_eq!(code, 0, "{events:#?}");
    assert!(h.running("blue"));
}

#[test]
fn a_switch_undone_after_its_reload_leaves_both_reloads_in_the_receipt() {
    require!(Root, Nginx);
    let app = "hostrun-undone";
    let h = HostRun::new(app);
    let with_log = |mut plan: DeployPlan| {
        plan.switch.access_log = true;
        plan.switch.log_dir = h.site.log_dir().display().to_string().parse().unwrap();
        plan
    };
    let (code, events) = h.deploy(&with_log(h.plan(app, "v1")), &[]);
    assert_eq!(code, 0, "{events:#?}");

    // v2's switch reloads nginx, then its verify URL (nothing listens there) fails: the
    // previous include is put back and nginx reloaded again.
    let mut plan = with_log(h.plan(app, "v2"));
    plan.switch.verify_url = Some(
        format!("http://127.0.0.1:{}/", free_port())
            .parse()
            .unwrap(),
    );
    plan.switch.verify_timeout = Duration::from_secs(1);
    let (code, events) = h.deploy(&plan, &[]);
    assert_eq!(code, 1, "{events:#?}");
    let r = result(&events);
    assert_eq!(r["failed_phase"], "switch", "{r}");
    assert_eq!(
        h.site.nginx.get("/").1,
        "blue",
        "the previous include serves"
    );
    let at_risk = r["receipt"]["at_risk"].as_array().expect("a receipt");
    assert_eq!(
        at_risk.len(),
        2,
        "the switch's reload and its undoing's: {r}"
    );
    assert!(
        at_risk.iter().all(Value::is_u64),
        "each reload's client connections counted (nginx's master is known): {r}"
    );
}
