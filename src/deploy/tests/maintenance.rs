//! Maintenance mode and setup through the recording fake: maintenance turns on in front of
//! the live slot and stays on through a deploy (which watches the new slot's own health
//! URL) unless the plan ends it; on twice, or off when off, changes nothing; setup writes
//! the placeholder and the server block, tests and reloads nginx once, then changes nothing,
//! keeps what is not its own, and puts its files back when nginx refuses them.

use super::*;

fn with_operation(mut plan: DeployPlan, operation: Operation) -> DeployPlan {
    plan.operation = operation;
    plan
}

fn server_file(plan: &DeployPlan) -> std::path::PathBuf {
    plan.site.server_file.as_path().to_path_buf()
}

#[test]
fn maintenance_turns_on_in_front_of_the_live_slot_and_a_deploy_keeps_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = plan(dir.path(), Runtime::Command);
    live(&deploy, None, Slot::Blue, "v1");
    let on = with_operation(deploy.clone(), Operation::MaintenanceOn);
    let (result, timeline) = run(&on, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Changed), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase maintenance",
            "switch to blue only-if blue maintenance on (maintenance)",
            "result changed",
        ]
    );
    let recorded = state_of(&on).maintenance.expect("state records it");
    assert_eq!((recorded.port, recorded.retry_after_seconds), (3003, 300));
    let page = on.store().pages_dir().join("bluegreen-maintenance.html");
    assert!(
        std::fs::read_to_string(page)
            .unwrap()
            .contains("maintenance")
    );

    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&deploy, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert!(
        timeline.contains(&"switch to green only-if blue (switch)".to_owned()),
        "{timeline:?}"
    );
    assert!(
        timeline.contains(&"watch http://127.0.0.1:3002/health".to_owned()),
        "the new slot's health URL, not the site behind the page: {timeline:?}"
    );
    let state = state_of(&deploy);
    assert_eq!(state.active, Some(Slot::Green));
    assert!(state.maintenance.is_some(), "still on: {state:?}");
}

#[test]
fn a_deploy_with_end_maintenance_ends_it_at_its_switch() {
    let dir = tempfile::tempdir().unwrap();
    let mut deploy = plan(dir.path(), Runtime::Command);
    live(&deploy, None, Slot::Blue, "v1");
    let on = with_operation(deploy.clone(), Operation::MaintenanceOn);
    assert_eq!(run(&on, &FakeHost::new()).0.result, Some(Outcome::Changed));
    deploy.maintenance.end_on_deploy = true;
    let (result, timeline) = run(&deploy, &FakeHost::new().healthy(Slot::Green, &[true]));
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert!(
        timeline.contains(&"switch to green only-if blue maintenance off (switch)".to_owned()),
        "{timeline:?}"
    );
    assert!(
        timeline.contains(&"watch http://127.0.0.1:8000/".to_owned()),
        "{timeline:?}"
    );
    assert_eq!(state_of(&deploy).maintenance, None);
}

#[test]
fn maintenance_on_twice_or_off_when_off_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = plan(dir.path(), Runtime::Command);
    live(&base, None, Slot::Blue, "v1");
    let off = with_operation(base.clone(), Operation::MaintenanceOff);
    let (result, timeline) = run(&off, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(timeline, ["phase lock", "result unchanged"]);

    let on = with_operation(base.clone(), Operation::MaintenanceOn);
    assert_eq!(run(&on, &FakeHost::new()).0.result, Some(Outcome::Changed));
    let (result, timeline) = run(&on, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(timeline, ["phase lock", "result unchanged"]);

    let (result, timeline) = run(&off, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Changed), "{result:?}");
    assert!(
        timeline.contains(&"switch to blue only-if blue maintenance off (maintenance)".to_owned()),
        "{timeline:?}"
    );
    assert_eq!(state_of(&off).maintenance, None);
}

