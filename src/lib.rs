//! bluegreen: zero-downtime blue-green deploys of a Docker app behind nginx.
//!
//! This library holds the logic of the host-side helpers and of the action's orchestrator;
//! each binary in `src/bin/` only parses arguments, calls in here, and maps the outcome to an
//! exit code.
//!
//! Layout:
//! - [`action`]: the orchestrator `action.yml` runs on the runner (inputs, SSH, shipping the
//!   helper, relaying events, outputs, job summary, Slack).
//! - [`deploy`]: one deploy, rollback or status on a host, phase by phase (`bluegreen deploy`):
//!   the plan, the engine and its operations, and [`deploy::Host`], the one interface through
//!   which the engine acts on the host.
//! - [`config`]: every default, shared by the action's inputs, the helpers and the plan.
//! - [`input`]: validated input types (app names, ports, durations, URLs, paths).
//! - [`error`]: the one error type and the exit codes.
//! - [`exec`]: running external programs as argv vectors, with timeouts.
//! - [`fsutil`], [`state`], [`lock`], [`clock`]: crash-safe files, `state.json` and
//!   `history.jsonl`, the per-app lock (`state/store.rs`: the state directory), the time
//!   they record.
//! - [`upstream`], [`nginx`], [`nft`], [`conntrack`], [`boot`]: rendering the upstream
//!   include, confirming reloads, the nftables switch mode (and the kernel's unanswered
//!   handshakes it forgets) and what restores it at boot (as root, from root's files).
//! - [`http`], [`health`], [`monitor`]: probing URLs, health checks, post-switch watching.
//! - [`switch`], [`validate`]: the switch (its configuration and intent, the pure decision,
//!   its execution, confirmation and undo path), the preflight checks.
//! - [`gate`]: what a restricted deploy key may run on a host (`bluegreen gate`).
//! - [`runtime`], [`sys`]: the slots' command builders per runtime, host facts from the kernel.
//! - [`owners`]: whether a path that root runs or opens is root's alone.
//! - [`cli`], [`progress`]: the helpers' arguments and output, progress display.
//! - [`canary`]: judging real traffic: traffic steps, the access log they and the watch are
//!   judged on, the estimate where the log cannot tell the slots apart, the verdicts, and
//!   the receipt of what a run cost the users.
//! - [`maintenance_server`]: the include that makes nginx answer 503 with a page (maintenance mode,
//!   and setup's placeholder before a first deploy).
//! - [`cancel`]: the request to stop a run early, and what it means before and after the
//!   switch.

pub mod action;
pub mod boot;
pub mod canary;
pub mod cancel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conntrack;
pub mod deploy;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod gate;
pub mod health;
pub mod http;
pub mod input;
pub mod lock;
pub mod maintenance_server;
pub mod monitor;
pub mod nft;
pub mod nginx;
pub mod owners;
pub mod progress;
pub mod runtime;
pub mod state;
pub mod switch;
pub mod sys;
pub mod upstream;
pub mod validate;
