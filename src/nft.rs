//! The nftables switch mode: nginx always proxies to one fixed loopback port (the service
//! port) and a DNAT rule in a table of our own sends new connections to that port on to
//! the live slot. A switch replaces the rule in one `nft -f` transaction; nginx is never
//! reloaded, so it never closes its clients' keep-alive connections, and connections
//! already open keep going to the slot they were opened to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Result;
use crate::exec::CommandLine;
use crate::fsutil::write_atomic;
use crate::input::AppName;

/// How long an `nft` command may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// The ruleset that sends the service port to `target_port`, replacing any earlier
    /// version of the table in the same transaction.
    pub fn ruleset(&self, target_port: u16) -> String {
        let t = &self.table;
        format!(
            "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr 127.0.0.1 tcp dport {} dnat to 127.0.0.1:{target_port}\n\t}}\n}}\n",
            self.service_port
        )
    }

    /// Where [`NftSwitch::apply`] keeps the ruleset it loaded, in the state directory `dir`.
    pub fn ruleset_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.nft", self.table))
    }

    /// Points the service port at `target_port` atomically; the ruleset file is kept in
    /// `dir` for people to read.
    pub fn apply(&self, target_port: u16, dir: &Path) -> Result<()> {
        let file = self.ruleset_path(dir);
        write_atomic(&file, self.ruleset(target_port).as_bytes(), 0o644)?;
        self.nft
            .with_args(["-f".to_owned(), file.display().to_string()])
            .run(NFT_TIMEOUT)
            .map(|_| ())
    }

    /// The command that lists the table (its rule names the target port).
    pub fn list_command(&self) -> CommandLine {
        self.nft.with_args(["list", "table", "ip", &self.table])
    }

    /// The command that removes the table (no rule: the service port leads nowhere).
    pub fn remove_command(&self) -> CommandLine {
        self.nft.with_args(["delete", "table", "ip", &self.table])
    }

    /// Points the existing table's rule at `target_port` in one transaction (flush the
    /// chain, add the new rule): cheaper than replacing the table, and just as atomic. The
    /// whole ruleset is kept in `dir` for people to read.
    pub fn retarget(&self, target_port: u16, dir: &Path) -> Result<()> {
        let t = &self.table;
        self.nft
            .with_args([format!(
                "flush chain ip {t} output; add rule ip {t} output ip daddr 127.0.0.1 tcp dport {} dnat to 127.0.0.1:{target_port}",
                self.service_port
            )])
            .run(NFT_TIMEOUT)?;
        write_atomic(
            &self.ruleset_path(dir),
            self.ruleset(target_port).as_bytes(),
            0o644,
        )
    }

    /// Removes the table.
    pub fn remove(&self) -> Result<()> {
        self.remove_command().run(NFT_TIMEOUT).map(|_| ())
    }

    /// The port the service port leads to now, if the table exists.
    pub fn current_target(&self) -> Option<u16> {
        let out = self.list_command().run(NFT_TIMEOUT).ok()?;
        self.target_in(&out.stdout)
    }

    /// The port the rule in a listing of the table (`nft list table` output) leads to.
    pub fn target_in(&self, listing: &str) -> Option<u16> {
        parse_target(listing, self.service_port)
    }

    /// Whether nftables answers at all (the kernel module, the `nft` program, privileges).
    pub fn available(&self) -> Result<()> {
        self.nft
            .with_args(["list", "tables"])
            .run(NFT_TIMEOUT)
            .map(|_| ())
    }
}

/// The DNAT target port of the rule for `service_port` in `nft list table` output.
fn parse_target(listing: &str, service_port: u16) -> Option<u16> {
    let dport = format!("dport {service_port} ");
    listing.lines().find_map(|line| {
        let line = line.trim();
        if !line.contains(&dport) {
            return None;
        }
        let (_, to) = line.split_once("dnat to ")?;
        to.split_whitespace()
            .next()?
            .rsplit_once(':')?
            .1
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_replaces_the_table_in_one_transaction() {
        let s = NftSwitch::new(
            &"shop-api".parse().unwrap(),
            3000,
            CommandLine::new(["nft"]),
        );
        assert_eq!(s.table, "bluegreen_shop_api");
        let r = s.ruleset(3002);
        assert!(
            r.starts_with("table ip bluegreen_shop_api\ndelete table ip bluegreen_shop_api\n"),
            "{r}"
        );
        assert!(r.contains("tcp dport 3000 dnat to 127.0.0.1:3002"), "{r}");
    }

    #[test]
    fn target_is_read_back_from_a_listing() {
        let listing = "table ip bluegreen_shop {\n\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr 127.0.0.1 tcp dport 3000 dnat to 127.0.0.1:3002\n\t}\n}\n";
        assert_eq!(parse_target(listing, 3000), Some(3002));
        assert_eq!(parse_target(listing, 4000), None);
        assert_eq!(parse_target("", 3000), None);
    }
}
