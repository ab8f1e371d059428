//! The action's SSH side end to end: a host key that does not match is refused, a bastion
//! is jumped through (and refused when its key is unknown), insecure mode connects and warns
//! (through a bastion too), only the `known-hosts` input is trusted, the secrets never
//! reach a child process, what a host prints is read only up to a bound, the clean-up step
//! closes a master connection a killed run left behind, and an image reaches a host that
//! lacks it over the same connection (one save on the runner for every host that lacks it).

use std::process::Command;

use std::os::unix::fs::PermissionsExt;

use bluegreen::action::credentials::{Credentials, HostKeys};
use bluegreen::action::github::JobLog;
use bluegreen::action::image::ImageShipment;
use bluegreen::action::interrupt::Interrupts;
use bluegreen::action::remote::{ConnectOptions, MAX_HOST_LINE, Remote};
use bluegreen::input::HostPort;

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
    // The error names the host with its port: several hosts may share an address.
    assert!(
        run.log
            .contains(&format!("127.0.0.1:{}: cannot connect", t.sshd.port)),
        "{}",
        run.log
    );
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
    let (bastion, jump) = bastion_for(&t);
    let known = format!("{}\n{}", t.sshd.known_hosts, bastion.known_hosts);
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

/// A bastion sshd accepting the target's user key, and its `user@host:port`.
fn bastion_for(t: &Target) -> (Sshd, String) {
    let bastion = Sshd::start_with_key(
        &t.site.tmp.path().join("bastion"),
        &t.sshd.dir.join("user_key.pub"),
    );
    let jump = format!("{}@127.0.0.1:{}", current_user(), bastion.port);
    (bastion, jump)
}

#[test]
fn a_bastion_whose_key_is_not_known_is_refused() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-jump-unknown");
    let (bastion, jump) = bastion_for(&t);
    // Only the target's key is known: the bastion's hop must not be trusted on first use.
    let run = t.run_with(
        &[
            ("IMAGE", "bluegreen-demo:v"),
            ("VERSION", "j1"),
            ("PROXY_JUMP", &jump),
        ],
        &t.sshd.known_hosts,
        &[],
    );
    assert_result(&run, "failed");
    assert!(run.log.contains("cannot connect"), "{}", run.log);
    assert_eq!(bastion.connections(), 0, "the bastion hop was accepted");
    assert_eq!(t.sshd.connections(), 0, "the target was reached");
    assert!(!t.state_dir().exists());
}

#[test]
fn insecure_mode_works_through_a_bastion() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-jump-insecure");
    let (bastion, jump) = bastion_for(&t);
    let run = t.run_with(
        &[
            ("IMAGE", &image),
            ("VERSION", "j2"),
            ("PROXY_JUMP", &jump),
            ("INSECURE_SKIP_HOST_KEY_CHECK", "true"),
        ],
        "ignored in insecure mode",
        &[],
    );
    assert_result(&run, "deployed");
    assert_eq!(bastion.connections(), 1, "{}", run.log);
    assert_eq!(t.live(), ("blue".into(), "j2".into()));
}

#[test]
fn the_ssh_config_trusts_only_the_known_hosts_input() {
    require!(Sshd);
    let dir = tempfile::tempdir().unwrap();
    let resolved = |host_keys| {
        let creds =
            Credentials::write(dir.path(), "KEY", "h ssh-ed25519 AAAA", host_keys, None).unwrap();
        // ssh -G prints the configuration ssh (and a bastion's ssh) would use for a host.
        let out = Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&creds.config)
            .arg("target.example")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        (text, creds)
    };
    let (strict, creds) = resolved(HostKeys::KnownOnly);
    for line in [
        "stricthostkeychecking true".to_owned(),
        "globalknownhostsfile /dev/null".to_owned(),
        format!("userknownhostsfile {}", creds.known_hosts.display()),
        "batchmode yes".to_owned(),
    ] {
        assert!(
            strict.lines().any(|l| l == line),
            "no {line:?} in:\n{strict}"
        );
    }
    let (insecure, _) = resolved(HostKeys::AcceptAny);
    for line in [
        "stricthostkeychecking false",
        "globalknownhostsfile /dev/null",
        "userknownhostsfile /dev/null",
    ] {
        assert!(
            insecure.lines().any(|l| l == line),
            "no {line:?} in:\n{insecure}"
        );
    }
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

