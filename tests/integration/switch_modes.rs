//! The default switch mode end to end, through act, sshd, nginx and Docker: `auto` with and
//! without nftables permission, a switch confirmed by the kernel for an app that never says
//! which slot it is, changing modes on a live site under traffic (one reload each way), and
//! the paths back after a reboot (the boot unit restores the rule) and after a crash (the
//! restart policy brings the live slot back, a retired one stays stopped).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Target, Traffic, assert_result, demo_image, http_get};

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    Command::new("chmod").arg("+x").arg(path).status().unwrap();
}

fn docker_inspect(container: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", format, container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn auto_falls_back_to_reload_where_nft_is_not_permitted_and_says_why() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-noperm");
    let nft = t.site.tmp.path().join("nft-denied");
    script(
        &nft,
        "echo 'Error: Could not process rule: Operation not permitted' >&2; exit 1",
    );
    let nft = nft.display().to_string();
    for version in ["v1", "v2"] {
        let run = t.run(&[
            ("IMAGE", &image),
            ("VERSION", version),
            ("NFT_COMMAND", &nft),
        ]);
        assert_result(&run, "deployed");
        assert_eq!(run.output("switch-mode"), "reload", "{}", run.log);
        assert!(
            run.log
                .contains("switch mode: reload (auto: nftables cannot be used here")
                && run.log.contains("Operation not permitted"),
            "{}",
            run.log
        );
    }
    assert_eq!(t.live(), ("green".into(), "v2".into()));
}

#[test]
fn an_app_that_never_names_its_slot_is_confirmed_by_the_kernel() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("anonymous", &[("DEMO_ANONYMOUS", "true")]);
    let t = Target::new("e2e-anon");
    for version in ["v1", "v2", "v3"] {
        let run = t.run(&[("IMAGE", &image), ("VERSION", version)]);
        assert_result(&run, "deployed");
        assert_eq!(run.output("switch-mode"), "nftables");
        assert!(
            run.log
                .contains("a new connection to the service port was accepted on port"),
            "{}",
            run.log
        );
    }
    let (status, slot, body) = http_get(&t.site.nginx.url("/"));
    assert_eq!((status, slot.as_str()), (200, ""), "the app names no slot");
    assert!(body.contains("v3"), "{body}");
}

#[test]
fn changing_modes_on_a_live_site_costs_one_reload_each_way_and_loses_nothing() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-modes");
    let reloads = t.site.tmp.path().join("reloads");
    let reload = t.site.tmp.path().join("reload");
    script(
        &reload,
        &format!(
            "echo reload >> '{}'\nexec {}",
            reloads.display(),
            t.site.nginx.reload_cmd()
        ),
    );
    let reload = reload.display().to_string();
    let count = || {
        std::fs::read_to_string(&reloads)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let deploy = |version: &str, mode: &str| {
        let run = t.run(&[
            ("IMAGE", &image),
            ("VERSION", version),
            ("SWITCH_MODE", mode),
            ("NGINX_RELOAD_COMMAND", &reload),
        ]);
        assert_result(&run, "deployed");
        t.settled();
        run
    };
    deploy("v1", "reload");
    let traffic = Traffic::start(t.site.nginx.url("/"));
    for (version, mode, expected) in [
        ("v2", "nftables", "nftables"),
        ("v3", "auto", "nftables"),
        ("v4", "reload", "reload"),
    ] {
        let before = count();
        let run = deploy(version, mode);
        assert_eq!(run.output("switch-mode"), expected);
        let reloads = count() - before;
        let wanted = if version == "v3" { 0 } else { 1 };
        assert_eq!(
            reloads, wanted,
            "{version} ({mode}): {reloads} reloads\n{}",
            run.log
        );
    }
    let (requests, bad) = traffic.finish();
    assert!(requests > 100, "too little traffic to judge: {requests}");
    assert!(
        bad.is_empty(),
        "{} of {requests} failed: {bad:?}",
        bad.len()
    );
    assert_eq!(t.live(), ("green".into(), "v4".into()));
    let table = format!("bluegreen_{}", t.app.replace('-', "_"));
    let listed = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    assert!(
        !listed.status.success(),
        "the retire of the reload deploy removed {table}"
    );
}

