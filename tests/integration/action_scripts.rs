//! The action's step scripts (`action/`), run for real: the early-failure report posts a
//! valid, escaped Slack message to a recording server, keeps the webhook off every command
//! line, and stays quiet when told to; the binaries step finds the release to download from
//! as GitHub's runner lays the action out, without `github.action_repository`.

use std::path::Path;
use std::process::Command;

use crate::support::SlackRecorder;

const NOTIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/action/notify-early-failure");
const GET_BINARIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/action/get-binaries");

/// Writes an executable shell script.
fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs the early-failure script with `env`, a `curl` on PATH that records its arguments
/// in `dir/curl-args` before running the real one; returns the outputs file's text.
fn notify(dir: &Path, env: &[(&str, &str)]) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real_curl = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v curl"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec {} \"$@\"\n",
        dir.join("curl-args").display(),
        real_curl.trim()
    );
    write_script(&bin.join("curl"), &wrapper);
    let outputs = dir.join("outputs");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let status = Command::new(NOTIFY)
        .env("PATH", path)
        .env("GITHUB_OUTPUT", &outputs)
        .envs(env.iter().copied())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(outputs).unwrap()
}

#[test]
fn an_early_failure_posts_an_escaped_message_and_keeps_the_webhook_off_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackRecorder::start(200, false);
    let outputs = notify(
        dir.path(),
        &[
            ("SLACK_WEBHOOK", &slack.url),
            ("NOTIFY_ON", "failure"),
            ("APP", "shop<b>&\"x\\y"),
            ("RUN_URL", "https://github.com/acme/shop/actions/runs/7"),
        ],
    );
    assert_eq!(outputs, "result=failed\n");
    let payloads = slack.payloads();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let text = payloads[0]["text"].as_str().unwrap();
    assert!(text.contains("shop&lt;b&gt;&amp;\"x\\y"), "{text}");
    assert!(
        payloads[0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("<https://github.com/acme/shop/actions/runs/7|Open the workflow run>")
    );
    let args = std::fs::read_to_string(dir.path().join("curl-args")).unwrap();
    assert!(args.contains("--config"), "{args}");
    assert!(
        !args.contains("SECRETTOKEN"),
        "the webhook reached curl's command line: {args}"
    );
}

#[test]
fn notify_on_never_posts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackRecorder::start(200, false);
    let outputs = notify(
        dir.path(),
        &[
            ("SLACK_WEBHOOK", &slack.url),
            ("NOTIFY_ON", "never"),
            ("APP", "shop"),
        ],
    );
    assert_eq!(outputs, "result=failed\n");
    assert!(slack.payloads().is_empty());
    assert!(!dir.path().join("curl-args").exists());
}

/// Where a test lays the action out and what it commits next to the release sums.
struct Layout<'a> {
    /// The action's directory below the test's runner directory, as the runner names it.
    action_dir: &'a str,
    /// The text of `release/vVERSION.repository`, when the release recorded one.
    recorded_repository: Option<&'a str>,
    /// `github.action_repository` as the runner filled it (often empty).
    action_repository: &'a str,
}

/// What one run of the binaries step did.
struct BinariesRun {
    success: bool,
    log: String,
    /// Every URL it asked curl for, in order.
    urls: Vec<String>,
    outputs: String,
}

