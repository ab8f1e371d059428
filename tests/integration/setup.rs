//! `command: setup` and `bluegreen setup` against a fresh nginx (an `http` block that
//! includes an empty `conf.d`): the first deploy needs no hand step; a second setup changes
//! nothing; a server block edited since setup wrote it is kept; a configuration nginx
//! refuses puts setup's files back; a dry run writes nothing.

use std::process::Command;

use crate::support::{BLUEGREEN, Site, Target, assert_result, demo_image, http_get_retry_after};

#[test]
fn setup_on_a_fresh_nginx_then_a_first_deploy_with_no_hand_step() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::bare("e2e-setup");
    let include = t.site.nginx.upstream_file.clone();

    let dry = t.run(&[("COMMAND", "setup"), ("DRY_RUN", "true")]);
    assert_result(&dry, "unchanged");
    assert!(dry.log.contains("+upstream e2e-setup-"), "{}", dry.log);
    assert!(
        dry.log.contains("proxy_pass http://e2e-setup-"),
        "{}",
        dry.log
    );
    assert!(!include.exists(), "a dry run writes nothing");

    let setup = t.run(&[("COMMAND", "setup")]);
    assert_result(&setup, "changed");
    let (status, retry_after, body) = http_get_retry_after(&t.site.nginx.url("/"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("300"));
    assert!(body.contains("Not deployed yet"), "{body}");

    let first = t.run(&[("IMAGE", &image), ("VERSION", "v1")]);
    assert_result(&first, "deployed");
    assert!(
        !first.log.contains("rebuilt from"),
        "a first deploy after setup starts from nothing, with no warning: {}",
        first.log
    );
    t.settled();
    assert_eq!(t.live(), ("blue".into(), "v1".into()));

    let again = t.run(&[("COMMAND", "setup")]);
    assert_result(&again, "unchanged");
    assert!(
        again.log.contains("everything was in place"),
        "{}",
        again.log
    );
    assert_eq!(
        t.live(),
        ("blue".into(), "v1".into()),
        "the deploy's include is kept"
    );
}

/// A fresh nginx to set up, and the port of its maintenance server.
fn bare_site() -> (Site, u16) {
    (Site::bare(crate::support::APP), crate::support::free_port())
}

