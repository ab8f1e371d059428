//! An app nginx answers with 503 and a page instead of proxying to a slot: maintenance mode
//! (the live slot keeps running behind it) and the placeholder `setup` writes on a host
//! that has never had a deploy (nginx refuses a `proxy_pass` to an upstream that does not
//! exist, so the include must name one from the start).
//!
//! Both are the same include: the app's upstream points at a server of nginx's own on a
//! loopback port, which answers every request with 503, `Retry-After` and a static page
//! from the state directory. The app is not involved. The marker comment says which it is,
//! and, in maintenance, which slot is live behind it, so a state rebuilt from the include
//! keeps both.

use std::path::Path;
use std::time::{Duration, Instant};

use minijinja::{Environment, UndefinedBehavior};

use crate::error::{Error, Result};
use crate::fsutil::{read_optional, write_atomic};
use crate::http::{Probe, Prober};
use crate::input::{AppName, HttpUrl, Slot};
use crate::state::MaintenanceRecord;
use crate::upstream::marker_word;

/// The include's template.
const INCLUDE_TEMPLATE: &str = include_str!("../templates/closed.conf.j2");
/// The built-in page's template.
const PAGE_TEMPLATE: &str = include_str!("../templates/closed.html.j2");

/// Why nginx answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Maintenance mode; `slot` is live behind it.
    Maintenance {
        /// The live slot.
        slot: Slot,
    },
    /// The app was set up but never deployed.
    NotDeployed,
}

impl Closed {
    /// The page's file name in the page directory.
    pub fn page_name(self) -> &'static str {
        match self {
            Closed::Maintenance { .. } => "bluegreen-maintenance.html",
            Closed::NotDeployed => "bluegreen-not-deployed.html",
        }
    }

    /// The marker's key for the port.
    fn kind(self) -> &'static str {
        match self {
            Closed::Maintenance { .. } => "maintenance",
            Closed::NotDeployed => "placeholder",
        }
    }

    /// The built-in page for `app`.
    pub fn default_page(self, app: &AppName) -> String {
        let (title, text) = match self {
            Closed::Maintenance { .. } => (
                "Down for maintenance",
                "This site is briefly down for maintenance. Please try again in a few minutes.",
            ),
            Closed::NotDeployed => (
                "Not deployed yet",
                "This site is set up but nothing is deployed to it yet.",
            ),
        };
        render(
            PAGE_TEMPLATE,
            "page.html",
            minijinja::context! { app => app.as_str(), title => title, text => text },
        )
    }
}