#[test]
fn after_a_reboot_the_boot_unit_restores_the_rule() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-reboot");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v2")]), "deployed");
    t.settled();
    let unit = t
        .site
        .tmp
        .path()
        .join("systemd")
        .join(format!("bluegreen-restore-{}.service", t.app));
    let text = std::fs::read_to_string(&unit).unwrap();
    let enabled = unit
        .parent()
        .unwrap()
        .join("multi-user.target.wants")
        .join(unit.file_name().unwrap());
    assert_eq!(std::fs::read_link(&enabled).unwrap(), unit);

    // A reboot clears the kernel's rules: nginx then proxies to a port nothing serves.
    let table = format!("bluegreen_{}", t.app.replace('-', "_"));
    assert!(
        Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(http_get(&t.site.nginx.url("/")).0, 502);

    // What systemd runs at boot, as root: a helper in root's own directories, bound to
    // this app.
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let argv = shell_words::split(exec).unwrap();
    let helper = Path::new(&argv[0]);
    assert_eq!(helper, t.site.tmp.path().join("lib/bluegreen/bluegreen"));
    assert_only_root_can_change(helper);
    assert_eq!(argv[1..4], ["restore", "--app", t.app.as_str()]);

    // Everything a deploy user that owns the state directory could plant there: the
    // helper's old place, and a ruleset file. None of it runs.
    let state = t.state_dir();
    let marker = t.site.tmp.path().join("planted-ran");
    std::fs::create_dir_all(state.join("bin")).unwrap();
    script(
        &state.join("bin/bluegreen"),
        &format!("touch '{}'", marker.display()),
    );
    std::fs::write(state.join(format!("{table}.nft")), "table ip planted { }\n").unwrap();
    let boot = || Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let out = boot();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    assert!(!marker.exists(), "the planted script ran as root");
    let planted = Command::new("nft")
        .args(["list", "table", "ip", "planted"])
        .output()
        .unwrap();
    assert!(!planted.status.success(), "the planted ruleset was loaded");

    // A state directory someone else could write is refused, and nothing is run.
    Command::new("chmod")
        .arg("0777")
        .arg(&state)
        .status()
        .unwrap();
    let out = boot();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("may be written by its group or others"),
        "{stderr}"
    );
    Command::new("chmod")
        .arg("0755")
        .arg(&state)
        .status()
        .unwrap();
    assert!(!marker.exists());
}

/// Fails unless `path` and every directory above it belong to root and no one else may
/// write them (a world-writable directory above it must be sticky, like /tmp).
fn assert_only_root_can_change(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    for (depth, place) in path.ancestors().enumerate() {
        let meta = std::fs::symlink_metadata(place).unwrap();
        assert_eq!(meta.uid(), 0, "{} is not root's", place.display());
        let open = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        assert!(
            !open || (depth > 0 && sticky),
            "{} may be written by others (mode {:o})",
            place.display(),
            meta.mode()
        );
    }
}

#[test]
fn a_crashed_live_slot_comes_back_and_a_retired_one_stays_stopped() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-crash");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v2")]), "deployed");
    t.settled();
    let live = format!("{}-green", t.app);
    assert_eq!(
        docker_inspect(&live, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );

    // The app's process dies (not a stop by anyone): Docker starts it again.
    let pid = docker_inspect(&live, "{{.State.Pid}}");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker_inspect(&live, "{{.RestartCount}}") == "0" || !t.container_running("green") {
        assert!(
            Instant::now() < deadline,
            "the crashed slot did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&t.site.nginx.url("/")).0 != 200 {
        assert!(Instant::now() < deadline, "the site did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    assert!(
        !t.container_running("blue"),
        "the retired slot stays stopped"
    );
}
