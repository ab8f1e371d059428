//! `bluegreen deploy`: runs one deploy, rollback or status on this host from a JSON plan on
//! stdin, printing one JSON event per line on stdout. The action's orchestrator drives it
//! over SSH, keeping stdin open after the plan as its control channel (`--control-stdin`);
//! it can also be run by hand with a plan file, and stops early on SIGINT or SIGTERM.

use std::io::{BufRead, BufReader, Write};

use serde::Deserialize;
use std::process::ExitCode;

use crate::cancel::{Cancel, CancelReason};
use crate::cli::output::fail;
use crate::deploy::{DeployPlan, Event};
use crate::error::Error;

/// Run a deploy plan (JSON on stdin) on this host and stream its events as JSON lines.
#[derive(Debug, clap::Parser)]
#[command(
    name = "deploy",
    after_help = "Example:\n  bluegreen deploy < plan.json\n\nExit codes: 0 deployed or unchanged, 1 failed, rolled back or cancelled, 2 bad plan,\n3 environment error (I/O, a program missing or failing, the app lock held)."
)]
pub struct Cli {
    /// Refuse to run unless this program's own sha256 is this (the runner starts a cached
    /// copy with the sum it shipped): on a mismatch, print the line the runner reads as
    /// "upload the helper again" and exit 97.
    #[arg(long, value_name = "SHA256")]
    expect_sha256: Option<String>,

    /// After the plan, keep reading stdin as the runner's control channel: a `cancel` line,
    /// or the end of stdin (the runner's connection closed), asks the run to stop.
    #[arg(long)]
    control_stdin: bool,
}

/// The exit code with which the host asks the runner for the helper.
const EXIT_NEED_HELPER: u8 = 97;

/// Reads the plan, runs it, and maps the outcome to an exit code.
pub fn main(cli: Cli) -> ExitCode {
    if let Some(expected) = &cli.expect_sha256 {
        let exe = std::env::current_exe().unwrap_or_default();
        // /proc/self/exe is the image this process runs, even if the file was replaced.
        let actual = std::fs::read("/proc/self/exe").map(|b| crate::fsutil::sha256_hex(&b));
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
    run_checked(cli.control_stdin, |_| Ok(()))
}

/// Reads the plan from stdin (with `control_stdin`, then follows the control channel), has
/// `check` pass it (the restricted key's gate refuses what its key may not do), runs it, and
/// maps the outcome to an exit code.
pub fn run_checked(
    control_stdin: bool,
    check: impl FnOnce(&DeployPlan) -> Result<(), Error>,
) -> ExitCode {
    let mut stdin = BufReader::new(std::io::stdin());
    let plan = match read_plan(&mut stdin, control_stdin).and_then(|mut plan| {
        check(&plan)?;
        plan.settle_with_state()?;
        Ok(plan)
    }) {
        Ok(p) => p,
        Err(e) => return fail(true, &e),
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
    let cancel = Cancel::new();
    watch_signals(cancel.clone());
    if control_stdin {
        let cancel = cancel.clone();
        std::thread::spawn(move || follow_control(stdin, &cancel));
    }
    ExitCode::from(crate::deploy::run(&plan, &emit, cancel).exit_code())
}

/// Reads one JSON plan from `input`: the whole input, or with `more_follows` only the plan,
/// leaving the rest (the control channel) unread.
fn read_plan(input: &mut impl BufRead, more_follows: bool) -> Result<DeployPlan, Error> {
    let invalid = |e: serde_json::Error| Error::invalid("deploy plan", e.to_string());
    let mut json = serde_json::Deserializer::from_reader(input);
    let plan = DeployPlan::deserialize(&mut json).map_err(invalid)?;
    if !more_follows {
        json.end().map_err(invalid)?;
    }
    Ok(plan)
}

/// Follows the runner's control channel: a `cancel` line asks the run to stop; so does the
/// end of the channel, which means the runner's connection closed (once the result is out,
/// nothing is left to stop).
fn follow_control(mut control: impl BufRead, cancel: &Cancel) {
    let mut line = String::new();
    loop {
        line.clear();
        match control.read_line(&mut line) {
            Ok(0) | Err(_) => return cancel.request(CancelReason::RunnerGone),
            Ok(_) if line.trim() == "cancel" => return cancel.request(CancelReason::Runner),
            Ok(_) => {}
        }
    }
}

/// The first SIGINT, SIGTERM or SIGHUP asks the run to stop; a second one ends the process
/// at once (the kernel releases the lock with it).
fn watch_signals(cancel: Cancel) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        for (count, _) in signals.forever().enumerate() {
            if count == 0 {
                cancel.request(CancelReason::Signal);
            } else {
                std::process::exit(130);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_channel_cancels_on_a_cancel_line_or_its_end() {
        let cancel = Cancel::new();
        follow_control(&b"noise\ncancel\n"[..], &cancel);
        assert_eq!(cancel.requested(), Some(CancelReason::Runner));
        let gone = Cancel::new();
        follow_control(&b""[..], &gone);
        assert_eq!(gone.requested(), Some(CancelReason::RunnerGone));
    }
}
