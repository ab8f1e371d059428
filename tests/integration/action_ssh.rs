//! The action's SSH side end to end: a host key that does not match is refused, a bastion
//! is jumped through, insecure mode connects and warns, and an image reaches a host that
//! lacks it over the same connection.

use std::process::Command;

use crate::support::{SecondDocker, Sshd, Target, assert_result, current_user, demo_image};

#[test]
fn a_host_key_that_does_not_match_is_refused_before_anything_is_sent() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-hostkey");
    let other = Sshd::start(&t.site.tmp.path().join("other-sshd"));
    let wrong = other
        .known_hosts
        .replacen(&other.port.to_string(), &t.sshd.port.to_string(), 1);
    let run = t.run_with(
        &[("IMAGE", "bluegreen-demo:v"), ("VERSION", "v1")],
        &wrong,
        &[],
    );
    assert_result(&run, "failed");
    assert!(run.log.contains("cannot connect"), "{}", run.log);
    assert_eq!(t.sshd.connections(), 0);
    assert!(!t.state_dir().exists());
}

#[test]
fn image_transfer_over_ssh_reaches_a_host_without_the_image() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-transfer");
    // The runner's Docker is a second daemon holding the image; the host's lacks it.
    let runner_docker = SecondDocker::start(&t.site.tmp.path().join("docker"));
    let tag = format!("bluegreen-demo:transfer-{}", t.sshd.port);
    let built = demo_image("v", &[]);
    let docker = |args: &[&str], host: Option<&str>| {
        let mut cmd = Command::new("docker");
        cmd.args(args);
        if let Some(h) = host {
            cmd.env("DOCKER_HOST", h);
        }
        cmd.output().unwrap()
    };
    assert!(docker(&["tag", &built, &tag], None).status.success());
    let saved = docker(&["save", &tag], None).stdout;
    let mut load = Command::new("docker")
        .args(["load", "--quiet"])
        .env("DOCKER_HOST", runner_docker.host())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), &saved).unwrap();
    assert!(load.wait().unwrap().success());
    assert!(docker(&["rmi", &tag], None).status.success());
    assert!(!docker(&["image", "inspect", &tag], None).status.success());

    let runner_env = [("DOCKER_HOST", runner_docker.host())];
    let inputs = [
        ("IMAGE", tag.as_str()),
        ("VERSION", "t1"),
        ("IMAGE_TRANSFER", "ssh"),
    ];
    let run = t.run_with(&inputs, &t.sshd.known_hosts, &runner_env);
    assert_result(&run, "deployed");
    assert!(run.log.contains("over SSH"), "{}", run.log);
    assert!(
        docker(&["image", "inspect", &tag], None).status.success(),
        "the host has the image now"
    );
    assert_eq!(t.live(), ("blue".into(), "t1".into()));

    let again = t.run_with(
        &[
            ("IMAGE", tag.as_str()),
            ("VERSION", "t2"),
            ("IMAGE_TRANSFER", "ssh"),
        ],
        &t.sshd.known_hosts,
        &runner_env,
    );
    assert_result(&again, "deployed");
    assert!(again.log.contains("host already has"), "{}", again.log);
    let _ = docker(
        &[
            "rm",
            "--force",
            &format!("{}-blue", t.app),
            &format!("{}-green", t.app),
        ],
        None,
    );
    let _ = docker(&["rmi", &tag], None);
}

#[test]
fn deploys_through_a_proxy_jump_bastion() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-jump");
    // The bastion is a second sshd accepting the same key; both host keys are known.
    let bastion = Sshd::start_with_key(
        &t.site.tmp.path().join("bastion"),
        &t.sshd.dir.join("user_key.pub"),
    );
    let known = format!("{}\n{}", t.sshd.known_hosts, bastion.known_hosts);
    let jump = format!("{}@127.0.0.1:{}", current_user(), bastion.port);
    let run = t.run_with(
        &[("IMAGE", &image), ("VERSION", "j1"), ("PROXY_JUMP", &jump)],
        &known,
        &[],
    );
    assert_result(&run, "deployed");
    let bastion_log = std::fs::read_to_string(bastion.dir.join("sshd.log")).unwrap();
    assert_eq!(
        bastion.connections(),
        1,
        "no connection through the bastion:\n{bastion_log}\n{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "j1".into()));
}

#[test]
fn insecure_mode_connects_without_known_hosts_and_says_so() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-insecure");
    let run = t.run_with(
        &[
            ("IMAGE", &image),
            ("VERSION", "i1"),
            ("INSECURE_SKIP_HOST_KEY_CHECK", "true"),
        ],
        "ignored in insecure mode",
        &[],
    );
    assert_result(&run, "deployed");
    assert!(
        run.log.contains("host's identity is not verified"),
        "{}",
        run.log
    );
    assert_eq!(t.live(), ("blue".into(), "i1".into()));
}

#[test]
fn the_tcp_relay_carries_both_directions_and_ends_with_its_input() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    // An echo server that upper-cases what it reads, until the relay closes its side.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        conn.write_all(&got.to_ascii_uppercase()).unwrap();
    });
    let mut relay = Command::new(env!("CARGO_BIN_EXE_bluegreen-action"))
        .args(["--tcp-proxy", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = relay.stdin.take().unwrap();
    stdin.write_all(b"ssh-2.0 hello").unwrap();
    drop(stdin);
    let out = relay.wait_with_output().unwrap();
    server.join().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"SSH-2.0 HELLO");
    let refused = Command::new(env!("CARGO_BIN_EXE_bluegreen-action"))
        .args([
            "--tcp-proxy",
            "127.0.0.1",
            &crate::support::free_port().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot connect"));
}
