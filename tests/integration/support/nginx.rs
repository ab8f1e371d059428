//! A real nginx from the system's packages under its own prefix on a loopback port, and a
//! whole local target around it ([`Site`]): nginx, the two slots' ports, a state directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{APP, Demo, Run, SWITCH_TRAFFIC, free_port, run, wait_for_port};

/// The path of nginx from the system's packages.
pub fn nginx_bin() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
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
        Nginx::launch(dir, app, Some(initial_port))
    }

    /// Starts nginx in `dir` as a fresh install has it: an `http` block that includes
    /// `conf.d/*.conf`, which is empty (no upstream, no server block). `port` is free, for
    /// the server block a setup writes.
    pub fn start_bare(dir: &Path, app: &str) -> Nginx {
        Nginx::launch(dir, app, None)
    }

    /// Starts nginx in `dir` as Debian's package installs it: [`Nginx::start_bare`] plus
    /// the package's default site, `server_name _` as the default server of the port on
    /// every address, serving "Welcome to nginx!" and 404 for anything else.
    pub fn start_debian(dir: &Path, app: &str) -> Nginx {
        let nginx = Nginx::launch(dir, app, None);
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.nginx-debian.html"), "Welcome to nginx!\n").unwrap();
        std::fs::write(
            dir.join("conf.d").join("default.conf"),
            format!(
                "server {{\n    listen {port} default_server;\n    root {www};\n    index index.html index.htm index.nginx-debian.html;\n    server_name _;\n    location / {{\n        try_files $uri $uri/ =404;\n    }}\n}}\n",
                port = nginx.port,
                www = www.display()
            ),
        )
        .unwrap();
        nginx.reload();
        wait_for_port(nginx.port, Duration::from_secs(10));
        nginx
    }

    fn launch(dir: &Path, app: &str, initial_port: Option<u16>) -> Nginx {
        let port = free_port();
        let upstream_file = dir.join("conf.d").join(format!("bluegreen-{app}.conf"));
        std::fs::create_dir_all(upstream_file.parent().unwrap()).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let server = match initial_port {
            Some(initial_port) => {
                std::fs::write(
                    &upstream_file,
                    format!("upstream {app} {{\n    server 127.0.0.1:{initial_port};\n}}\n"),
                )
                .unwrap();
                format!(
                    "server {{\n        listen 127.0.0.1:{port};\n        location / {{\n            proxy_pass http://{app};\n        }}\n    }}"
                )
            }
            None => String::new(),
        };
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
    access_log /dev/null;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/conf.d/*.conf;
    {server}
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
        let nginx = Nginx {
            child,
            dir: dir.to_path_buf(),
            port,
            upstream_file,
        };
        if initial_port.is_some() {
            wait_for_port(port, Duration::from_secs(10));
        } else {
            nginx.wait_for_master();
        }
        nginx
    }

    /// Waits until nginx's master has written its pid file and started a worker.
    fn wait_for_master(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let master = std::fs::read_to_string(self.pid_file())
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if master.is_some_and(|pid| !bluegreen::nginx::children(pid).is_empty()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
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

    /// Runs [`Nginx::reload_cmd`], as an operator reloading by hand does; asserts nginx
    /// took the signal (the new workers may still be starting).
    pub fn reload(&self) {
        let cmd = self.reload_cmd();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let status = Command::new(words[0]).args(&words[1..]).status().unwrap();
        assert!(status.success(), "{cmd}: {status}");
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

/// GET on a fresh connection: (status, Retry-After header, body).
pub fn http_get_retry_after(url: &str) -> (u16, Option<String>, String) {
    get_with_header(url, "retry-after", None)
}

/// GET on a fresh connection: (status, X-Bluegreen-Slot header, body).
pub fn http_get(url: &str) -> (u16, String, String) {
    let (status, slot, body) = get_with_header(url, "x-bluegreen-slot", None);
    (status, slot.unwrap_or_default(), body)
}

/// Like [`http_get`], asking as `host` (the Host header), as a browser asks for a site.
pub fn http_get_as(url: &str, host: &str) -> (u16, String, String) {
    let (status, slot, body) = get_with_header(url, "x-bluegreen-slot", Some(host));
    (status, slot.unwrap_or_default(), body)
}

/// GET on a fresh connection, as `host` when given: (status, the response header `name`,
/// body).
fn get_with_header(url: &str, name: &str, host: Option<&str>) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let mut resp = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let header = resp
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), header, body)
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
    /// The arguments every helper takes for `app` on this site: its state directory, its
    /// slots' ports, its include and nginx's test command.
    pub fn app_args(&self, app: &str) -> Vec<String> {
        [
            "--app",
            app,
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `validate`'s arguments for `app` on this site, with a JSON report.
    pub fn validate_args(&self, app: &str) -> Vec<String> {
        let mut args = self.app_args(app);
        args.extend(["--min-free-disk-mb", "1", "--json"].map(String::from));
        args
    }

    /// Where nginx writes the apps' access logs (root's, in the site's directory).
    pub fn log_dir(&self) -> PathBuf {
        self.tmp.path().join("log")
    }

    /// nginx routing [`APP`] to the blue port; no apps started yet.
    pub fn new() -> Site {
        Site::build(APP, Some(true))
    }

    /// nginx routing `app` to a port of neither slot, as on a host adopting bluegreen
    /// (its first deploy goes to blue); no apps started yet.
    pub fn adopting(app: &str) -> Site {
        Site::build(app, Some(false))
    }

    /// A fresh nginx with nothing of `app` (see [`Nginx::start_bare`]): a host to set up.
    pub fn bare(app: &str) -> Site {
        Site::build(app, None)
    }

    /// A fresh Debian nginx with its default site and nothing of `app` (see
    /// [`Nginx::start_debian`]): a host to set up.
    pub fn debian(app: &str) -> Site {
        Site::with_nginx(|dir, _| Nginx::start_debian(dir, app))
    }

    /// `route_to_blue`: the upstream routes to blue (`true`), to a port of neither slot
    /// (`false`), or there is none (`None`).
    fn build(app: &str, route_to_blue: Option<bool>) -> Site {
        Site::with_nginx(|dir, blue_port| match route_to_blue {
            Some(true) => Nginx::start(dir, app, blue_port),
            Some(false) => Nginx::start(dir, app, free_port()),
            None => Nginx::start_bare(dir, app),
        })
    }

    /// A site whose nginx `start` starts in the site's directory, given blue's port.
    fn with_nginx(start: impl FnOnce(&Path, u16) -> Nginx) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let blue_port = free_port();
        let mut green_port = free_port();
        while green_port == blue_port {
            green_port = free_port();
        }
        let nginx = start(tmp.path(), blue_port);
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

    /// A switch of `app` in nftables mode on `service_port`: switch-traffic `--to` the
    /// slot given, with `--json`.
    pub fn nftables_switch(&self, app: &str, service_port: u16) -> impl Fn(&str) -> super::Run {
        let mut args = self.switch_args();
        args[1] = app.to_owned();
        let mode = args.iter().position(|a| a == "--mode").unwrap();
        args[mode + 1] = "nftables".into();
        args.extend(["--service-port".to_owned(), service_port.to_string()]);
        move |to: &str| {
            let mut all = args.clone();
            all.extend(["--to", to, "--json"].map(String::from));
            super::run(&super::SWITCH_TRAFFIC, &all)
        }
    }

    /// Arguments shared by switch-traffic and monitor's rollback.
    pub fn switch_args(&self) -> Vec<String> {
        let mut args = self.app_args(APP);
        args.extend([
            "--reload-cmd".to_owned(),
            self.nginx.reload_cmd(),
            "--nginx-pid-file".to_owned(),
            self.nginx.pid_file().display().to_string(),
            "--verify-url".to_owned(),
            self.nginx.url("/health"),
            "--mode".to_owned(),
            "reload".to_owned(),
            "--log-dir".to_owned(),
            self.log_dir().display().to_string(),
        ]);
        args
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
        run(&SWITCH_TRAFFIC, &args)
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
