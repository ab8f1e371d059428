//! Integration tests of the helper binaries against real programs: nginx from the system's
//! packages, the demo app, Docker, sshd, and the real action.yml run by act. One test binary, one module per
//! helper; `support` holds the harness.

mod action;
mod action_yml;
mod demo_app;
mod faults;
mod health_check;
mod monitor;
mod properties;
mod support;
mod switch_traffic;
mod validate;
