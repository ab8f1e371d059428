//! Test harness shared by the integration tests: real nginx from the system's packages
//! under its own prefix on a loopback port, the demo app on loopback ports, and helpers to
//! run the built helper binaries. Everything a test starts is stopped by pid when the
//! handle is dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const VALIDATE: &str = env!("CARGO_BIN_EXE_validate");
pub const HEALTH_CHECK: &str = env!("CARGO_BIN_EXE_health-check");
pub const SWITCH_TRAFFIC: &str = env!("CARGO_BIN_EXE_switch-traffic");
pub const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");
pub const DEMO_APP: &str = env!("CARGO_BIN_EXE_demo-app");

/// The app name every test deploys.
pub const APP: &str = "shop";

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of nginx from the system's packages.
pub fn nginx_bin() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// A finished helper run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs a helper binary with `args` and collects its output.
pub fn run<S: AsRef<std::ffi::OsStr>>(bin: &str, args: &[S]) -> Run {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running demo app; killed on drop.
pub struct Demo {
    child: Child,
    pub port: u16,
}

impl Demo {
    /// Starts the demo app for `slot` on `port` with extra flags, and waits for it to listen.
    pub fn start(port: u16, slot: &str, version: &str, extra: &[&str]) -> Demo {
        let child = Command::new(DEMO_APP)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--slot", slot, "--app-version", version])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo app starts");
        wait_for_port(port, Duration::from_secs(10));
        Demo { child, port }
    }

    /// The demo app's health URL.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real nginx under its own prefix, proxying 127.0.0.1:`port` to the upstream named
/// after the app in `upstream_file`. Stopped (master and workers) on drop.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub upstream_file: PathBuf,
}

impl Nginx {
    /// Starts nginx in `dir` proxying to upstream `app`, with an upstream file routing to
    /// `initial_port`.
    pub fn start(dir: &Path, app: &str, initial_port: u16) -> Nginx {
        let port = free_port();
        let upstream_file = dir.join("conf.d").join(format!("bluegreen-{app}.conf"));
        std::fs::create_dir_all(upstream_file.parent().unwrap()).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(
            &upstream_file,
            format!("upstream {app} {{\n    server 127.0.0.1:{initial_port};\n}}\n"),
        )
        .unwrap();
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let d = dir.display();
        let conf = format!(
            "{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/conf.d/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{app};
        }}
    }}
}}
"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_bin())
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        wait_for_port(port, Duration::from_secs(10));
        Nginx {
            child,
            dir: dir.to_path_buf(),
            port,
            upstream_file,
        }
    }

    fn command(&self, extra: &str) -> String {
        let d = self.dir.display();
        format!("{} -p {d} -c {d}/nginx.conf {extra}", nginx_bin())
    }

    /// The configuration test command for this nginx.
    pub fn test_cmd(&self) -> String {
        self.command("-t -q")
    }

    /// The reload command for this nginx.
    pub fn reload_cmd(&self) -> String {
        self.command("-s reload")
    }

    /// This nginx's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("nginx.pid")
    }

    /// A URL through this nginx.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GETs `path` through nginx on a fresh connection: (status, X-Bluegreen-Slot header,
    /// body).
    pub fn get(&self, path: &str) -> (u16, String, String) {
        http_get(&self.url(path))
    }

    /// Breaks the main configuration so `nginx -t` fails.
    pub fn break_config(&self) {
        let conf = self.dir.join("nginx.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        std::fs::write(
            &conf,
            text.replace("worker_processes 1;", "worker_processes 1"),
        )
        .unwrap();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master makes it stop its workers too.
        // SAFETY: kill with a pid we spawned and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET on a fresh connection: (status, X-Bluegreen-Slot header, body).
pub fn http_get(url: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let slot = resp
        .headers()
        .get("x-bluegreen-slot")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), slot, body)
}

/// A whole local target: nginx routing to blue, demo apps in both slots (green optional),
/// a state directory, and the arguments every switch needs.
pub struct Site {
    pub tmp: tempfile::TempDir,
    pub nginx: Nginx,
    pub blue_port: u16,
    pub green_port: u16,
    pub state_dir: PathBuf,
}

