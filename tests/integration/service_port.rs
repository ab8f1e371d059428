//! The service port of the nftables mode is each app's own, by hand with the helpers against
//! real nginx and nftables: the port state records is the one every helper uses, a flag
//! that contradicts it is refused, two apps on one host get different ports by default, and
//! validation refuses a port a slot, another app's table or another process holds.

use std::net::TcpListener;

use crate::support::{NftTable, SWITCH_TRAFFIC, Site, VALIDATE, free_port, run};

/// switch-traffic's arguments for `app` on `site` in nftables mode, with `extra`.
fn nft_args(site: &Site, app: &str, extra: &[&str]) -> Vec<String> {
    let mut args = site.switch_args();
    args[1] = app.to_owned();
    let mode = args.iter().position(|a| a == "--mode").unwrap();
    args[mode + 1] = "nftables".into();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// validate's arguments for `app` on `site` in nftables mode, with `extra`.
fn validate(site: &Site, app: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = site.validate_args(app);
    args.extend(["--runtime", "command", "--mode", "nftables"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&VALIDATE, &args)
}

/// The check `name` of a validate report: its status and detail.
fn check(report: &serde_json::Value, name: &str) -> (String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"));
    (
        c["status"].as_str().unwrap().to_owned(),
        c["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The service port the app's table sends on (from `nft list table`).
fn rule_port(app: &str) -> String {
    let table = format!("bluegreen_{}", app.replace('-', "_"));
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let after = text
        .split("tcp dport ")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    after.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn the_port_state_records_is_the_one_every_helper_uses() {
    require!(Root, Nginx, Nftables);
    let app = format!("svc-{}", free_port());
    let site = Site::adopting(&app);
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    let _table = NftTable::of_app(&app);
    let service_port = free_port().to_string();

    let first = run(
        &SWITCH_TRAFFIC,
        &nft_args(
            &site,
            &app,
            &["--service-port", &service_port, "--to", "blue"],
        ),
    );
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(site.state()["service_port"].to_string(), service_port);

    // Without the flag, the next switch uses the recorded port, not a default.
    let second = run(&SWITCH_TRAFFIC, &nft_args(&site, &app, &["--to", "green"]));
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(rule_port(&app), service_port);
    assert_eq!(site.state()["service_port"].to_string(), service_port);
    assert!(
        std::fs::read_to_string(&site.nginx.upstream_file)
            .unwrap()
            .contains(&format!("127.0.0.1:{service_port};"))
    );
    assert_eq!(site.served_slot(), "green");

    // A flag that contradicts state is refused, and nothing changes.
    let other = free_port().to_string();
    let refused = run(
        &SWITCH_TRAFFIC,
        &nft_args(&site, &app, &["--service-port", &other, "--to", "blue"]),
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("{other} is not the service port {service_port}")),
        "{refused:?}"
    );
    assert_eq!(rule_port(&app), service_port);
    assert_eq!(site.served_slot(), "green");

    // validate without the flag reads the live rule, not a table to be created.
    let report = validate(&site, &app, &[]).json();
    let (status, detail) = check(&report, "nftables");
    assert_eq!(status, "pass", "{report}");
    assert!(
        detail.contains(&format!(
            "service port {service_port} leads to port {}",
            site.green_port
        )),
        "{report}"
    );
    assert_eq!(check(&report, "service-port").0, "pass", "{report}");
}

#[test]
fn a_second_app_gets_a_port_of_its_own_and_cannot_take_the_first_apps() {
    require!(Root, Nginx, Nftables);
    let first_app = format!("one-{}", free_port());
    let second_app = format!("two-{}", free_port());
    let first = Site::adopting(&first_app);
    let second = Site::adopting(&second_app);
    let _first_blue = first.demo("blue", "first", &[]);
    let _second_blue = second.demo("blue", "second", &[]);
    let _tables = (NftTable::of_app(&first_app), NftTable::of_app(&second_app));

    // Both with the defaults: each app's own port, each site its own app.
    for (site, app) in [(&first, &first_app), (&second, &second_app)] {
        let switched = run(&SWITCH_TRAFFIC, &nft_args(site, app, &["--to", "blue"]));
        assert_eq!(switched.code, 0, "{switched:?}");
    }
    let first_port = rule_port(&first_app);
    assert_ne!(first_port, rule_port(&second_app));
    let in_range = |p: &str| (20000..30000).contains(&p.parse::<u32>().unwrap());
    assert!(in_range(&first_port), "{first_port}");
    assert_eq!(first.nginx.get("/").0, 200);
    assert_eq!(second.nginx.get("/").0, 200);
    assert_eq!(
        (first.served_slot(), second.served_slot()),
        ("blue".to_owned(), "blue".to_owned())
    );

    // A third app on the host, asked for the first app's port: refused, naming its table.
    let third_app = format!("three-{}", free_port());
    let third = Site::adopting(&third_app);
    let _third_table = NftTable::of_app(&third_app);
    let report = validate(&third, &third_app, &["--service-port", &first_port]);
    assert_eq!(report.code, 1, "{report:?}");
    let (status, detail) = check(&report.json(), "service-port");
    assert_eq!(status, "fail");
    let table = format!("bluegreen_{}", first_app.replace('-', "_"));
    assert!(
        detail.contains(&format!("the nftables table {table}")),
        "{detail}"
    );

    // A port another process listens on: refused, naming the process.
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port().to_string();
    let report = validate(&third, &third_app, &["--service-port", &taken]);
    let (status, detail) = check(&report.json(), "service-port");
    assert_eq!(status, "fail", "{detail}");
    assert!(detail.contains("which listens on it"), "{detail}");

    // A slot's own port: refused before anything runs.
    let slot = third.blue_port.to_string();
    let refused = run(
        &SWITCH_TRAFFIC,
        &nft_args(
            &third,
            &third_app,
            &["--service-port", &slot, "--to", "green"],
        ),
    );
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("is a slot's port"), "{refused:?}");
}
