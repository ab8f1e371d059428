//! Small facts about the host read from the kernel: free disk space, write permission,
//! whether a TCP port is free and which process listens on it, and which local port a new
//! loopback connection really reached (through any NAT rule).

use std::collections::HashSet;
use std::ffi::CString;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let c = c_path(path)?;
    // SAFETY: statvfs only writes into the zeroed struct we pass; `c` is a valid C string.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stats) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field types differ between libcs and word sizes; both fit in u64.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Whether this process may create files in directory `dir` (checks permissions and
/// read-only mounts, writes nothing).
pub fn dir_writable(dir: &Path) -> io::Result<()> {
    let c = c_path(dir)?;
    // SAFETY: access only reads the C string.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process may write `path` (a file or a socket), as the kernel's permission
/// check answers (writes nothing).
pub fn may_write(path: &Path) -> bool {
    // SAFETY: access only reads the C string.
    c_path(path).is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
}

/// The closest existing ancestor of `path` (itself if it exists): where a directory that
/// does not exist yet would be created.
pub fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// The memory the kernel says is available for new work (`MemAvailable` in
/// `/proc/meminfo`), in bytes.
pub fn mem_available_bytes() -> Option<u64> {
    meminfo_kib(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
    .map(|k| k * 1024)
}

/// The resident memory of process `pid` (`VmRSS`), in bytes.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    meminfo_kib(&status, "VmRSS:").map(|k| k * 1024)
}

/// The `KEY: N kB` value of a /proc table, in KiB.
fn meminfo_kib(table: &str, key: &str) -> Option<u64> {
    table
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's user, for messages: its login name where the environment says it, else
/// `uid N`.
pub fn user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| format!("uid {}", euid()))
}

/// The user id a process runs as (its real uid), from /proc.
pub fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether TCP `port` can be listened on (on all IPv4 addresses, so a listener on any
/// address, loopback included, makes it busy).
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// The process listening on TCP `port`, as `pid N (name)`, when it can be found.
pub fn port_owner(port: u16) -> Option<String> {
    let pid = *listener_pids(port).first()?;
    let name = process_name(pid).unwrap_or_default();
    Some(format!("pid {pid} ({name})"))
}

/// The name of process `pid` (its `comm`), when it can be read.
pub fn process_name(pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim().to_owned())
}

/// The processes that hold a socket listening on TCP `port` (all of them: nginx's master
/// and its workers share one), in pid order; empty when none can be seen.
pub fn listener_pids(port: u16) -> Vec<u32> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|link| targets.iter().any(|t| link.as_os_str() == t.as_str()))
                })
                .then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Opens a new connection to 127.0.0.1:`port` and returns the local port of the socket that
/// accepted it, looked up in the kernel's table of connections: after a DNAT rule, the port
/// the connection was really sent to. The connection comes from a random loopback address
/// of its own (127.x.y.z), so the accepting socket is the one whose peer is exactly that
/// address and port: no other connection can be taken for it. It is closed again at once.
pub fn loopback_destination(port: u16, timeout: std::time::Duration) -> io::Result<u16> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let mut random = [0u8; 3];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let source = std::net::Ipv4Addr::new(127, random[0], random[1], random[2].clamp(2, 254));
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SockAddr::from(std::net::SocketAddrV4::new(source, 0)))?;
    let target = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    socket.connect_timeout(&SockAddr::from(target), timeout)?;
    let ours = socket
        .local_addr()?
        .as_socket_ipv4()
        .ok_or_else(|| io::Error::other("not an IPv4 socket"))?;
    // The accepting side is in the table once the handshake is done; a few tries cover a
    // reader racing the kernel.
    for _ in 0..20 {
        let table = std::fs::read_to_string("/proc/net/tcp")?;
        if let Some(found) = accepted_port(&table, ours) {
            return Ok(found);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no socket in /proc/net/tcp accepted the connection from {ours}"),
    ))
}

/// The local port of the established (or half-open) socket whose peer is `peer`, in a
/// `/proc/net/tcp` table.
fn accepted_port(table: &str, peer: std::net::SocketAddrV4) -> Option<u16> {
    // The kernel writes an address as the hex of its bytes in memory order (little-endian
    // here), then the port in hex.
    let ip = u32::from_le_bytes(peer.ip().octets());
    let peer = format!("{ip:08X}:{:04X}", peer.port());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
        // 01 established, 03 SYN received: a TIME_WAIT entry of an earlier connection is not it.
        if *remote != peer || !matches!(*state, "01" | "03") {
            return None;
        }
        u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
    })
}

/// The entries of a `/proc/net/tcp`-format table: (local address `ADDR:PORT` in hex, state
/// in hex, `0A` listening and `01` established, socket inode).
fn table_entries(table: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    table.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        Some((*fields.get(1)?, *fields.get(3)?, *fields.get(9)?))
    })
}

/// Socket inodes of listeners on `port` in a `/proc/net/tcp`-format table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let want = format!(":{port:04X}");
    table_entries(table)
        .filter(|(local, state, _)| local.ends_with(&want) && *state == "0A")
        .map(|(_, _, inode)| inode.to_owned())
        .collect()
}

