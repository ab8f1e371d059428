//! `validate`: read-only preflight of a host before a deploy. Runs every check and lists
//! each as pass, warn or fail.

use std::process::ExitCode;
use std::time::Duration;

use crate::boot::BootPath;
use crate::cli::output::finish;
use crate::cli::{AppArgs, EXIT_CODES_HELP, NginxArgs, PortArgs};
use crate::config::defaults;
use crate::error::Result;
use crate::exec::CommandLine;
use crate::input::{HostPath, HostPort, Port, SwitchMode, parse_time_limit};
use crate::nft::NftSwitch;
use crate::runtime::Runtime;
use crate::switch::settled_service_port;
use crate::validate::{Audience, MemoryCheck, ValidateReport, ValidateRequest};

const EXAMPLES: &str = "\
Examples (`bluegreen validate`, or validate as a link to bluegreen):
  validate --app shop
  validate --app shop --runtime compose --tcp db:5432 --tcp redis:6379
  validate --app shop --test-cmd 'docker exec web nginx -t' --json
  validate --app shop --test-cmd 'sudo /usr/sbin/nginx -t' --reload-cmd 'sudo /usr/sbin/nginx -s reload'";

/// Check that a host is ready for a blue-green deploy (nginx, disk, Docker, the standby
/// port, dependencies, state). Changes nothing.
#[derive(Debug, clap::Parser)]
#[command(name = "validate", version, allow_negative_numbers = true, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    app: AppArgs,

    #[command(flatten)]
    ports: PortArgs,

    #[command(flatten)]
    nginx: NginxArgs,

    /// How the slots run: docker and compose need a Docker daemon, command does not.
    #[arg(long, value_enum, default_value = defaults::RUNTIME)]
    runtime: Runtime,

    /// The docker command (split into words, no shell), e.g. 'sudo docker'.
    #[arg(long, default_value = defaults::DOCKER_CMD, value_name = "CMD")]
    docker_cmd: String,

    /// Minimum free space at the state directory and Docker's data root, in MiB.
    #[arg(long, default_value = defaults::MIN_FREE_DISK_MB, value_name = "MIB")]
    min_free_disk_mb: u64,

    /// How a standby that would not fit in memory (a second copy of what the live slot
    /// uses, with --min-free-memory-mb to spare) is treated.
    #[arg(long, value_enum, default_value = defaults::MEMORY_CHECK)]
    memory_check: MemoryCheck,

    /// Memory (MiB) that must stay available with both slots running.
    #[arg(long, default_value = defaults::MIN_FREE_MEMORY_MB, value_name = "MIB")]
    min_free_memory_mb: u64,

    /// A TCP dependency that must accept connections (repeatable), e.g. db:5432.
    #[arg(long = "tcp", value_name = "HOST:PORT")]
    tcp: Vec<HostPort>,

    /// Connect timeout for each --tcp dependency.
    #[arg(long, default_value = defaults::TCP_TIMEOUT, value_parser = parse_time_limit, value_name = "DURATION")]
    tcp_timeout: Duration,

    /// The switch mode the deploys use; nftables mode (and auto, where it picks nftables)
    /// checks that nft answers.
    #[arg(long, value_enum, default_value = defaults::SWITCH_MODE)]
    mode: SwitchMode,

    /// The service port of the nftables mode [default: the port state.json records, else
    /// one drawn from the app's name in 20000-29999].
    #[arg(long, value_name = "PORT")]
    service_port: Option<Port>,

    /// The systemd unit directory that holds the nftables mode's boot path.
    #[arg(long, default_value = defaults::SYSTEMD_UNIT_DIR, value_name = "DIR")]
    systemd_unit_dir: HostPath,

    /// The root-owned directory holding the helper the boot unit runs as root.
    #[arg(long, default_value = defaults::BOOT_HELPER_DIR, value_name = "DIR")]
    boot_helper_dir: HostPath,

    /// The nft command (split into words, no shell), e.g. 'sudo nft'.
    #[arg(long, default_value = defaults::NFT_CMD, value_name = "CMD")]
    nft_command: String,

    /// The command the reload-mode switch reloads nginx with (split into words, no shell):
    /// checked for permission without reloading (`sudo -n -l` for sudo, else the right to
    /// signal nginx's master) [default: not checked].
    #[arg(long, value_name = "CMD")]
    reload_cmd: Option<String>,

    /// nginx's pid file, whose master a plain reload command signals.
    #[arg(long, default_value = defaults::NGINX_PID_FILE, value_name = "PATH")]
    nginx_pid_file: HostPath,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Whether the deploys will use nftables: asked for, or `auto` and `nft` answers here.
fn uses_nftables(cli: &Cli) -> Result<bool> {
    let nft = CommandLine::parse(&cli.nft_command, "--nft-command")?;
    Ok(match cli.mode {
        SwitchMode::Nftables => true,
        SwitchMode::Reload => false,
        SwitchMode::Auto => nft
            .with_args(["list", "tables"])
            .run(crate::config::seconds(defaults::TCP_TIMEOUT))
            .is_ok(),
    })
}

fn run(cli: &Cli) -> Result<ValidateReport> {
    let nft = CommandLine::parse(&cli.nft_command, "--nft-command")?;
    let nftables = uses_nftables(cli)?;
    let reload_cmd = cli
        .reload_cmd
        .as_deref()
        .map(|c| CommandLine::parse(c, "--reload-cmd"))
        .transpose()?;
    let ports = cli.ports.ports(&cli.app.app, &cli.app.store())?;
    let store = cli.app.store();
    let service_port = settled_service_port(
        cli.service_port,
        crate::config::default_service_port(&cli.app.app, ports),
        store.read(&cli.app.app).and_then(|s| s.service_port),
        store.dir(),
    )?;
    let request = ValidateRequest {
        audience: Audience::Helper,
        reload_cmd,
        nginx_pid_file: cli.nginx_pid_file.as_path().to_path_buf(),
        verify_port: None,
        app: cli.app.app.clone(),
        store: cli.app.store(),
        upstream_file: cli
            .nginx
            .upstream_file(&cli.app.app)
            .as_path()
            .to_path_buf(),
        test_cmd: cli.nginx.test_cmd()?,
        runtime: cli.runtime,
        docker_cmd: CommandLine::parse(&cli.docker_cmd, "--docker-cmd")?,
        min_free_disk_mb: cli.min_free_disk_mb,
        memory_check: cli.memory_check,
        min_free_memory_mb: cli.min_free_memory_mb,
        ports,
        tcp: cli.tcp.clone(),
        tcp_timeout: cli.tcp_timeout,
        nft: nftables.then(|| NftSwitch::new(&cli.app.app, service_port.get(), nft.clone())),
        boot: nftables.then(|| BootPath {
            app: cli.app.app.clone(),
            state_dir: cli.app.store().dir().to_path_buf(),
            unit_dir: cli.systemd_unit_dir.as_path().to_path_buf(),
            helper_dir: cli.boot_helper_dir.as_path().to_path_buf(),
        }),
    };
    Ok(request.run())
}

pub fn main(cli: Cli) -> ExitCode {
    finish(cli.json, run(&cli))
}
