//! Progress reporting on stderr: an indicatif bar when stderr is a terminal, plain lines
//! otherwise (CI logs, pipes), so logs stay readable and terminals stay tidy; or handed to
//! a sink when a deploy run reports them as events.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter for one long-running step.
pub struct Progress<'a> {
    bar: Option<ProgressBar>,
    sink: Option<&'a (dyn Fn(&str) + Sync)>,
}

impl<'a> Progress<'a> {
    /// A reporter for a step of `total` units (milliseconds of a time budget, for example).
    /// Draws a bar only when stderr is a terminal.
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .expect("progress template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, sink: None }
    }

    /// A reporter that hands every line to `sink` instead of printing (a deploy run turns
    /// them into events).
    pub fn lines(sink: &'a (dyn Fn(&str) + Sync)) -> Self {
        Progress {
            bar: None,
            sink: Some(sink),
        }
    }

    /// Whether plain lines are printed (no terminal).
    pub fn is_plain(&self) -> bool {
        self.bar.is_none()
    }

    /// Moves the bar to `position` with `message`; prints nothing in plain mode.
    pub fn update(&self, position: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(message.to_owned());
        }
    }

    /// Prints a line: above the bar on a terminal, as a plain line otherwise, or to the
    /// sink.
    pub fn line(&self, message: &str) {
        match (&self.bar, self.sink) {
            (Some(bar), _) => bar.println(message),
            (None, Some(sink)) => sink(message),
            (None, None) => eprintln!("{message}"),
        }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
