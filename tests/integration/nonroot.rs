//! End to end (act, sshd, nginx, Docker): a deploy user that is not root, set up as the
//! README's "A deploy user that is not root" says: in the docker group, owning the state
//! directory and the directory of the upstream file, allowed by one sudoers line to test
//! and reload nginx. nftables needs root, so the default switch mode falls back to reload.
//! Then the same user's key restricted to `bluegreen gate`: a deploy through it says the
//! key can only deploy. With a sudoers line for `nft` too (`nft-command: sudo nft`), such a
//! user switches by nftables, and is told what only root can do.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::support::{Target, assert_result, demo_image, free_port};

/// A user of the test's own: no password, in the docker group. Removed on drop, with its
/// sudoers file.
struct DeployUser {
    name: String,
    home: tempfile::TempDir,
    sudoers: PathBuf,
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl DeployUser {
    fn create() -> DeployUser {
        let name = format!("bg{}", free_port());
        let home = tempfile::tempdir().unwrap();
        run_ok(
            Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--shell",
                    "/bin/sh",
                    "--groups",
                    "docker",
                ])
                .arg("--home-dir")
                .arg(home.path())
                .arg(&name),
        );
        // No password, but not locked (`!`): sshd without PAM refuses locked accounts.
        run_ok(Command::new("usermod").args(["--password", "*"]).arg(&name));
        run_ok(Command::new("chown").arg(&name).arg(home.path()));
        let sudoers = PathBuf::from(format!("/etc/sudoers.d/bluegreen-test-{name}"));
        DeployUser {
            name,
            home,
            sudoers,
        }
    }

    /// Gives the user what the README's set-up gives: the state directory and the upstream
    /// file's directory, and a sudoers line for nginx's test and reload commands of `t`;
    /// returns those two commands as the user runs them.
    fn allow(&self, t: &Target) -> (String, String) {
        let conf_dir = t.site.nginx.upstream_file.parent().unwrap();
        std::fs::create_dir_all(t.state_dir()).unwrap();
        for path in [conf_dir, &t.site.nginx.upstream_file, &t.state_dir()] {
            run_ok(Command::new("chown").arg(&self.name).arg(path));
        }
        let (test, reload) = (t.site.nginx.test_cmd(), t.site.nginx.reload_cmd());
        self.write_sudoers(&format!(
            "{} ALL=(root) NOPASSWD: {test}, {reload}\n",
            self.name
        ));
        (format!("sudo {test}"), format!("sudo {reload}"))
    }

    fn write_sudoers(&self, line: &str) {
        std::fs::write(&self.sudoers, line).unwrap();
        std::fs::set_permissions(&self.sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        run_ok(Command::new("visudo").arg("-cf").arg(&self.sudoers));
    }
}

impl Drop for DeployUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A deploy of `image` as `version` through sudo's nginx commands.
fn deploy_inputs<'a>(
    image: &'a str,
    version: &'a str,
    test_cmd: &'a str,
    reload_cmd: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("IMAGE", image),
        ("VERSION", version),
        ("NGINX_TEST_COMMAND", test_cmd),
        ("NGINX_RELOAD_COMMAND", reload_cmd),
    ]
}

