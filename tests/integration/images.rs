//! Image clean-up end to end, through act, sshd, nginx and Docker: with `keep-images: 2`
//! and `retire: remove`, the host keeps the two images the app deployed last and the one
//! state records for the rollback target (whose container is gone), removes the older ones
//! it deployed, leaves alone the images of the repository it never deployed, and a
//! rollback afterwards re-creates the previous version from its image.

use std::process::Command;

use crate::support::{Target, assert_result, demo_image};

/// Builds `repository:tag`, an image of its own (its ID differs from every other's).
fn build(repository: &str, tag: u32) -> String {
    let base = demo_image("v", &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nENV CLEANUP_BUILD={tag}\n"),
    )
    .unwrap();
    let reference = format!("{repository}:{tag}");
    let out = Command::new("docker")
        .args(["build", "--quiet", "--tag", &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reference
}

fn present(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .unwrap()
        .status
        .success()
}

/// Removes the test's repository, whatever the test left of it.
struct Images(String);

impl Drop for Images {
    fn drop(&mut self) {
        for tag in 1..=5 {
            let _ = Command::new("docker")
                .args(["image", "rm", &format!("{}:{tag}", self.0)])
                .output();
        }
    }
}

#[test]
fn the_newest_images_and_the_rollback_target_are_kept_the_rest_removed() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-images")
        .with_input("KEEP_IMAGES", "2")
        .with_input("RETIRE", "remove");
    let repository = format!("bluegreen-cleanup-{}", t.app);
    let _images = Images(repository.clone());
    let refs: Vec<String> = (1..=5).map(|n| build(&repository, n)).collect();
    // Images 3 and 4 are of the repository but never deployed by this app.
    for (version, image) in [("v1", &refs[0]), ("v2", &refs[1]), ("v3", &refs[4])] {
        let run = t.run(&[("IMAGE", image), ("VERSION", version)]);
        assert_result(&run, "deployed");
        t.settled();
    }
    // Deployed, latest first: 5 (v3, live in blue), 2 (v2, the rollback target, its
    // container in green removed), 1 (v1): image 1 goes.
    let kept: Vec<bool> = refs.iter().map(|r| present(r)).collect();
    assert_eq!(kept, [false, true, true, true, true], "{refs:?}");
    let history = std::fs::read_to_string(t.state_dir().join("history.jsonl")).unwrap();
    assert!(
        history.contains(&format!("removed {}", refs[0])) && history.contains("MB freed"),
        "{history}"
    );
    let back = t.run(&[("COMMAND", "rollback")]);
    assert_result(&back, "rolled-back");
    assert_eq!(t.live(), ("green".into(), "v2".into()));
}
