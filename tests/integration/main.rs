//! Integration tests of the helper binaries against real programs: nginx from the system's
//! packages, the demo app, Docker where a check needs it. One test binary, one module per
//! helper; `support` holds the harness.

mod demo_app;
mod health_check;
mod monitor;
mod support;
mod switch_traffic;
mod validate;