#[test]
fn maintenance_needs_a_live_slot_and_a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let on = with_operation(plan(dir.path(), Runtime::Command), Operation::MaintenanceOn);
    let (result, _) = run(&on, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("nothing is deployed yet"),
        "says why"
    );

    live(&on, None, Slot::Blue, "v1");
    let dry = DeployPlan {
        dry_run: true,
        ..on.clone()
    };
    let (result, timeline) = run(&dry, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(
        timeline,
        [
            "switch to blue only-if blue maintenance on (maintenance) dry-run",
            "result unchanged"
        ]
    );
    assert_eq!(state_of(&dry).maintenance, None);
    assert!(!on.store().pages_dir().exists());
}

#[test]
fn setup_writes_the_placeholder_and_the_server_block_and_reloads_nginx_once() {
    let dir = tempfile::tempdir().unwrap();
    let setup = with_operation(plan(dir.path(), Runtime::Command), Operation::Setup);
    let (result, timeline) = run(&setup, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Changed), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase setup",
            "run nginx -t",
            "reload nginx (nginx -s reload)",
            "result changed",
        ]
    );
    let include = std::fs::read_to_string(setup.switch.upstream_file.as_path()).unwrap();
    assert!(
        crate::maintenance_server::is_placeholder(&include, &setup.app),
        "{include}"
    );
    let server = std::fs::read_to_string(server_file(&setup)).unwrap();
    assert!(server.contains("proxy_pass http://shop;"), "{server}");
    assert!(server.contains("listen 80;") && server.contains("server_name _;"));
    assert_eq!(
        state_of(&setup).active,
        None,
        "a first deploy starts from nothing"
    );

    let (result, timeline) = run(&setup, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(
        timeline,
        ["phase lock", "phase setup", "result unchanged"],
        "nothing to test or reload"
    );
}

#[test]
fn setup_keeps_a_deploys_include_and_a_server_block_edited_since() {
    let dir = tempfile::tempdir().unwrap();
    let setup = with_operation(plan(dir.path(), Runtime::Command), Operation::Setup);
    assert_eq!(
        run(&setup, &FakeHost::new()).0.result,
        Some(Outcome::Changed)
    );
    let include = "upstream shop { server 127.0.0.1:3001; }\n";
    std::fs::write(setup.switch.upstream_file.as_path(), include).unwrap();
    let edited = std::fs::read_to_string(server_file(&setup))
        .unwrap()
        .replace("listen 80;", "listen 80;\n    listen 443 ssl;");
    std::fs::write(server_file(&setup), &edited).unwrap();
    let renamed = DeployPlan {
        site: crate::deploy::SiteSpec {
            server_names: "shop.example.com".parse().unwrap(),
            ..setup.site.clone()
        },
        ..setup.clone()
    };
    let (result, timeline) = run(&renamed, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(timeline, ["phase lock", "phase setup", "result unchanged"]);
    assert!(
        result.warnings[0].contains("not as setup wrote it")
            && result.warnings[0].contains("+    server_name shop.example.com;"),
        "{:?}",
        result.warnings
    );
    assert_eq!(
        std::fs::read_to_string(setup.switch.upstream_file.as_path()).unwrap(),
        include
    );
    assert_eq!(
        std::fs::read_to_string(server_file(&setup)).unwrap(),
        edited
    );
}

#[test]
fn setup_puts_its_files_back_when_nginx_refuses_them_and_a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let setup = with_operation(plan(dir.path(), Runtime::Command), Operation::Setup);
    let dry = DeployPlan {
        dry_run: true,
        ..setup.clone()
    };
    let (result, timeline) = run(&dry, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(timeline, ["phase setup", "result unchanged"]);
    let diff = result.upstream_diff.unwrap();
    assert!(
        diff.contains("+upstream shop {") && diff.contains("+        proxy_pass http://shop;"),
        "{diff}"
    );
    assert!(!setup.switch.upstream_file.as_path().exists());
    assert!(!setup.store().dir().exists());

    let refusing = FakeHost {
        failing: Some("nginx -t"),
        ..FakeHost::new()
    };
    let (result, _) = run(&setup, &refusing);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(
        result.error.unwrap().message.contains("put its files back"),
        "says so"
    );
    assert!(!setup.switch.upstream_file.as_path().exists());
    assert!(!server_file(&setup).exists());
}

#[test]
fn a_maintenance_port_another_program_listens_on_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let base = plan(dir.path(), Runtime::Command);
    let squatted = || FakeHost {
        port_taken: Some(3003),
        ..FakeHost::new()
    };
    let setup = with_operation(base.clone(), Operation::Setup);
    let (result, _) = run(&setup, &squatted());
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    let error = result.error.unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error:?}");
    assert!(
        error
            .message
            .contains("port 3003 is in use by pid 4242 (squatter)"),
        "{error:?}"
    );
    assert!(!setup.switch.upstream_file.as_path().exists());

    live(&base, None, Slot::Blue, "v1");
    let on = with_operation(base, Operation::MaintenanceOn);
    let (result, timeline) = run(&on, &squatted());
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch")),
        "{timeline:?}"
    );
    assert_eq!(state_of(&on).maintenance, None);
}

