//! The README's Quick start, taken literally from the README, on the host a new user has:
//! Debian's nginx with its default site (`server_name _`, the default server of the port).
//! Its setup step, then its deploy step with a good release, then with a release that fails
//! half of its pages: the first deploy goes live, and the watch after the switch rolls the
//! broken one back.
//!
//! What the throwaway target changes: its own host, user, key, known hosts and Slack
//! stand-in for the README's secrets; a unique app name for `shop`; the test's images for
//! `image`; the test nginx's port for port 80 (in the URLs and setup's `listen`); and the
//! harness's inputs for every run (see `Target`): where that nginx keeps its files, its own
//! service and maintenance ports, `pull: never`, and a 2 s watch instead of 30 s.

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{Target, assert_result, demo_image, http_get, http_get_as};

/// The steps of the README's Quick start workflow.
fn quick_start_steps() -> Vec<Yaml> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let yaml: String = readme
        .lines()
        .skip_while(|l| *l != "## Quick start")
        .skip_while(|l| *l != "```yaml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    let steps = YamlLoader::load_from_str(&yaml).unwrap().remove(0);
    steps
        .as_vec()
        .expect("the Quick start is a list of steps")
        .clone()
}

/// `step`'s inputs as a run of `t` takes them (BG_ names), `image` for its image.
fn inputs_of(step: &Yaml, t: &Target, image: &str) -> Vec<(String, String)> {
    assert_eq!(
        step["uses"].as_str(),
        Some("org/bluegreen-action@v1"),
        "{step:?}"
    );
    let address = "http://127.0.0.1/";
    let here = format!("http://127.0.0.1:{}/", t.site.nginx.port);
    // The harness's own verify URL is not the README's: only what the step says counts.
    let mut inputs = vec![
        ("VERIFY_URL".to_owned(), String::new()),
        ("MONITOR_URL".to_owned(), String::new()),
    ];
    for (key, value) in step["with"].as_hash().expect("a step has inputs") {
        let key = key.as_str().unwrap();
        let value = match value {
            Yaml::String(s) => s.clone(),
            Yaml::Integer(n) => n.to_string(),
            other => panic!("input {key}: {other:?}"),
        };
        match key {
            "host" | "ssh-key" | "known-hosts" | "slack-webhook" => {
                assert!(value.starts_with("${{ secrets."), "{key}: {value}");
            }
            "username" => {}
            "app" => inputs.push(("APP".into(), t.app.clone())),
            "image" => inputs.push(("IMAGE".into(), image.to_owned())),
            _ => {
                assert!(!value.contains("${{"), "{key}: {value}");
                inputs.push((
                    key.to_uppercase().replace('-', "_"),
                    value.replace(address, &here),
                ));
            }
        }
    }
    inputs
}

/// Runs the action on `t` with `inputs` (BG_ names) after the target's own.
fn run(t: &Target, inputs: &[(String, String)]) -> crate::support::ActRun {
    let inputs: Vec<(&str, &str)> = inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    t.run(&inputs)
}

#[test]
fn the_quick_start_as_written_works_on_debians_nginx_and_rolls_back_a_release_failing_half_its_pages()
 {
    require!(Root, Nginx, Sshd, Docker, Act);
    let good = demo_image("v", &[]);
    let half_broken = demo_image("fails-half", &[("DEMO_ERROR_RATE", "0.5")]);
    let t = Target::debian("quick-start");
    let steps = quick_start_steps();
    let [setup, deploy] = steps.as_slice() else {
        panic!("the Quick start has a setup step and a deploy step: {steps:?}");
    };
    let name = setup["with"]["server-name"].as_str().unwrap();
    assert_eq!(
        deploy["with"]["server-name"].as_str(),
        None,
        "setup's alone"
    );
    // What a request by address gets here: Debian's default site.
    assert_eq!(http_get(&t.site.nginx.url("/health")).0, 404);

    let set_up = run(&t, &inputs_of(setup, &t, ""));
    assert_result(&set_up, "changed");

    let first = run(&t, &inputs_of(deploy, &t, &good));
    assert_result(&first, "deployed");
    let (status, slot, body) = http_get_as(&t.site.nginx.url("/"), name);
    assert_eq!((status, slot.as_str()), (200, "blue"), "{body}");
    // The address alone still reaches the default site: the deploy's checks asked as the
    // site's name.
    assert_eq!(http_get(&t.site.nginx.url("/health")).0, 404);

    let broken = run(&t, &inputs_of(deploy, &t, &half_broken));
    assert_result(&broken, "rolled-back");
    assert!(
        broken.log.contains("FAILED monitor"),
        "the watch of a page saw the failures: {}",
        broken.log
    );
    for _ in 0..10 {
        let (status, slot, body) = http_get_as(&t.site.nginx.url("/"), name);
        assert_eq!((status, slot.as_str()), (200, "blue"), "{body}");
    }
}
