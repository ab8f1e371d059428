//! Integration tests of the helper binaries against real programs: nginx from the system's
//! packages, the demo app, Docker, sshd, and the real action.yml run by act. One test binary,
//! one module per helper or concern; `support` holds the harness. A test that needs a
//! program or root says so with `require!` and is skipped where it is missing (never under
//! `BLUEGREEN_REQUIRE_ALL=1`, which `scripts/test` sets).

#[macro_use]
mod support;

mod action;
mod action_release;
mod action_scripts;
mod action_ssh;
mod action_yml;
mod boot;
mod canary;
mod cancel;
mod demo_app;
mod faults;
mod fleet;
mod gate;
mod handshakes;
mod health_check;
mod hooks;
mod host_run;
mod hostile;
mod images;
mod maintenance;
mod monitor;
mod nonroot;
mod properties;
mod quick_start;
mod rollback;
mod service_port;
mod setup;
mod status;
mod switch_modes;
mod switch_traffic;
mod two_nginx;
mod validate;
mod watch;