/// How many client connections are open to the ports process `pid` listens on (nginx's
/// master: its workers share its listening sockets and hold the connections they accept),
/// from the kernel's tables of its own network namespace; `None` when its sockets cannot be
/// read or it listens on none (nothing to count is not a count of 0).
pub fn client_connections(pid: u32) -> Option<u32> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| {
            let link = std::fs::read_link(fd.path()).ok()?;
            let inode = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    let tables: Vec<String> = ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .collect();
    let ports: HashSet<String> = tables
        .iter()
        .flat_map(|table| listening_ports_of(table, &inodes))
        .collect();
    if ports.is_empty() {
        return None;
    }
    Some(tables.iter().map(|t| established_on(t, &ports)).sum())
}

/// The local ports (as the table writes them, `:0050`) of the listening sockets of a
/// `/proc/net/tcp` table whose inodes are among `inodes`.
fn listening_ports_of(table: &str, inodes: &HashSet<String>) -> Vec<String> {
    table_entries(table)
        .filter(|(_, state, inode)| *state == "0A" && inodes.contains(*inode))
        .filter_map(|(local, _, _)| Some(local[local.rfind(':')?..].to_owned()))
        .collect()
}

/// How many established connections of a `/proc/net/tcp` table have one of `ports` as
/// their local port (the server's side of a client's connection).
fn established_on(table: &str, ports: &HashSet<String>) -> u32 {
    table_entries(table)
        .filter(|(local, state, _)| {
            *state == "01"
                && local
                    .rfind(':')
                    .is_some_and(|i| ports.contains(&local[i..]))
        })
        .count() as u32
}

/// What the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// Whether this test runs as root; a test that needs root and does not skips, saying
    /// so, except under `BLUEGREEN_REQUIRE_ALL` (CI), where it fails.
    pub(crate) fn is_root() -> bool {
        if super::euid() == 0 {
            return true;
        }
        assert!(
            std::env::var_os("BLUEGREEN_REQUIRE_ALL").is_none(),
            "needs root"
        );
        eprintln!("skipped: needs root");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_found_and_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free(port));
        let owner = port_owner(port).expect("owner found");
        assert!(
            owner.contains(&format!("pid {}", std::process::id())),
            "{owner}"
        );
        drop(listener);
        assert!(port_is_free(port));
    }

    #[test]
    fn client_connections_are_the_established_ones_on_the_listening_ports() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n\
   1: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1\n\
   2: 0100007F:0050 0100007F:9999 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n\
   3: 0100007F:0050 0100007F:9998 01 00000000:00000000 00:00000000 00000000     0        0 334 1\n\
   4: 0100007F:0050 0100007F:9997 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n\
   5: 0100007F:9999 0100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 335 1\n\
   6: 0100007F:0BB9 0100007F:9996 01 00000000:00000000 00:00000000 00000000     0        0 336 1\n";
        let inodes: HashSet<String> = ["111".to_owned(), "333".to_owned()].into();
        let ports: HashSet<String> = listening_ports_of(table, &inodes).into_iter().collect();
        assert_eq!(ports, [":0050".to_owned()].into());
        // Two established to port 80: not the TIME_WAIT one, not the client's own side, not
        // another program's port.
        assert_eq!(established_on(table, &ports), 2);
    }

    #[test]
    fn this_process_s_client_connections_are_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = client_connections(std::process::id()).unwrap();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        // Its own client side counts too: it is a socket of this process on no listening
        // port, so only the accepted side does.
        assert_eq!(client_connections(std::process::id()).unwrap(), before + 1);
    }

    #[test]
    fn listening_inodes_skip_other_ports_and_states() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n\
   1: 0100007F:0BBA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1\n\
   2: 0100007F:0BB9 0100007F:9999 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n";
        assert_eq!(listening_inodes(table, 3001), ["111"]);
    }

    #[test]
    fn a_loopback_connection_is_traced_to_the_port_that_accepted_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = loopback_destination(port, std::time::Duration::from_secs(2)).unwrap();
        assert_eq!(found, port);
        let peer = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(127, 9, 8, 7), 0xC350);
        let table = "  sl  local_address rem_address   st\n\
   0: 0100007F:0BB9 0708097F:C350 06 0 0 0 0 0 1 1\n\
   1: 0100007F:0BBB 0100007F:C350 01 0 0 0 0 0 1 1\n\
   2: 0100007F:0BBA 0708097F:C350 01 0 0 0 0 0 1 1\n";
        assert_eq!(
            accepted_port(table, peer),
            Some(3002),
            "not the TIME_WAIT entry, not another peer"
        );
        assert_eq!(
            accepted_port(
                table,
                std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(127, 1, 1, 1), 1)
            ),
            None
        );
        drop(listener);
        assert!(loopback_destination(port, std::time::Duration::from_secs(1)).is_err());
    }

    #[test]
    fn memory_is_read_from_the_kernel() {
        assert!(mem_available_bytes().unwrap() > 0);
        assert!(resident_bytes(std::process::id()).unwrap() > 0);
        assert_eq!(
            meminfo_kib("MemTotal: 10 kB\nMemAvailable:  7 kB\n", "MemAvailable:"),
            Some(7)
        );
    }

    #[test]
    fn disk_and_permissions() {
        assert!(free_bytes(Path::new("/")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent-dir")).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(dir_writable(dir.path()).is_ok());
        assert!(dir_writable(Path::new("/nonexistent-dir")).is_err());
        assert_eq!(existing_ancestor(&dir.path().join("a/b/c")), dir.path());
    }
}
