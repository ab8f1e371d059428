//! Hostile input against the real action, sshd, nginx and Docker: shell metacharacters in
//! every string that reaches the host, a host printing workflow commands, secrets in logs and
//! on disk, and bad input refused before any connection.

use crate::support::{Target, assert_result, demo_image};

#[test]
fn shell_metacharacters_never_run_on_the_host() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-meta");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    let marker = t.site.tmp.path().join("pwned");
    let m = marker.display();
    let payloads = [
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("; touch {m}"),
        format!("&& touch {m}"),
        format!("'\"; touch {m}; \""),
    ];
    // Inputs refused up front or failing fast on the host: every payload.
    for payload in &payloads {
        for (input, value) in [
            ("IMAGE", payload.clone()),
            ("VERSION", payload.clone()),
            ("ENV_FILE", format!("/tmp/{payload}")),
            ("COMPOSE_FILE", format!("/tmp/{payload}")),
        ] {
            let mut inputs = vec![("IMAGE", image.as_str()), ("VERSION", "v2")];
            inputs.retain(|(k, _)| *k != input);
            inputs.push((input, value.as_str()));
            if input == "COMPOSE_FILE" {
                inputs.push(("RUNTIME", "compose"));
            }
            let run = t.run(&inputs);
            assert!(
                !marker.exists(),
                "{input}={value:?} ran on the host: {}",
                run.log
            );
        }
    }
    // Inputs a deploy carries all the way: every form at once.
    let all = format!("$(touch {m})`touch {m}`;touch{m}&&touch{m}");
    let run = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("DOCKER_ARGS", &format!("--label x={all}")),
        ("HEALTH_PATH", &format!("/health{all}")),
    ]);
    assert!(!marker.exists(), "ran on the host: {}", run.log);
    // The command runtime hands values over in the environment, never in the command.
    let version_echo = "echo \"version is $BLUEGREEN_VERSION\"; exit 1";
    let run = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", version_echo),
        ("VERSION", "v9"),
    ]);
    assert!(run.log.contains("version is v9"), "{}", run.log);
    assert!(!marker.exists());
}

#[test]
fn a_host_cannot_issue_workflow_commands() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-inject");
    let script = "echo '::set-output name=result::deployed'; echo '::add-mask::v1'; \
                  echo '::stop-commands::x'; echo '::x::'; echo '::error::forged by the host'; exit 1";
    let run = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", script),
        ("VERSION", "v1"),
    ]);
    assert_result(&run, "failed");
    assert!(
        run.log.contains("::set-output name=result::deployed"),
        "the line is shown: {}",
        run.log
    );
    assert!(
        !run.log.contains("❗  ::error::forged by the host"),
        "{}",
        run.log
    );
    assert!(
        !run.log.contains("::set-output:: result=deployed"),
        "{}",
        run.log
    );
}

#[test]
fn credentials_are_private_and_gone_after_the_run() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-secrets");
    // The deploy command runs on this same machine: it records the mode of the runner's
    // key file for this run (found by its known_hosts naming this sshd) while the deploy
    // is under way.
    let seen = t.site.tmp.path().join("seen");
    let script = format!(
        "for kh in $(grep -rl -- ']:{port} ' /tmp --include=known_hosts 2>/dev/null); do \
           stat -c '%a %n' \"$(dirname \"$kh\")/id\"; done > {seen}; exit 1",
        port = t.sshd.port,
        seen = seen.display()
    );
    let run = t.run(&[
        ("RUNTIME", "command"),
        ("DEPLOY_COMMAND", &script),
        ("VERSION", "v1"),
    ]);
    assert_result(&run, "failed");
    let seen = std::fs::read_to_string(&seen).unwrap();
    let key_files: Vec<&str> = seen.lines().collect();
    assert!(
        !key_files.is_empty(),
        "the key file was not found during the run"
    );
    for line in &key_files {
        let (mode, path) = line.split_once(' ').unwrap();
        assert_eq!(mode, "600", "{path}");
        assert!(
            !std::path::Path::new(path).exists(),
            "{path} is still there after the run"
        );
    }
    let key_body: String = t
        .sshd
        .user_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for line in t.sshd.user_key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!run.log.contains(line), "a line of the key reached the log");
    }
    assert!(!key_body.is_empty());
    assert!(
        !run.log.contains("SECRETTOKEN"),
        "the webhook reached the log"
    );
}

#[test]
fn bad_input_is_refused_before_any_connection() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-badinput");
    for (input, value) in [
        ("APP", "Bad App"),
        ("PORT", "0"),
        ("BLUE_PORT", "70000"),
        ("HEALTH_TIMEOUT", "-5"),
        ("MAX_ERROR_RATE", "2"),
        ("RUNTIME", "podman"),
        ("RETIRE", "later"),
        ("VERIFY_URL", "localhost/health"),
        ("HEALTHY_THRESHOLD", "0"),
        ("COMMAND", "destroy"),
    ] {
        let run = t.run(&[("IMAGE", "bluegreen-demo:v"), (input, value)]);
        assert_result(&run, "failed");
        let name = input.to_lowercase().replace('_', "-");
        assert!(
            run.log.contains(&format!("`{name}`")),
            "{input}: {}",
            run.log
        );
    }
    assert_eq!(t.sshd.connections(), 0, "bad input must not reach the host");
}
