//! The restricted deploy key end to end: real sshd runs `bluegreen gate` for the key (its
//! `authorized_keys` line), whatever the client asks. Through it the action deploys, rolls
//! back and takes a canary through promote, with the helper the host has (nothing is
//! uploaded); a shell, another command, a plan for another app or runtime, and
//! docker-args that escape the container each get one line of refusal and change nothing.

use crate::host_run::HostRun;
use crate::support::{BLUEGREEN, Target, assert_result, demo_image, run};

/// Restricts `t`'s key to the gate as root sets it up: `bluegreen gate --install` with
/// `t`'s paths and the nginx commands the deploy user runs (`test_cmd`, `reload_cmd`)
/// copies the helper into `t`'s helper directory, and the options it prints go in front of
/// the key.
pub(crate) fn restrict_to_the_gate(t: &Target, test_cmd: &str, reload_cmd: &str) {
    let nginx = &t.site.nginx;
    let tmp = t.site.tmp.path();
    let helper_dir = tmp.join("lib/bluegreen");
    let flags = [
        "--apps".to_owned(),
        t.app.clone(),
        "--image".into(),
        "bluegreen-demo".into(),
        "--state-dir".into(),
        t.site.state_dir.display().to_string(),
        "--upstream-file".into(),
        nginx.upstream_file.display().to_string(),
        "--log-dir".into(),
        t.site.log_dir().display().to_string(),
        "--systemd-unit-dir".into(),
        tmp.join("systemd").display().to_string(),
        "--boot-helper-dir".into(),
        helper_dir.display().to_string(),
        "--nginx-test-command".into(),
        test_cmd.to_owned(),
        "--reload-command".into(),
        reload_cmd.to_owned(),
    ];
    let mut args = vec!["gate".to_owned(), "--install".into()];
    args.extend(flags);
    let installed = run(BLUEGREEN, &args);
    assert_eq!(installed.code, 0, "{installed:?}");
    let options = installed.stdout.lines().last().unwrap();
    assert!(
        options.starts_with(&format!(
            "restrict,command=\"{}/bluegreen gate --apps {}",
            helper_dir.display(),
            t.app
        )),
        "{installed:?}"
    );
    t.sshd.restrict(options);
    assert_eq!(
        std::fs::read(helper_dir.join("bluegreen")).unwrap(),
        std::fs::read(BLUEGREEN).unwrap(),
        "the helper is copied"
    );
}

#[test]
fn through_a_restricted_key_the_action_deploys_rolls_back_and_promotes_and_nothing_escapes() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-gate");
    // The set-up, with the key unrestricted: the first deploy records the service port.
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    restrict_to_the_gate(&t, &t.site.nginx.test_cmd(), &t.site.nginx.reload_cmd());

    let deployed = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    assert_result(&deployed, "deployed");
    assert!(
        !deployed.log.contains("ship helpers"),
        "the host's helper answered, nothing was uploaded: {}",
        deployed.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    t.settled();
    assert_result(&t.run(&[("COMMAND", "rollback")]), "rolled-back");
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    t.settled();

    let canary = [
        ("TRAFFIC_STEPS", "30,60"),
        ("STEP_SECONDS", "1"),
        ("CANARY_MIN_REQUESTS", "1"),
    ];
    let mut paused = vec![
        ("IMAGE", image.as_str()),
        ("VERSION", "v3"),
        ("CANARY_PAUSE_AT", "30"),
    ];
    paused.extend(canary);
    assert_result(&t.run(&paused), "paused");
    t.settled();
    let mut promote = vec![("COMMAND", "promote")];
    promote.extend(canary);
    assert_result(&t.run(&promote), "deployed");
    assert_eq!(t.live(), ("green".into(), "v3".into()));
    t.settled();

    let state = std::fs::read(t.state_dir().join("state.json")).unwrap();
    let escaping = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v4"),
        ("DOCKER_ARGS", "--privileged -v /:/host"),
    ]);
    assert_result(&escaping, "failed");
    assert!(
        escaping
            .log
            .contains("refused by the restricted key: docker-args --privileged")
            && escaping
                .log
                .contains("docker-args -v /:/host: / is not a directory"),
        "{}",
        escaping.log
    );
    assert_eq!(
        std::fs::read(t.state_dir().join("state.json")).unwrap(),
        state,
        "a refused plan changes nothing"
    );
    assert_eq!(t.live(), ("green".into(), "v3".into()));
    assert!(!t.container_running("blue"), "nothing was started");
}

#[test]
fn a_leaked_restricted_key_gets_one_line_for_a_shell_a_command_or_another_plan() {
    require!(Root, Sshd, Nginx);
    let t = Target::bare("e2e-leak");
    restrict_to_the_gate(&t, &t.site.nginx.test_cmd(), &t.site.nginx.reload_cmd());
    let marker = t.site.tmp.path().join("ran");
    let refusals = [
        (
            None,
            "refused: this key runs bluegreen's deploy requests only, not a shell",
        ),
        (
            Some(format!("touch {}", marker.display())),
            "refused: `touch`: this key runs bluegreen's deploy requests only",
        ),
        (
            Some(format!("sh -c 'id > {}'", marker.display())),
            "refused: `sh`: this key runs bluegreen's deploy requests only",
        ),
        (
            Some("docker run --rm --privileged -v /:/host alpine".into()),
            "refused: `docker`: this key runs bluegreen's deploy requests only",
        ),
    ];
    for (request, said) in refusals {
        let (code, stdout, stderr) = t.sshd.ssh(request.as_deref(), b"");
        assert_eq!(
            (code, stdout.as_str(), stderr.trim_end()),
            (2, "", said),
            "{request:?}"
        );
    }
    assert!(!marker.exists(), "nothing ran");

    // The start the action sends, with plans the key may not run.
    let helpers = bluegreen::action::ship::Helpers::read(&[BLUEGREEN.into()]).unwrap();
    let start = shell_words::join(helpers.run_argv());
    let host = HostRun::new("gate-plans");
    for (app, refused) in [
        (
            t.app.as_str(),
            "runtime command: this key deploys with the docker runtime only",
        ),
        ("another-app", "app another-app: this key deploys"),
    ] {
        let plan = host.plan(app, "v1");
        let (code, stdout, _) = t
            .sshd
            .ssh(Some(&start), &serde_json::to_vec(&plan).unwrap());
        assert_eq!(code, 2, "{stdout}");
        let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.starts_with("invalid deploy plan: refused by the restricted key: ")
                && error.contains(refused),
            "{error}"
        );
        assert!(
            !plan.state_dir.as_path().join("lock").exists(),
            "a refused plan changes nothing: no run took the lock"
        );
    }
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_directory_is_given_to_containers_only_on_a_nosuid_nodev_file_system() {
    require!(Root);
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "nosuid,nodev,size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());
    let _mounted = Mounted(mnt.clone());
    // A fresh tmpfs is world-writable (1777); the directory above a given one is root's.
    std::fs::set_permissions(&mnt, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let data = mnt.join("data");
    std::fs::create_dir(&data).unwrap();
    let policy = |dir: &std::path::Path| bluegreen::gate::Policy {
        dirs: vec![dir.to_path_buf()],
        ..bluegreen::gate::Policy::defaults(vec!["shop".parse().unwrap()])
    };
    assert_eq!(policy(&data).unsafe_given(), Vec::<String>::new());
    let refused = policy(&plain).unsafe_given();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("is not mounted nosuid,nodev"),
        "{refused:?}"
    );
}
