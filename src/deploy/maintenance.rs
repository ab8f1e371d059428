//! The maintenance operations (`command: maintenance-on`, `maintenance-off`): nginx answers
//! the app's requests with 503, the maintenance page and `Retry-After` from a server of its
//! own (see [`crate::maintenance_server`]) while the live slot keeps running behind it; and back.
//! State records it, so every later switch (a deploy, a rollback, a canary step) keeps it
//! on until it is turned off, or a deploy with `end-maintenance` ends it at its switch.

use crate::clock::now_rfc3339;
use crate::error::Error;
use crate::maintenance_server::Closed;
use crate::state::MaintenanceRecord;
use crate::switch::Intent;

use super::engine::{Engine, Failure};
use super::protocol::{Outcome, Phase};

/// Turns maintenance mode on (`on`) or off for the app's live slot.
pub(super) fn run(e: &mut Engine, on: bool) -> Result<Outcome, Failure> {
    let plan = e.plan;
    if !plan.dry_run {
        e.lock()?;
    }
    let state = e.load_state()?;
    if let Some(canary) = &state.canary {
        return Err(Error::CheckFailed(format!(
            "a canary of {} is in progress in {} ({} of new requests): end it with command abort (or take it on with promote) before maintenance",
            canary.version, canary.slot, canary.share
        ))
        .into());
    }
    let include = e.host.read_file(plan.switch.upstream_file.as_path())?;
    let include_on = include
        .as_deref()
        .is_some_and(|text| crate::maintenance_server::recorded_in(text, &plan.app).is_some());
    // Nothing to do only when state and the include agree (a run that died between
    // writing one and the other left them apart).
    match (&state.maintenance, on) {
        (Some(m), true) if include_on => {
            e.log(&format!(
                "maintenance is already on{} (nginx's server on 127.0.0.1:{}): nothing to do",
                m.since
                    .as_deref()
                    .map_or(String::new(), |since| format!(" since {since}")),
                m.port
            ));
            return Ok(Outcome::Unchanged);
        }
        (None, false) if !include_on => {
            e.log(&format!(
                "{} is not in maintenance: nothing to do",
                plan.app
            ));
            return Ok(Outcome::Unchanged);
        }
        _ => {}
    }
    let Some(live) = state.active else {
        return Err(Error::CheckFailed(format!(
            "{} has no live slot to put behind a maintenance page: nothing is deployed yet (after command setup, nginx answers 503 until the first deploy)",
            plan.app
        ))
        .into());
    };
    if on {
        super::setup::check_port_free(e, include.as_deref())?;
    }
    let record = on.then(|| MaintenanceRecord {
        since: Some(now_rfc3339()),
        port: plan.maintenance.port.get(),
        retry_after_seconds: plan.maintenance.retry_after_seconds,
    });
    let intent = Intent::maintenance(live, record).because(format!(
        "maintenance {} ({})",
        if on { "on" } else { "off" },
        plan.purpose
    ));
    if plan.dry_run {
        let report = e.dry_switch(intent)?;
        e.log(&if on {
            format!(
                "plan: nginx answers {} with 503, Retry-After {} and {} from 127.0.0.1:{}; {live} keeps running behind it",
                plan.app,
                plan.maintenance.retry_after_seconds,
                plan.maintenance
                    .page
                    .as_ref()
                    .map_or("the built-in page".to_owned(), |p| format!("the page {p}")),
                plan.maintenance.port
            )
        } else {
            format!("plan: nginx routes {} to {live} again", plan.app)
        });
        e.run.result.upstream_diff = Some(report.diff);
        return Ok(Outcome::Unchanged);
    }
    if on {
        let pages = plan.store().pages_dir();
        let page = plan.maintenance.page.as_ref().map(|p| p.as_path());
        crate::maintenance_server::install_page(
            &pages,
            Closed::Maintenance { slot: live },
            &plan.app,
            page,
        )?;
    }
    e.switch_to(Phase::Maintenance, intent)?;
    Ok(Outcome::Changed)
}
