//! `restore`: re-creates the kernel state of an app's switch from its `state.json` (the
//! nftables rule from the service port to the live slot). The boot path of the nftables
//! mode runs it; it can be run by hand after anything that cleared the rules.

use std::process::ExitCode;

use crate::boot::{BootPath, RestoreReport, restore};
use crate::cli::output::finish;
use crate::cli::{AppArgs, EXIT_CODES_HELP};
use crate::config::defaults;
use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::input::HostPath;

const EXAMPLES: &str = "\
Examples:
  bluegreen restore --app shop
  bluegreen restore --app shop --state-dir /srv/shop/state --nft-command 'sudo nft' --json
  sudo bluegreen restore --app shop --install

In nftables mode the rule that sends the service port to the live slot lives only in the
kernel; state.json records it. A reboot clears it: the systemd unit a deploy installs runs
this at boot, as root. Reload mode keeps its route in nginx's include, so there is nothing
to do. A state directory or state.json that its group or others may write, a link, or a
state.json of another app is refused: root acts on none of them.

With --install, root installs that unit instead (for a deploy user that is not root, whose
runs cannot): the helper copied into --boot-helper-dir, the unit naming the state
directory's owner, enabled at boot. Nothing is written into the state directory.";

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

    /// Install the boot path that runs this restore at boot, instead of restoring (root).
    #[arg(long)]
    install: bool,

    /// With --install: the systemd unit directory.
    #[arg(long, default_value = defaults::SYSTEMD_UNIT_DIR, value_name = "DIR")]
    systemd_unit_dir: HostPath,

    /// With --install: the root-owned directory the unit's copy of the helper goes in.
    #[arg(long, default_value = defaults::BOOT_HELPER_DIR, value_name = "DIR")]
    boot_helper_dir: HostPath,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn run(cli: &Cli) -> Result<RestoreReport> {
    let nft = CommandLine::parse(&cli.nft_command, "--nft-command")?;
    let store = cli.app.store();
    if cli.install {
        return install(cli, store.dir());
    }
    restore(&cli.app.app, store.dir(), cli.state_owner, &nft)
}

/// Installs the boot path of the app whose state is in `state_dir`.
fn install(cli: &Cli, state_dir: &std::path::Path) -> Result<RestoreReport> {
    let boot = BootPath {
        app: cli.app.app.clone(),
        state_dir: state_dir.to_path_buf(),
        unit_dir: cli.systemd_unit_dir.as_path().to_path_buf(),
        helper_dir: cli.boot_helper_dir.as_path().to_path_buf(),
    };
    let exe = std::env::current_exe().map_err(|e| Error::io("find", "this program", e))?;
    let mut changed = boot.install(&exe)?;
    if !changed.is_empty() && std::path::Path::new("/run/systemd/system").exists() {
        let reload = CommandLine::new(["systemctl", "daemon-reload"]);
        if let Err(e) = reload.run(std::time::Duration::from_secs(60)) {
            changed.push(format!("warning: systemctl daemon-reload failed: {e}"));
        }
    }
    Ok(RestoreReport {
        app: cli.app.app.to_string(),
        mode: None,
        detail: if changed.is_empty() {
            format!("the boot path of {} was in place", cli.app.app)
        } else {
            changed.join("; ")
        },
    })
}

pub fn main(cli: Cli) -> ExitCode {
    finish(cli.json, run(&cli))
}
