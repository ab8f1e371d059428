//! The gate's decisions: the requests it answers, the docker-args it takes, what root
//! gives it, and images by name.

use super::*;
use crate::action::ship;

fn policy() -> Policy {
    Policy {
        dirs: vec![
            PathBuf::from("/srv/shop/uploads"),
            PathBuf::from("/srv/shop/media"),
        ],
        networks: vec!["shopnet".into()],
        ..Policy::defaults(vec!["shop".parse().unwrap()])
    }
}

fn shop() -> AppName {
    "shop".parse().unwrap()
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn the_actions_requests_pass_and_everything_else_gets_one_line() {
    let start = shell_words::join(["sh", "-c", ship::RUN, "sh", "x86_64=abc"]);
    assert_eq!(Request::of(Some(&start)), Ok(Request::Deploy));
    assert_eq!(
        Request::of(Some("docker image inspect --format '{{.Id}}' shop:2")),
        Ok(Request::InspectImage("shop:2".parse().unwrap()))
    );
    let upload = shell_words::join(["sh", "-c", ship::UPLOAD, "sh", "/x/bluegreen", "abc"]);
    for (request, said) in [
        (
            None,
            "refused: this key runs bluegreen's deploy requests only, not a shell",
        ),
        (
            Some(""),
            "refused: this key runs bluegreen's deploy requests only, not a shell",
        ),
        (
            Some("id"),
            "refused: `id`: this key runs bluegreen's deploy requests only",
        ),
        (
            Some("sh -c 'id; cat /etc/shadow'"),
            "refused: `sh`: this key runs bluegreen's deploy requests only",
        ),
        (
            Some(upload.as_str()),
            "refused: the helper is installed on this host for this key, and uploads are not taken",
        ),
        (
            Some("docker run --privileged -v /:/host alpine"),
            "refused: `docker`: this key runs bluegreen's deploy requests only",
        ),
        (
            Some("'unclosed"),
            "refused: the request is not a command line",
        ),
    ] {
        assert_eq!(Request::of(request), Err(said.to_owned()), "{request:?}");
    }
}

#[test]
fn docker_args_that_keep_the_container_in_its_box_pass() {
    let ok = args(&[
        "--memory",
        "512m",
        "-e",
        "RUST_LOG=info",
        "--env=A=b",
        "--init",
        "-v",
        "/srv/shop/uploads:/data",
        "-v",
        "shop_cache:/cache",
        "-v",
        "/srv/shop/uploads:/u:ro",
        "-e",
        "EMPTY=",
        "--ulimit",
        "nofile=4096:8192",
        "-v",
        "/scratch",
        "--mount",
        "type=volume,source=shop_media,target=/m",
        "-l",
        "team=web",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=10m",
        "--mount",
        "type=bind,source=/srv/shop/media,target=/media,readonly",
        "--mount",
        "type=tmpfs,target=/tmp",
        "--network",
        "shopnet",
    ]);
    assert_eq!(
        policy().docker_args_refusals(&shop(), &ok),
        Vec::<String>::new()
    );
}

#[test]
fn docker_args_that_escape_the_container_are_each_refused() {
    let p = policy();
    assert_eq!(
        p.docker_args_refusals(&shop(), &args(&["--privileged", "-v", "/:/host"])),
        [
            "docker-args --privileged: not among the options this key may pass (they keep the container in its box: no --privileged, host namespaces, added capabilities, devices or security options)",
            "docker-args -v /:/host: / is not a directory this key may give a container (/srv/shop/uploads, /srv/shop/media)",
        ]
    );
    for bad in [
        &["--privileged"][..],
        &["--pid=host"],
        &["--pid", "host"],
        &["--ipc=host"],
        &["--uts=host"],
        &["--userns=host"],
        &["--cap-add", "SYS_ADMIN"],
        &["--cap-add=ALL"],
        &["--device", "/dev/sda"],
        &["--security-opt", "seccomp=unconfined"],
        &["--volumes-from", "other"],
        &["--network", "host"],
        &["--net=container:db"],
        &["-v", "/:/host"],
        &["-v", "/srv/shop/uploads/../../../etc:/etc2"],
        &["-v", "/srv/shop/uploads/link:/data"],
        &["--network", "otherapp_db"],
        &["-v", ".:/h"],
        &["-v", "./../..:/host"],
        &["-v", "~/.ssh:/k"],
        &["-v", "billing_pgdata:/x"],
        &["-v", "shop-admin_pgdata:/x"],
        &["--mount", "type=volume,src=shop-admin-blue_db,target=/x"],
        &["-v", "/srv/shop/uploads:/u:rshared"],
        &["-v", "/srv/shop/uploads:/u:z"],
        &["-e", "AWS_SECRET_ACCESS_KEY"],
        &["--env=HTTP_PROXY"],
        &["--ulimit", "rtprio=99"],
        &["--mount", "type=volume,type=bind,source=/,target=/host"],
        &[
            "--mount",
            "type=bind,source=/srv/shop/uploads,source=/,target=/host",
        ],
        &["--mount", "\"type=bind\",source=/,target=/host"],
        &["--mount", "type=volume,src=billing_data,target=/x"],
        &[
            "--mount",
            "type=bind,src=/srv/shop/uploads,target=/u,bind-propagation=rshared",
        ],
        &["-l", "bluegreen.app=billing"],
        &["--label=com.docker.compose.project=billing-green"],
        &["--log-driver", "syslog"],
        &["--log-opt", "syslog-address=unix:///run/docker.sock"],
        &["--volume=/var/run/docker.sock:/var/run/docker.sock"],
        &["--mount", "type=bind,source=/etc,target=/etc2"],
        &[
            "--mount",
            "type=volume,target=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/",
        ],
        &["--env-file", "/root/.env"],
        &["--privileged=true"],
        &["--label-file", "/etc/shadow"],
        &["--runtime", "runc"],
        &["--gpus", "all"],
        &["--sysctl", "net.ipv4.ip_forward=1"],
        &["alpine"],
        &["--memory"],
    ] {
        let refusals = p.docker_args_refusals(&shop(), &args(bad));
        assert_eq!(refusals.len(), 1, "{bad:?}: {refusals:?}");
        assert!(refusals[0].starts_with("docker-args "), "{refusals:?}");
    }
}

#[test]
fn what_root_gives_a_container_must_be_root_s_to_swap() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let safe = tmp.path().join("data");
    std::fs::create_dir(&safe).unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir(shared.join("data")).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink("/", &link).unwrap();
    let env = tmp.path().join("env");
    std::fs::write(&env, "A=b\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o666)).unwrap();
    let given = Policy {
        dirs: vec![safe.clone(), shared.join("data"), link.clone()],
        env_files: vec![env.clone()],
        ..policy()
    };
    let said = given.unsafe_given();
    let about = |path: &Path| {
        said.iter()
            .filter(|l| l.contains(&*path.display().to_string()))
            .count()
    };
    assert_eq!(about(&link), 1, "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.starts_with(&format!("--dir {}: not a directory", link.display())))
    );
    assert!(
        said.iter().any(|l| l.starts_with(&format!(
            "--dir {}: its parent must be root's alone",
            shared.join("data").display()
        ))),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|l| l.starts_with(&format!("--env-file {}: not root's alone", env.display()))),
        "{said:?}"
    );
}

#[test]
fn an_image_is_of_a_given_repository_to_the_letter() {
    let p = Policy {
        images: vec!["ghcr.io/acme/shop".into(), "shop".into()],
        ..policy()
    };
    let allows = |reference: &str| p.allows_image(&reference.parse().unwrap());
    assert!(allows("ghcr.io/acme/shop:v2"));
    assert!(allows(
        "ghcr.io/acme/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    ));
    assert!(allows(
        "ghcr.io/acme/shop:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    ));
    assert!(allows("shop:2"));
    for other in [
        "docker.io/ghcr.io/acme/shop:x",
        "library/ghcr.io/acme/shop:x",
        "docker.io/library/shop:2",
        "ghcr.io/acme/shop-admin:v1",
        "ghcr.io/acme/billing:v1",
        "evil.io/ghcr.io/acme/shop:v1",
    ] {
        assert!(!allows(other), "{other}");
    }
}
