//! A rollback after a deploy that did not go live, through the recording fake host: the
//! deploy records that the standby's version is gone (and the image ID of what goes live);
//! the rollback re-creates the recorded version from that ID, never pulled, or refuses
//! before changing anything.

use super::recovery::rollback_from_green_to_blue;
use super::*;

/// The content ID of v1's image in the rollback tests.
const V1_IMAGE_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// Green live (v2); blue's v1 (image `shop:latest`, ID [`V1_IMAGE_ID`]) replaced by a
/// deploy of v3 that never went live.
fn rollback_after_a_failed_deploy(dir: &std::path::Path) -> DeployPlan {
    let mut plan = plan(dir, Runtime::Docker);
    plan.operation = Operation::Rollback;
    let state = crate::state::State::new(&plan.app)
        .after_switch(
            Slot::Blue,
            plan.ports,
            Some("v1"),
            Some("shop:latest"),
            "t0",
        )
        .with_image_id(Slot::Blue, Some(V1_IMAGE_ID))
        .after_switch(
            Slot::Green,
            plan.ports,
            Some("v2"),
            Some("shop:latest"),
            "t1",
        )
        .replacing(Slot::Blue, "v3");
    plan.store().save(&state).unwrap();
    plan
}

#[test]
fn a_deploy_records_that_the_standby_lost_its_version_before_removing_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    live(&plan, Some((Slot::Green, "v0")), Slot::Blue, "v1");
    plan.version = "v3".parse().unwrap();
    // The removal of green's old container is the first thing the standby phase runs, and
    // it fails: whatever state says then was written before it.
    let host = FakeHost {
        failing: Some("rm --force shop-green"),
        ..FakeHost::new()
    };
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    let state = state_of(&plan);
    let green = state.slots.get(Slot::Green);
    assert_eq!(green.version.as_deref(), Some("v0"));
    assert_eq!(green.replaced_by.as_deref(), Some("v3"));
    assert!(!green.holds_its_version());
    assert!(state.slots.get(Slot::Blue).holds_its_version());
}

#[test]
fn a_deploy_records_the_content_id_of_the_image_that_went_live() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new()
        .having_image("shop:2", V1_IMAGE_ID)
        .healthy(Slot::Green, &[true]);
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let state = state_of(&plan);
    let green = state.slots.get(Slot::Green);
    assert_eq!(
        (green.version.as_deref(), green.image.as_deref()),
        (Some("v2"), Some("shop:2"))
    );
    assert_eq!(green.image_id.as_deref(), Some(V1_IMAGE_ID));
    assert!(green.holds_its_version());
}

#[test]
fn a_rollback_re_creates_a_replaced_version_from_its_image_id() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_after_a_failed_deploy(dir.path());
    // Blue holds the failed v3 (stopped); the host still has v1's image under its ID.
    let host = FakeHost::new()
        .holding(Slot::Blue, "v3")
        .having_image(V1_IMAGE_ID, V1_IMAGE_ID)
        .healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase deploy standby",
            &format!("run docker image inspect --format {{{{.Id}}}} {V1_IMAGE_ID}"),
            CLAIM_CHECK,
            "run docker rm --force shop-blue",
            &format!(
                "run docker run --detach --name shop-blue --pull never --publish 127.0.0.1:3001:8080 --restart unless-stopped --label bluegreen.app=shop --label bluegreen.slot=blue --label bluegreen.version=v1 --env BLUEGREEN_APP=shop --env BLUEGREEN_SLOT=blue --env BLUEGREEN_PORT=3001 --env BLUEGREEN_IMAGE={V1_IMAGE_ID} --env BLUEGREEN_VERSION=v1 {V1_IMAGE_ID}"
            ),
            "phase health-check standby",
            "health http://127.0.0.1:3001/health x2",
            "phase switch",
            "switch to blue only-if green (rollback)",
            "result rolled-back",
        ]
    );
    let state = state_of(&plan);
    assert_eq!(state.active, Some(Slot::Blue));
    assert!(state.slots.get(Slot::Blue).holds_its_version());
    assert_eq!(result.active_version.as_deref(), Some("v1"));
}

