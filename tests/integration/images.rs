//! Image clean-up end to end, through act, sshd, nginx and Docker: with `keep-images: 2`
//! the host keeps the two newest images of the app's repository and those the slots run or
//! state records (the rollback target), removes the rest, and a rollback afterwards still
//! finds its image.

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
    let t = Target::new("e2e-images").with_input("KEEP_IMAGES", "2");
    let repository = format!("bluegreen-cleanup-{}", t.app);
    let _images = Images(repository.clone());
    let refs: Vec<String> = (1..=5).map(|n| build(&repository, n)).collect();
    for (version, image) in [("v1", &refs[0]), ("v2", &refs[1]), ("v3", &refs[4])] {
        let run = t.run(&[("IMAGE", image), ("VERSION", version)]);
        assert_result(&run, "deployed");
        t.settled();
    }
    // Live: v3 (image 5) in blue; the rollback target: v2 (image 2) in green.
    let kept: Vec<bool> = refs.iter().map(|r| present(r)).collect();
    assert_eq!(kept, [false, true, false, true, true], "{refs:?}");
    let history = std::fs::read_to_string(t.state_dir().join("history.jsonl")).unwrap();
    assert!(
        history.contains(&format!("removed {}", refs[2])) && history.contains("MB freed"),
        "{history}"
    );
    let back = t.run(&[("COMMAND", "rollback")]);
    assert_result(&back, "rolled-back");
    assert_eq!(t.live(), ("green".into(), "v2".into()));
}
