//! The preflight checks and status, through the recording fake host: validation that
//! starts nothing when it fails, the compose file's services, a lock that cannot be taken,
//! the app name's claim on the Docker host, and what status says needs a look.

use super::*;

#[test]
fn failed_validation_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    let host = FakeHost {
        validate_fails: true,
        ..FakeHost::new()
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(timeline, after_opening(&[CLAIM_CHECK, "result failed"]));
    assert_eq!(result.failed_phase, Some(Phase::Validate));
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("nginx: the fake's verdict")
    );
}

#[test]
fn compose_is_looked_for_when_first_needed_and_reads_the_file_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Compose);
    let host = FakeHost {
        failing: Some("docker compose version"),
        ..FakeHost::new().healthy(Slot::Blue, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let compose = format!(
        "docker-compose -p shop-blue -f {}",
        dir.path().join("compose.yml").display()
    );
    let start = timeline.iter().position(|l| l == "validate").unwrap();
    assert_eq!(
        timeline[start..start + 8],
        [
            "validate".to_owned(),
            "run docker compose version".to_owned(),
            "run docker-compose version".to_owned(),
            format!("run {compose} config --services"),
            CLAIM_CHECK.to_owned(),
            "phase deploy standby".to_owned(),
            format!("run {compose} down --timeout 30 --remove-orphans"),
            format!("run {compose} up --detach"),
        ]
    );
    // The fake's file has two services and the plan names none: a warning, not a failure.
    let validate = &result.phases[1];
    assert!(
        validate.detail.contains("checks passed"),
        "{}",
        validate.detail
    );
}

#[test]
fn compose_services_are_started_alone_and_must_be_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Compose);
    plan.runtime.compose_services = crate::input::parse_list("web").unwrap();
    let host = FakeHost::new().healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert!(
        timeline
            .iter()
            .any(|l| l.ends_with(" up --detach --pull never --no-deps web")),
        "{timeline:?}"
    );

    plan.runtime.compose_services = crate::input::parse_list("web db").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = DeployPlan {
        state_dir: dir
            .path()
            .join("state")
            .display()
            .to_string()
            .parse()
            .unwrap(),
        ..plan
    };
    let host = FakeHost::new().healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.failed_phase, Some(Phase::Validate), "{result:?}");
    let message = result.error.unwrap().message;
    assert!(
        message.contains("compose-services names db that")
            && message.contains("(it has: web, worker)"),
        "{message}"
    );
    assert!(!timeline.iter().any(|l| l.contains(" up ")), "{timeline:?}");
}

#[test]
fn a_lock_that_cannot_be_taken_still_lists_every_set_up_problem() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory cannot be created (its parent is a file), as for a deploy user
    // that may not write /var/lib/bluegreen.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let plan = DeployPlan {
        state_dir: dir
            .path()
            .join("blocker/state")
            .display()
            .to_string()
            .parse()
            .unwrap(),
        ..plan(dir.path(), Runtime::Command)
    };
    let host = FakeHost {
        validate_fails: true,
        ..FakeHost::new()
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(result.failed_phase, Some(Phase::Lock));
    assert_eq!(
        timeline,
        ["phase lock", "phase validate", "validate", "result failed"]
    );
    let message = result.error.unwrap().message;
    assert!(
        message.contains("create state directory") && message.contains("nginx: the fake's verdict"),
        "{message}"
    );
}

#[test]
fn the_first_deploy_claims_the_app_name_on_the_docker_host() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    let host = FakeHost {
        unclaimed: true,
        ..FakeHost::new().healthy(Slot::Blue, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let create = format!(
        "run docker volume create --label bluegreen.app=shop --label bluegreen.state-dir={} bluegreen-claim-shop",
        plan.state_dir
    );
    assert_eq!(
        timeline[4..7],
        [CLAIM_CHECK.to_owned(), create, CLAIM_CHECK.to_owned()],
        "{timeline:?}"
    );
    assert_eq!(
        host.claimed_by.lock().unwrap().as_deref(),
        Some(plan.state_dir.as_str())
    );
}

#[test]
fn another_deployment_of_the_same_app_name_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        claimed_by: std::sync::Mutex::new(Some("/srv/other/state".into())),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(result.failed_phase, Some(Phase::Validate));
    assert_eq!(timeline, after_opening(&[CLAIM_CHECK, "result failed"]));
    let message = result.error.unwrap().message;
    assert!(
        message.contains(
            "another deployment of shop on this Docker host keeps its state in /srv/other/state"
        ),
        "{message}"
    );
}

#[test]
fn status_says_what_needs_a_look() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.operation = Operation::Status;
    live(&plan, None, Slot::Blue, "v1");
    // nginx routes to neither port, and blue's container is labelled another version.
    let host = FakeHost::new()
        .holding(Slot::Blue, "v9")
        .healthy(Slot::Blue, &[true]);
    let (result, _) = run(&plan, &host);
    // A status that finds problems fails (the step fails and notifies), naming them.
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    let error = result.error.clone().unwrap().message;
    assert!(error.contains("runs v9, but state records v1"), "{error}");
    let status = result.status.unwrap();
    assert_eq!((status.active, status.routed), (Some(Slot::Blue), None));
    assert!(
        status.problems[0]
            .starts_with("state says blue is live but nginx routes to neither slot's port"),
        "{:?}",
        status.problems
    );
    assert!(
        status
            .problems
            .iter()
            .any(|p| p == "blue takes traffic and runs v9, but state records v1"),
        "{:?}",
        status.problems
    );
    // Routed as state says, and running what it records: nothing to look at.
    let host = FakeHost {
        routed: Some(Slot::Blue),
        ..FakeHost::new()
            .holding(Slot::Blue, "v1")
            .healthy(Slot::Blue, &[true])
    };
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(result.status.unwrap().problems, Vec::<String>::new());
}

#[test]
fn status_of_an_app_with_no_state_and_no_include_here_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.operation = Operation::Status;
    let (result, _) = run(&plan, &FakeHost::new());
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    let error = result.error.unwrap().message;
    assert!(error.starts_with("no app shop here:"), "{error}");
}

/// Runs `host` on a first deploy whose `docker run` of blue fails, and returns the log.
fn log_of_a_failed_start(host: &FakeHost) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    let lines = std::sync::Mutex::new(Vec::new());
    let emit = |event: &Event| {
        if let Event::Log { line } = event {
            lines.lock().unwrap().push(line.clone());
        }
    };
    host.claim_for(&plan);
    let result = Engine::new(&plan, host, &emit).run();
    assert_eq!(
        result.failed_phase,
        Some(Phase::DeployStandby),
        "{result:?}"
    );
    lines.into_inner().unwrap()
}

#[test]
fn a_start_that_made_no_container_is_not_followed_by_a_warning_about_stopping_it() {
    // `docker run` and `docker stop` of shop-blue fail, and no container of blue exists.
    let nothing_made = FakeHost {
        failing: Some("shop-blue"),
        squatted: Some(Slot::Blue),
        ..FakeHost::new()
    };
    let log = log_of_a_failed_start(&nothing_made);
    assert!(
        log.iter()
            .any(|l| l == "the failed standby blue left no container"),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("could not stop")),
        "{log:#?}"
    );

    // A container was made (a port taken as it started): stopping it failed, and says so.
    let made = FakeHost {
        failing: Some("shop-blue"),
        ..FakeHost::new()
    };
    let log = log_of_a_failed_start(&made);
    assert!(
        log.iter()
            .any(|l| l.starts_with("warning: could not stop the failed standby blue")),
        "{log:#?}"
    );
}