#[test]
fn a_rollback_refuses_before_changing_anything_when_the_image_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_after_a_failed_deploy(dir.path());
    let host = FakeHost::new()
        .holding(Slot::Blue, "v3")
        .healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase deploy standby",
            &format!("run docker image inspect --format {{{{.Id}}}} {V1_IMAGE_ID}"),
            "result failed",
        ]
    );
    let message = result.error.unwrap().message;
    assert!(
        message.contains(&format!(
            "blue no longer holds v1 and its image {V1_IMAGE_ID} is no longer on this host"
        )),
        "{message}"
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn a_rollback_re_creates_a_slot_whose_container_runs_another_version() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_from_green_to_blue(dir.path());
    // State never heard of it, but blue's container is labelled v9 (made by hand, or by a
    // run that died before writing state); v1's image is its recorded tag only.
    let mut state = state_of(&plan);
    state.slots.blue.image = Some("shop:1".into());
    plan.store().save(&state).unwrap();
    let host = FakeHost::new()
        .holding(Slot::Blue, "v9")
        .having_image("shop:1", V1_IMAGE_ID)
        .healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert!(
        timeline.iter().any(|l| l.starts_with("run docker run ")
            && l.contains("--label bluegreen.version=v1")
            && l.ends_with(" shop:1")),
        "{timeline:?}"
    );
    assert!(
        result.warnings.iter().any(|w| w.contains("no image ID")),
        "{:?}",
        result.warnings
    );
}

#[test]
fn a_rollback_target_that_never_gets_healthy_is_stopped_again() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_from_green_to_blue(dir.path());
    let host = FakeHost::new()
        .holding(Slot::Blue, "v1")
        .healthy(Slot::Blue, &[false]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(
        timeline[timeline.len() - 4..],
        [
            "health http://127.0.0.1:3001/health x2",
            "run docker stop --time 30 shop-blue",
            "run docker logs --tail 40 shop-blue",
            "result failed",
        ]
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn a_dry_run_rollback_says_whether_it_starts_or_re_creates() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = rollback_after_a_failed_deploy(dir.path());
    plan.dry_run = true;
    let lines = std::sync::Mutex::new(Vec::new());
    let emit = |event: &Event| {
        if let Event::Log { line } = event {
            lines.lock().unwrap().push(line.clone());
        }
    };
    let host = FakeHost::new().having_image(V1_IMAGE_ID, V1_IMAGE_ID);
    host.claim_for(&plan);
    let result = Engine::new(&plan, &host, &emit).run();
    assert_eq!(result.result, Some(Outcome::Unchanged));
    let lines = lines.into_inner().unwrap();
    assert!(
        lines.iter().any(|l| *l
            == format!("plan: re-create v1 in blue from image {V1_IMAGE_ID}, health-check it, switch from green to blue")),
        "{lines:?}"
    );
    // With the image gone, the dry run says the rollback would refuse.
    let result = Engine::new(&plan, &FakeHost::new(), &|_: &Event| {}).run();
    assert_eq!(result.result, Some(Outcome::Failed));
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("is no longer on this host"),
    );
}

#[test]
fn without_an_image_id_a_rollback_refuses_a_tag_that_now_names_the_replacing_build() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_from_green_to_blue(dir.path());
    // State from before image IDs were recorded: v1's tag only, and that tag has moved to
    // the build blue's container (the failed deploy's) runs.
    let mut state = state_of(&plan);
    state.slots.blue.image = Some("shop:latest".into());
    plan.store()
        .save(&state.replacing(Slot::Blue, "v3"))
        .unwrap();
    let host = FakeHost {
        container_images: [(Slot::Blue, V1_IMAGE_ID)].into(),
        ..FakeHost::new().having_image("shop:latest", V1_IMAGE_ID)
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    let message = result.error.unwrap().message;
    assert!(
        message.contains("its tag shop:latest now names the build that replaced it"),
        "{message}"
    );
    assert!(!timeline.iter().any(|l| l.contains(" rm ")), "{timeline:?}");
}

#[test]
fn a_re_created_rollback_target_is_never_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = rollback_after_a_failed_deploy(dir.path());
    // `pull: always`, as with a moving `:latest`: an image ID cannot be pulled, and the
    // image is on the host (checked first).
    plan.runtime.pull = crate::runtime::Pull::Always;
    let host = FakeHost::new()
        .having_image(V1_IMAGE_ID, V1_IMAGE_ID)
        .healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    let started = timeline
        .iter()
        .find(|l| l.starts_with("run docker run "))
        .unwrap();
    assert!(started.contains(" --pull never "), "{started}");
}
