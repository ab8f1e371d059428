//! The nftables switch and the kernel's unanswered handshakes, on a real kernel and nginx.
//! The kernel NATs a connection at its first SYN, and a SYN sent again rides that decision:
//! a connection whose first SYN the old slot never answered (dropped, as a slot with a full
//! accept queue drops it) would take its next SYN to the old slot's port after the switch,
//! and be refused once that slot stops listening. The switch forgets such handshakes, so the
//! next SYN reaches the new slot, and leaves the connections the old slot answered alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::support::{NftTable, Site, free_port};

/// A table of the test's own that drops the SYNs from `client_port` to `port` on their way
/// in (after the kernel has NATed them and kept the decision); removed when dropped.
struct SynDrop(String);

impl SynDrop {
    fn new(client_port: u16, port: u16) -> SynDrop {
        let table = format!("bluegreen_test_syn_drop_{client_port}");
        let rules = format!(
            "table ip {table} {{\n  chain input {{\n    type filter hook input priority 0;\n    tcp sport {client_port} tcp dport {port} tcp flags & (syn | ack) == syn drop\n  }}\n}}\n"
        );
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(nft.wait().unwrap().success(), "nft -f of {rules}");
        SynDrop(table)
    }
}

impl Drop for SynDrop {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.0])
            .status();
    }
}

/// Waits up to `timeout` for the connecting `socket` to finish its handshake, one way or
/// the other.
fn wait_connected(socket: &Socket, timeout: Duration) {
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
    assert_eq!(ready, 1, "the handshake did not finish in {timeout:?}");
}

#[test]
fn a_handshake_the_old_slot_never_answered_reaches_the_new_slot_after_the_switch() {
    require!(Nginx, Nftables);
    let app = format!("nft-{}", free_port());
    let site = Site::adopting(&app);
    let blue = site.demo("blue", "v1", &[]);
    let _green = site.demo("green", "v2", &[]);
    let _table = NftTable::of_app(&app);
    let service_port = free_port();
    let switch = site.nftables_switch(&app, service_port);
    let first = switch("blue");
    assert_eq!(first.code, 0, "{first:?}");
    // A connection blue answered, kept open: the switch must leave its entry alone.
    let mut answered = TcpStream::connect(("127.0.0.1", service_port)).unwrap();
    answered
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ask(&mut answered, "keep-alive").contains("demo-app v1 (blue)"));

    // A connection to the service port, NATed to blue, whose SYN blue never answers.
    let client_port = free_port();
    let syn_drop = SynDrop::new(client_port, site.blue_port);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], client_port)).into())
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    let service = SocketAddr::from(([127, 0, 0, 1], service_port));
    match socket.connect(&service.into()) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        other => panic!("the connection was to wait for its handshake: {other:?}"),
    }

    let second = switch("green");
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.json()["handshakes_forgotten"], 1, "{second:?}");
    assert!(
        second.stderr.contains(&format!(
            "conntrack: forgot 1 handshake that port {} had not answered",
            site.blue_port
        )),
        "{}",
        second.stderr
    );
    assert!(
        ask(&mut answered, "close").contains("demo-app v1 (blue)"),
        "the answered connection still reaches blue"
    );
    // Blue stops listening, and its SYNs are no longer dropped: a SYN sent to blue's port
    // now would be refused.
    drop(blue);
    drop(syn_drop);

    // The kernel sends the SYN again 1 s after the first, then 2 s and 4 s later.
    wait_connected(&socket, Duration::from_secs(20));
    let error = socket.take_error().unwrap();
    assert!(error.is_none(), "the handshake failed: {error:?}");
    let mut stream: TcpStream = socket.into();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ask(&mut stream, "close").contains("demo-app v2 (green)"));
}

/// One request on `stream` with `Connection: connection`; the answer, read up to its body's
/// end.
fn ask(stream: &mut TcpStream, connection: &str) -> String {
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains(")\n") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}
