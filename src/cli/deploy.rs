//! `bluegreen deploy`: runs one deploy, rollback or status on this host from a JSON plan on
//! stdin, printing one JSON event per line on stdout. The action's orchestrator drives it
//! over SSH; it can also be run by hand with a plan file.

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::deploy::{DeployPlan, Deployer, Event, Outcome};
use crate::error::{EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, Error};
use crate::report::fail;

/// Run a deploy plan (JSON on stdin) on this host and stream its events as JSON lines.
#[derive(Debug, clap::Parser)]
#[command(
    name = "deploy",
    after_help = "Example:\n  bluegreen deploy < plan.json\n\nExit codes: 0 deployed or unchanged, 1 failed or rolled back, 2 bad plan."
)]
pub struct Cli {}

/// Reads the plan, runs it, and maps the outcome to an exit code.
pub fn main(_cli: Cli) -> ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        return fail(true, &Error::io("read plan from", "stdin", e));
    }
    let plan: DeployPlan = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => return fail(true, &Error::invalid("deploy plan", e.to_string())),
    };
    if let Err(e) = plan.check() {
        return fail(true, &e);
    }
    let emit = |event: &Event| {
        // A closed stdout (the connection dropped) must not stop the deploy half-way: the
        // run goes on to a safe end and records its result in history.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(event).expect("event serializes")
        );
        let _ = out.flush();
    };
    let result = Deployer::new(&plan, &emit).run();
    ExitCode::from(match result.result {
        Some(Outcome::Deployed | Outcome::Unchanged) => EXIT_OK,
        Some(_) => EXIT_CHECK_FAILED,
        None => EXIT_BAD_INPUT,
    })
}
