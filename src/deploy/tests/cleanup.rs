//! Image clean-up in the retire through the recording fake: of the images this app
//! deployed, the latest `keep-images` are kept, and so are the images the slots run and the
//! one state records for the rollback target, however old; the rest is removed, tag by tag,
//! and the space freed is said. Images the app never deployed are never touched.

use super::*;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const D: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const E: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
/// An image of the same repository that this app never deployed.
const F: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

#[test]
fn the_latest_deployed_images_and_those_of_the_slots_and_the_rollback_target_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.retire.keep_images = 2;
    live(&plan, None, Slot::Blue, "v1");
    // v1's image A is live in blue (the rollback target once v2 is live); D, C and B went
    // live before it.
    let mut state = state_of(&plan).with_image_id(Slot::Blue, Some(A));
    state.deployed_images = [A, D, C, B].map(String::from).to_vec();
    // shop:old names B too, but this app never went live as it.
    state.deployed_tags = ["shop:1c", "shop:1b", "shop:0"].map(String::from).to_vec();
    plan.store().save(&state).unwrap();
    let listing =
        format!("{E} shop:2\n{F} shop:other\n{D} shop:1c\n{C} shop:1b\n{B} shop:0\n{B} shop:old\n");
    let host = FakeHost {
        image_listing: Some(listing),
        container_images: [(Slot::Green, E)].into(),
        ..FakeHost::new()
            .healthy(Slot::Green, &[true])
            .having_image("shop:2", E)
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let from = timeline
        .iter()
        .position(|l| l.starts_with("run docker image ls"))
        .unwrap();
    let size_of = |id: &str| format!("run docker image inspect --format {{{{.Size}}}} {id}");
    assert_eq!(
        timeline[from..from + 11],
        [
            "run docker image ls --no-trunc --format {{.ID}} {{.Repository}}:{{.Tag}} shop"
                .to_owned(),
            size_of(D),
            "run docker image rm shop:1c".to_owned(),
            size_of(D),
            size_of(C),
            "run docker image rm shop:1b".to_owned(),
            size_of(C),
            size_of(B),
            "run docker image rm shop:0".to_owned(),
            size_of(B),
            "run nft list table ip bluegreen_shop".to_owned(),
        ]
    );
    assert!(
        !timeline
            .iter()
            .any(|l| l.contains("shop:other") || l.contains("shop:old")),
        "{timeline:?}"
    );
    let retire = result
        .phases
        .iter()
        .find(|p| p.phase == Phase::Retire)
        .unwrap();
    assert!(
        retire
            .detail
            .contains("removed shop:1c, shop:1b, shop:0 (up to 5.0 MB freed"),
        "{}",
        retire.detail
    );
    // B lives on under shop:old: still on the host, still remembered.
    assert_eq!(state_of(&plan).deployed_images, [E, A, B]);
}

#[test]
fn a_tag_another_apps_state_records_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.retire.keep_images = 1;
    live(&plan, None, Slot::Blue, "v1");
    let mut state = state_of(&plan).with_image_id(Slot::Blue, Some(A));
    state.deployed_images = [A, B, C].map(String::from).to_vec();
    state.deployed_tags = ["shop:1", "shop:0", "shop:shared"]
        .map(String::from)
        .to_vec();
    plan.store().save(&state).unwrap();
    // Another app, its state beside this one's, runs shop:shared (C).
    let other = plan.store().dir().parent().unwrap().join("other-app");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("state.json"),
        r#"{"app":"other-app","slots":{"blue":{"image":"shop:shared"},"green":{}}}"#,
    )
    .unwrap();
    let host = FakeHost {
        image_listing: Some(format!("{E} shop:2\n{B} shop:0\n{C} shop:shared\n")),
        container_images: [(Slot::Green, E)].into(),
        ..FakeHost::new()
            .healthy(Slot::Green, &[true])
            .having_image("shop:2", E)
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert!(
        timeline.iter().any(|l| l == "run docker image rm shop:0"),
        "{timeline:?}"
    );
    assert!(
        !timeline.iter().any(|l| l.contains("image rm shop:shared") || l.ends_with(C)
            && l.contains("image rm")),
        "{timeline:?}"
    );
    assert_eq!(state_of(&plan).deployed_images, [E, A, C]);
}

#[test]
fn keep_images_0_and_other_runtimes_remove_nothing() {
    for (runtime, keep) in [(Runtime::Docker, 0), (Runtime::Command, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan(dir.path(), runtime);
        plan.retire.keep_images = keep;
        live(&plan, None, Slot::Blue, "v1");
        let mut state = state_of(&plan);
        state.deployed_images = [A, B].map(String::from).to_vec();
        plan.store().save(&state).unwrap();
        let host = FakeHost {
            image_listing: Some(format!("{A} shop:1\n{B} shop:0\n")),
            ..FakeHost::new().healthy(Slot::Green, &[true])
        };
        let (result, timeline) = run(&plan, &host);
        assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
        assert!(
            !timeline
                .iter()
                .any(|l| l.contains("image ls") || l.contains("image rm")),
            "{runtime:?} keep {keep}: {timeline:?}"
        );
    }
}
