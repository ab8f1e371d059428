//! The nginx upstream include that switch-traffic owns: rendering it from a template, reading
//! back which slot it routes to, and showing the difference a switch would make.
//!
//! Templates are minijinja in strict-undefined mode: a typo in a user template is an error
//! before anything is written, never an empty string in nginx's config.

use std::path::Path;

use crate::canary::{Share, log_directives};
use crate::error::{Error, Result};
use crate::input::{AppName, Slot, SlotPorts};
use minijinja::{Environment, UndefinedBehavior};

/// The built-in template: `upstream APP { server 127.0.0.1:PORT; }` plus a marker comment.
pub const DEFAULT_TEMPLATE: &str = include_str!("../templates/upstream.conf.j2");

/// The built-in template of the nftables switch mode: the same upstream on the service
/// port, with nothing that changes from one switch to the next.
pub const NFTABLES_TEMPLATE: &str = include_str!("../templates/upstream-nftables.conf.j2");

/// The values a template can use.
#[derive(Debug, Clone)]
pub struct UpstreamContext {
    /// The app name; also the upstream's name.
    pub app: String,
    /// The slot traffic goes to.
    pub slot: Slot,
    /// The port of that slot.
    pub port: u16,
    /// The blue slot's port.
    pub blue_port: u16,
    /// The green slot's port.
    pub green_port: u16,
    /// The version in that slot, or `unknown`.
    pub version: String,
    /// During a canary (reload mode): the canary's port; else 0.
    pub canary_port: u16,
    /// During a canary (reload mode): the canary's share of new requests in percent; else 0.
    pub canary_share: u8,
    /// The nginx directives that write the app's access log (empty for none).
    pub access_log: String,
}

impl UpstreamContext {
    /// The context for routing `app` to `slot`.
    pub fn new(app: &AppName, slot: Slot, ports: SlotPorts, version: Option<&str>) -> Self {
        UpstreamContext {
            app: app.to_string(),
            slot,
            port: ports.port(slot),
            blue_port: ports.port(Slot::Blue),
            green_port: ports.port(Slot::Green),
            version: version.unwrap_or("unknown").to_owned(),
            canary_port: 0,
            canary_share: 0,
            access_log: String::new(),
        }
    }

    /// The same context with `share` percent of new requests to `canary_port`.
    pub fn with_canary(self, canary_port: u16, share: Share) -> Self {
        UpstreamContext {
            canary_port,
            canary_share: share.percent(),
            ..self
        }
    }

    /// The same context, writing the app's access log to `path` (see
    /// [`crate::canary::log_directives`]).
    pub fn logging_to(self, path: &Path) -> Self {
        let access_log = log_directives(&self.app.parse().expect("a checked app name"), path);
        UpstreamContext { access_log, ..self }
    }
}

/// A template's source and the name errors refer to it by.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    source: String,
}

impl Template {
    /// The built-in template of the switch mode (nftables mode: constant, on the service
    /// port).
    pub fn builtin(nftables: bool) -> Template {
        Template {
            name: "built-in".into(),
            source: if nftables {
                NFTABLES_TEMPLATE
            } else {
                DEFAULT_TEMPLATE
            }
            .into(),
        }
    }