impl Site {
    /// nginx routing [`APP`] to the blue port; no apps started yet.
    pub fn new() -> Site {
        Site::build(APP, true)
    }

    /// nginx routing `app` to a port of neither slot, as on a host adopting bluegreen
    /// (its first deploy goes to blue); no apps started yet.
    pub fn adopting(app: &str) -> Site {
        Site::build(app, false)
    }

    fn build(app: &str, route_to_blue: bool) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let blue_port = free_port();
        let mut green_port = free_port();
        while green_port == blue_port {
            green_port = free_port();
        }
        let initial = if route_to_blue {
            blue_port
        } else {
            free_port()
        };
        let nginx = Nginx::start(tmp.path(), app, initial);
        let state_dir = tmp.path().join("state");
        Site {
            tmp,
            nginx,
            blue_port,
            green_port,
            state_dir,
        }
    }

    /// Starts the demo app in `slot`.
    pub fn demo(&self, slot: &str, version: &str, extra: &[&str]) -> Demo {
        let port = if slot == "blue" {
            self.blue_port
        } else {
            self.green_port
        };
        Demo::start(port, slot, version, extra)
    }

    /// Arguments shared by switch-traffic and monitor's rollback.
    pub fn switch_args(&self) -> Vec<String> {
        [
            "--app",
            APP,
            "--state-dir",
            &self.state_dir.display().to_string(),
            "--blue-port",
            &self.blue_port.to_string(),
            "--green-port",
            &self.green_port.to_string(),
            "--upstream-file",
            &self.nginx.upstream_file.display().to_string(),
            "--test-cmd",
            &self.nginx.test_cmd(),
            "--reload-cmd",
            &self.nginx.reload_cmd(),
            "--nginx-pid-file",
            &self.nginx.pid_file().display().to_string(),
            "--verify-url",
            &self.nginx.url("/health"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Runs switch-traffic with the shared arguments plus `extra`; an option in `extra`
    /// replaces the shared one of the same name.
    pub fn switch(&self, extra: &[&str]) -> Run {
        let shared = self.switch_args();
        let mut args: Vec<String> = shared
            .chunks(2)
            .filter(|pair| !extra.contains(&pair[0].as_str()))
            .flatten()
            .cloned()
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        run(SWITCH_TRAFFIC, &args)
    }

    /// The slot nginx currently routes to, asked through nginx.
    pub fn served_slot(&self) -> String {
        self.nginx.get("/").1
    }

    /// state.json, parsed.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state_dir.join("state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// history.jsonl, one parsed object per line.
    pub fn history(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state_dir.join("history.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A real sshd on a loopback port with a throwaway host key, accepting one throwaway user
/// key for the current user. Stopped on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// The user's private key text.
    pub user_key: String,
    /// The known_hosts line for this sshd.
    pub known_hosts: String,
}

impl Sshd {
    /// Starts sshd with its files in `dir` and a new user key.
    pub fn start(dir: &Path) -> Sshd {
        Sshd::launch(dir, None)
    }

    /// Starts sshd with its files in `dir`, accepting the existing public key `authorized`.
    pub fn start_with_key(dir: &Path, authorized: &Path) -> Sshd {
        Sshd::launch(dir, Some(authorized))
    }

    fn launch(dir: &Path, authorized: Option<&Path>) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for name in ["host_key", "user_key"] {
            let status = Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "bluegreen-test",
                    "-f",
                ])
                .arg(dir.join(name))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let authorized = authorized.map_or_else(|| dir.join("user_key.pub"), Path::to_path_buf);
        std::fs::copy(authorized, dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
                 LogLevel VERBOSE\nMaxSessions 50\nMaxStartups 50\n\
                 SetEnv XDG_CACHE_HOME={d}/cache\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("sshd starts");
        wait_for_port(port, Duration::from_secs(10));
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let known_hosts = format!(
            "[127.0.0.1]:{port} {} {}",
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
            user_key: std::fs::read_to_string(dir.join("user_key")).unwrap(),
            known_hosts,
        }
    }

    /// The listening sshd's pid (its session processes are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many SSH connections sshd accepted so far.
    pub fn connections(&self) -> usize {
        std::fs::read_to_string(self.dir.join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user name the tests log in as over SSH (the current user).
pub fn current_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

/// A static (musl) build of the demo app, for images built `FROM scratch`.
pub fn musl_demo_app() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = "x86_64-unknown-linux-musl";
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            target,
            "--bin",
            "demo-app",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the static demo app failed");
    root.join("target").join(target).join("release/demo-app")
}

/// Builds (once per variant) the image `bluegreen-demo:VARIANT`: the static demo app
/// `FROM scratch`, with `env` baked in (e.g. DEMO_HEALTH=unhealthy).
pub fn demo_image(variant: &str, env: &[(&str, &str)]) -> String {
    let tag = format!("bluegreen-demo:{variant}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(musl_demo_app(), dir.path().join("demo-app")).unwrap();
    let mut dockerfile = String::from("FROM scratch\nCOPY demo-app /demo-app\nEXPOSE 8080\n");
    for (k, v) in env {
        dockerfile.push_str(&format!("ENV {k}={v}\n"));
    }
    dockerfile.push_str("ENTRYPOINT [\"/demo-app\"]\n");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let out = Command::new("docker")
        .args(["build", "--quiet", "--tag", &tag])
        .arg(dir.path())
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

/// An HTTP server standing in for Slack: records every request body and answers with
/// `status` (or never answers when `hang`). Lives until the test process ends.
pub struct SlackRecorder {
    pub url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SlackRecorder {
    /// A recorder answering `status`, or hanging without an answer when `hang`.
    pub fn start(status: u16, hang: bool) -> SlackRecorder {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/services/T000/B000/SECRETTOKEN",
            listener.local_addr().unwrap().port()
        );
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = std::sync::Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                if hang {
                    std::thread::sleep(Duration::from_secs(60));
                    continue;
                }
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        SlackRecorder { url, bodies }
    }

    /// A webhook URL on a loopback port where nothing listens: every post is refused.
    pub fn refusing() -> SlackRecorder {
        SlackRecorder {
            url: format!(
                "http://127.0.0.1:{}/services/T000/B000/SECRETTOKEN",
                free_port()
            ),
            bodies: std::sync::Arc::default(),
        }
    }

    /// The bodies received so far, parsed as JSON.
    pub fn payloads(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON ({e}): {b}")))
            .collect()
    }
}

/// A second Docker daemon of the test's own (own data root and socket, in a network
/// namespace of its own so it cannot touch the host's networks), for a runner whose images
/// differ from the host's. Only for images: it runs no containers. Stopped on drop.
pub struct SecondDocker {
    child: Child,
    host: String,
    netns: String,
}

impl SecondDocker {
    /// Starts dockerd with its files in `dir` and waits until it answers.
    pub fn start(dir: &Path) -> SecondDocker {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let socket = dir.join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let netns = format!("bg-docker-{}", std::process::id());
        let created = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap();
        assert!(created.success(), "cannot create network namespace {netns}");
        // nsenter joins only the network namespace (`ip netns exec` would also hide the
        // cgroup mounts dockerd needs).
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("/usr/sbin/dockerd")
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args([
                "-H",
                &host,
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("dockerd starts");
        let second = SecondDocker { child, host, netns };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .env("DOCKER_HOST", &second.host)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return second;
            }
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its DOCKER_HOST value.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for SecondDocker {
    fn drop(&mut self) {
        // SAFETY: kill with a pid we spawned and a valid signal number.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .status();
    }
}

/// The nftables table of an app's switch, removed when dropped.
pub struct NftTable(String);

impl NftTable {
    /// The table switch-traffic uses for `app`.
    pub fn of_app(app: &str) -> NftTable {
        NftTable(format!("bluegreen_{}", app.replace('-', "_")))
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.0])
            .status();
    }
}

/// The smallest set of action inputs (as INPUT_* variables) that validates.
pub fn valid_env() -> std::collections::HashMap<String, String> {
    [
        ("host", "203.0.113.7"),
        ("username", "deploy"),
        ("ssh-key", "KEY"),
        ("known-hosts", "203.0.113.7 ssh-ed25519 AAAA"),
        ("app", "shop"),
        ("image", "ghcr.io/acme/shop:1"),
    ]
    .iter()
    .map(|(k, v)| (bluegreen::action::inputs::env_name(k), v.to_string()))
    .collect()
}
