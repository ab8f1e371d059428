//! Unit tests of the executor: timeouts, process groups, bounded output, status words.

use super::*;

#[test]
fn parse_splits_words_without_a_shell() {
    let c = CommandLine::parse("docker exec 'my web' nginx -t", "--test-cmd").unwrap();
    assert_eq!(c.argv, ["docker", "exec", "my web", "nginx", "-t"]);
    let c = CommandLine::parse("echo $(id);ls", "--x").unwrap();
    assert_eq!(c.argv, ["echo", "$(id);ls"]);
    assert!(CommandLine::parse("", "--x").is_err());
    assert!(CommandLine::parse("echo 'unterminated", "--x").is_err());
}

#[test]
fn json_is_the_words_and_an_empty_command_is_refused() {
    let c = CommandLine::parse("nginx -s reload", "--x").unwrap();
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, r#"["nginx","-s","reload"]"#);
    assert_eq!(serde_json::from_str::<CommandLine>(&json).unwrap(), c);
    assert!(serde_json::from_str::<CommandLine>("[]").is_err());
    assert!(serde_json::from_str::<CommandLine>(r#"[""]"#).is_err());
}

#[test]
fn run_reports_status_and_stderr() {
    let ok = CommandLine::new(["sh", "-c", "echo out; echo err >&2"])
        .run(Duration::from_secs(5))
        .unwrap();
    assert_eq!((ok.stdout.as_str(), ok.stderr.as_str()), ("out\n", "err\n"));
    let err = CommandLine::new(["sh", "-c", "echo broken config >&2; exit 3"])
        .run(Duration::from_secs(5))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("exit status 3") && text.contains("broken config"),
        "{text}"
    );
}

#[test]
fn run_kills_a_command_that_overstays() {
    let started = Instant::now();
    let err = CommandLine::new(["sleep", "10"])
        .run(Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(err, Error::CommandTimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_timeout_ends_what_the_command_started_too() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
    let err = CommandLine::new(["sh", "-c", &script])
        .in_own_group()
        .run(Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, Error::CommandTimedOut { .. }), "{err:?}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    // Killed: gone, or a zombie waiting for a parent that does not reap.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = || {
        std::fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
    };
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(),
        "the background sleep {} outlived the timeout",
        pid.trim()
    );
}

#[test]
fn output_is_kept_to_its_tail() {
    let out = CommandLine::new(["sh", "-c", "head -c 3000000 /dev/zero; echo the-end"])
        .run(Duration::from_secs(20))
        .unwrap();
    assert!(
        out.stdout.len() <= OUTPUT_KEEP_BYTES + 100,
        "{}",
        out.stdout.len()
    );
    assert!(out.stdout.starts_with("[earlier output cut"));
    assert!(out.stdout.ends_with("the-end\n"));
}

#[test]
fn input_reaches_stdin() {
    let out = CommandLine::new(["sh", "-c", "tr a-z A-Z"])
        .run_with_input(b"table ip x", Duration::from_secs(5))
        .unwrap();
    assert_eq!(out.stdout, "TABLE IP X");
}

#[test]
fn missing_program_is_a_spawn_error() {
    let err = CommandLine::new(["/nonexistent/nginx", "-t"])
        .run(Duration::from_secs(1))
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
}

#[test]
fn tail_keeps_the_end() {
    assert_eq!(tail("abcdef", 3), "...def");
    assert_eq!(tail("abc", 3), "abc");
    assert_eq!(tail("ééé", 3), "...é");
}