    /// The user's template at `path`, given as the setting `setting` (named in errors).
    pub fn from_file(path: &Path, setting: &str) -> Result<Template> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(setting, format!("cannot read {}: {e}", path.display())))?;
        Ok(Template {
            name: path.display().to_string(),
            source,
        })
    }

    /// Renders the template with `ctx`. Unknown variables are errors.
    pub fn render(&self, ctx: &UpstreamContext) -> Result<String> {
        let template_error = |e: minijinja::Error| Error::Template {
            name: self.name.clone(),
            detail: format!("{e:#}"),
        };
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_template("upstream", &self.source)
            .map_err(template_error)?;
        let mut text = env
            .get_template("upstream")
            .and_then(|t| {
                t.render(minijinja::context! {
                    app => ctx.app.as_str(),
                    slot => ctx.slot.as_str(),
                    port => ctx.port,
                    blue_port => ctx.blue_port,
                    green_port => ctx.green_port,
                    version => ctx.version.as_str(),
                    canary_port => ctx.canary_port,
                    canary_share => ctx.canary_share,
                    access_log => ctx.access_log.as_str(),
                })
            })
            .map_err(template_error)?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// The slot an upstream file routes `app` to: the slot whose port appears in its `server`
/// directives. When both ports appear (a split, a user template with a backup server), the
/// marker comment `# bluegreen: app=APP slot=SLOT` decides. `None` when neither tells.
pub fn routed_slot(text: &str, ports: SlotPorts, app: &AppName) -> Option<Slot> {
    let mut seen = Vec::new();
    for slot in server_ports(text)
        .into_iter()
        .filter_map(|p| ports.slot_of(p))
    {
        if !seen.contains(&slot) {
            seen.push(slot);
        }
    }
    match seen.as_slice() {
        [one] => Some(*one),
        _ => marker_word(text, app, "slot=")?.parse().ok(),
    }
}

/// The ports of the `server` directives of an upstream file (comments left out): where
/// nginx really sends the requests, whatever the marker comment says.
pub fn server_ports(text: &str) -> Vec<u16> {
    let code = without_comments(text);
    let mut tokens = code
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '{' | '}'))
        .filter(|t| !t.is_empty());
    let mut ports = Vec::new();
    while let Some(token) = tokens.next() {
        if token == "server"
            && let Some(port) = tokens
                .next()
                .and_then(|address| address.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
        {
            ports.push(port);
        }
    }
    ports
}

/// The slot an upstream file sends a canary's share of `app`'s requests to: the slot it
/// does not route to, when its marker comment says `canary=`.
pub fn split_slot(text: &str, ports: SlotPorts, app: &AppName) -> Option<Slot> {
    marker_word(text, app, "canary=")?;
    routed_slot(text, ports, app).map(Slot::other)
}

/// Refuses a rendered include that does not send a split's share to the canary's port (a
/// user template without the `canary_port` and `canary_share` variables): the split would
/// silently send nothing to the canary.
pub fn check_split(rendered: &str, canary_port: u16) -> Result<()> {
    if without_comments(rendered).contains(&format!(":{canary_port}")) {
        return Ok(());
    }
    Err(Error::invalid(
        "upstream-template",
        format!(
            "the template sends nothing to the canary's port {canary_port}: a split needs a `server` line for {{{{ canary_port }}}} with `weight={{{{ canary_share }}}}` beside the live one (see the built-in template) when {{{{ canary_share }}}} is not 0"
        ),
    ))
}

/// The text of an nginx file without its comments.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` holds `app`'s marker comment: an include bluegreen wrote for the app.
pub fn has_marker(text: &str, app: &AppName) -> bool {
    let want = format!("app={app}");
    text.lines().any(|line| {
        line.trim()
            .strip_prefix("# bluegreen:")
            .and_then(|fields| fields.split_whitespace().next())
            == Some(want.as_str())
    })
}

/// The value of `key` (`slot=`, `canary=`, `maintenance=`) in `app`'s marker comment
/// (`# bluegreen: app=APP slot=SLOT ...`).
pub fn marker_word<'t>(text: &'t str, app: &AppName, key: &str) -> Option<&'t str> {
    let want = format!("app={app}");
    text.lines().find_map(|line| {
        let fields = line.trim().strip_prefix("# bluegreen:")?;
        let mut words = fields.split_whitespace();
        if words.next()? != want {
            return None;
        }
        words.find_map(|w| w.strip_prefix(key))
    })
}

