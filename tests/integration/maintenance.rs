//! Maintenance mode end to end: through the action (nftables mode), maintenance on, a
//! deploy, and off, under load, with every answer either the app's or the maintenance
//! page; by hand (`bluegreen maintenance`, reload mode), a page of one's own, a switch that
//! keeps it on, and status saying so.

use crate::support::{
    APP, BLUEGREEN, Site, Target, Traffic, assert_result, demo_image, free_port, http_get,
    http_get_retry_after, run,
};

#[test]
fn maintenance_on_then_a_deploy_then_off_under_load() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-maint");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let traffic = Traffic::accepting(t.site.nginx.url("/"), |status, retry_after, body| {
        status == 200
            || (status == 503
                && retry_after == Some("120")
                && body.contains("Down for maintenance"))
    });

    let on = t.run(&[
        ("COMMAND", "maintenance-on"),
        ("MAINTENANCE_RETRY_AFTER", "120"),
    ]);
    assert_result(&on, "changed");
    let (status, retry_after, body) = http_get_retry_after(&t.site.nginx.url("/"));
    assert_eq!(
        (status, retry_after.as_deref()),
        (503, Some("120")),
        "{body}"
    );
    let status_run = t.run(&[("COMMAND", "status")]);
    assert!(
        status_run.log.contains("maintenance: on since"),
        "{}",
        status_run.log
    );

    let deploy = t.run(&[("IMAGE", &image), ("VERSION", "v2")]);
    assert_result(&deploy, "deployed");
    t.settled();
    assert_eq!(
        http_get_retry_after(&t.site.nginx.url("/")).0,
        503,
        "the deploy kept maintenance on"
    );
    let (status, slot, body) = http_get(&format!("http://127.0.0.1:{}/", t.site.green_port));
    assert_eq!(
        (status, slot.as_str()),
        (200, "green"),
        "v2 runs behind the page: {body}"
    );

    let off = t.run(&[("COMMAND", "maintenance-off")]);
    assert_result(&off, "changed");
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    let seen = traffic.finish_seen();
    assert!(
        seen.bad.is_empty(),
        "every answer the app's or the page: {:?}",
        seen.bad
    );
    assert!(
        seen.statuses.get(&503).is_some_and(|n| *n > 0)
            && seen.statuses.get(&200).is_some_and(|n| *n > 0),
        "{:?}",
        seen.statuses
    );
}

#[test]
fn maintenance_by_hand_serves_ones_own_page_and_outlasts_a_switch() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    let page = site.tmp.path().join("page.html");
    std::fs::write(&page, "<p>back at five</p>").unwrap();
    let port = free_port().to_string();
    let maintenance = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["maintenance".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(site.switch_args());
        args.extend(["--maintenance-port".into(), port.clone()]);
        run(BLUEGREEN, &args)
    };
    let on = maintenance(&[
        "on",
        "--page",
        page.to_str().unwrap(),
        "--retry-after",
        "45",
    ]);
    assert_eq!(on.code, 0, "{on:?}");
    assert!(on.stdout.contains("maintenance-on shop: changed"), "{on:?}");
    let (status, retry_after, body) = http_get_retry_after(&site.nginx.url("/"));
    assert_eq!((status, retry_after.as_deref()), (503, Some("45")));
    assert_eq!(body, "<p>back at five</p>");
    assert_eq!(site.state()["maintenance"]["retry_after_seconds"], 45);
    let again = maintenance(&["on"]);
    assert!(
        again.stdout.contains("maintenance-on shop: unchanged"),
        "{again:?}"
    );

    assert_eq!(
        site.switch(&["--to", "green", "--app-version", "v2"]).code,
        0,
        "a switch during maintenance"
    );
    assert_eq!(http_get_retry_after(&site.nginx.url("/")).0, 503, "kept on");
    assert_eq!(site.state()["active"], "green");
    let status = run(
        BLUEGREEN,
        &[
            "status",
            "--app",
            APP,
            "--state-dir",
            site.state_dir.to_str().unwrap(),
            "--upstream-file",
            site.nginx.upstream_file.to_str().unwrap(),
            "--runtime",
            "command",
        ],
    );
    assert!(
        status.stdout.contains("shop: nginx routes to green")
            && status.stdout.contains("maintenance: on since"),
        "{status:?}"
    );

    let off = maintenance(&["off"]);
    assert_eq!(off.code, 0, "{off:?}");
    assert_eq!(site.served_slot(), "green");
    assert!(site.state().get("maintenance").is_none());
}

/// The reload that ends maintenance closes nginx's maintenance server while an old worker
/// may still hold a request it took before: that request reaches the live slot instead of
/// failing with 502. The request is held in the old worker by sending its headers in two
/// parts, the second after the reload.
#[test]
fn a_request_an_old_worker_holds_when_maintenance_ends_reaches_the_live_slot() {
    use std::io::{Read, Write};
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    let port = free_port().to_string();
    let maintenance = |on_off: &str| {
        let mut args: Vec<String> = vec!["maintenance".into(), on_off.into()];
        args.extend(site.switch_args());
        args.extend(["--maintenance-port".into(), port.clone()]);
        run(BLUEGREEN, &args)
    };
    let on = maintenance("on");
    assert_eq!(on.code, 0, "{on:?}");
    assert_eq!(http_get_retry_after(&site.nginx.url("/")).0, 503);

    let mut held = std::net::TcpStream::connect(("127.0.0.1", site.nginx.port)).unwrap();
    held.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    // Time for a worker of the maintenance configuration to take the connection.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let off = maintenance("off");
    assert_eq!(off.code, 0, "{off:?}");
    held.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = held.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("blue"),
        "the held request is answered by the live slot: {answer:?}"
    );
}
