//! The action's step scripts (`action/`), run for real: the early-failure report posts a
//! valid, escaped Slack message to a recording server, keeps the webhook off every command
//! line, and stays quiet when told to.

use std::path::Path;
use std::process::Command;

use crate::support::SlackRecorder;

const NOTIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/action/notify-early-failure");

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
    std::fs::write(bin.join("curl"), wrapper).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("curl"))
        .status()
        .unwrap();
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
