//! The switch's decision: from what is in place (the app's state, the include nginx has,
//! where the nftables rule leads) and the intent, what the switch writes and where new
//! connections go. It reads and changes nothing, so every mode, mode change, canary share and
//! maintenance case is tested here without nginx; `mod.rs` carries the decision out.

use std::path::Path;

use crate::error::{Error, Result};
use crate::input::Slot;
use crate::maintenance_server::Closed;
use crate::nft::Route;
use crate::state::{MaintenanceRecord, State};
use crate::upstream::UpstreamContext;

use super::request::SwitchRequest;

/// What is in place when a switch starts, as the switch read it.
pub(crate) struct InPlace<'a> {
    /// The app's state (rebuilt from the include when it had to be).
    pub(crate) state: &'a State,
    /// The include as it is now; `None` when there is none.
    pub(crate) include: Option<&'a str>,
    /// In nftables mode, where the app's rule leads now (`Some(None)`: there is no rule);
    /// `None` in reload mode.
    pub(crate) rule: Option<Option<Route>>,
    /// The access log the include has nginx write, when the switch logs requests.
    pub(crate) access_log: Option<&'a Path>,
}

/// What a switch does: the include it writes and where the rule leads new connections.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    /// The slot that gets the traffic.
    pub(crate) to: Slot,
    /// Its version, when known.
    pub(crate) version: Option<String>,
    /// Where new connections go: the target's port, and a canary's share beside it. In
    /// nftables mode the rule says it; in reload mode the include does.
    pub(crate) route: Route,
    /// The include nginx gets.
    pub(crate) include: String,
    /// Whether that differs from the include in place (no write and no reload when not,
    /// except that reload mode always reloads, to be sure of what nginx serves).
    pub(crate) include_changes: bool,
    /// Maintenance after the switch: nginx answers with the page, the target live behind it.
    pub(crate) maintenance: Option<MaintenanceRecord>,
    /// The slot traffic leaves: where the rule or the include leads now, else state's active
    /// slot.
    pub(crate) from: Option<Slot>,
}

