//! The kernel's connection tracking, over netlink (ctnetlink): forgetting the handshakes a
//! DNAT rule sent to a port that never answered them.
//!
//! The kernel decides a connection's NAT once, at its first SYN, and keeps it in the
//! connection's conntrack entry. A SYN sent again because the first got no answer (the
//! slot's accept queue was full) rides that entry. So after the nftables switch moved the
//! rule, a connection whose handshake the old slot had not answered still goes to the old
//! slot's port with its next SYN; once that slot stops listening, the kernel answers it with
//! a reset and nginx logs `connect() failed (111: Connection refused) while connecting to
//! upstream`. Forgetting those entries (and only those: an answered connection's entry
//! carries its packets) makes the next SYN take the rule as it is now.
//!
//! The table is read whole (one dump), and each entry found is read again just before it
//! is deleted: one answered meanwhile is kept. What is left is the microseconds between
//! that second read and the delete, against SYNs sent again seconds apart.
//!
//! Needs CAP_NET_ADMIN (root); without it the kernel refuses with EPERM.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

// The kernel's netlink and ctnetlink numbers (linux/netlink.h,
// linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h, nf_conntrack_common.h).
const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// A message that carries a conntrack entry.
const ENTRY: u16 = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
/// An attribute's type without its nested and byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
/// The entry has seen a packet in the reply direction: the handshake was answered.
const IPS_SEEN_REPLY: u32 = 1 << 1;
const IPPROTO_TCP: u8 = 6;
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
/// How long one answer of the kernel may take.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What forgetting came to: how many entries the kernel forgot, and the error that stopped
/// it before the end, if one did (the entries forgotten before it stay forgotten).
#[derive(Debug)]
pub struct Forgotten {
    /// Entries the kernel deleted.
    pub count: u32,
    /// Why it stopped early (no right to, a kernel that did not answer).
    pub error: Option<io::Error>,
}

/// Forgets the kernel's entries for TCP connections to 127.0.0.1:`service_port` that a
/// DNAT rule sent to `port` and that never had an answer, so that their next SYN goes where
/// the rule leads now.
pub fn forget_unanswered(service_port: u16, port: u16) -> Forgotten {
    let mut count = 0;
    let error = forget_counting(service_port, port, &mut count).err();
    Forgotten { count, error }
}