/// The release version this checkout would download.
fn release_version() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("release/VERSION"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The archive name of this machine's release build.
fn archive_name(version: &str) -> String {
    format!(
        "bluegreen-v{version}-{}-unknown-linux-musl.tar.gz",
        std::env::consts::ARCH
    )
}

/// Lays out the action as `layout` says, with committed sums for one archive of the test
/// build, and runs its binaries step with a `curl` on PATH that records each URL and answers
/// from a local directory, and no cargo (so nothing is built from source).
fn get_binaries(dir: &Path, layout: &Layout) -> BinariesRun {
    let version = release_version();
    let action = dir.join(layout.action_dir);
    std::fs::create_dir_all(action.join("action")).unwrap();
    std::fs::create_dir_all(action.join("release")).unwrap();
    std::fs::copy(GET_BINARIES, action.join("action/get-binaries")).unwrap();
    std::fs::write(action.join("release/VERSION"), format!("{version}\n")).unwrap();

    let served = dir.join("served");
    let stage = dir.join("stage");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::create_dir_all(&stage).unwrap();
    for bin in [
        env!("CARGO_BIN_EXE_bluegreen"),
        env!("CARGO_BIN_EXE_bluegreen-action"),
    ] {
        let name = Path::new(bin).file_name().unwrap();
        std::fs::copy(bin, stage.join(name)).unwrap();
    }
    let archive = served.join(archive_name(&version));
    assert!(
        Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&stage)
            .args(["bluegreen", "bluegreen-action"])
            .status()
            .unwrap()
            .success()
    );
    let sum = bluegreen::fsutil::sha256_hex(&std::fs::read(&archive).unwrap());
    std::fs::write(
        action.join(format!("release/v{version}.sha256")),
        format!("{sum}  {}\n", archive_name(&version)),
    )
    .unwrap();
    if let Some(repository) = layout.recorded_repository {
        std::fs::write(
            action.join(format!("release/v{version}.repository")),
            format!("{repository}\n"),
        )
        .unwrap();
    }

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let urls = dir.join("urls");
    write_script(
        &bin.join("curl"),
        &format!(
            "#!/bin/sh\nout=\nurl=\nwhile [ $# -gt 0 ]; do case \"$1\" in\n  \
             --output | --max-time | --retry) [ \"$1\" = --output ] && out=$2; shift 2 ;;\n  \
             -*) shift ;;\n  *) url=$1; shift ;;\nesac; done\n\
             printf '%s\\n' \"$url\" >> '{urls}'\n\
             exec cp '{served}'/\"${{url##*/}}\" \"$out\"\n",
            urls = urls.display(),
            served = served.display(),
        ),
    );
    let temp = dir.join("temp");
    std::fs::create_dir_all(&temp).unwrap();
    let outputs = dir.join("outputs");
    let out = Command::new(action.join("action/get-binaries"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("GITHUB_ACTION_PATH", &action)
        .env("RUNNER_TEMP", &temp)
        .env("GITHUB_OUTPUT", &outputs)
        .env("ACTION_REPOSITORY", layout.action_repository)
        .output()
        .unwrap();
    BinariesRun {
        success: out.status.success(),
        log: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        urls: std::fs::read_to_string(&urls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
    }
}

/// The URL GitHub serves `repository`'s release archive for this machine at.
fn release_url(repository: &str) -> String {
    let version = release_version();
    format!(
        "https://github.com/{repository}/releases/download/v{version}/{}",
        archive_name(&version)
    )
}

/// Asserts the run succeeded and its `runner` output is a working bluegreen-action.
fn assert_binaries_ready(run: &BinariesRun) {
    assert!(run.success, "{}", run.log);
    let runner = run
        .outputs
        .lines()
        .find_map(|l| l.strip_prefix("runner="))
        .unwrap_or_else(|| panic!("no runner output: {}", run.outputs));
    let version = Command::new(runner).arg("--version").output().unwrap();
    assert!(version.status.success(), "{runner} does not run");
}

/// Runs the binaries step for `layout` in a new directory and asserts it got them.
fn fetched(layout: &Layout) -> BinariesRun {
    let dir = tempfile::tempdir().unwrap();
    let run = get_binaries(dir.path(), layout);
    assert_binaries_ready(&run);
    run
}

#[test]
fn without_github_action_repository_the_release_is_found_from_the_action_path() {
    let run = fetched(&Layout {
        action_dir: "runner/_work/_actions/acme/bluegreen-action/v1",
        recorded_repository: None,
        action_repository: "",
    });
    assert_eq!(run.urls, [release_url("acme/bluegreen-action")]);
}

#[test]
fn an_action_in_a_subdirectory_of_its_repository_is_found_too() {
    let run = fetched(&Layout {
        action_dir: "runner/_work/_actions/acme/tools/v1/deploy",
        recorded_repository: None,
        action_repository: "",
    });
    assert_eq!(run.urls, [release_url("acme/tools")]);
}

#[test]
fn the_repository_recorded_with_the_sums_is_where_the_archives_come_from() {
    // A fork that keeps the upstream release sums keeps downloading the archives they name.
    let run = fetched(&Layout {
        action_dir: "runner/_work/_actions/forker/bluegreen-action/v1",
        recorded_repository: Some("acme/bluegreen-action"),
        action_repository: "",
    });
    assert_eq!(run.urls, [release_url("acme/bluegreen-action")]);
    assert!(
        run.log.contains(
            "checked out as forker/bluegreen-action: downloading from acme/bluegreen-action"
        ),
        "{}",
        run.log
    );
}

#[test]
fn a_fork_that_publishes_its_own_release_downloads_from_it() {
    let run = fetched(&Layout {
        action_dir: "runner/_work/_actions/forker/bluegreen-action/v1",
        recorded_repository: Some("forker/bluegreen-action"),
        action_repository: "acme/bluegreen-action",
    });
    assert_eq!(run.urls, [release_url("forker/bluegreen-action")]);
    assert!(
        run.log.contains(
            "::warning::the action was checked out as forker/bluegreen-action but github.action_repository says acme/bluegreen-action"
        ),
        "{}",
        run.log
    );
}

#[test]
fn github_action_repository_is_the_last_resort() {
    let run = fetched(&Layout {
        action_dir: "checkout",
        recorded_repository: None,
        action_repository: "acme/bluegreen-action",
    });
    assert_eq!(run.urls, [release_url("acme/bluegreen-action")]);
}

#[test]
fn with_nowhere_to_download_from_it_fails_naming_the_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let run = get_binaries(
        dir.path(),
        &Layout {
            action_dir: "checkout",
            recorded_repository: Some("not a repository"),
            action_repository: "",
        },
    );
    assert!(!run.success, "{}", run.log);
    assert!(run.urls.is_empty(), "{:?}", run.urls);
    assert!(run.outputs.is_empty(), "{}", run.outputs);
    assert!(
        run.log
            .contains("::error::cannot tell where to download the release of v"),
        "{}",
        run.log
    );
    for fix in ["BLUEGREEN_RELEASE_BASE_URL", "Rust toolchain"] {
        assert!(run.log.contains(fix), "{fix} not named: {}", run.log);
    }
}
