//! The boot path for a deploy user that is not root, by hand against real nftables: root
//! installs it once with `bluegreen restore --install` (a run of that user cannot), the
//! unit names the user's state directory and its owner, nothing is written into that
//! directory, and what the unit runs at boot re-creates the rule from the user's state.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::support::{BLUEGREEN, NftTable, free_port, run};

#[test]
fn root_installs_the_boot_path_of_a_state_directory_another_user_owns() {
    require!(Root, Nftables);
    let tmp = tempfile::tempdir().unwrap();
    let app = format!("boot-{}", free_port());
    let _table = NftTable::of_app(&app);
    let (service, blue) = (free_port(), free_port());
    // The deploy user's state directory (nobody here), as a deploy left it.
    let state_dir = tmp.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    std::fs::write(
        state_dir.join("state.json"),
        format!(
            r#"{{"format":1,"app":"{app}","active":"blue","previous":null,"switched_at":"t","slots":{{"blue":{{"port":{blue}}},"green":{{"port":{}}}}},"switch_mode":"nftables","service_port":{service}}}"#,
            free_port()
        ),
    )
    .unwrap();
    for path in [&state_dir, &state_dir.join("state.json")] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&state_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();

    let (units, helpers) = (tmp.path().join("systemd"), tmp.path().join("lib/bluegreen"));
    let installed = run(
        BLUEGREEN,
        &[
            "restore",
            "--app",
            &app,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--install",
            "--systemd-unit-dir",
            units.to_str().unwrap(),
            "--boot-helper-dir",
            helpers.to_str().unwrap(),
        ],
    );
    assert_eq!(installed.code, 0, "{installed:?}");
    assert_eq!(
        listing(),
        before,
        "nothing is written into the user's state directory"
    );
    let helper = helpers.join("bluegreen");
    assert_eq!(std::fs::metadata(&helper).unwrap().uid(), 0);
    let unit =
        std::fs::read_to_string(units.join(format!("bluegreen-restore-{app}.service"))).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let argv = shell_words::split(exec).unwrap();
    assert_eq!(argv[0], helper.to_str().unwrap());
    assert!(exec.contains("\"--state-owner\" \"65534\""), "{exec}");

    // At boot: the rule comes back from the user's state.
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = format!("bluegreen_{}", app.replace('-', "_"));
    let rules = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        rules.contains(&format!("tcp dport {service}"))
            && rules.contains(&format!("dnat to 127.0.0.1:{blue}")),
        "{rules}"
    );
}
