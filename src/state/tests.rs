//! Unit tests of state.json: switch transitions, parsing, rebuilding from disk.

use super::*;
use crate::input::{AppName, Slot, SlotPorts};

fn app() -> AppName {
    "shop".parse().unwrap()
}

fn ports() -> SlotPorts {
    SlotPorts::new(3001, 3002).unwrap()
}

#[test]
fn switch_transitions_track_previous() {
    let s0 = State::new(&app());
    let s1 = s0.after_switch(Slot::Blue, ports(), Some("v1"), Some("shop:1"), "t1");
    assert_eq!((s1.active, s1.previous), (Some(Slot::Blue), None));
    let s2 = s1.after_switch(Slot::Green, ports(), Some("v2"), None, "t2");
    assert_eq!(
        (s2.active, s2.previous),
        (Some(Slot::Green), Some(Slot::Blue))
    );
    assert_eq!(s2.slots.blue.version.as_deref(), Some("v1"));
    assert_eq!(s2.slots.blue.image.as_deref(), Some("shop:1"));
    assert_eq!(s2.slots.green.version.as_deref(), Some("v2"));
    assert_eq!(s2.slots.green.port, Some(3002));
    // Re-switching to the live slot keeps the rollback target.
    let s3 = s2.after_switch(Slot::Green, ports(), None, None, "t3");
    assert_eq!(
        (s3.active, s3.previous),
        (Some(Slot::Green), Some(Slot::Blue))
    );
    assert_eq!(s3.slots.green.version.as_deref(), Some("v2"));
    assert_eq!(s3.switched_at.as_deref(), Some("t3"));
}

#[test]
fn parse_rejects_inconsistent_state() {
    let good = State::new(&app()).after_switch(Slot::Blue, ports(), None, None, "t");
    let text = serde_json::to_string(&good).unwrap();
    assert_eq!(State::parse(&text, &app()).unwrap(), good);
    assert!(State::parse(&text, &"other".parse().unwrap()).is_err());
    assert!(State::parse("{", &app()).is_err());
    assert!(State::parse("", &app()).is_err());
    let mut same = good.clone();
    same.previous = Some(Slot::Blue);
    assert!(State::parse(&serde_json::to_string(&same).unwrap(), &app()).is_err());
    let mut future = good;
    future.format = 99;
    assert!(State::parse(&serde_json::to_string(&future).unwrap(), &app()).is_err());
}

#[test]
fn parse_refuses_values_no_input_could_hold() {
    let good = State::new(&app()).after_switch(Slot::Blue, ports(), Some("v1"), None, "t");
    let text = serde_json::to_string(&good).unwrap();
    let include_breaker = "v1;\\n}\\nserver { listen 80; }";
    for (field, bad) in [
        (
            "\"version\":\"v1\"",
            format!("\"version\":\"{include_breaker}\""),
        ),
        (
            "\"version\":\"v1\"",
            "\"version\":\"v1\",\"image\":\"--privileged\"".into(),
        ),
        ("\"port\":3001", "\"port\":0".into()),
    ] {
        assert!(text.contains(field), "{text}");
        let mangled = text.replacen(field, &bad, 1);
        let err = State::parse(&mangled, &app()).unwrap_err();
        assert!(err.starts_with("slot blue: "), "{mangled}: {err}");
    }
}