/// The include that makes nginx answer `app`'s requests with 503 from `port`, telling
/// clients to retry after `retry_after` seconds, with the page of `closed` from `pages` (the state store's `pages_dir`);
/// `access_log` is the app's access log directives (empty for none). Fails when nginx could
/// not take the page directory's path as it is.
///
/// `behind` is the port the live slot is reached on (its own, or the service port in
/// nftables mode), named as the upstream's backup: the reload that ends maintenance closes
/// nginx's server on `port` while old workers may still hold requests they took before it,
/// and those go on to the live slot instead of failing with 502. nginx's own server refuses
/// nothing else, so while maintenance is on every request gets the page.
pub fn include(
    app: &AppName,
    closed: Closed,
    port: u16,
    behind: Option<u16>,
    retry_after: u32,
    pages: &Path,
    access_log: &str,
) -> Result<String> {
    let page_dir = crate::nginx::quotable_path(pages).ok_or_else(|| {
        Error::invalid(
            "state-dir",
            format!(
                "nginx cannot serve the page from {} as it is (no $, quotes, backslashes, braces, semicolons or control characters)",
                pages.display()
            ),
        )
    })?;
    let why = match closed {
        Closed::Maintenance { .. } => "In maintenance",
        Closed::NotDeployed => "Set up and not deployed yet",
    };
    let slot = match closed {
        Closed::Maintenance { slot } => slot.as_str(),
        Closed::NotDeployed => "",
    };
    let mut text = render(
        INCLUDE_TEMPLATE,
        "include.conf",
        minijinja::context! {
            app => app.as_str(),
            why => why,
            slot => slot,
            kind => closed.kind(),
            port => port,
            behind => behind,
            retry_after => retry_after,
            page => closed.page_name(),
            page_dir => page_dir,
            access_log => access_log,
        },
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The largest `maintenance-page` accepted: a page, not a file system.
pub const PAGE_MAX_BYTES: u64 = 1 << 20;

/// The user's page: a regular file (not a device, a pipe or a directory) of at most
/// [`PAGE_MAX_BYTES`], read with the run's own rights.
fn read_page(file: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |why: String| Error::invalid("maintenance-page", why);
    // Without blocking: a pipe given as the page must be refused, not waited on.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| refuse(format!("cannot read {}: {e}", file.display())))?;
    let meta = opened
        .metadata()
        .map_err(|e| refuse(format!("cannot read {}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(refuse(format!("{} is not a regular file", file.display())));
    }
    let mut content = Vec::new();
    opened
        .take(PAGE_MAX_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|e| refuse(format!("cannot read {}: {e}", file.display())))?;
    if content.len() as u64 > PAGE_MAX_BYTES {
        return Err(refuse(format!(
            "{} is larger than {PAGE_MAX_BYTES} bytes: a page, please",
            file.display()
        )));
    }
    Ok(content)
}

/// Writes the page of `closed` into `pages`: a copy of the user's file `custom`, else the
/// built-in page. Returns whether the file changed.
pub fn install_page(
    pages: &Path,
    closed: Closed,
    app: &AppName,
    custom: Option<&Path>,
) -> Result<bool> {
    let content = match custom {
        Some(file) => read_page(file)?,
        None => closed.default_page(app).into_bytes(),
    };
    let path = pages.join(closed.page_name());
    let current = read_optional(&path)?;
    if current.as_deref().map(str::as_bytes) == Some(content.as_slice()) {
        return Ok(false);
    }
    // nginx's workers (another user) read it: readable by all, whatever the umask.
    std::fs::create_dir_all(pages).map_err(|e| Error::io("create directory", pages, e))?;
    std::fs::set_permissions(pages, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| Error::io("set the mode of", pages, e))?;
    write_atomic(&path, &content, 0o644)?;
    Ok(true)
}

/// Polls nginx's server on 127.0.0.1:`port` until it answers 503 (it serves the page), for
/// up to `timeout`; on failure, why.
pub fn confirm_closed(port: u16, timeout: Duration) -> std::result::Result<(), String> {
    let url: HttpUrl = format!("http://127.0.0.1:{port}/")
        .parse()
        .expect("a loopback URL is valid");
    let prober = Prober::new(false);
    let deadline = Instant::now() + timeout;
    loop {
        let probe = prober.get(&url, Duration::from_secs(2));
        if matches!(probe, Probe::Answered { status: 503, .. }) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nginx's server {url} did not answer 503: {} (after {}; see nginx's error log)",
                probe.describe(),
                humantime::format_duration(timeout)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The maintenance mode an include of `app` is in, read from its marker comment (its start
/// is not in the file: `since` is unknown). `None` for any other include.
pub fn recorded_in(text: &str, app: &AppName) -> Option<MaintenanceRecord> {
    Some(MaintenanceRecord {
        since: None,
        port: marker_word(text, app, "maintenance=")?
            .parse()
            .ok()
            .filter(|p| *p != 0)?,
        retry_after_seconds: marker_word(text, app, "retry-after=")?.parse().ok()?,
    })
}

/// Whether an include of `app` has nginx listen on `port` for it (maintenance, or setup's
/// placeholder).
pub fn claims_port(text: &str, app: &AppName, port: u16) -> bool {
    let port = port.to_string();
    ["maintenance=", "placeholder="]
        .iter()
        .any(|key| marker_word(text, app, key) == Some(port.as_str()))
}

/// Whether an include of `app` is setup's placeholder.
pub fn is_placeholder(text: &str, app: &AppName) -> bool {
    marker_word(text, app, "placeholder=").is_some()
}

/// Renders a built-in template; `name`'s extension decides the escaping (HTML for `.html`).
fn render(source: &str, name: &str, ctx: minijinja::Value) -> String {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.add_template(name, source)
        .and_then(|()| env.get_template(name))
        .and_then(|t| t.render(ctx))
        .expect("the built-in templates render with their variables (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::SlotPorts;
    use crate::upstream::routed_slot;

    fn app() -> AppName {
        "shop".parse().unwrap()
    }

    #[test]
    fn the_maintenance_include_routes_to_nginx_itself_and_keeps_the_live_slot() {
        let text = include(
            &app(),
            Closed::Maintenance { slot: Slot::Green },
            3003,
            Some(3002),
            120,
            Path::new("/var/lib/bluegreen/shop/pages"),
            "",
        )
        .unwrap();
        assert!(
            text.contains(
                "upstream shop {\n    server 127.0.0.1:3003 max_fails=0;\n    server 127.0.0.1:3002 backup;\n}"
            ),
            "{text}"
        );
        assert!(text.contains("listen 127.0.0.1:3003;"), "{text}");
        assert!(
            text.contains("add_header Retry-After 120 always;"),
            "{text}"
        );
        assert!(
            text.contains("root \"/var/lib/bluegreen/shop/pages\";"),
            "{text}"
        );
        assert!(text.contains("error_page 503 /bluegreen-maintenance.html;"));
        let ports = SlotPorts::new(3001, 3002).unwrap();
        assert_eq!(routed_slot(&text, ports, &app()), Some(Slot::Green));
        assert_eq!(
            recorded_in(&text, &app()),
            Some(MaintenanceRecord {
                since: None,
                port: 3003,
                retry_after_seconds: 120
            })
        );
    }

    #[test]
    fn the_placeholder_names_no_slot_and_is_no_maintenance() {
        let text = include(
            &app(),
            Closed::NotDeployed,
            3003,
            None,
            300,
            Path::new("/s/pages"),
            "",
        )
        .unwrap();
        let ports = SlotPorts::new(3001, 3002).unwrap();
        assert_eq!(routed_slot(&text, ports, &app()), None);
        assert_eq!(recorded_in(&text, &app()), None);
        assert!(is_placeholder(&text, &app()));
        assert!(claims_port(&text, &app(), 3003) && !claims_port(&text, &app(), 3004));
        assert!(!is_placeholder(&text, &"other".parse().unwrap()));
        assert!(text.contains("bluegreen-not-deployed.html"), "{text}");
        assert!(
            text.contains("upstream shop {\n    server 127.0.0.1:3003 max_fails=0;\n}"),
            "nothing is live behind the placeholder: {text}"
        );
    }

    #[test]
    fn a_page_directory_nginx_cannot_take_is_refused() {
        let err = include(
            &app(),
            Closed::NotDeployed,
            3003,
            None,
            300,
            Path::new("/s/a;b"),
            "",
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_BAD_INPUT);
        assert!(err.to_string().contains("/s/a;b"), "{err}");
    }

    #[test]
    fn the_built_in_page_escapes_nothing_it_should_not_and_pages_install_once() {
        let page = Closed::Maintenance { slot: Slot::Blue }.default_page(&app());
        assert!(
            page.contains("<title>shop: Down for maintenance</title>"),
            "{page}"
        );
        let dir = tempfile::tempdir().unwrap();
        let pages = dir.path().join("pages");
        let closed = Closed::Maintenance { slot: Slot::Blue };
        assert!(install_page(&pages, closed, &app(), None).unwrap());
        assert!(!install_page(&pages, closed, &app(), None).unwrap());
        let custom = dir.path().join("mine.html");
        std::fs::write(&custom, "<p>back at 5</p>").unwrap();
        assert!(install_page(&pages, closed, &app(), Some(&custom)).unwrap());
        assert_eq!(
            std::fs::read_to_string(pages.join("bluegreen-maintenance.html")).unwrap(),
            "<p>back at 5</p>"
        );
        let err = install_page(&pages, closed, &app(), Some(&dir.path().join("none"))).unwrap_err();
        assert!(err.to_string().contains("maintenance-page"), "{err}");
        let err = install_page(&pages, closed, &app(), Some(Path::new("/dev/zero"))).unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        let fifo = dir.path().join("pipe.html");
        let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only reads the C string.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o644) }, 0);
        let err = install_page(&pages, closed, &app(), Some(&fifo)).unwrap_err();
        assert!(
            err.to_string().contains("is not a regular file"),
            "a pipe, not waited on: {err}"
        );
        let big = dir.path().join("big.html");
        std::fs::write(&big, vec![b'x'; PAGE_MAX_BYTES as usize + 1]).unwrap();
        let err = install_page(&pages, closed, &app(), Some(&big)).unwrap_err();
        assert!(
            err.to_string().contains("larger than 1048576 bytes"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(pages.join("bluegreen-maintenance.html")).unwrap(),
            "<p>back at 5</p>",
            "a refused page changes nothing"
        );
    }
}
