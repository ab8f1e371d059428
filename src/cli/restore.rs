//! `restore`: re-creates the kernel state of an app's switch from its `state.json` (the
//! nftables rule from the service port to the live slot). The boot path of the nftables
//! mode runs it; it can be run by hand after anything that cleared the rules.

use std::process::ExitCode;

use crate::boot::{RestoreReport, restore};
use crate::cli::{AppArgs, EXIT_CODES_HELP};
use crate::config::defaults;
use crate::error::Result;
use crate::exec::CommandLine;
use crate::report::finish;

const EXAMPLES: &str = "\
Examples:
  bluegreen restore --app shop
  bluegreen restore --app shop --state-dir /srv/shop/state --nft-command 'sudo nft' --json

In nftables mode the rule that sends the service port to the live slot lives only in the
kernel; state.json records it. A reboot clears it: the systemd unit a deploy installs runs
this at boot, as root. Reload mode keeps its route in nginx's include, so there is nothing
to do. A state directory or state.json that its group or others may write, a link, or a
state.json of another app is refused: root acts on none of them.";

/// Re-create an app's switch from its state (the nftables rule after a reboot).
#[derive(Debug, clap::Parser)]
#[command(name = "restore", version, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    app: AppArgs,

    /// The one user besides root that may own the state directory and state.json (the
    /// boot unit names its owner when it was installed) [default: any].
    #[arg(long, value_name = "UID")]
    state_owner: Option<u32>,

    /// The nft command (split into words, no shell), e.g. 'sudo nft'.
    #[arg(long, default_value = defaults::NFT_CMD, value_name = "CMD")]
    nft_command: String,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn run(cli: &Cli) -> Result<RestoreReport> {
    let nft = CommandLine::parse(&cli.nft_command, "--nft-command")?;
    let store = cli.app.store();
    restore(&cli.app.app, store.dir(), cli.state_owner, &nft)
}

pub fn main(cli: Cli) -> ExitCode {
    finish(cli.json, run(&cli))
}