#[test]
fn load_rebuilds_from_upstream_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("state"));
    let upstream = dir.path().join("upstream.conf");
    // Nothing on disk: a new app, no warning.
    let fresh = store.load(&app(), &upstream, ports()).unwrap();
    assert_eq!(fresh.source, StateSource::New);
    assert!(fresh.warning.is_none());
    // Upstream routes to green, state missing: rebuilt.
    std::fs::write(&upstream, "upstream shop {\n  server 127.0.0.1:3002;\n}\n").unwrap();
    let rebuilt = store.load(&app(), &upstream, ports()).unwrap();
    assert_eq!(rebuilt.source, StateSource::Rebuilt);
    assert_eq!(rebuilt.state.active, Some(Slot::Green));
    assert!(rebuilt.warning.unwrap().contains("missing"));
    // Corrupt state: rebuilt, the warning names the problem.
    store.ensure_dir().unwrap();
    std::fs::write(store.state_path(), "{\"format\": 1, \"app\": ").unwrap();
    let corrupt = store.load(&app(), &upstream, ports()).unwrap();
    assert_eq!(corrupt.state.active, Some(Slot::Green));
    assert!(corrupt.warning.unwrap().contains("corrupt"));
    // Saved state wins over the upstream file.
    let saved = State::new(&app()).after_switch(Slot::Blue, ports(), None, None, "t");
    store.save(&saved).unwrap();
    let loaded = store.load(&app(), &upstream, ports()).unwrap();
    assert_eq!((loaded.source, loaded.state), (StateSource::File, saved));
}

#[test]
fn traffic_reaching_a_replaced_slot_records_what_replaced_it() {
    let ports = ports();
    let state = State::new(&app())
        .after_switch(Slot::Blue, ports, Some("v1"), Some("shop:1"), "t0")
        .with_image_id(Slot::Blue, Some(&format!("sha256:{}", "1".repeat(64))))
        .after_switch(Slot::Green, ports, Some("v2"), None, "t1")
        .replacing(Slot::Blue, "v3");
    assert!(!state.slots.blue.holds_its_version());
    // A switch that does not say what blue runs (a reconcile, a switch by hand): blue runs
    // v3, whose image is not known; v1's is no longer true of it.
    let after = state.after_switch(Slot::Blue, ports, None, None, "t2");
    let blue = &after.slots.blue;
    assert_eq!(blue.version.as_deref(), Some("v3"));
    assert_eq!(
        (blue.image.as_deref(), blue.image_id.as_deref()),
        (None, None)
    );
    assert!(blue.holds_its_version());
    // Naming the old version while a replacement holds the slot forgets the old image too.
    let named = state.after_switch(Slot::Blue, ports, Some("v1"), None, "t2");
    assert_eq!(named.slots.blue.image_id, None);
}

#[test]
fn the_images_releases_went_live_from_are_remembered_latest_first() {
    let id = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let state = State::new(&app())
        .with_image_id(Slot::Blue, Some(&id('a')))
        .with_image_id(Slot::Green, Some(&id('b')))
        .with_image_id(Slot::Blue, Some(&id('a')))
        .with_image_id(Slot::Green, None);
    assert_eq!(state.deployed_images, [id('a'), id('b')]);
    assert_eq!(
        state.clone().without_images(&[id('a')]).deployed_images,
        [id('b')]
    );
    let text = serde_json::to_string(&state).unwrap();
    assert_eq!(State::parse(&text, &app()).unwrap(), state);
    let mut bad = state.clone();
    bad.deployed_images.push("sha256:nothex".into());
    let bad = serde_json::to_string(&bad).unwrap();
    assert!(
        State::parse(&bad, &app())
            .unwrap_err()
            .contains("deployed_images")
    );
    let many = (0..60).fold(State::new(&app()), |s, n| {
        s.with_image_id(Slot::Blue, Some(&format!("sha256:{n:064x}")))
    });
    assert_eq!(many.deployed_images.len(), DEPLOYED_IMAGES_KEPT);
}

#[test]
fn history_goes_only_into_a_state_directory_that_exists() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path().join("shop"));
    let event = HistoryEvent::parse(
        r#"{"ts":"2026-12-03T12:00:00Z","event":"setup","app":"shop","pid":1}"#,
    )
    .unwrap();
    store.record(&event).unwrap();
    assert!(
        !store.dir().exists(),
        "a run that made no directory leaves none"
    );
    store.ensure_dir().unwrap();
    store.record(&event).unwrap();
    let history = std::fs::read_to_string(store.history_path()).unwrap();
    assert_eq!(history.lines().count(), 1, "{history}");
}
