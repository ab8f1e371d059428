//! `bluegreen gate`: the forced command of a restricted deploy key. sshd runs it, whatever
//! the key's holder asked, with the request in `SSH_ORIGINAL_COMMAND`; it answers the
//! action's requests for the apps it names and refuses everything else with one line (see
//! [`crate::gate`]). With `--install`, root puts this helper where the `authorized_keys`
//! line runs it from and prints that line.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::EXIT_CODES_HELP;
use crate::config::defaults;
use crate::error::{EXIT_BAD_INPUT, Error};
use crate::exec::CommandLine;
use crate::gate::{Policy, Request, STATE_DIR_PATTERN, UPSTREAM_FILE_PATTERN};
use crate::input::{AppName, HostPath, SlotPorts};

const EXAMPLES: &str = "\
Examples:
  sudo bluegreen gate --install --apps shop --image ghcr.io/acme/shop
  # then, in the deploy user's ~/.ssh/authorized_keys, in front of the CI key:
  restrict,command=\"/usr/local/lib/bluegreen/bluegreen gate --apps shop --image ghcr.io/acme/shop\" ssh-ed25519 AAAA... ci

Through such a key the action deploys, rolls back, reports status, promotes or aborts a
canary and turns maintenance on or off for the named apps, with the installed helper.
Everything else is refused with one line: a shell, any other command, an upload, docker
load, setup, a plan for another app, paths, ports and commands other than the app's, hooks
and templates (commands of the plan's choosing), another runtime than docker, an image of
another repository than --image ones, docker-args that let the container out of its box
(--privileged, host namespaces, --cap-add, devices, security options, bind mounts other
than the --dir directories, volumes of other apps, networks other than --network ones,
log drivers that send output elsewhere, bluegreen's own labels), and probes of URLs off
the host. Answers' bodies stay out of what the key is told.

What a leaked key can still do: deploy an image of the --image repositories for the named
apps (the site is then theirs), with the directories, env files and networks given here.";

/// Answer a restricted deploy key's request (the forced command of its authorized_keys line).
#[derive(Debug, clap::Parser)]
#[command(name = "gate", version, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    /// The apps the key may deploy, comma-separated.
    #[arg(long, value_name = "APP,...", value_delimiter = ',', required = true)]
    apps: Vec<AppName>,

    /// An app's slot ports where they are not the defaults (3001, 3002), until its state
    /// records them: `APP=BLUE,GREEN`; repeat for more.
    #[arg(long = "ports", value_name = "APP=BLUE,GREEN", value_parser = app_ports)]
    ports: Vec<(AppName, SlotPorts)>,

    /// An image repository the key may deploy (`ghcr.io/org/shop`); repeat for more. None
    /// given: no image is deployed through the key.
    #[arg(long = "image", value_name = "REPOSITORY")]
    images: Vec<String>,

    /// A directory of the host a container may be given as a bind mount, as it is (its
    /// parent root's alone); repeat for more [default: none].
    #[arg(long = "dir", value_name = "DIR")]
    dirs: Vec<HostPath>,

    /// An env file (root's) a plan may name as its env-file; repeat for more [default: none].
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<HostPath>,

    /// A docker network a container may join (--network) besides the default bridge;
    /// repeat for more [default: none].
    #[arg(long = "network", value_name = "NAME")]
    networks: Vec<String>,

    /// The state directory plans must name, `{app}` standing for the app's name.
    #[arg(long, default_value = STATE_DIR_PATTERN, value_name = "DIR")]
    state_dir: String,

    /// The upstream include plans must name, `{app}` standing for the app's name.
    #[arg(
        long,
        default_value = UPSTREAM_FILE_PATTERN,
        value_name = "FILE"
    )]
    upstream_file: String,

    /// The access log directory plans must name.
    #[arg(long, default_value = defaults::LOG_DIR, value_name = "DIR")]
    log_dir: HostPath,

    /// The systemd unit directory plans must name.
    #[arg(long, default_value = defaults::SYSTEMD_UNIT_DIR, value_name = "DIR")]
    systemd_unit_dir: HostPath,

    /// The root-owned helper directory plans must name; with --install, where the helper
    /// goes.
    #[arg(long, default_value = defaults::BOOT_HELPER_DIR, value_name = "DIR")]
    boot_helper_dir: HostPath,

    /// The nginx test command plans must name (split into words, no shell).
    #[arg(long, default_value = defaults::TEST_CMD, value_name = "CMD")]
    nginx_test_command: String,

    /// The nginx reload command plans must name.
    #[arg(long, default_value = defaults::RELOAD_CMD, value_name = "CMD")]
    reload_command: String,

    /// The nft command plans must name.
    #[arg(long, default_value = defaults::NFT_CMD, value_name = "CMD")]
    nft_command: String,

    /// Instead of answering a request: copy this helper into --boot-helper-dir as root's
    /// and print the authorized_keys line that runs it (root).
    #[arg(long)]
    install: bool,
}

