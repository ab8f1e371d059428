//! The state directory of one app: reading `state.json` (rebuilt from the upstream file,
//! with a warning, when it is missing or corrupt), writing it atomically, and appending to
//! `history.jsonl`; and the paths of the other files kept there.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil::{append_line, check_private_dir, read_optional, write_atomic};
use crate::input::{AppName, SlotPorts};
use crate::upstream;

use super::{HistoryEvent, State};

/// Where a loaded state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateSource {
    /// Read from `state.json`.
    File,
    /// `state.json` was missing or corrupt; rebuilt from the upstream file.
    Rebuilt,
    /// Nothing on disk: the app was never switched.
    New,
}

/// A loaded state and what the caller should tell the user about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The state to work from.
    pub state: State,
    /// Where it came from.
    pub source: StateSource,
    /// A warning to print (missing or corrupt file, rebuilt from disk).
    pub warning: Option<String>,
}

/// The state directory of one app.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// A store rooted at `dir` (not created until something is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of `state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Path of `history.jsonl`.
    pub fn history_path(&self) -> PathBuf {
        self.dir.join("history.jsonl")
    }

    /// The directory nginx serves the maintenance page (and setup's placeholder page) from.
    pub fn pages_dir(&self) -> PathBuf {
        self.dir.join("pages")
    }

    /// Path of the backup of the upstream file taken before the last switch.
    pub fn upstream_backup_path(&self) -> PathBuf {
        self.dir.join("upstream.backup")
    }

    /// Path of the copy of the upstream file as someone last edited it by hand, kept when a
    /// switch replaced it.
    pub fn hand_edited_path(&self) -> PathBuf {
        self.dir.join("upstream.hand-edited")
    }

    /// Creates the state directory (mode 0755) when missing and checks that it belongs to
    /// this user and no one else can write to it (see [`check_private_dir`]).
    pub fn ensure_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(|e| Error::io("create state directory", &self.dir, e))?;
        check_private_dir(&self.dir)
    }

    /// Loads the state of `app`. A missing or corrupt `state.json` is rebuilt from the
    /// upstream file (the slot whose port it routes to is the active one) with a warning.
    /// Fails only when the file exists but cannot be read at all.
    pub fn load(&self, app: &AppName, upstream_file: &Path, ports: SlotPorts) -> Result<Loaded> {
        let path = self.state_path();
        let problem = match read_optional(&path)? {
            Some(text) => match State::parse(&text, app) {
                Ok(state) => {
                    return Ok(Loaded {
                        state,
                        source: StateSource::File,
                        warning: None,
                    });
                }
                Err(why) => Some(format!("{} is corrupt ({why})", path.display())),
            },
            None => None,
        };
        let mut state = State::new(app);
        let include = read_optional(upstream_file)?;
        let routed = include
            .as_deref()
            .and_then(|text| upstream::routed_slot(text, ports, app));
        state.active = routed;
        state.maintenance = include
            .as_deref()
            .and_then(|text| crate::maintenance_server::recorded_in(text, app))
            .filter(|_| routed.is_some());
        let warning = match (&problem, routed) {
            (None, None) => {
                return Ok(Loaded {
                    state,
                    source: StateSource::New,
                    warning: None,
                });
            }
            (None, Some(slot)) => format!(
                "{} is missing; rebuilt from {}: active slot is {slot}",
                path.display(),
                upstream_file.display()
            ),
            (Some(problem), Some(slot)) => format!(
                "{problem}; rebuilt from {}: active slot is {slot}",
                upstream_file.display()
            ),
            (Some(problem), None) => format!(
                "{problem}; {} names neither slot's port, starting from empty state",
                upstream_file.display()
            ),
        };
        Ok(Loaded {
            state,
            source: StateSource::Rebuilt,
            warning: Some(warning),
        })
    }

    /// The state `state.json` holds for `app`, when it exists and is valid (nothing is
    /// rebuilt).
    pub fn read(&self, app: &AppName) -> Option<State> {
        let text = read_optional(&self.state_path()).ok()??;
        State::parse(&text, app).ok()
    }

    /// Writes `state.json` atomically.
    pub fn save(&self, state: &State) -> Result<()> {
        self.ensure_dir()?;
        let mut text = serde_json::to_string_pretty(state).expect("state serializes");
        text.push('\n');
        write_atomic(&self.state_path(), text.as_bytes(), 0o644)
    }

    /// Appends one event to `history.jsonl`, in the app's directory where there is one: a
    /// run that never made it (refused before its lock) or removed the one it made (a
    /// refused first setup) leaves nothing on the host.
    pub fn record(&self, event: &HistoryEvent) -> Result<()> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        self.ensure_dir()?;
        let line = serde_json::to_string(event).expect("history event serializes");
        append_line(&self.history_path(), &line)
    }

    /// The `state.json` of every other app whose state directory stands beside this one,
    /// read loosely as JSON (any format, so an older or newer one counts too), with its
    /// path: what other apps on this host hold.
    pub fn neighbours(&self, app: &AppName) -> Vec<(PathBuf, serde_json::Value)> {
        let Some(entries) = self.dir.parent().and_then(|p| std::fs::read_dir(p).ok()) else {
            return Vec::new();
        };
        let mut found: Vec<(PathBuf, serde_json::Value)> = entries
            .filter_map(|entry| {
                let path = entry.ok()?.path().join("state.json");
                let text = std::fs::read_to_string(&path).ok()?;
                let state: serde_json::Value = serde_json::from_str(&text).ok()?;
                (state.get("app")?.as_str()? != app.as_str()).then_some((path, state))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}
