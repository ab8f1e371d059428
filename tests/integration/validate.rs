//! validate against a real nginx, the Docker daemon, real listeners and state files.

use std::net::TcpListener;

use crate::support::{APP, Site, VALIDATE, free_port, run};

/// Arguments pointing validate at `site`.
fn site_args(site: &Site) -> Vec<String> {
    site.validate_args(APP)
}

fn validate(args: &[String], extra: &[&str]) -> crate::support::Run {
    let mut all = args.to_vec();
    all.extend(extra.iter().map(|s| s.to_string()));
    run(&VALIDATE, &all)
}

/// The status of the check named `name` in a JSON report.
fn status_of(report: &serde_json::Value, name: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_ready_host_passes_every_check() {
    require!(Nginx, Docker);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    let dependency = TcpListener::bind("127.0.0.1:0").unwrap();
    let dep = format!("127.0.0.1:{}", dependency.local_addr().unwrap().port());

    let r = validate(&site_args(&site), &["--runtime", "docker", "--tcp", &dep]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["standby"], "green");
    for name in [
        "nginx",
        "upstream-dir",
        "disk state-dir",
        "docker",
        "disk docker",
        "standby-port",
        "state",
    ] {
        assert_eq!(status_of(&report, name), "pass", "{name}: {report}");
    }
    assert_eq!(status_of(&report, &format!("tcp {dep}")), "pass");
}

#[test]
fn every_failure_is_listed_in_one_run() {
    require!(Nginx);
    let site = Site::new();
    site.nginx.break_config();
    let holder = TcpListener::bind(("127.0.0.1", site.blue_port)).unwrap();
    let closed = free_port();
    let mut args = site_args(&site);
    let missing_dir = site.tmp.path().join("no-such-dir/bluegreen-shop.conf");
    let upstream_index = args.iter().position(|a| a == "--upstream-file").unwrap() + 1;
    args[upstream_index] = missing_dir.display().to_string();
    let disk_index = args.iter().position(|a| a == "--min-free-disk-mb").unwrap() + 1;
    args[disk_index] = "999999999".into();

    let r = validate(
        &args,
        &[
            "--runtime",
            "docker",
            "--docker-cmd",
            "docker -H unix:///nonexistent/docker.sock",
            "--tcp",
            &format!("127.0.0.1:{closed}"),
            "--tcp-timeout",
            "1",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(report["passed"], false);
    for name in [
        "nginx",
        "upstream-dir",
        "disk state-dir",
        "docker",
        "standby-port",
    ] {
        assert_eq!(status_of(&report, name), "fail", "{name}: {report}");
    }
    assert_eq!(
        status_of(&report, &format!("tcp 127.0.0.1:{closed}")),
        "fail"
    );
    let detail = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let port_detail = detail("standby-port");
    assert!(
        port_detail.contains(&format!("port {}", site.blue_port)),
        "{port_detail}"
    );
    assert!(
        port_detail.contains(&format!("pid {}", std::process::id())),
        "{port_detail}"
    );
    assert!(detail("nginx").contains("failed"), "{}", detail("nginx"));
    assert!(detail("disk state-dir").contains("minimum 999999999 MiB"));
    drop(holder);

    // The human form lists the same failures and counts them.
    let human_args: Vec<String> = args.into_iter().filter(|a| a != "--json").collect();
    let text = validate(
        &human_args,
        &[
            "--runtime",
            "command",
            "--tcp",
            &format!("127.0.0.1:{closed}"),
        ],
    );
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("FAIL  nginx"), "{}", text.stdout);
    assert!(text.stdout.contains("checks failed"), "{}", text.stdout);
}

#[test]
fn a_standby_port_held_by_our_own_standby_passes() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    // Green ran before (recorded in state), blue is live: green's port is ours.
    assert_eq!(
        site.switch(&["--to", "green", "--app-version", "v2"]).code,
        0
    );
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    let r = validate(&site_args(&site), &["--runtime", "command"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["standby"], "green");
    assert_eq!(status_of(&report, "standby-port"), "pass");
    assert!(
        r.stdout.contains("own standby (version v2)"),
        "{}",
        r.stdout
    );
}

#[test]
fn corrupt_state_warns_and_unreadable_state_fails() {
    require!(Nginx);
    let site = Site::new();
    std::fs::create_dir_all(&site.state_dir).unwrap();
    std::fs::write(site.state_dir.join("state.json"), "not json").unwrap();
    let r = validate(&site_args(&site), &["--runtime", "command"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(status_of(&r.json(), "state"), "warn");
    assert!(r.stdout.contains("corrupt"), "{}", r.stdout);

    std::fs::remove_file(site.state_dir.join("state.json")).unwrap();
    std::fs::create_dir(site.state_dir.join("state.json")).unwrap();
    let r = validate(&site_args(&site), &["--runtime", "command"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(status_of(&r.json(), "state"), "fail");
}

#[test]
fn validate_changes_nothing() {
    require!(Nginx);
    let site = Site::new();
    let before = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    let r = validate(&site_args(&site), &["--runtime", "command"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!site.state_dir.exists());
    assert_eq!(
        std::fs::read_to_string(&site.nginx.upstream_file).unwrap(),
        before
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    for args in [
        &["--app", "UPPER"][..],
        &["--app", APP, "--blue-port", "3001", "--green-port", "3001"],
        &["--app", APP, "--tcp", "db"],
        &["--app", APP, "--tcp", "db:99999"],
        &["--app", APP, "--runtime", "podman"],
        &["--app", APP, "--tcp-timeout", "-3"],
        &["--app", APP, "--test-cmd", ""],
    ] {
        let r = run(&VALIDATE, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
    }
}

/// `args` without the flag `name` and its value.
fn without(args: &[String], name: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == name).unwrap();
    let mut rest = args.to_vec();
    rest.drain(at..at + 2);
    rest
}

#[test]
fn without_port_flags_the_ports_come_from_state() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    // Something else holds the recorded green port: validate must look at that port, not
    // at the default 3002.
    let squatter = TcpListener::bind(("127.0.0.1", site.green_port)).unwrap();
    let args = without(&without(&site_args(&site), "--blue-port"), "--green-port");
    let r = validate(&args, &["--runtime", "command"]);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(status_of(&report, "standby-port"), "fail", "{report}");
    assert!(
        report
            .to_string()
            .contains(&format!("port {}", site.green_port)),
        "{report}"
    );
    drop(squatter);
}

#[test]
fn a_port_flag_that_disagrees_with_state_is_refused() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    let state = std::fs::read_to_string(site.state_dir.join("state.json")).unwrap();
    let wrong = (site.green_port + 1).to_string();
    let mut args = without(&site_args(&site), "--green-port");
    args.extend(["--green-port".to_owned(), wrong.clone()]);
    let r = validate(&args, &["--runtime", "command"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.json()["error"].as_str().unwrap().contains(&format!(
            "invalid --green-port: {wrong} is not the port {} that",
            site.green_port
        )),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(site.state_dir.join("state.json")).unwrap(),
        state,
        "nothing changed"
    );
}

/// validate for `site` run as the user `nobody` (as a non-root deploy user would run it),
/// with `extra` arguments and `path` as its PATH.
fn validate_as_nobody(site: &Site, extra: &[&str], path: &str) -> crate::support::Run {
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "env"])
        .arg(format!("PATH={path}"))
        .arg(&*VALIDATE)
        .args(site_args(site))
        .args(["--runtime", "command"])
        .args(extra)
        .output()
        .unwrap();
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The detail of the check named `name` in a JSON report.
fn detail_of(report: &serde_json::Value, name: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))["detail"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_reload_that_sudo_would_refuse_is_found_before_any_switch() {
    require!(Root, Nginx, Sudo);
    let site = Site::new();
    let reload = "sudo /usr/sbin/nginx -s reload";
    // root may: sudo -n -l says so.
    let r = validate(
        &site_args(&site),
        &["--runtime", "command", "--reload-cmd", reload],
    );
    assert_eq!(status_of(&r.json(), "nginx-reload"), "pass", "{r:?}");
    // nobody has no sudoers line: found up front, with the line to add.
    let r = validate_as_nobody(&site, &["--reload-cmd", reload], "/usr/sbin:/usr/bin:/bin");
    let report = r.json();
    assert_eq!(status_of(&report, "nginx-reload"), "fail", "{report}");
    let detail = detail_of(&report, "nginx-reload");
    assert!(
        detail.contains("sudo does not let nobody run `sudo /usr/sbin/nginx -s reload` without a password (--reload-cmd)")
            && detail.contains("nobody ALL=(root) NOPASSWD: /usr/sbin/nginx -s reload"),
        "{detail}"
    );
}

#[test]
fn a_plain_reload_of_a_master_run_by_root_is_refused_for_another_user() {
    require!(Root, Nginx);
    let site = Site::new();
    // Let nobody read nginx's pid file, as on a real host (/run/nginx.pid).
    use std::os::unix::fs::PermissionsExt;
    for dir in [site.tmp.path(), site.nginx.pid_file().parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let pid_file = site.nginx.pid_file().display().to_string();
    let r = validate_as_nobody(
        &site,
        &[
            "--reload-cmd",
            &site.nginx.reload_cmd(),
            "--nginx-pid-file",
            &pid_file,
        ],
        "/usr/sbin:/usr/bin:/bin",
    );
    let report = r.json();
    assert_eq!(status_of(&report, "nginx-reload"), "fail", "{report}");
    let detail = detail_of(&report, "nginx-reload");
    assert!(
        detail.contains("runs as uid 0, and nobody may not signal it")
            && detail.contains("set --reload-cmd to `sudo nginx -s reload`"),
        "{detail}"
    );
}

#[test]
fn nginx_missing_from_the_path_says_so_and_names_the_setting() {
    require!(Root, Nginx);
    let site = Site::new();
    let mut args = without(&site_args(&site), "--test-cmd");
    args.extend(["--test-cmd".to_owned(), "nginx -t".to_owned()]);
    // A non-root login's PATH: no /usr/sbin.
    let out = std::process::Command::new(&*VALIDATE)
        .args(&args)
        .args(["--runtime", "command"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status_of(&report, "nginx"), "fail", "{report}");
    let detail = detail_of(&report, "nginx");
    assert!(
        detail.contains("nginx is not on the PATH of")
            && detail.contains("(/usr/bin:/bin)")
            && detail.contains("give its full path in --test-cmd"),
        "{detail}"
    );
}

#[test]
fn a_standby_that_would_not_fit_in_memory_is_refused_naming_both_figures() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    let args = site_args(&site);
    let memory = |extra: &[&str]| {
        let mut all = vec!["--runtime", "command"];
        all.extend_from_slice(extra);
        let report = validate(&args, &all).json();
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "memory")
            .cloned()
            .unwrap_or_else(|| panic!("no memory check in {report}"));
        (
            check["status"].as_str().unwrap().to_owned(),
            check["detail"].as_str().unwrap().to_owned(),
        )
    };
    // The live slot (the demo app, measured by the process on blue's port) fits here.
    let (status, detail) = memory(&[]);
    assert_eq!(status, "pass", "{detail}");
    assert!(
        detail.contains("MiB available; the standby needs about"),
        "{detail}"
    );
    // Asked to keep more free than any machine has: refused, both figures named.
    let (status, detail) = memory(&["--min-free-memory-mb", "100000000"]);
    assert_eq!(status, "fail", "{detail}");
    assert!(
        detail.contains("(what blue uses now)") && detail.contains("would not fit"),
        "{detail}"
    );
    let (status, _) = memory(&[
        "--min-free-memory-mb",
        "100000000",
        "--memory-check",
        "warn",
    ]);
    assert_eq!(status, "warn");
}

/// A container removed when the test ends, however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

#[test]
fn a_live_slot_behind_docker_proxy_is_told_how_many_connections_a_second_it_can_take() {
    require!(Nginx, Docker);
    let site = Site::new();
    let image = crate::support::demo_image("v", &[]);
    let name = format!("bluegreen-proxy-check-{}", site.blue_port);
    let _blue = Container(name.clone());
    let published = format!("127.0.0.1:{}:8080", site.blue_port);
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "--detach",
            "--name",
            &name,
            "--publish",
            &published,
            "--env",
            "BLUEGREEN_SLOT=blue",
            &image,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    crate::support::wait_for_port(site.blue_port, std::time::Duration::from_secs(10));
    let switched = site.switch(&["--to", "blue", "--app-version", "v1"]);
    assert_eq!(switched.code, 0, "{switched:?}");
    let args = site_args(&site);
    let report = validate(&args, &["--runtime", "docker"]).json();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let ends: Vec<u32> = range
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let ports = ends[1] - ends[0] + 1;
    let detail = detail_of(&report, "proxy-ports");
    let reuse = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse").unwrap();
    let said = if reuse.trim() == "1" {
        "net.ipv4.tcp_tw_reuse=1 reuses its closed ports".to_owned()
    } else {
        format!(
            "at most about {} new connections a second to a slot ({ports} ports",
            ports / 60
        )
    };
    assert!(
        detail.contains(&format!(
            "docker-proxy carries the live slot's requests (port {})",
            site.blue_port
        )) && detail.contains(&said),
        "{detail}"
    );
    // The command runtime has no proxy in front of the slot: no such check.
    let report = validate(&args, &["--runtime", "command"]).json();
    assert!(
        !report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "proxy-ports"),
        "{report}"
    );
}

#[test]
fn in_reload_mode_two_nginx_masters_and_no_pid_file_warn_that_a_reload_cannot_be_watched() {
    require!(Nginx);
    let site = Site::new();
    let _other = Site::new();
    let pid_file = site.nginx.pid_file().display().to_string();
    // Reload mode, where every switch reloads nginx.
    let named = validate(
        &site_args(&site),
        &["--mode", "reload", "--nginx-pid-file", &pid_file],
    );
    assert_eq!(named.code, 0, "{named:?}");
    let report = named.json();
    assert_eq!(status_of(&report, "nginx-master"), "pass", "{report}");
    assert!(
        detail_of(&report, "nginx-master").contains(&format!("(named by {pid_file})")),
        "{report}"
    );

    let unnamed = validate(
        &site_args(&site),
        &[
            "--mode",
            "reload",
            "--nginx-pid-file",
            "/nonexistent/nginx.pid",
        ],
    );
    // A warning: switch-traffic can still confirm by a verify answer that names the slot.
    assert_eq!(unnamed.code, 0, "{unnamed:?}");
    let report = unnamed.json();
    assert_eq!(status_of(&report, "nginx-master"), "warn", "{report}");
    let detail = detail_of(&report, "nginx-master");
    assert!(
        detail.contains("nginx masters run on this host"),
        "{detail}"
    );
    assert!(detail.contains("set --nginx-pid-file to"), "{detail}");

    // In nftables mode a switch reloads nginx only when its include changes: no check.
    let nftables = validate(&site_args(&site), &["--mode", "nftables"]).json();
    let names: Vec<&str> = nftables["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"nginx-master"), "{nftables}");
}

#[test]
fn each_helper_called_through_a_link_of_its_name_is_that_helper() {
    use crate::support::{HEALTH_CHECK, MONITOR, SWITCH_TRAFFIC};
    for (name, link) in [
        ("validate", &VALIDATE),
        ("health-check", &HEALTH_CHECK),
        ("switch-traffic", &SWITCH_TRAFFIC),
        ("monitor", &MONITOR),
    ] {
        let r = run(link, &["--help"]);
        assert_eq!(r.code, 0, "{name}: {r:?}");
        let usage = r.stdout.lines().find(|l| l.starts_with("Usage:"));
        assert_eq!(
            usage.and_then(|l| l.split_whitespace().nth(1)),
            Some(name),
            "{name}: {}",
            r.stdout
        );
        assert!(
            !r.stdout.contains(&format!("{name} {name}")),
            "{}",
            r.stdout
        );
    }
}
