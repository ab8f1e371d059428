//! The nftables switch mode: nginx always proxies to one fixed loopback port (the service
//! port) and a DNAT rule in a table of our own sends new connections to that port on to
//! the live slot. A switch replaces the rule in one `nft -f` transaction; nginx is never
//! reloaded, so it never closes its clients' keep-alive connections, and connections
//! already open keep going to the slot they were opened to.
//!
//! During a canary the table holds two rules: the first sends a share of new connections
//! (picked by `numgen random`, a random number per new connection) to the new slot, the
//! second sends the rest to the old one. Both carry counters: how many connections each got.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::canary::Share;
use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::fsutil::write_atomic;
use crate::input::AppName;

/// How long an `nft` command may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the service port leads: a port, and during a canary a share of new connections to
/// another port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The port every new connection not picked for the split goes to.
    pub port: u16,
    /// The canary's port and its share of new connections.
    pub split: Option<(u16, Share)>,
}

impl Route {
    /// Every new connection to `port`.
    pub fn to(port: u16) -> Route {
        Route { port, split: None }
    }

    /// The ports it leads new connections to.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        std::iter::once(self.port).chain(self.split.map(|(port, _)| port))
    }

    /// `share` of new connections to `canary_port`, the rest to `port`.
    pub fn split(port: u16, canary_port: u16, share: Share) -> Route {
        Route {
            port,
            split: Some((canary_port, share)),
        }
    }
}

/// One app's DNAT switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSwitch {
    /// The nftables table (family `ip`) holding the rule, e.g. `bluegreen_shop`.
    pub table: String,
    /// The port nginx proxies to.
    pub service_port: u16,
    /// The `nft` command.
    pub nft: CommandLine,
}

impl NftSwitch {
    /// The switch of `app` on `service_port`, run through `nft` (`nft`, or `sudo nft` for a
    /// deploy user that is not root).
    pub fn new(app: &AppName, service_port: u16, nft: CommandLine) -> Self {
        NftSwitch {
            table: format!("bluegreen_{}", app.as_str().replace('-', "_")),
            service_port,
            nft,
        }
    }

    /// The rules of the chain for `route`, in order.
    fn rules(&self, route: &Route) -> Vec<String> {
        let head = format!("ip daddr 127.0.0.1 tcp dport {}", self.service_port);
        let mut rules = Vec::new();
        if let Some((canary, share)) = route.split {
            rules.push(format!(
                "{head} numgen random mod 100 < {} counter dnat to 127.0.0.1:{canary}",
                share.percent()
            ));
        }
        rules.push(format!("{head} counter dnat to 127.0.0.1:{}", route.port));
        rules
    }

    /// The ruleset that sends the service port as `route` says, replacing any earlier
    /// version of the table in the same transaction.
    pub fn ruleset(&self, route: &Route) -> String {
        let t = &self.table;
        let rules: String = self
            .rules(route)
            .iter()
            .map(|r| format!("\t\t{r}\n"))
            .collect();
        format!(
            "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n{rules}\t}}\n}}\n"
        )
    }

