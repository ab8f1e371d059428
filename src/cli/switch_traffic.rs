//! `switch-traffic`: points nginx at the blue or green slot, confirms it, records it.

use std::process::ExitCode;

use crate::cli::{AppArgs, EXIT_CODES_HELP, NginxArgs, PortArgs, SwitchArgs, SwitchParts};
use crate::error::Result;
use crate::input::{SwitchTarget, Version};
use crate::progress::Progress;
use crate::report::finish;
use crate::switch::{Intent, SwitchReport};

const EXAMPLES: &str = "\
Examples:
  switch-traffic --app shop --to green --app-version v42 --verify-url http://127.0.0.1/health
  switch-traffic --app shop --to previous
  switch-traffic --app shop --to blue --dry-run
  switch-traffic --app shop --to green --test-cmd 'docker exec web nginx -t' \\
      --reload-cmd 'docker exec web nginx -s reload' --verify-url http://127.0.0.1/health

Your nginx server block proxies to the upstream named after the app:
  include /etc/nginx/conf.d/bluegreen-shop.conf;   # or any include that picks it up
  location / { proxy_pass http://shop; }";

/// Switch nginx to the blue or green slot: render the upstream include, write it
/// atomically, test, reload, confirm, and only then record the new state. Any failure puts
/// the previous include back.
#[derive(Debug, clap::Parser)]
#[command(name = "switch-traffic", version, allow_negative_numbers = true, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    app: AppArgs,

    /// The slot to send traffic to: blue, green, or previous (the slot active before).
    #[arg(long, value_name = "SLOT")]
    to: SwitchTarget,

    /// The version now running in that slot, recorded in state and the include.
    #[arg(long, value_name = "VERSION")]
    app_version: Option<Version>,

    #[command(flatten)]
    ports: PortArgs,

    #[command(flatten)]
    nginx: NginxArgs,

    #[command(flatten)]
    switch: SwitchArgs,

    /// Print the include that would be written and its diff; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn run(cli: &Cli) -> Result<SwitchReport> {
    let parts = SwitchParts {
        app: &cli.app.app,
        state_dir: cli.app.state_dir.as_ref(),
        ports: &cli.ports,
        nginx: &cli.nginx,
        switch: &cli.switch,
    };
    let intent = Intent::switch_to(cli.to).recording(cli.app_version.clone(), None);
    let request = parts.request(intent, cli.dry_run)?;
    request.run(&Progress::new(0))
}

pub fn main(cli: Cli) -> ExitCode {
    finish(cli.json, run(&cli))
}
