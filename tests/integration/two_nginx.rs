//! A switch onto a host with two nginx masters and no pid file to tell them apart, by hand
//! against real nginx and nftables: the switch finds the master serving the site by the
//! port the verify URL is asked on, waits until it has replaced its workers, and only
//! then returns, so the first request after it is answered by the new configuration.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{NftTable, SWITCH_TRAFFIC, Site, free_port, run};

#[test]
fn the_first_switch_onto_a_dead_include_waits_for_its_reload_twenty_times_of_twenty() {
    require!(Root, Nginx, Nftables);
    let app = format!("two-{}", free_port());
    // The site's nginx, whose include proxies to a port nothing listens on, and a second
    // nginx master on the same host.
    let site = Site::adopting(&app);
    let _other = Site::adopting(&format!("other-{}", free_port()));
    let _blue = site.demo("blue", "v1", &["--anonymous"]);
    let _table = NftTable::of_app(&app);
    let dead = std::fs::read_to_string(&site.nginx.upstream_file).unwrap();
    let service_port = free_port().to_string();
    let mut args = site.switch_args();
    args[1] = app.clone();
    for (flag, value) in [
        ("--mode", "nftables"),
        ("--nginx-pid-file", "/nonexistent/nginx.pid"),
    ] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = value.to_owned();
    }
    args.extend(["--service-port", &service_port, "--to", "blue"].map(String::from));

    for round in 1..=20 {
        // Back to the dead include, loaded, and no rule: a first switch again.
        std::fs::write(&site.nginx.upstream_file, &dead).unwrap();
        site.nginx.reload();
        let deadline = Instant::now() + Duration::from_secs(10);
        while site.nginx.get("/").0 != 502 {
            assert!(
                Instant::now() < deadline,
                "round {round}: nginx kept the old include"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("nft")
            .args([
                "delete",
                "table",
                "ip",
                &format!("bluegreen_{}", app.replace('-', "_")),
            ])
            .status();

        let switched = run(&SWITCH_TRAFFIC, &args);
        assert_eq!(switched.code, 0, "round {round}: {switched:?}");
        // The first requests after the switch returns, as the watch would send them.
        for request in 1..=5 {
            let (status, _, body) = site.nginx.get("/");
            assert_eq!(status, 200, "round {round}, request {request}: {body}");
        }
    }
}