#[test]
fn a_deploy_user_that_is_not_root_deploys_with_the_documented_set_up() {
    require!(Root, Nginx, Sshd, Docker, Act, Sudo);
    let user = DeployUser::create();
    let t = Target::for_user("e2e-nonroot", &user.name, user.home.path());
    let (test_cmd, reload_cmd) = user.allow(&t);
    let image = demo_image("v", &[]);
    let inputs = |version| deploy_inputs(&image, version, &test_cmd, &reload_cmd);
    let first = t.run(&inputs("u1"));
    assert_result(&first, "deployed");
    assert_eq!(first.output("switch-mode"), "reload", "{}", first.log);
    assert!(
        first.log.contains(&format!(
            "sudo lets {} run `{reload_cmd}` without a password",
            user.name
        )),
        "{}",
        first.log
    );
    // The set-up is root-equivalent, and the run says so, naming how.
    let privilege = format!("{} is not root, but may use the Docker daemon", user.name);
    assert!(
        first.log.lines().any(|l| l.contains("::warning::")
            && l.contains(&privilege)
            && l.contains("whose files root's nginx loads")),
        "{}",
        first.log
    );
    assert_eq!(t.live(), ("blue".into(), "u1".into()));
    let second = t.run(&inputs("u2"));
    assert_result(&second, "deployed");
    assert_eq!(t.live(), ("green".into(), "u2".into()));
    t.settled();
    let owner = Command::new("stat")
        .args(["--format", "%U"])
        .arg(t.state_dir().join("state.json"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), user.name);

    // The same user with its key restricted to the gate: the key can only deploy, and the
    // run says so instead of warning. Reload mode records no service port, so the run
    // names none (the gate takes only the one state records).
    crate::gate::restrict_to_the_gate(&t, &test_cmd, &reload_cmd);
    let mut gated = inputs("u3");
    gated.push(("SERVICE_PORT", ""));
    let through_gate = t.run(&gated);
    assert_result(&through_gate, "deployed");
    assert!(
        through_gate
            .log
            .contains("the key of this run is restricted by bluegreen gate"),
        "{}",
        through_gate.log
    );
    assert!(
        !through_gate
            .log
            .lines()
            .any(|l| l.contains("::warning::") && l.contains(&privilege)),
        "{}",
        through_gate.log
    );
    assert_eq!(t.live(), ("blue".into(), "u3".into()));
    t.settled();

    // Without the sudoers line the reload is found refused at validation, before anything
    // starts, with the line to add.
    user.write_sudoers("# nothing allowed\n");
    let mut refused = inputs("u4");
    refused.push(("SERVICE_PORT", ""));
    let refused = t.run(&refused);
    assert_result(&refused, "failed");
    assert!(
        refused.log.contains(&format!(
            "sudo does not let {} run `{reload_cmd}` without a password (nginx-reload-command)",
            user.name
        )),
        "{}",
        refused.log
    );
    assert!(!t.container_running("green"), "nothing was started");
    assert_eq!(t.live(), ("blue".into(), "u3".into()));
}

#[test]
fn a_deploy_user_with_sudo_nft_switches_by_nftables_and_is_told_what_needs_root() {
    require!(Root, Nginx, Sshd, Docker, Act, Sudo, Nftables);
    let user = DeployUser::create();
    let t = Target::for_user("e2e-nonroot-nft", &user.name, user.home.path());
    let (test_cmd, reload_cmd) = user.allow(&t);
    let nft = String::from_utf8(Command::new("which").arg("nft").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    user.write_sudoers(&format!(
        "{} ALL=(root) NOPASSWD: {}, {}, {nft}\n",
        user.name,
        t.site.nginx.test_cmd(),
        t.site.nginx.reload_cmd()
    ));
    let image = demo_image("v", &[]);
    let inputs = |version| {
        let mut inputs = deploy_inputs(&image, version, &test_cmd, &reload_cmd);
        inputs.push(("NFT_COMMAND", "sudo nft"));
        inputs
    };
    let first = t.run(&inputs("n1"));
    assert_result(&first, "deployed");
    assert_eq!(first.output("switch-mode"), "nftables", "{}", first.log);
    // The second switch leaves blue's port: the kernel's unanswered handshakes to it can
    // only be forgotten by root, and the run says so instead of claiming it.
    let second = t.run(&inputs("n2"));
    assert_result(&second, "deployed");
    assert!(
        second.log.contains(&format!(
            "conntrack: not permitted to look for handshakes that port {} had not answered",
            t.site.blue_port
        )),
        "{}",
        second.log
    );
    assert!(!second.log.contains("conntrack: forgot"), "{}", second.log);
    assert_eq!(t.live(), ("green".into(), "n2".into()));
}
