//! `bluegreen deploy`: runs one deploy, rollback or status on this host from a JSON plan on
//! stdin, printing one JSON event per line on stdout. The action's orchestrator drives it
//! over SSH; it can also be run by hand with a plan file.

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::deploy::{DeployPlan, Event};
use crate::error::Error;
use crate::report::fail;

/// Run a deploy plan (JSON on stdin) on this host and stream its events as JSON lines.
#[derive(Debug, clap::Parser)]
#[command(
    name = "deploy",
    after_help = "Example:\n  bluegreen deploy < plan.json\n\nExit codes: 0 deployed or unchanged, 1 failed or rolled back, 2 bad plan,\n3 environment error (I/O, a program missing or failing, the app lock held)."
)]
pub struct Cli {
    /// Refuse to run unless this program's own sha256 is this (the runner starts a cached
    /// copy with the sum it shipped): on a mismatch, print the line the runner reads as
    /// "upload the helper again" and exit 97.
    #[arg(long, value_name = "SHA256")]
    expect_sha256: Option<String>,
}

/// The exit code with which the host asks the runner for the helper.
const EXIT_NEED_HELPER: u8 = 97;

/// Reads the plan, runs it, and maps the outcome to an exit code.
pub fn main(cli: Cli) -> ExitCode {
    if let Some(expected) = &cli.expect_sha256 {
        let exe = std::env::current_exe().unwrap_or_default();
        // /proc/self/exe is the image this process runs, even if the file was replaced.
        let actual = std::fs::read("/proc/self/exe").map(|b| crate::action::ship::sha256_hex(&b));
        if actual.as_deref().ok() != Some(expected.as_str()) {
            println!(
                "{}need {} {}",
                crate::action::ship::NEED,
                std::env::consts::ARCH,
                exe.display()
            );
            return ExitCode::from(EXIT_NEED_HELPER);
        }
    }
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        return fail(true, &Error::io("read plan from", "stdin", e));
    }
    let plan: DeployPlan = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => return fail(true, &Error::invalid("deploy plan", e.to_string())),
    };
    let problems = plan.problems();
    if !problems.is_empty() {
        return fail(true, &Error::invalid("deploy plan", problems.join("; ")));
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
    ExitCode::from(crate::deploy::run(&plan, &emit).exit_code())
}