/// [`forget_unanswered`], counting into `count` as it goes.
fn forget_counting(service_port: u16, port: u16, count: &mut u32) -> io::Result<()> {
    let socket = Netlink::open()?;
    let mut stale: Vec<Vec<u8>> = Vec::new();
    socket.dump(|entry| {
        if entry.unanswered_via(service_port, port) {
            stale.push(entry.key());
        }
    })?;
    for key in stale {
        // Answered, closed or timed out since the dump: kept, or nothing to forget.
        let mut still = false;
        let read = socket.request(IPCTNL_MSG_CT_GET, NLM_F_ACK, &key, |entry| {
            still = entry.unanswered_via(service_port, port);
        });
        match read.and_then(|()| if still { socket.delete(&key) } else { Ok(()) }) {
            Ok(()) => *count += u32::from(still),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One conntrack entry, as much of it as deciding needs, borrowed from the kernel's message.
#[derive(Debug, Default, PartialEq)]
struct Entry<'a> {
    protocol: u8,
    /// Where its first packet was sent (before NAT).
    original_destination: ([u8; 4], u16),
    /// Where the replies come from (after NAT: the port the rule chose).
    reply_source_port: u16,
    status: u32,
    /// The attributes that name it: its original tuple, zone and id, as the kernel sent them.
    names: [&'a [u8]; 3],
}

impl<'a> Entry<'a> {
    /// The attributes that name it in a request (read again, delete).
    fn key(&self) -> Vec<u8> {
        self.names.concat()
    }

    /// A TCP connection to 127.0.0.1:`service_port` sent on to `port`, never answered.
    fn unanswered_via(&self, service_port: u16, port: u16) -> bool {
        self.protocol == IPPROTO_TCP
            && self.original_destination == (LOOPBACK, service_port)
            && self.reply_source_port == port
            && self.status & IPS_SEEN_REPLY == 0
    }

    /// The entry a ctnetlink message carries (after its netfilter header).
    fn parse(attributes: &'a [u8]) -> Entry<'a> {
        let mut entry = Entry::default();
        for (kind, value, whole) in Attributes(attributes) {
            match kind {
                CTA_TUPLE_ORIG => {
                    entry.names[0] = whole;
                    let (protocol, destination, _) = tuple(value);
                    entry.protocol = protocol;
                    entry.original_destination = destination;
                }
                CTA_TUPLE_REPLY => entry.reply_source_port = tuple(value).2,
                CTA_STATUS => entry.status = be_u32(value),
                CTA_ZONE => entry.names[1] = whole,
                CTA_ID => entry.names[2] = whole,
                _ => {}
            }
        }
        entry
    }
}

/// A tuple's protocol, destination (address and port) and source port.
fn tuple(attributes: &[u8]) -> (u8, ([u8; 4], u16), u16) {
    let (mut protocol, mut address, mut port, mut source_port) = (0, [0; 4], 0, 0);
    for (kind, value, _) in Attributes(attributes) {
        match kind {
            CTA_TUPLE_IP => {
                for (kind, value, _) in Attributes(value) {
                    if let (CTA_IP_V4_DST, Ok(a)) = (kind, <[u8; 4]>::try_from(value)) {
                        address = a;
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (kind, value, _) in Attributes(value) {
                    match kind {
                        CTA_PROTO_NUM => protocol = value.first().copied().unwrap_or(0),
                        CTA_PROTO_SRC_PORT => source_port = be_u16(value),
                        CTA_PROTO_DST_PORT => port = be_u16(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (protocol, (address, port), source_port)
}

/// A big-endian (network order) u16 attribute; 0 when it is not two bytes.
fn be_u16(value: &[u8]) -> u16 {
    value.try_into().map_or(0, u16::from_be_bytes)
}

/// A big-endian (network order) u32 attribute; 0 when it is not four bytes.
fn be_u32(value: &[u8]) -> u32 {
    value.try_into().map_or(0, u32::from_be_bytes)
}

/// The netlink attributes of a buffer: each one's type, value and whole bytes.
struct Attributes<'a>(&'a [u8]);

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.0.get(..4)?;
        let length = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        if length < 4 || length > self.0.len() {
            self.0 = &[];
            return None;
        }
        let whole = &self.0[..length];
        self.0 = &self.0[length.next_multiple_of(4).min(self.0.len())..];
        Some((kind, &whole[4..], whole))
    }
}

/// A netlink socket to the kernel's netfilter, speaking ctnetlink.
struct Netlink {
    fd: OwnedFd,
    sequence: std::cell::Cell<u32>,
}

impl Netlink {
    /// A socket to the kernel's netfilter, its answers awaited for [`RECEIVE_TIMEOUT`] at
    /// most.
    fn open() -> io::Result<Netlink> {
        // SAFETY: a plain socket(2) call; the descriptor is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: RECEIVE_TIMEOUT.as_secs() as _,
            tv_usec: 0,
        };
        // SAFETY: the option's value is a timeval of the size given.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink {
            fd,
            sequence: std::cell::Cell::new(1),
        })
    }

    /// Sends a ctnetlink request of `kind` with `attributes`; returns its sequence number.
    fn send(&self, kind: u16, flags: u16, attributes: &[u8]) -> io::Result<u32> {
        let sequence = self.sequence.get();
        self.sequence.set(sequence.wrapping_add(1));
        let length = 16 + 4 + attributes.len();
        let mut message = Vec::with_capacity(length);
        message.extend_from_slice(&(length as u32).to_ne_bytes());
        message.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
        message.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        message.extend_from_slice(&sequence.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        // The netfilter header: IPv4, version 0, resource 0.
        message.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
        message.extend_from_slice(attributes);
        // SAFETY: the buffer is valid for its length; the kernel is the destination of an
        // unconnected netlink socket's send.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sequence)
    }

    /// Reads the kernel's answers to request `sequence`, handing each entry it carries to
    /// `each`, until the request is done.
    fn receive(&self, sequence: u32, mut each: impl FnMut(Entry<'_>)) -> io::Result<()> {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: the buffer is valid for writes of its length.
            let received = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            if received < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(done) = answers(&buffer[..received as usize], sequence, &mut each) {
                return done;
            }
        }
    }

    /// Sends request `kind` with `attributes` and reads its answers, each entry to `each`.
    fn request(
        &self,
        kind: u16,
        flags: u16,
        attributes: &[u8],
        each: impl FnMut(Entry<'_>),
    ) -> io::Result<()> {
        let sequence = self.send(kind, flags, attributes)?;
        self.receive(sequence, each)
    }

    /// Hands every IPv4 entry of the kernel's table to `each`, one at a time (a busy host's
    /// table holds hundreds of thousands).
    fn dump(&self, each: impl FnMut(Entry<'_>)) -> io::Result<()> {
        self.request(IPCTNL_MSG_CT_GET, NLM_F_DUMP, &[], each)
    }

    /// Deletes the entry `key` names.
    fn delete(&self, key: &[u8]) -> io::Result<()> {
        self.request(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, key, |_| {})
    }
}

/// Walks the netlink messages of one read that answer request `sequence` (others are
/// skipped), handing each conntrack entry to `each`; `Some` once the request is done: its
/// acknowledgement, or the end of a dump, or the error the kernel answered (as the OS
/// error it names; a dump that failed part-way says so in its end).
fn answers(
    mut read: &[u8],
    sequence: u32,
    each: &mut impl FnMut(Entry<'_>),
) -> Option<io::Result<()>> {
    let error_in = |payload: &[u8]| match payload
        .get(..4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
    {
        Some(code) if code < 0 => Err(io::Error::from_raw_os_error(-code)),
        _ => Ok(()),
    };
    while read.len() >= 16 {
        let length = u32::from_ne_bytes(read[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(read[4..6].try_into().unwrap());
        let answering = u32::from_ne_bytes(read[8..12].try_into().unwrap());
        if length < 16 || length > read.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a netlink message longer than what was received",
            )));
        }
        let payload = &read[16..length];
        read = &read[length.next_multiple_of(4).min(read.len())..];
        if answering != sequence {
            continue;
        }
        match kind {
            NLMSG_DONE | NLMSG_ERROR => return Some(error_in(payload)),
            ENTRY if payload.len() >= 4 => each(Entry::parse(&payload[4..])),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