    /// Where [`NftSwitch::apply`] keeps a copy of the ruleset it loaded, in the state
    /// directory `dir`, for people to read (nft never reads it).
    pub fn ruleset_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.nft", self.table))
    }

    /// Points the service port as `route` says, atomically: the ruleset goes to `nft -f -`
    /// on its stdin, so nothing passes through a file another user could swap.
    pub fn load(&self, route: &Route) -> Result<()> {
        self.nft
            .with_args(["-f", "-"])
            .run_with_input(self.ruleset(route).as_bytes(), NFT_TIMEOUT)
            .map(|_| ())
    }

    /// [`NftSwitch::load`], then a copy of the ruleset kept in `dir` for people to read.
    pub fn apply(&self, route: &Route, dir: &Path) -> Result<()> {
        self.load(route)?;
        write_atomic(
            &self.ruleset_path(dir),
            self.ruleset(route).as_bytes(),
            0o644,
        )
    }

    /// The command that lists the table (its rules name the target ports).
    pub fn list_command(&self) -> CommandLine {
        self.nft.with_args(["list", "table", "ip", &self.table])
    }

    /// The command that removes the table (no rule: the service port leads nowhere).
    pub fn remove_command(&self) -> CommandLine {
        self.nft.with_args(["delete", "table", "ip", &self.table])
    }

    /// Points the existing table's rules as `route` says in one transaction (flush the
    /// chain, add the new rules): cheaper than replacing the table, and just as atomic. The
    /// whole ruleset is kept in `dir` for people to read.
    pub fn retarget(&self, route: &Route, dir: &Path) -> Result<()> {
        let t = &self.table;
        let mut commands = vec![format!("flush chain ip {t} output")];
        commands.extend(
            self.rules(route)
                .iter()
                .map(|r| format!("add rule ip {t} output {r}")),
        );
        self.nft.with_args([commands.join("; ")]).run(NFT_TIMEOUT)?;
        write_atomic(
            &self.ruleset_path(dir),
            self.ruleset(route).as_bytes(),
            0o644,
        )
    }

    /// Removes the table.
    pub fn remove(&self) -> Result<()> {
        self.remove_command().run(NFT_TIMEOUT).map(|_| ())
    }

    /// The port the service port leads to now (outside a split), if the table exists.
    pub fn current_target(&self) -> Option<u16> {
        self.current_route().map(|r| r.port)
    }

    /// Where the service port leads now: `Ok(None)` when the table does not exist; an error
    /// when nft cannot say (not permitted, timed out, a table whose rules name no route).
    pub fn read_route(&self) -> Result<Option<Route>> {
        match self.list_command().run(NFT_TIMEOUT) {
            Ok(out) => self.route_in(&out.stdout).map(Some).ok_or_else(|| {
                Error::CheckFailed(format!("table ip {} holds no rule of ours", self.table))
            }),
            Err(Error::CommandFailed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Where the service port leads now, if the table exists and can be read.
    pub fn current_route(&self) -> Option<Route> {
        let out = self.list_command().run(NFT_TIMEOUT).ok()?;
        self.route_in(&out.stdout)
    }

    /// The port the rule in a listing of the table (`nft list table` output) leads to.
    pub fn target_in(&self, listing: &str) -> Option<u16> {
        self.route_in(listing).map(|r| r.port)
    }

    /// The route a listing of the table (`nft list table` output) says.
    pub fn route_in(&self, listing: &str) -> Option<Route> {
        parse_route(listing, self.service_port)
    }

    /// How many new connections each rule of a listing sent on: (to the canary, to the
    /// rest), from the rules' counters.
    pub fn connections_in(&self, listing: &str) -> (u64, u64) {
        let count = |line: &str| {
            let (_, after) = line.split_once("counter packets ")?;
            after.split_whitespace().next()?.parse().ok()
        };
        let mut split = 0;
        let mut rest = 0;
        for line in listing.lines().filter(|l| l.contains("dnat to ")) {
            let n = count(line).unwrap_or(0);
            if line.contains("numgen") {
                split += n;
            } else {
                rest += n;
            }
        }
        (split, rest)
    }

    /// Whether nftables answers at all (the kernel module, the `nft` program, privileges).
    pub fn available(&self) -> Result<()> {
        self.nft
            .with_args(["list", "tables"])
            .run(NFT_TIMEOUT)
            .map(|_| ())
    }

    /// The tables of other apps (`bluegreen_*` but this one) whose rules catch this
    /// switch's service port: a second rule there would take their traffic, or they ours.
    pub fn others_on_service_port(&self) -> Result<Vec<String>> {
        // Every ip table in one listing: a table another app's run removes meanwhile
        // cannot fail a read of it, as listing the names and then each table could.
        let ruleset = self
            .nft
            .with_args(["list", "ruleset", "ip"])
            .run(NFT_TIMEOUT)?;
        Ok(ip_tables_in(&ruleset.stdout)
            .into_iter()
            .filter(|(name, _)| name.starts_with("bluegreen_") && *name != self.table)
            .filter(|(_, listing)| self.route_in(listing).is_some())
            .map(|(name, _)| name.to_owned())
            .collect())
    }
}

/// The tables of an `nft list ruleset ip` listing: each one's name and its text.
fn ip_tables_in(ruleset: &str) -> Vec<(&str, String)> {
    let mut tables: Vec<(&str, String)> = Vec::new();
    for line in ruleset.lines() {
        if let Some(name) = line
            .strip_prefix("table ip ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            tables.push((name, String::new()));
        } else if let Some((_, text)) = tables.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    tables
}

/// The route the rules for `service_port` in `nft list table` output say.
fn parse_route(listing: &str, service_port: u16) -> Option<Route> {
    let dport = format!("dport {service_port} ");
    let target = |line: &str| -> Option<u16> {
        let (_, to) = line.split_once("dnat to ")?;
        to.split_whitespace()
            .next()?
            .rsplit_once(':')?
            .1
            .parse()
            .ok()
    };
    let mut port = None;
    let mut split = None;
    for line in listing
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(&dport))
    {
        match line.split_once("numgen random mod 100 < ") {
            Some((_, rest)) => {
                let share = rest.split_whitespace().next()?.parse::<u8>().ok()?;
                split = Some((target(line)?, Share::try_from(share).ok()?));
            }
            None => port = port.or(target(line)),
        }
    }
    Some(Route { port: port?, split })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ruleset_listing_is_cut_into_its_tables() {
        let ruleset = "# Warning: table ip nat is managed by iptables-nft, do not touch!\n\
table ip nat {\n\tchain OUTPUT {\n\t\ttcp dport 21000 dnat to 172.17.0.3:8080\n\t}\n}\n\
table ip bluegreen_api {\n\tchain output {\n\t\tip daddr 127.0.0.1 tcp dport 21000 counter packets 0 bytes 0 dnat to 127.0.0.1:3002\n\t}\n}\n\
table ip bluegreen_shop {\n\tchain output {\n\t\tip daddr 127.0.0.1 tcp dport 21001 counter packets 0 bytes 0 dnat to 127.0.0.1:3001\n\t}\n}\n";
        let tables = ip_tables_in(ruleset);
        let names: Vec<&str> = tables.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["nat", "bluegreen_api", "bluegreen_shop"]);
        assert!(tables[1].1.contains("dnat to 127.0.0.1:3002"));
        assert!(!tables[1].1.contains("3001"), "{}", tables[1].1);
        let on = |port: u16| parse_route(&tables[1].1, port).map(|r| r.port);
        assert_eq!((on(21000), on(21001)), (Some(3002), None));
    }

    #[test]
    fn ruleset_replaces_the_table_in_one_transaction() {
        let s = NftSwitch::new(
            &"shop-api".parse().unwrap(),
            3000,
            CommandLine::new(["nft"]),
        );
        assert_eq!(s.table, "bluegreen_shop_api");
        let r = s.ruleset(&Route::to(3002));
        assert!(
            r.starts_with("table ip bluegreen_shop_api\ndelete table ip bluegreen_shop_api\n"),
            "{r}"
        );
        assert!(
            r.contains("tcp dport 3000 counter dnat to 127.0.0.1:3002"),
            "{r}"
        );
        let split = s.ruleset(&Route::split(3001, 3002, Share::try_from(25).unwrap()));
        assert!(
            split.contains("\t\tip daddr 127.0.0.1 tcp dport 3000 numgen random mod 100 < 25 counter dnat to 127.0.0.1:3002\n\t\tip daddr 127.0.0.1 tcp dport 3000 counter dnat to 127.0.0.1:3001\n"),
            "{split}"
        );
    }

    #[test]
    fn target_is_read_back_from_a_listing() {
        let listing = "table ip bluegreen_shop {\n\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr 127.0.0.1 tcp dport 3000 dnat to 127.0.0.1:3002\n\t}\n}\n";
        assert_eq!(parse_route(listing, 3000), Some(Route::to(3002)));
        assert_eq!(parse_route(listing, 4000), None);
        assert_eq!(parse_route("", 3000), None);
    }

    #[test]
    fn a_split_and_its_counters_are_read_back() {
        let s = NftSwitch::new(&"shop".parse().unwrap(), 3000, CommandLine::new(["nft"]));
        // As `nft list table` prints the split (nftables 1.0).
        let listing = "table ip bluegreen_shop {\n\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr 127.0.0.1 tcp dport 3000 numgen random mod 100 < 25 counter packets 26 bytes 1560 dnat to 127.0.0.1:3002\n\t\tip daddr 127.0.0.1 tcp dport 3000 counter packets 74 bytes 4440 dnat to 127.0.0.1:3001\n\t}\n}\n";
        assert_eq!(
            s.route_in(listing),
            Some(Route::split(3001, 3002, Share::try_from(25).unwrap()))
        );
        assert_eq!(s.connections_in(listing), (26, 74));
    }
}