/// `plan`'s state with blue live (v1) and maintenance on.
fn in_maintenance(plan: &DeployPlan) {
    live(plan, None, Slot::Blue, "v1");
    let on = with_operation(plan.clone(), Operation::MaintenanceOn);
    assert_eq!(run(&on, &FakeHost::new()).0.result, Some(Outcome::Changed));
}

#[test]
fn a_deploy_during_maintenance_skips_its_traffic_steps() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = super::canary::with_steps(plan(dir.path(), Runtime::Command), None);
    in_maintenance(&deploy);
    let (result, timeline) = run(&deploy, &FakeHost::new().healthy(Slot::Green, &[true]));
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l == "phase canary step"),
        "no request reaches a canary behind the page: {timeline:?}"
    );
    assert!(state_of(&deploy).maintenance.is_some());
}

#[test]
fn a_switch_back_after_end_maintenance_puts_the_page_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut deploy = plan(dir.path(), Runtime::Command);
    in_maintenance(&deploy);
    deploy.maintenance.end_on_deploy = true;
    let host = FakeHost {
        watch_passes: false,
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&deploy, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert!(
        timeline.contains(&"switch to blue only-if green maintenance on (rollback)".to_owned()),
        "{timeline:?}"
    );
    let state = state_of(&deploy);
    assert_eq!(state.active, Some(Slot::Blue));
    assert!(state.maintenance.is_some(), "{state:?}");
}

#[test]
fn end_maintenance_deploys_even_the_version_that_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut deploy = plan(dir.path(), Runtime::Command);
    deploy.version = "v1".parse().unwrap();
    in_maintenance(&deploy);
    deploy.maintenance.end_on_deploy = true;
    let host = FakeHost::new()
        .healthy(Slot::Blue, &[true])
        .healthy(Slot::Green, &[true]);
    let (result, _) = run(&deploy, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert_eq!(state_of(&deploy).maintenance, None);
}

#[test]
fn maintenance_is_refused_during_a_canary_and_setup_where_a_live_slot_lost_its_include() {
    let dir = tempfile::tempdir().unwrap();
    let base = plan(dir.path(), Runtime::Command);
    live(&base, None, Slot::Blue, "v1");
    let state = state_of(&base).with_canary(Some(crate::state::CanaryRecord {
        slot: Slot::Green,
        share: 25.try_into().unwrap(),
        version: "v2".parse().unwrap(),
        image: None,
        image_id: None,
        paused: true,
    }));
    base.store().save(&state).unwrap();
    let on = with_operation(base.clone(), Operation::MaintenanceOn);
    let (result, timeline) = run(&on, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(result.error.unwrap().message.contains("command abort"));
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch")),
        "{timeline:?}"
    );
    assert!(state_of(&on).canary.is_some(), "the canary is kept");

    let setup = with_operation(base, Operation::Setup);
    let (result, _) = run(&setup, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("would take the site down"),
        "the live site is not replaced by the placeholder"
    );
    assert!(!setup.switch.upstream_file.as_path().exists());
}