impl SwitchRequest {
    /// Decides the switch from what is in place; fails, changing nothing, when the active
    /// slot is no longer the one the intent was made for, on an intent state cannot answer
    /// (no previous slot), or a template that renders no split where a canary needs one.
    pub(crate) fn decide(&self, in_place: &InPlace) -> Result<Decision> {
        let state = in_place.state;
        if let Some(expected) = self.intent.only_if_active
            && state.active != Some(expected)
        {
            return Err(Error::CheckFailed(format!(
                "not switching: the active slot is now {}, not {expected}; someone switched in the meantime",
                state.active.map_or("none", Slot::as_str)
            )));
        }
        let to = self.intent.resolve(state, &self.app)?;
        let version = self
            .intent
            .version
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .or_else(|| state.slots.get(to).version.clone());
        let canary = self.intent.split.as_ref();
        let nft = self.nft();
        let mut ctx = UpstreamContext::new(&self.app, to, self.ports, version.as_deref());
        if let Some(path) = in_place.access_log {
            ctx = ctx.logging_to(path);
        }
        match (&nft, canary) {
            // nginx's configuration stays the same in nftables mode: the rules split.
            (Some(nft), _) => ctx.port = nft.service_port,
            (None, Some(c)) => ctx = ctx.with_canary(self.ports.port(c.slot), c.share),
            (None, None) => {}
        }
        let route = match canary {
            Some(c) => Route::split(self.ports.port(to), self.ports.port(c.slot), c.share),
            None => Route::to(self.ports.port(to)),
        };
        // In maintenance nginx answers 503 itself, whatever the template says; the live
        // slot (ctx.port: its own, or the service port) is named behind the page.
        let maintenance = self.intent.maintenance.after(state);
        let include = match &maintenance {
            Some(m) => crate::maintenance_server::include(
                &self.app,
                Closed::Maintenance { slot: to },
                m.port,
                Some(ctx.port),
                m.retry_after_seconds,
                &self.store.pages_dir(),
                &ctx.access_log,
            )?,
            None => self.template.render(&ctx)?,
        };
        if let Some(c) = canary.filter(|_| nft.is_none() && maintenance.is_none()) {
            crate::upstream::check_split(&include, self.ports.port(c.slot))?;
        }
        let from = match in_place.rule {
            Some(rule) => rule.and_then(|r| self.ports.slot_of(r.port)),
            None => self.routed(in_place.include),
        }
        .or(state.active);
        Ok(Decision {
            to,
            version,
            route,
            include_changes: in_place.include != Some(include.as_str()),
            include,
            maintenance,
            from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::Share;
    use crate::input::SwitchMode;
    use crate::input::SwitchTarget;
    use crate::switch::fixtures::{self, canary, live_on_blue, maintenance, to};
    use crate::switch::{Intent, MaintenanceChange};
    use crate::upstream::Template;

    const SERVICE_PORT: u16 = 21000;

    fn request(mode: SwitchMode, intent: Intent) -> SwitchRequest {
        let config = crate::switch::test_config(mode);
        fixtures::request(config, intent, Path::new("/var/lib/bluegreen/shop"))
    }

    /// Why `request` is refused with `state` in place (no include, reload mode).
    fn refused(request: &SwitchRequest, state: &State) -> crate::error::Error {
        request
            .decide(&InPlace {
                state,
                include: None,
                rule: None,
                access_log: None,
            })
            .unwrap_err()
    }

    fn decide(
        request: &SwitchRequest,
        state: &State,
        include: Option<&str>,
        rule: Option<Option<Route>>,
    ) -> Decision {
        request
            .decide(&InPlace {
                state,
                include,
                rule,
                access_log: None,
            })
            .unwrap()
    }

    /// The include the built-in template of `mode` gives for `to`.
    fn rendered(mode: SwitchMode, slot: Slot) -> String {
        let r = request(mode, to(slot));
        decide(&r, &live_on_blue(), None, r.nft().map(|_| None)).include
    }

    #[test]
    fn reload_mode_writes_the_targets_port_into_the_include() {
        let r = request(SwitchMode::Reload, to(Slot::Green));
        let blue = rendered(SwitchMode::Reload, Slot::Blue);
        let d = decide(&r, &live_on_blue(), Some(&blue), None);
        assert_eq!((d.to, d.from), (Slot::Green, Some(Slot::Blue)));
        assert_eq!(d.route, Route::to(3002));
        assert!(
            d.include.contains("server 127.0.0.1:3002;"),
            "{}",
            d.include
        );
        assert!(d.include_changes);
        assert_eq!(d.version.as_deref(), Some("v2"));
        assert_eq!(d.maintenance, None);
    }

    #[test]
    fn nftables_mode_moves_the_rule_and_keeps_the_include() {
        let r = request(SwitchMode::Nftables, to(Slot::Green));
        let include = rendered(SwitchMode::Nftables, Slot::Blue);
        let d = decide(
            &r,
            &live_on_blue(),
            Some(&include),
            Some(Some(Route::to(3001))),
        );
        assert_eq!(d.route, Route::to(3002));
        assert!(!d.include_changes, "{}", d.include);
        assert!(
            d.include
                .contains(&format!("server 127.0.0.1:{SERVICE_PORT};"))
        );
        assert_eq!(d.from, Some(Slot::Blue), "from where the rule led");
    }

    #[test]
    fn nftables_mode_takes_from_the_rule_before_state() {
        let r = request(SwitchMode::Nftables, to(Slot::Blue));
        let include = rendered(SwitchMode::Nftables, Slot::Blue);
        // State says blue; the rule leads to green (a switch by hand since).
        let d = decide(
            &r,
            &live_on_blue(),
            Some(&include),
            Some(Some(Route::to(3002))),
        );
        assert_eq!(d.from, Some(Slot::Green));
        // No rule and no include: state's active slot.
        let d = decide(&r, &live_on_blue(), None, Some(None));
        assert_eq!(d.from, Some(Slot::Blue));
        assert!(d.include_changes);
    }

    #[test]
    fn a_mode_change_rewrites_the_include_each_way() {
        let reload_include = rendered(SwitchMode::Reload, Slot::Blue);
        let nft_include = rendered(SwitchMode::Nftables, Slot::Blue);
        let into_nft = request(SwitchMode::Nftables, to(Slot::Blue));
        let d = decide(
            &into_nft,
            &live_on_blue(),
            Some(&reload_include),
            Some(None),
        );
        assert!(d.include_changes && d.include == nft_include);
        let into_reload = request(SwitchMode::Reload, to(Slot::Blue));
        let d = decide(&into_reload, &live_on_blue(), Some(&nft_include), None);
        assert!(d.include_changes && d.include == reload_include);
    }

    #[test]
    fn a_canary_splits_in_the_include_in_reload_mode_and_in_the_rule_in_nftables_mode() {
        let split = Intent {
            split: Some(canary("10%")),
            ..to(Slot::Blue)
        };
        let share: Share = "10%".parse().unwrap();
        let reload = request(SwitchMode::Reload, split.clone());
        let d = decide(&reload, &live_on_blue(), None, None);
        assert_eq!(d.route, Route::split(3001, 3002, share));
        assert!(
            d.include.contains("127.0.0.1:3001") && d.include.contains("127.0.0.1:3002"),
            "{}",
            d.include
        );
        let nft = request(SwitchMode::Nftables, split);
        let include = rendered(SwitchMode::Nftables, Slot::Blue);
        let d = decide(
            &nft,
            &live_on_blue(),
            Some(&include),
            Some(Some(Route::to(3001))),
        );
        assert_eq!(d.route, Route::split(3001, 3002, share));
        assert!(!d.include_changes, "the rule splits, nginx is not reloaded");
    }

    #[test]
    fn a_template_without_the_canary_is_refused() {
        let split = Intent {
            split: Some(canary("50%")),
            ..to(Slot::Blue)
        };
        let mut r = request(SwitchMode::Reload, split);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("upstream.j2");
        std::fs::write(
            &file,
            "upstream {{ app }} { server 127.0.0.1:{{ port }}; }\n",
        )
        .unwrap();
        r.template = Template::from_file(&file, "upstream-template").unwrap();
        let err = refused(&r, &live_on_blue());
        assert!(err.to_string().contains("3002"), "{err}");
    }

    #[test]
    fn maintenance_on_closes_the_include_and_names_the_live_slot_behind_it() {
        let on = Intent {
            maintenance: MaintenanceChange::Start(maintenance(3003)),
            ..to(Slot::Blue)
        };
        for (mode, behind) in [
            (SwitchMode::Reload, 3001),
            (SwitchMode::Nftables, SERVICE_PORT),
        ] {
            let r = request(mode, on.clone());
            let d = decide(
                &r,
                &live_on_blue(),
                None,
                r.nft().map(|_| Some(Route::to(3001))),
            );
            assert_eq!(d.maintenance, Some(maintenance(3003)));
            assert!(
                d.include.contains("listen 127.0.0.1:3003;"),
                "{}",
                d.include
            );
            assert!(
                d.include
                    .contains(&format!("server 127.0.0.1:{behind} backup;")),
                "{mode:?}: {}",
                d.include
            );
            assert_eq!(d.route, Route::to(3001));
        }
    }

    #[test]
    fn a_switch_during_maintenance_keeps_it_and_maintenance_off_opens_the_include() {
        let closed = live_on_blue().with_maintenance(Some(maintenance(3003)));
        let keep = request(SwitchMode::Reload, to(Slot::Green));
        let d = decide(&keep, &closed, None, None);
        assert_eq!(d.maintenance, Some(maintenance(3003)));
        assert!(d.include.contains("slot=green"), "{}", d.include);
        let off = request(
            SwitchMode::Reload,
            Intent {
                maintenance: MaintenanceChange::End,
                ..to(Slot::Blue)
            },
        );
        let d = decide(&off, &closed, Some(&d.include), None);
        assert_eq!(d.maintenance, None);
        assert!(d.include_changes);
        assert_eq!(d.include, rendered(SwitchMode::Reload, Slot::Blue));
    }

    #[test]
    fn to_previous_without_a_previous_slot_is_refused() {
        let r = request(
            SwitchMode::Reload,
            Intent::switch_to(SwitchTarget::Previous),
        );
        let err = refused(&r, &State::new(&"shop".parse().unwrap()));
        assert_eq!(err.exit_code(), crate::error::EXIT_BAD_INPUT, "{err}");
    }

    #[test]
    fn a_switch_made_for_another_active_slot_is_refused() {
        let guarded = request(
            SwitchMode::Reload,
            to(Slot::Green).only_if_active(Some(Slot::Green)),
        );
        let err = refused(&guarded, &live_on_blue());
        assert_eq!(
            err.to_string(),
            "not switching: the active slot is now blue, not green; someone switched in the meantime"
        );
    }
}