#[test]
fn the_secrets_never_reach_a_child_and_the_runner_is_not_dumpable() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    require!(Root);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // An ssh that records what the orchestrator gave it and who may read the orchestrator's
    // environment, then fails as an unreachable host would.
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nenv > {d}/ssh-env\nstat -c %u /proc/$PPID/environ > {d}/parent-environ-owner\nexit 255\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let temp = dir.path().join("temp");
    std::fs::create_dir(&temp).unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o777)).unwrap();
    let nobody = 65534;
    let out = Command::new(env!("CARGO_BIN_EXE_bluegreen-action"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("RUNNER_TEMP", &temp)
        .env("BLUEGREEN_HELPERS", env!("CARGO_BIN_EXE_bluegreen"))
        .env("INPUT_HOST", "127.0.0.1")
        .env("INPUT_USERNAME", "deploy")
        .env("INPUT_SSH_KEY", "KEYMATERIAL-4b1d")
        .env("INPUT_KNOWN_HOSTS", "127.0.0.1 ssh-ed25519 AAAA")
        .env("INPUT_SLACK_WEBHOOK", "http://127.0.0.1:9/HOOKTOKEN-77c2")
        .env("INPUT_NOTIFY_ON", "never")
        .env("INPUT_APP", "shop")
        .env("INPUT_IMAGE", "shop:1")
        .env("INPUT_VERSION", "v1")
        .uid(nobody)
        .gid(nobody)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{log}");
    let child_env = std::fs::read_to_string(dir.path().join("ssh-env"))
        .unwrap_or_else(|e| panic!("ssh never ran ({e}):\n{log}"));
    assert!(child_env.contains("RUNNER_TEMP="), "{child_env}");
    for secret in ["KEYMATERIAL-4b1d", "HOOKTOKEN-77c2"] {
        assert!(
            !child_env.contains(secret),
            "{secret} reached ssh:\n{child_env}"
        );
    }
    // /proc/PID/environ of a non-dumpable process belongs to root, not to its user.
    let owner = std::fs::read_to_string(dir.path().join("parent-environ-owner")).unwrap();
    assert_eq!(owner.trim(), "0", "the orchestrator is dumpable");
}

#[test]
fn at_most_eight_hosts_connect_at_once() {
    // An ssh that takes three seconds to fail, noting when it starts and ends: ten hosts,
    // and never more than eight of them connecting at the same time.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let events = dir.path().join("events");
    std::fs::write(
        bin.join("ssh"),
        format!(
            "#!/bin/sh\necho start >> {e}\nsleep 3\necho end >> {e}\nexit 255\n",
            e = events.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hosts: Vec<String> = (1..=10).map(|n| format!("127.0.0.{n}")).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_bluegreen-action"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("RUNNER_TEMP", dir.path())
        .env("BLUEGREEN_HELPERS", env!("CARGO_BIN_EXE_bluegreen"))
        .env("INPUT_HOST", hosts.join(","))
        .env("INPUT_USERNAME", "deploy")
        .env("INPUT_SSH_KEY", "KEYMATERIAL")
        .env("INPUT_KNOWN_HOSTS", "127.0.0.1 ssh-ed25519 AAAA")
        .env("INPUT_NOTIFY_ON", "never")
        .env("INPUT_APP", "shop")
        .env("INPUT_IMAGE", "shop:1")
        .env("INPUT_VERSION", "v1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{log}");
    assert_eq!(log.matches("connect failed").count(), 10, "{log}");
    let events = std::fs::read_to_string(&events).unwrap();
    let (mut connecting, mut most, mut started) = (0, 0, 0);
    for event in events.lines() {
        if event == "start" {
            connecting += 1;
            started += 1;
            most = most.max(connecting);
        } else {
            connecting -= 1;
        }
    }
    assert_eq!((started, most), (10, 8), "{events}");
}

/// A tokio runtime and a connection to `sshd`, with its credentials written under
/// `runner_temp` as the orchestrator writes them.
fn connected(
    sshd: &Sshd,
    runner_temp: &std::path::Path,
) -> (tokio::runtime::Runtime, Credentials, Remote) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (creds, remote) = connect_in(&runtime, sshd, runner_temp);
    (runtime, creds, remote)
}

/// A connection to `sshd` in `runtime`, with its credentials written under `runner_temp`.
fn connect_in(
    runtime: &tokio::runtime::Runtime,
    sshd: &Sshd,
    runner_temp: &std::path::Path,
) -> (Credentials, Remote) {
    let creds = Credentials::write(
        runner_temp,
        &sshd.user_key,
        &sshd.known_hosts,
        HostKeys::KnownOnly,
        None,
    )
    .unwrap();
    let user = current_user();
    let host = HostPort {
        host: "127.0.0.1".into(),
        port: sshd.port,
    };
    let remote = runtime.block_on(async {
        let options = ConnectOptions {
            username: &user,
            credentials: &creds,
            insecure: false,
            proxy_jump: None,
        };
        Remote::connect(&host, &options).await.unwrap()
    });
    (creds, remote)
}

#[test]
fn one_docker_save_feeds_every_host_that_lacks_the_image_side_by_side() {
    require!(Sshd, Docker);
    let dir = tempfile::tempdir().unwrap();
    let image = demo_image("v", &[]);
    // The runner's docker, recording each call before it runs the real one.
    let calls = dir.path().join("calls");
    let runner_docker = dir.path().join("runner-docker");
    std::fs::write(
        &runner_docker,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec docker \"$@\"\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&runner_docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Two hosts whose docker has no image and keeps what it is asked to load.
    let hosts: Vec<(Sshd, std::path::PathBuf)> = ["a", "b"]
        .iter()
        .map(|name| {
            let sshd = Sshd::start(&dir.path().join(name));
            let home = dir.path().join(name).join("home");
            std::fs::create_dir_all(home.join("bin")).unwrap();
            std::fs::write(
                home.join("bin/docker"),
                "#!/bin/sh\ncase \"$1\" in\n  image) [ -f \"$HOME/id\" ] && cat \"$HOME/id\" || exit 1 ;;\n  load) cat > \"$HOME/loaded.tar\"; echo 'Loaded image' ;;\n  *) exit 2 ;;\nesac\n",
            )
            .unwrap();
            std::fs::set_permissions(home.join("bin/docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
            (sshd, home)
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connections: Vec<(Credentials, Remote)> = hosts
        .iter()
        .enumerate()
        .map(|(i, (sshd, _))| connect_in(&runtime, sshd, &dir.path().join(format!("runner{i}"))))
        .collect();
    let log = JobLog::new();
    let shipment = ImageShipment::new(&image, runner_docker.to_str().unwrap(), dir.path(), 2);
    let sent = runtime.block_on(async {
        let (a, b) = tokio::join!(
            shipment.send(&connections[0].1, &log),
            shipment.send(&connections[1].1, &log)
        );
        [a, b]
    });
    for said in &sent {
        let (_, said) = said.as_ref().expect("the image reaches each host");
        assert!(said.contains("from the run's one docker save"), "{said}");
    }
    let saves = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        saves.lines().filter(|l| l.starts_with("save")).count(),
        1,
        "{saves}"
    );
    // Each host loaded the whole image: a tar docker itself can load.
    let loaded: Vec<Vec<u8>> = hosts
        .iter()
        .map(|(_, home)| std::fs::read(home.join("loaded.tar")).unwrap())
        .collect();
    assert_eq!(loaded[0], loaded[1]);
    let load = Command::new("docker")
        .args(["load", "--quiet", "--input"])
        .arg(hosts[0].1.join("loaded.tar"))
        .output()
        .unwrap();
    assert!(load.status.success(), "{load:?}");
    // Saved in a private directory of its own, removed with the run.
    let saved_dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("bluegreen-image-")
            })
            .collect()
    };
    let [saved_dir]: [std::path::PathBuf; 1] = saved_dirs().try_into().unwrap();
    let mode = std::fs::metadata(&saved_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(saved_dir.join("image.tar").is_file());
    drop(shipment);
    assert!(
        saved_dirs().is_empty(),
        "the saved file is removed with the run"
    );

    // A host that has the image ID gets nothing, and nothing is saved for it.
    let id = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &image])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(hosts[0].1.join("id"), id).unwrap();
    let again = ImageShipment::new(&image, runner_docker.to_str().unwrap(), dir.path(), 2);
    let (_, said) = runtime
        .block_on(again.send(&connections[0].1, &log))
        .unwrap();
    assert!(said.starts_with("host already has"), "{said}");
    let calls_after = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        calls_after
            .lines()
            .filter(|l| l.starts_with("save"))
            .count(),
        1,
        "{calls_after}"
    );
}

/// What `Remote::stream` gave for `script` (run by `sh -c` on the host) fed `input`: its
/// result and the lines it handed over.
type Streamed = (
    Result<(Option<i32>, String), bluegreen::error::Error>,
    Vec<String>,
);

/// Runs each of `scripts` with its input through `Remote::stream` on one connection to a
/// fresh sshd; what each gave.
fn stream_each(scripts: &[(&str, &[u8])]) -> Vec<Streamed> {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let (runtime, _creds, remote) = connected(&sshd, dir.path());
    runtime.block_on(async {
        let interrupts = Interrupts::listen();
        let mut all = Vec::new();
        for (script, input) in scripts {
            let mut lines = Vec::new();
            let result = remote
                .stream(&["sh", "-c", script], input, &interrupts, |l| {
                    lines.push(l.to_owned());
                    true
                })
                .await;
            all.push((result, lines));
        }
        all
    })
}

#[test]
fn what_a_host_prints_is_read_only_up_to_a_bound() {
    require!(Sshd);
    let endless_line = format!(
        "echo first; head -c {} /dev/zero | tr '\\0' a; echo",
        MAX_HOST_LINE + 1
    );
    let flood = "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done";
    let [(endless, endless_lines), (flooded, flood_lines)]: [Streamed; 2] =
        stream_each(&[(&endless_line, b""), (flood, b"")])
            .try_into()
            .unwrap();
    let err = endless.unwrap_err();
    assert!(err.to_string().contains("sent a line longer than"), "{err}");
    assert_eq!(endless_lines, ["first"]);
    let (status, stderr) = flooded.unwrap();
    assert_eq!((status, flood_lines), (Some(0), vec!["done".to_owned()]));
    assert!(
        stderr.len() <= 2003,
        "{} bytes of stderr kept",
        stderr.len()
    );
}

#[test]
fn a_command_that_answers_without_reading_its_input_is_still_heard() {
    // The host that lacks the helper says so and exits without reading the plan: its
    // channel may close before the plan is written. What it printed must still count.
    require!(Sshd);
    // More input than the pipes and the channel window hold, so the write is still going
    // when the command has ended: the write fails every time.
    let input = vec![b'p'; 16 << 20];
    let [(result, lines)]: [Streamed; 1] =
        stream_each(&[("echo 'bluegreen-ship: need x86_64 /x'; exit 97", &input)])
            .try_into()
            .unwrap();
    let (status, stderr) = result.expect("a failed write is not the end of the stream");
    assert_eq!(lines, ["bluegreen-ship: need x86_64 /x"]);
    assert_eq!(status, Some(97));
    assert!(stderr.contains("the input could not be sent"), "{stderr:?}");
}

#[test]
fn the_clean_up_step_closes_a_master_a_killed_run_left_and_removes_the_files() {
    require!(Sshd);
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let runner_temp = dir.path().join("temp");
    std::fs::create_dir(&runner_temp).unwrap();
    let (_runtime, creds, remote) = connected(&sshd, &runner_temp);
    // As a SIGKILLed orchestrator would: nothing of ours closes the master or removes files.
    std::mem::forget(remote);
    let control_dir = creds.control_dir().to_owned();
    std::mem::forget(creds);
    assert!(control_dir.starts_with(&runner_temp), "{control_dir:?}");
    let socket = std::fs::read_dir(&control_dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("master"))
        .find(|p| p.exists())
        .expect("a master socket under the control directory");
    let check = Command::new("ssh")
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-O", "check", "placeholder"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    let pid: u32 = said
        .split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no master pid in {said:?}"));
    // Up while its /proc entry exists and is not a zombie (it may be this test's child).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| !s.starts_with(" Z"))
        })
    };
    assert!(running());

    let status = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/action/remove-credentials"
    ))
    .env("RUNNER_TEMP", &runner_temp)
    .status()
    .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!running(), "the master connection (pid {pid}) is still up");
    let left: Vec<_> = std::fs::read_dir(&runner_temp).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