/// `bluegreen setup` for `site` with `extra` options (which may replace `--test-cmd` and
/// `--listen`);
/// (exit code, stdout and stderr).
fn setup((site, maintenance_port): &(Site, u16), extra: &[&str]) -> (i32, String) {
    let nginx = &site.nginx;
    let out = Command::new(BLUEGREEN)
        .args(["setup", "--app", crate::support::APP, "--state-dir"])
        .arg(&site.state_dir)
        .arg("--upstream-file")
        .arg(&nginx.upstream_file)
        .args(if extra.contains(&"--test-cmd") {
            vec![]
        } else {
            vec!["--test-cmd".to_owned(), nginx.test_cmd()]
        })
        .args(["--reload-cmd", &nginx.reload_cmd()])
        .arg("--nginx-pid-file")
        .arg(nginx.pid_file())
        .args(["--mode", "reload"])
        .args(["--blue-port", &site.blue_port.to_string()])
        .args(["--green-port", &site.green_port.to_string()])
        .args(["--maintenance-port", &maintenance_port.to_string()])
        .args(if extra.contains(&"--listen") {
            vec![]
        } else {
            vec!["--listen".to_owned(), format!("127.0.0.1:{}", nginx.port)]
        })
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn setup_by_hand_twice_changes_nothing_and_keeps_a_server_block_edited_since() {
    require!(Nginx);
    let target = bare_site();
    let site = &target.0;
    let server = site
        .nginx
        .upstream_file
        .with_file_name(format!("bluegreen-{}.server.conf", crate::support::APP));
    let (code, out) = setup(&target, &["--server-name", "shop.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("setup shop: changed"), "{out}");
    assert_eq!(http_get_retry_after(&site.nginx.url("/")).0, 503);
    let written = std::fs::read_to_string(&server).unwrap();
    assert!(written.contains("server_name shop.test;"), "{written}");
    let modified = std::fs::metadata(&server).unwrap().modified().unwrap();

    let (code, out) = setup(&target, &["--server-name", "shop.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("setup shop: unchanged"), "{out}");
    assert_eq!(
        std::fs::metadata(&server).unwrap().modified().unwrap(),
        modified
    );

    // Its own file, unedited, follows a new server name.
    let (code, out) = setup(&target, &["--server-name", "www.shop.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        std::fs::read_to_string(&server)
            .unwrap()
            .contains("server_name www.shop.test;")
    );

    let edited = format!(
        "{}# ssl by hand\n",
        std::fs::read_to_string(&server).unwrap()
    );
    std::fs::write(&server, &edited).unwrap();
    let (code, out) = setup(&target, &["--server-name", "other.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not as setup wrote it"), "{out}");
    assert!(
        out.contains("+    server_name other.test;"),
        "the difference is shown: {out}"
    );
    assert_eq!(std::fs::read_to_string(&server).unwrap(), edited);
}

#[test]
fn a_configuration_nginx_refuses_puts_setups_files_back() {
    require!(Nginx);
    let target = bare_site();
    let site = &target.0;
    site.nginx.break_config();
    let (code, out) = setup(&target, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("put its files back"), "{out}");
    assert!(!site.nginx.upstream_file.exists(), "{out}");
    assert!(
        !site.state_dir.exists(),
        "the state directory it made goes too: {out}"
    );
    let server = site
        .nginx
        .upstream_file
        .with_file_name(format!("bluegreen-{}.server.conf", crate::support::APP));
    assert!(!server.exists(), "{out}");
}

#[test]
fn setup_refuses_a_server_block_nginx_would_ignore() {
    require!(Nginx);
    let target = bare_site();
    let site = &target.0;
    let nginx = &site.nginx;
    // A default site on the same port with the catch-all name, as Debian's is on port 80.
    std::fs::write(
        nginx.dir.join("conf.d").join("default.conf"),
        format!(
            "server {{ listen 127.0.0.1:{} default_server; server_name _; return 200 \"welcome\"; }}\n",
            nginx.port
        ),
    )
    .unwrap();
    nginx.reload();
    crate::support::wait_for_port(nginx.port, std::time::Duration::from_secs(10));
    // Without -q: nginx says which names it ignores only then.
    let loud_test = nginx.test_cmd().replace(" -q", "");
    let (code, out) = setup(&target, &["--test-cmd", &loud_test]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("nginx would ignore the server block for _ on 127.0.0.1:")
            && out.contains("; give server-name, or remove the other block"),
        "{out}"
    );
    assert!(!nginx.upstream_file.exists(), "{out}");
    assert!(
        !site.state_dir.exists(),
        "a refused first setup leaves no state directory: {out}"
    );
    // A name given that another block already has: the advice is another name.
    std::fs::write(
        nginx.dir.join("conf.d").join("other.conf"),
        format!(
            "server {{ listen 127.0.0.1:{}; server_name taken.test; return 200 \"other\"; }}\n",
            nginx.port
        ),
    )
    .unwrap();
    let (code, out) = setup(
        &target,
        &["--test-cmd", &loud_test, "--server-name", "taken.test"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("; choose another server-name, or remove the other block"),
        "{out}"
    );
    assert_eq!(http_get_retry_after(&nginx.url("/")).2, "welcome");

    let (code, out) = setup(
        &target,
        &["--test-cmd", &loud_test, "--server-name", "shop.test"],
    );
    assert_eq!(code, 0, "a name of its own: {out}");
}

#[test]
fn by_hand_on_debians_nginx_a_switch_is_verified_as_the_sites_name() {
    require!(Nginx);
    let target = (
        Site::debian(crate::support::APP),
        crate::support::free_port(),
    );
    let site = &target.0;
    // As Debian's default site listens: the port, on every address.
    let port = site.nginx.port.to_string();
    let (code, out) = setup(
        &target,
        &["--server-name", "shop.example.com", "--listen", &port],
    );
    assert_eq!(code, 0, "{out}");
    let _blue = site.demo("blue", "v1", &[]);
    // Without the app's server block, asked by address, nginx answers from its default
    // site: the switch is undone, and says why.
    let server = site
        .nginx
        .upstream_file
        .with_file_name(format!("bluegreen-{}.server.conf", crate::support::APP));
    let block = std::fs::read_to_string(&server).unwrap();
    std::fs::remove_file(&server).unwrap();
    let by_address = site.switch(&["--to", "blue", "--verify-timeout", "1"]);
    std::fs::write(&server, block).unwrap();
    assert_ne!(by_address.code, 0, "{by_address:?}");
    assert!(
        by_address
            .stderr
            .contains("give server-name, as setup does, or --site-host")
            || by_address
                .stdout
                .contains("give server-name, as setup does, or --site-host"),
        "{by_address:?}"
    );
    let by_name = site.switch(&["--to", "blue", "--site-host", "shop.example.com"]);
    assert_eq!(by_name.code, 0, "{by_name:?}");
    // Without --site-host, switch-traffic asks as the name of the block setup wrote.
    assert_eq!(site.switch(&["--to", "blue"]).code, 0);
    let (status, slot, _) = crate::support::http_get_as(&site.nginx.url("/"), "shop.example.com");
    assert_eq!((status, slot.as_str()), (200, "blue"));
    // status by hand asks the site by the name in the server block setup wrote.
    let verify = site.nginx.url("/health");
    let mut args = vec!["status".to_owned()];
    args.extend(site.app_args(crate::support::APP));
    args.extend(["--runtime", "command", "--json", "--verify-url", &verify].map(String::from));
    let status = crate::support::run(BLUEGREEN, &args);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        status.json()["site_answer"].as_str(),
        Some(format!("{verify} (asked as shop.example.com) answers from blue").as_str()),
        "{status:?}"
    );
}
