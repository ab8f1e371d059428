//! The checks of the nftables mode: nft answers, the service port nginx proxies to is this
//! app's alone (a DNAT rule on it catches every local connection to it, so a port another
//! app's table or state holds, or that another process listens on, would take their
//! traffic), and the boot path that restores the rule after a reboot is in place.

use crate::input::AppName;
use crate::nft::NftSwitch;
use crate::state::StateStore;
use crate::sys;

use super::request::{CheckResult, CheckStatus, ValidateRequest};

impl ValidateRequest {
    pub(super) fn nft_checks(&self) -> Vec<CheckResult> {
        let mut checks = Vec::new();
        if let Some(nft) = &self.nft {
            let current = nft.current_target();
            checks.push(CheckResult::from_result(
                "nftables",
                nft.available()
                    .map(|()| match current {
                        Some(port) => format!(
                            "nft answers; service port {} leads to port {port}",
                            nft.service_port
                        ),
                        None => format!(
                            "nft answers; table {} is created by the first switch",
                            nft.table
                        ),
                    })
                    .map_err(|e| format!("nftables cannot be used: {e}")),
            ));
            checks.push(CheckResult::from_result(
                "service-port",
                service_port_taken(&self.app, nft, current.is_some(), &self.store),
            ));
        }
        if let Some(boot) = &self.boot {
            checks.push(match boot.missing() {
                None => CheckResult::new(
                    "boot-path",
                    CheckStatus::Pass,
                    format!("{} restores the rule at boot", boot.unit_name()),
                ),
                Some(what) => CheckResult::new(
                    "boot-path",
                    CheckStatus::Warn,
                    format!(
                        "{what}: after a reboot nginx would proxy to the service port with no rule until the next deploy; a successful nftables deploy or setup run as root installs it (the unit in {}, the helper it runs in {}, root's alone)",
                        boot.unit_dir.display(),
                        boot.helper_dir.display()
                    ),
                ),
            });
        }
        checks
    }
}

/// Why `nft`'s service port is not `app`'s to use, if it is not: the owners found, each
/// named. `own_rule`: the app's table has a rule now (then the port is ours to be caught);
/// `store` is the app's state directory, beside which the states of other apps are found.
fn service_port_taken(
    app: &AppName,
    nft: &NftSwitch,
    own_rule: bool,
    store: &StateStore,
) -> Result<String, String> {
    let port = nft.service_port;
    let mut owners = Vec::new();
    match nft.others_on_service_port() {
        Ok(tables) => owners.extend(tables.iter().map(|t| format!("the nftables table {t}"))),
        Err(e) => return Err(format!("the other apps' tables cannot be read: {e}")),
    }
    owners.extend(other_states_on(app, port, store));
    if !own_rule && !sys::port_is_free(port) {
        owners.push(match sys::port_owner(port) {
            Some(owner) => format!("{owner}, which listens on it"),
            None => "a process that listens on it".to_owned(),
        });
    }
    if owners.is_empty() {
        Ok(format!("service port {port} is this app's alone"))
    } else {
        Err(format!(
            "service port {port} is taken by {}: a rule on it would catch their connections; give this app a port of its own with service-port (--service-port)",
            owners.join(", ")
        ))
    }
}

/// The other apps whose state, in a directory beside `store`'s, records `port` as their
/// service port in nftables mode.
fn other_states_on(app: &AppName, port: u16, store: &StateStore) -> Vec<String> {
    store
        .neighbours(app)
        .into_iter()
        .filter(|(_, state)| {
            state["switch_mode"] == "nftables"
                && state["service_port"].as_u64() == Some(u64::from(port))
        })
        .map(|(path, state)| {
            format!(
                "the app {} ({})",
                state["app"].as_str().unwrap_or_default(),
                path.display()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_apps_state_beside_ours_is_found() {
        let root = tempfile::tempdir().unwrap();
        let write = |dir: &str, json: &str| {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
            std::fs::write(root.path().join(dir).join("state.json"), json).unwrap();
        };
        write(
            "shop",
            r#"{"app":"shop","switch_mode":"nftables","service_port":21000}"#,
        );
        write(
            "api",
            r#"{"app":"api","switch_mode":"nftables","service_port":21000}"#,
        );
        write(
            "old",
            r#"{"app":"old","switch_mode":"reload","service_port":21000}"#,
        );
        write(
            "web",
            r#"{"app":"web","switch_mode":"nftables","service_port":21001}"#,
        );
        let shop: AppName = "shop".parse().unwrap();
        let found = other_states_on(&shop, 21000, &StateStore::new(root.path().join("shop")));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("the app api ("), "{found:?}");
        assert!(
            other_states_on(&shop, 21002, &StateStore::new(root.path().join("shop"))).is_empty()
        );
    }
}
