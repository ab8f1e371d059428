//! The action's release path end to end: a checkout with committed sums downloads the
//! release archives from a local server, uses a genuine one and refuses a tampered one.

use std::path::Path;
use std::process::Command;

use crate::support::{ActRun, Target, assert_result, demo_image};

/// A copy of this checkout (tracked and untracked files, as they are now) in a new git
/// repository, so a test can commit release sums into it.
fn checkout_copy(dest: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .output()
        .unwrap();
    for name in String::from_utf8(files.stdout)
        .unwrap()
        .split('\0')
        .filter(|n| !n.is_empty())
    {
        let from = root.join(name);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    for args in [
        &["init", "--quiet"][..],
        &["add", "--all"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "--quiet",
            "-m",
            "copy",
        ],
    ] {
        assert!(
            Command::new("git")
                .current_dir(dest)
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
}

/// A release archive for this machine holding the test build of both binaries.
fn release_archive(dir: &Path, name: &str) -> Vec<u8> {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_bluegreen"), stage.join("bluegreen")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_bluegreen-action"),
        stage.join("bluegreen-action"),
    )
    .unwrap();
    let archive = dir.join(name);
    let status = Command::new("tar")
        .args(["-czf"])
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .args(["bluegreen", "bluegreen-action"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(archive).unwrap()
}

/// Serves `body` at `/PATH` and 404 elsewhere, standing in for the release host.
fn serve_file(path: String, body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let wanted = request.split_whitespace().nth(1) == Some(path.as_str());
            let (status, body) = if wanted {
                ("200 OK", &body[..])
            } else {
                ("404 Not Found", &b""[..])
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    base
}

/// Runs the action from a checkout whose committed sums match the genuine archive, while
/// the release host serves `served` (the genuine archive or a tampered one).
fn run_released(t: &Target, tamper: bool) -> ActRun {
    let repo = t.site.tmp.path().join("repo");
    checkout_copy(&repo);
    let version = std::fs::read_to_string(repo.join("release/VERSION"))
        .unwrap()
        .trim()
        .to_owned();
    let name = format!(
        "bluegreen-v{version}-{}-unknown-linux-musl.tar.gz",
        std::env::consts::ARCH
    );
    let genuine = release_archive(t.site.tmp.path(), &name);
    let sum = bluegreen::fsutil::sha256_hex(&genuine);
    std::fs::write(
        repo.join(format!("release/v{version}.sha256")),
        format!("{sum}  {name}\n"),
    )
    .unwrap();
    let mut served = genuine;
    if tamper {
        let last = served.len() - 1;
        served[last] ^= 0xff;
    }
    let base = serve_file(format!("/v{version}/{name}"), served);
    let image = demo_image("v", &[]);
    t.act(
        &repo,
        &[("IMAGE", &image), ("VERSION", "r1")],
        &t.sshd.known_hosts,
        &[("BLUEGREEN_RELEASE_BASE_URL", &base)],
        &[],
    )
}

#[test]
fn a_release_archive_matching_the_committed_sum_is_used() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-release");
    let run = run_released(&t, false);
    assert_result(&run, "deployed");
    assert!(run.log.contains("downloading bluegreen-v"), "{}", run.log);
    assert_eq!(t.live(), ("blue".into(), "r1".into()));
}

#[test]
fn a_tampered_release_archive_is_refused() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let t = Target::new("e2e-tampered");
    let run = run_released(&t, true);
    assert_result(&run, "failed");
    assert!(run.log.contains("checksum mismatch"), "{}", run.log);
    assert!(run.log.contains("refusing to use it"), "{}", run.log);
    assert_eq!(t.sshd.connections(), 0, "nothing reached the host");
    assert!(!t.state_dir().exists());
    let payloads = t.slack.payloads();
    assert_eq!(
        payloads.len(),
        1,
        "the failure before the deploy is notified"
    );
    assert!(
        payloads[0]["text"]
            .as_str()
            .unwrap()
            .contains("could not start"),
        "{:?}",
        payloads[0]
    );
}
