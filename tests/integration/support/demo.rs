//! The demo app: run directly on a loopback port, or built static and baked into an image
//! `FROM scratch` for Docker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for_port;

pub const DEMO_APP: &str = env!("CARGO_BIN_EXE_demo-app");

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

/// A static (musl) build of the demo app, for images built `FROM scratch`.
pub fn musl_demo_app() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = "x86_64-unknown-linux-musl";
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The variables cargo sets for this test process would count as changed for the
    // release build's build scripts (ring's reads CARGO_MANIFEST_DIR): left in, they would
    // rebuild what scripts/build-static built, and it would rebuild again after.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            cargo.env_remove(name.as_ref());
        }
    }
    let status = cargo
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--locked",
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
