//! `bluegreen status` by hand against a real nginx and real slots: what state records, what
//! nginx really routes to, what each slot answers, and an exit code that says whether
//! something needs a look.

use crate::support::{APP, BLUEGREEN, Site, run};

/// `bluegreen status` for `site` (command runtime: the slots are plain processes).
fn status(site: &Site, json: bool) -> crate::support::Run {
    status_with(site, json, &[])
}

/// [`status`] with `extra` arguments.
fn status_with(site: &Site, json: bool, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "status".to_owned(),
        "--app".into(),
        APP.into(),
        "--state-dir".into(),
        site.state_dir.display().to_string(),
        "--upstream-file".into(),
        site.nginx.upstream_file.display().to_string(),
        "--runtime".into(),
        "command".into(),
    ];
    if json {
        args.push("--json".into());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    run(BLUEGREEN, &args)
}

#[test]
fn status_reports_state_routing_and_each_slot_and_takes_ports_from_state() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    // No port flags: the ports come from state.json (this site's are not 3001/3002).
    let r = status(&site, true);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["routed"], "blue", "{report}");
    assert_eq!(report["active"], "blue", "{report}");
    assert_eq!(report["slots"][0]["port"], site.blue_port, "{report}");
    assert_eq!(report["slots"][0]["version"], "v1", "{report}");
    assert_eq!(report["slots"][0]["healthy"], true, "{report}");
    assert_eq!(report["slots"][1]["healthy"], false, "{report}");
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
    assert!(
        report["history"][0].as_str().unwrap().contains("switch"),
        "{report}"
    );

    let text = status(&site, false);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .starts_with("shop: nginx routes to blue; state: active blue, previous none"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(&format!(
            "blue: port {}, version v1, healthy",
            site.blue_port
        )),
        "{}",
        text.stdout
    );
}

#[test]
fn status_says_when_nginx_routes_elsewhere_than_state_records() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    // A hand edit of the upstream file to green, and a reload: state still says blue.
    std::fs::write(
        &site.nginx.upstream_file,
        format!(
            "upstream {APP} {{\n    server 127.0.0.1:{};\n}}\n",
            site.green_port
        ),
    )
    .unwrap();
    site.nginx.reload();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while site.served_slot() != "green" {
        assert!(std::time::Instant::now() < deadline, "nginx did not reload");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let r = status(&site, true);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(
        (report["active"].as_str(), report["routed"].as_str()),
        (Some("blue"), Some("green")),
        "{report}"
    );
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("state says blue is live but nginx routes to green"),
        "{report}"
    );
}

#[test]
fn status_reads_the_server_lines_and_refuses_an_app_it_does_not_know() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    assert_eq!(
        site.switch(&["--to", "blue", "--app-version", "v1"]).code,
        0
    );
    // A hand edit of the server line only: the marker comment still says blue.
    let include = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    let edited = include.replace(&format!("127.0.0.1:{};", site.blue_port), "127.0.0.1:9;");
    assert_ne!(edited, include);
    std::fs::write(&site.nginx.upstream_file, edited).unwrap();
    let r = status(&site, true);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(report["routed"], serde_json::Value::Null, "{report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("nginx routes to neither slot's port"),
        "{report}"
    );

    // An app that is not here (a typo), or a wrong state directory: an error, not "none".
    let unknown = run(
        BLUEGREEN,
        &[
            "status",
            "--app",
            "shpo",
            "--state-dir",
            &site.tmp.path().join("nowhere").display().to_string(),
            "--upstream-file",
            &site.nginx.upstream_file.display().to_string(),
            "--runtime",
            "command",
        ],
    );
    assert_ne!(unknown.code, 0, "{unknown:?}");
    assert!(
        format!("{}{}", unknown.stdout, unknown.stderr).contains("no app shpo here"),
        "{unknown:?}"
    );
}

#[test]
fn status_asks_the_site_and_says_when_nginx_serves_another_slot_than_its_files_name() {
    require!(Nginx);
    let site = Site::new();
    let _blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    assert_eq!(
        site.switch(&["--to", "green", "--app-version", "v2"]).code,
        0
    );
    let verify = site.nginx.url("/health");
    let r = status_with(&site, true, &["--verify-url", &verify]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["site_answer"].as_str(),
        Some(format!("{verify} answers from green").as_str()),
        "{r:?}"
    );

    // The files say blue, as a switch does, but nginx has not loaded them: it serves green.
    let include = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    std::fs::write(
        &site.nginx.upstream_file,
        include
            .replace(&site.green_port.to_string(), &site.blue_port.to_string())
            .replace("green", "blue"),
    )
    .unwrap();
    let state_path = site.state_dir.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["active"] = "blue".into();
    state["previous"] = "green".into();
    std::fs::write(&state_path, state.to_string()).unwrap();
    assert_eq!(site.served_slot(), "green");
    // Without asking the site, nothing looks wrong.
    let r = status(&site, true);
    assert_eq!(r.code, 0, "{r:?}");
    let r = status_with(&site, true, &["--verify-url", &verify]);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert_eq!(report["routed"].as_str(), Some("blue"), "{report}");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("answers from \"green\", but nginx's include routes to blue"),
        "{report}"
    );

    // A site that does not answer at all.
    let nothing = format!("http://127.0.0.1:{}/health", crate::support::free_port());
    let r = status_with(&site, false, &["--verify-url", &nothing]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("the site does not answer 2xx"), "{r:?}");
}
