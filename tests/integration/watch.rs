//! The watch after the switch judged on the users' requests, end to end (act, sshd, nginx,
//! Docker): a release whose health URL answers while its pages fail is rolled back by its
//! watch, in both switch modes, with an app that does not name its slot, and breaks
//! `max-failed-requests: 0`, which a healthy release under load passes; the run's receipt
//! counts the failures its clients saw, and a healthy release's none; in reload mode it
//! names the client connections open to nginx at the reload, which its log cannot see.

use crate::support::{Target, Traffic, assert_result, demo_image};

#[test]
fn a_release_whose_pages_fail_is_rolled_back_by_its_watch_in_both_modes() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let anonymous = ("DEMO_ANONYMOUS", "true");
    let good = demo_image("anon", &[anonymous]);
    let bad = demo_image("anon-fails-20", &[anonymous, ("DEMO_ERROR_RATE", "0.2")]);
    for mode in ["reload", "nftables"] {
        let t = Target::new(&format!("e2e-watch-{mode}"));
        let inputs = |image: &str, version: &str| {
            [
                ("IMAGE", image.to_owned()),
                ("VERSION", version.to_owned()),
                ("SWITCH_MODE", mode.to_owned()),
                ("MONITOR_DURATION", "3".to_owned()),
                // Not one failed request allowed: a healthy release under load passes it.
                ("MAX_FAILED_REQUESTS", "0".to_owned()),
            ]
        };
        let run = |image: &str, version: &str| {
            let inputs = inputs(image, version);
            let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            t.run(&pairs)
        };
        assert_result(&run(&good, "v1"), "deployed");
        t.settled();
        let clients: Vec<Traffic> = (0..2)
            .map(|_| Traffic::start(t.site.nginx.url("/")))
            .collect();
        // The watch probes the health URL (the target's verify URL), which answers.
        let failed = run(&bad, "v2");
        let seen: Vec<Vec<String>> = clients.into_iter().map(|c| c.finish().1).collect();
        let clients_saw_fail = seen
            .iter()
            .flatten()
            .filter(|b| b.starts_with("HTTP 500"))
            .count();
        let clients = vec![Traffic::start(t.site.nginx.url("/"))];
        let passed = run(&good, "v3");
        for client in clients {
            client.finish();
        }
        assert_result(&failed, "rolled-back");
        // The receipt counts what the clients saw: every failure came while v2 served, between
        // the run's start and its end, which the clients' requests span.
        assert_eq!(
            failed.output("failed-requests"),
            clients_saw_fail.to_string(),
            "{mode}: {}",
            failed.log
        );
        assert!(clients_saw_fail > 0, "{mode}");
        assert!(
            failed.log.contains("receipt: ")
                && failed.log.contains(&format!(
                    "{clients_saw_fail} failed, longest without a successful answer"
                )),
            "{mode}: {}",
            failed.log
        );
        let watch_line = failed
            .log
            .lines()
            .find(|l| l.contains("FAILED monitor ("))
            .unwrap_or_else(|| panic!("{mode}: the watch failed: {}", failed.log));
        assert!(
            watch_line.contains("users' requests to the new slot failed")
                && watch_line.contains("above max-failed-requests 0")
                && watch_line.contains("probes: ")
                && watch_line.contains("(judged)"),
            "{mode}: {watch_line}"
        );
        assert_result(&passed, "deployed");
        assert_eq!(
            passed.output("failed-requests"),
            "0",
            "{mode}: {}",
            passed.log
        );
        assert!(
            passed.output("requests").parse::<u64>().unwrap() > 0,
            "{mode}"
        );
        assert!(
            passed.log.lines().any(|l| l.contains("ok monitor (")
                && l.contains("0 of ")
                && l.contains("(judged)")),
            "{mode}: a healthy release is judged on the users' requests too: {}",
            passed.log
        );
        assert_eq!(t.live().1, "v3", "{mode}");
    }
}

#[test]
fn the_receipt_names_the_client_connections_a_reload_put_at_risk() {
    require!(Root, Nginx, Sshd, Docker, Act, Nftables);
    let image = demo_image("v", &[]);
    for mode in ["reload", "nftables"] {
        let t = Target::new(&format!("e2e-atrisk-{mode}"));
        let run = |version: &str| {
            t.run(&[
                ("IMAGE", image.as_str()),
                ("VERSION", version),
                ("SWITCH_MODE", mode),
            ])
        };
        assert_result(&run("v1"), "deployed");
        t.settled();
        // Three clients with a connection open to nginx and nothing in flight, as idle
        // keep-alive clients have.
        let port = t.site.nginx.port;
        let idle: Vec<std::net::TcpStream> = (0..3)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let deployed = run("v2");
        drop(idle);
        assert_result(&deployed, "deployed");
        let receipt = deployed
            .log
            .lines()
            .find(|l| l.contains("receipt: "))
            .unwrap_or_else(|| panic!("{mode}: a receipt: {}", deployed.log));
        if mode == "reload" {
            let open: u32 = receipt
                .split("1 reload of nginx with ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("one reload, its connections counted: {receipt}"));
            assert!(open >= 3, "the three idle clients at least: {receipt}");
        } else {
            assert!(
                !receipt.contains("at risk"),
                "nftables mode reloads nothing: {receipt}"
            );
        }
    }
}