/// A unified diff from `old` to `new` (empty when they are equal).
pub fn unified_diff(old: &str, new: &str, path: &Path) -> String {
    if old == new {
        return String::new();
    }
    let name = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&format!("{name} (current)"), &format!("{name} (new)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        "shop".parse().unwrap()
    }

    fn ports() -> SlotPorts {
        SlotPorts::new(3001, 3002).unwrap()
    }

    #[test]
    fn default_template_renders_the_upstream_named_after_the_app() {
        let ctx = UpstreamContext::new(&app(), Slot::Green, ports(), Some("v2"));
        let text = Template::builtin(false).render(&ctx).unwrap();
        assert!(
            text.contains("upstream shop {\n    server 127.0.0.1:3002;\n}"),
            "{text}"
        );
        assert!(text.contains("slot=green version=v2"), "{text}");
        assert_eq!(routed_slot(&text, ports(), &app()), Some(Slot::Green));
    }

    #[test]
    fn the_nftables_template_does_not_change_between_switches() {
        let t = Template::builtin(true);
        let mut blue = UpstreamContext::new(&app(), Slot::Blue, ports(), Some("v1"));
        let mut green = UpstreamContext::new(&app(), Slot::Green, ports(), Some("v2"));
        blue.port = 3000;
        green.port = 3000;
        assert_eq!(t.render(&blue).unwrap(), t.render(&green).unwrap());
        assert!(t.render(&blue).unwrap().contains("server 127.0.0.1:3000;"));
    }

    #[test]
    fn strict_mode_rejects_unknown_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.j2");
        std::fs::write(&path, "upstream {{ app }} { server 127.0.0.1:{{ prot }}; }").unwrap();
        let ctx = UpstreamContext::new(&app(), Slot::Blue, ports(), None);
        let err = Template::from_file(&path, "--template")
            .unwrap()
            .render(&ctx)
            .unwrap_err();
        assert!(
            err.to_string().contains("prot") || err.to_string().contains("undefined"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_BAD_INPUT);
    }

    #[test]
    fn routed_slot_reads_ports_and_falls_back_to_the_marker() {
        assert_eq!(
            routed_slot("upstream shop { server 127.0.0.1:3001; }", ports(), &app()),
            Some(Slot::Blue)
        );
        assert_eq!(
            routed_slot(
                "# server 127.0.0.1:3002;\nupstream shop{server [::1]:3001;}",
                ports(),
                &app()
            ),
            Some(Slot::Blue)
        );
        assert_eq!(
            routed_slot(
                "upstream shop {\n server localhost:3001 max_fails=0;\n}",
                ports(),
                &app()
            ),
            Some(Slot::Blue)
        );
        let both = "# bluegreen: app=shop slot=green\nupstream shop {\n server 127.0.0.1:3002;\n server 127.0.0.1:3001 backup;\n}";
        assert_eq!(routed_slot(both, ports(), &app()), Some(Slot::Green));
        assert_eq!(routed_slot("server 127.0.0.1:9999;", ports(), &app()), None);
        assert_eq!(
            routed_slot("# bluegreen: app=other slot=blue", ports(), &app()),
            None
        );
    }

    #[test]
    fn a_split_is_told_by_the_marker_and_must_reach_the_canarys_port() {
        let ctx = UpstreamContext::new(&app(), Slot::Blue, ports(), Some("v1"))
            .with_canary(3002, Share::try_from(25).unwrap());
        let split = Template::builtin(false).render(&ctx).unwrap();
        assert_eq!(routed_slot(&split, ports(), &app()), Some(Slot::Blue));
        assert_eq!(split_slot(&split, ports(), &app()), Some(Slot::Green));
        let plain = UpstreamContext::new(&app(), Slot::Blue, ports(), Some("v1"));
        let plain = Template::builtin(false).render(&plain).unwrap();
        assert_eq!(split_slot(&plain, ports(), &app()), None);

        assert!(check_split(&split, 3002).is_ok());
        let one = "# 127.0.0.1:3002 would be the canary\nupstream shop {\n    server 127.0.0.1:3001;\n}\n";
        let err = check_split(one, 3002).unwrap_err();
        assert!(err.to_string().contains("canary_port"), "{err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_BAD_INPUT);
    }

    #[test]
    fn diff_shows_the_changed_port() {
        let d = unified_diff("server 1;\n", "server 2;\n", Path::new("/x.conf"));
        assert!(d.contains("-server 1;") && d.contains("+server 2;"), "{d}");
        assert_eq!(unified_diff("a\n", "a\n", Path::new("/x")), "");
    }
}