/// Answers the request sshd passed on, or installs.
pub fn main(cli: Cli) -> ExitCode {
    let policy = match policy(&cli) {
        Ok(p) => p,
        Err(e) => return crate::cli::output::fail(false, &e),
    };
    if cli.install {
        return install(&cli);
    }
    let original = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    let request = match Request::of(original.as_deref()) {
        Ok(r) => r,
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    crate::gate::mark_answering();
    if let Request::InspectImage(image) = &request
        && !policy.allows_image(image)
    {
        eprintln!(
            "refused: {}: not of a repository this key deploys",
            image.as_str()
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    match request.command() {
        None => super::deploy::run_checked(true, |plan| {
            let recorded =
                crate::state::StateStore::new(policy.state_dir_of(&plan.app)).read(&plan.app);
            let mut refusals = policy.unsafe_given();
            refusals.extend(policy.refusals(plan, recorded.as_ref()));
            if refusals.is_empty() {
                return Ok(());
            }
            Err(Error::invalid(
                "deploy plan",
                format!("refused by the restricted key: {}", refusals.join("; ")),
            ))
        }),
        Some(command) => crate::cli::output::fail(false, &command.exec_in_place()),
    }
}

/// `APP=BLUE,GREEN` as an app and its slots' ports.
fn app_ports(text: &str) -> Result<(AppName, SlotPorts), Error> {
    let bad = || Error::invalid("--ports", format!("{text:?}: expected APP=BLUE,GREEN"));
    let (app, ports) = text.split_once('=').ok_or_else(bad)?;
    let (blue, green) = ports.split_once(',').ok_or_else(bad)?;
    let port = |p: &str| crate::input::parse_port(p);
    Ok((app.parse()?, SlotPorts::new(port(blue)?, port(green)?)?))
}

fn policy(cli: &Cli) -> Result<Policy, Error> {
    let command = |text: &str, what: &str| CommandLine::parse(text, what);
    Ok(Policy {
        apps: cli.apps.clone(),
        dirs: cli.dirs.iter().map(|d| d.as_path().to_path_buf()).collect(),
        env_files: cli
            .env_files
            .iter()
            .map(|f| f.as_path().to_path_buf())
            .collect(),
        networks: cli.networks.clone(),
        ports: cli.ports.clone(),
        images: cli.images.clone(),
        state_dir: cli.state_dir.clone(),
        upstream_file: cli.upstream_file.clone(),
        log_dir: cli.log_dir.clone(),
        systemd_unit_dir: cli.systemd_unit_dir.clone(),
        boot_helper_dir: cli.boot_helper_dir.clone(),
        test_cmd: command(&cli.nginx_test_command, "--nginx-test-command")?,
        reload_cmd: command(&cli.reload_command, "--reload-command")?,
        nft_cmd: command(&cli.nft_command, "--nft-command")?,
    })
}

/// Copies this helper into the helper directory as root's and prints the line for
/// `authorized_keys` that runs it with the same options.
fn install(cli: &Cli) -> ExitCode {
    if crate::sys::euid() != 0 {
        return crate::cli::output::fail(
            false,
            &Error::CheckFailed(
                "sshd runs the gate for the deploy user, so only root installs it where that user cannot change it: run it with sudo".into(),
            ),
        );
    }
    let installed = std::env::current_exe()
        .map_err(|e| Error::io("find", "this program", e))
        .and_then(|exe| crate::boot::install_helper(cli.boot_helper_dir.as_path(), &exe));
    match installed {
        Ok(changed) => {
            println!("{}", changed.as_deref().unwrap_or("the helper is in place"));
            let helper: PathBuf = cli.boot_helper_dir.as_path().join("bluegreen");
            println!(
                "put this in front of the deploy key in the deploy user's ~/.ssh/authorized_keys:\n{}",
                authorized_keys_options(&helper, cli)
            );
            ExitCode::SUCCESS
        }
        Err(e) => crate::cli::output::fail(false, &e),
    }
}

/// The options of the `authorized_keys` line: `restrict` (no shell, forwarding or pty) and
/// the gate as the forced command, with this run's options.
fn authorized_keys_options(helper: &std::path::Path, cli: &Cli) -> String {
    let mut words = vec![
        helper.display().to_string(),
        "gate".into(),
        "--apps".into(),
        cli.apps
            .iter()
            .map(AppName::as_str)
            .collect::<Vec<_>>()
            .join(","),
    ];
    for dir in &cli.dirs {
        words.extend(["--dir".into(), dir.to_string()]);
    }
    for file in &cli.env_files {
        words.extend(["--env-file".into(), file.to_string()]);
    }
    for network in &cli.networks {
        words.extend(["--network".into(), network.clone()]);
    }
    for image in &cli.images {
        words.extend(["--image".into(), image.clone()]);
    }
    for (app, ports) in &cli.ports {
        words.extend([
            "--ports".into(),
            format!(
                "{app}={},{}",
                ports.port(crate::input::Slot::Blue),
                ports.port(crate::input::Slot::Green)
            ),
        ]);
    }
    for (flag, value, default) in [
        ("--state-dir", cli.state_dir.clone(), STATE_DIR_PATTERN),
        (
            "--upstream-file",
            cli.upstream_file.clone(),
            UPSTREAM_FILE_PATTERN,
        ),
        ("--log-dir", cli.log_dir.to_string(), defaults::LOG_DIR),
        (
            "--systemd-unit-dir",
            cli.systemd_unit_dir.to_string(),
            defaults::SYSTEMD_UNIT_DIR,
        ),
        (
            "--boot-helper-dir",
            cli.boot_helper_dir.to_string(),
            defaults::BOOT_HELPER_DIR,
        ),
        (
            "--nginx-test-command",
            cli.nginx_test_command.clone(),
            defaults::TEST_CMD,
        ),
        (
            "--reload-command",
            cli.reload_command.clone(),
            defaults::RELOAD_CMD,
        ),
        ("--nft-command", cli.nft_command.clone(), defaults::NFT_CMD),
    ] {
        if value != default {
            words.extend([flag.to_owned(), value]);
        }
    }
    let command = shell_words::join(&words)
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("restrict,command=\"{command}\"")
}
