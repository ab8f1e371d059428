//! End to end (act, sshd, nginx, Docker): `command: rollback` after a deploy that failed,
//! with every version from one image tag that moves from build to build (as `:latest` does).
//! The failed deploy replaced the previous slot's old version; the rollback must bring that
//! version back, from the image it ran, not start the failed one again.

use std::process::Command;

use crate::support::{Target, assert_result, demo_image};

/// A tag of this test's own, pointed at `image` (as a push of a new build moves a tag).
fn point_tag(tag: &str, image: &str) {
    let out = Command::new("docker")
        .args(["tag", image, tag])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The content ID of an image or of a container's image.
fn image_id(of: &[&str]) -> String {
    let out = Command::new("docker").args(of).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Deploys v1 and v2 from `tag` (a good build), then v3 from the same tag moved to a
/// build that never gets healthy; returns the good build's content ID.
fn v2_live_after_a_failed_v3(t: &Target, tag: &str, inputs: &[(&str, &str)]) -> String {
    let good = demo_image("v", &[]);
    let sick = demo_image("unhealthy", &[("DEMO_HEALTH", "unhealthy")]);
    point_tag(tag, &good);
    // Read through this test's own tag: other tests may rebuild the shared one meanwhile.
    let good_id = image_id(&["image", "inspect", "--format", "{{.Id}}", tag]);
    let with = |version: &'static str| {
        let mut all = vec![("IMAGE", tag), ("VERSION", version)];
        all.extend_from_slice(inputs);
        all
    };
    assert_result(&t.run(&with("v1")), "deployed");
    assert_result(&t.run(&with("v2")), "deployed");
    t.settled();
    point_tag(tag, &sick);
    let mut failing = with("v3");
    failing.push(("HEALTH_TIMEOUT", "3"));
    let failed = t.run(&failing);
    assert_result(&failed, "failed");
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.state_dir().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["slots"]["blue"]["version"], "v1", "{state}");
    assert_eq!(state["slots"]["blue"]["replaced_by"], "v3", "{state}");
    assert_eq!(
        state["slots"]["blue"]["image_id"],
        good_id.as_str(),
        "{state}"
    );
    good_id
}

#[test]
fn a_rollback_after_a_failed_deploy_brings_back_the_version_it_names() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-rb-docker");
    let tag = format!("bluegreen-demo:{}", t.app);
    let good_id = v2_live_after_a_failed_v3(&t, &tag, &[]);

    let run = t.run(&[("COMMAND", "rollback")]);
    assert_result(&run, "rolled-back");
    assert!(
        run.log
            .contains(&format!("re-creating v1 from image {good_id}")),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    assert_eq!(
        image_id(&[
            "inspect",
            "--format",
            "{{.Image}}",
            &format!("{}-blue", t.app)
        ]),
        good_id,
        "blue runs v1's build, not the failed one the tag names now"
    );
    let _ = Command::new("docker").args(["rmi", &tag]).output();
}

#[test]
fn a_rollback_refuses_when_the_replaced_version_s_image_is_gone() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-rb-gone");
    let tag = format!("bluegreen-demo:{}", t.app);
    v2_live_after_a_failed_v3(&t, &tag, &[]);
    // The state names an image ID no host has: as after `docker image prune`.
    let path = t.state_dir().join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let pruned = format!("sha256:{}", "0".repeat(64));
    state["slots"]["blue"]["image_id"] = pruned.clone().into();
    std::fs::write(&path, state.to_string()).unwrap();
    let blue_before = image_id(&["inspect", "--format", "{{.Id}}", &format!("{}-blue", t.app)]);

    let run = t.run(&[("COMMAND", "rollback")]);
    assert_result(&run, "failed");
    assert!(
        run.log
            .contains(&format!("its image {pruned} is no longer on this host")),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    assert_eq!(
        image_id(&["inspect", "--format", "{{.Id}}", &format!("{}-blue", t.app)]),
        blue_before,
        "the refused rollback left blue's container as it was"
    );
    let _ = Command::new("docker").args(["rmi", &tag]).output();
}

#[test]
fn a_compose_rollback_after_a_failed_deploy_brings_back_the_version_it_names() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-rb-compose");
    let tag = format!("bluegreen-demo:{}", t.app);
    let compose = t.site.tmp.path().join("compose.yml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: ${BLUEGREEN_IMAGE}\n    ports:\n      - \"127.0.0.1:${BLUEGREEN_PORT}:8080\"\n    environment:\n      BLUEGREEN_SLOT: ${BLUEGREEN_SLOT}\n      BLUEGREEN_VERSION: ${BLUEGREEN_VERSION}\n",
    )
    .unwrap();
    let compose = compose.display().to_string();
    let inputs = [("RUNTIME", "compose"), ("COMPOSE_FILE", compose.as_str())];
    let good_id = v2_live_after_a_failed_v3(&t, &tag, &inputs);

    let mut rollback = vec![("COMMAND", "rollback"), ("IMAGE", tag.as_str())];
    rollback.extend_from_slice(&inputs);
    let run = t.run(&rollback);
    assert_result(&run, "rolled-back");
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    let blue = image_id(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.compose.project={}-blue", t.app),
    ]);
    assert_eq!(
        image_id(&["inspect", "--format", "{{.Image}}", &blue]),
        good_id,
        "blue's project runs v1's build"
    );
    let _ = Command::new("docker").args(["rmi", &tag]).output();
}
