//! Unit tests of reading the kernel's conntrack messages, from canned bytes.

use super::*;

/// A netlink attribute of `kind` holding `value`, padded to 4 bytes.
fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

/// A tuple attribute of `kind` from `source` to `destination` ports on loopback, as the
/// kernel nests it.
fn tuple_attribute(kind: u16, source: u16, destination: u16) -> Vec<u8> {
    const NESTED: u16 = 0x8000;
    let ip = [attribute(1, &LOOPBACK), attribute(CTA_IP_V4_DST, &LOOPBACK)].concat();
    let proto = [
        attribute(CTA_PROTO_NUM, &[IPPROTO_TCP]),
        attribute(CTA_PROTO_SRC_PORT, &source.to_be_bytes()),
        attribute(CTA_PROTO_DST_PORT, &destination.to_be_bytes()),
    ]
    .concat();
    attribute(
        kind | NESTED,
        &[
            attribute(CTA_TUPLE_IP | NESTED, &ip),
            attribute(CTA_TUPLE_PROTO | NESTED, &proto),
        ]
        .concat(),
    )
}

#[test]
fn an_entry_is_read_from_the_kernels_attributes_and_named_for_a_delete() {
    let original = tuple_attribute(CTA_TUPLE_ORIG, 41777, 3000);
    let id = attribute(CTA_ID, &7u32.to_be_bytes());
    let message = [
        original.clone(),
        tuple_attribute(CTA_TUPLE_REPLY, 3001, 41777),
        attribute(CTA_STATUS, &8u32.to_be_bytes()),
        attribute(4, &[0; 8]),
        id.clone(),
    ]
    .concat();
    let entry = Entry::parse(&message);
    assert_eq!(
        (
            entry.protocol,
            entry.original_destination,
            entry.reply_source_port
        ),
        (IPPROTO_TCP, (LOOPBACK, 3000), 3001)
    );
    assert_eq!(entry.key(), [original.clone(), id].concat());
    // Confirmed, never answered: forgotten for port 3001 behind service port 3000 only.
    assert!(entry.unanswered_via(3000, 3001));
    assert!(!entry.unanswered_via(3000, 3002));
    assert!(!entry.unanswered_via(3005, 3001));
    let answered = Entry {
        status: 8 | IPS_SEEN_REPLY,
        ..entry
    };
    assert!(!answered.unanswered_via(3000, 3001));
}

/// A netlink message of `kind` answering request `sequence`, with a netfilter header
/// before `payload` where it carries an entry.
fn message(kind: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
    let body = match kind {
        ENTRY => [&[2, 0, 0, 0][..], payload].concat(),
        _ => payload.to_vec(),
    };
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&sequence.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&body);
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

/// The reply source ports of the entries `read` hands out for request 7, and whether
/// (and how) the request is done.
fn walk(read: &[u8]) -> (Vec<u16>, Option<Result<(), Option<i32>>>) {
    let mut ports = Vec::new();
    let done = answers(read, 7, &mut |entry: Entry<'_>| {
        ports.push(entry.reply_source_port)
    });
    (ports, done.map(|d| d.map_err(|e| e.raw_os_error())))
}

#[test]
fn the_answers_to_a_request_end_with_its_done_or_its_error() {
    let entry = |port| tuple_attribute(CTA_TUPLE_REPLY, port, 41777);
    let dump = [
        message(ENTRY, 7, &entry(3001)),
        message(ENTRY, 6, &entry(3999)),
        message(ENTRY, 7, &entry(3002)),
    ]
    .concat();
    // Another request's entry is skipped; the dump goes on into the next read.
    assert_eq!(walk(&dump), (vec![3001, 3002], None));
    let done = [dump.clone(), message(NLMSG_DONE, 7, &0i32.to_ne_bytes())].concat();
    assert_eq!(walk(&done), (vec![3001, 3002], Some(Ok(()))));
    // A dump that failed part-way says so in its end.
    let broken = message(NLMSG_DONE, 7, &(-libc::EINTR).to_ne_bytes());
    assert_eq!(walk(&broken).1, Some(Err(Some(libc::EINTR))));
    // An acknowledgement, and the kernel's refusal.
    let ack = message(NLMSG_ERROR, 7, &[0i32.to_ne_bytes(), [0; 4]].concat());
    assert_eq!(walk(&ack).1, Some(Ok(())));
    let refused = message(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes());
    assert_eq!(walk(&refused).1, Some(Err(Some(libc::EPERM))));
    // Another request's end is not this one's.
    assert_eq!(walk(&message(NLMSG_DONE, 6, &[0; 4])).1, None);
    // A message longer than the read is an error, not a wrong reading.
    let mut cut = message(ENTRY, 7, &entry(3001));
    cut.truncate(cut.len() - 8);
    assert_eq!(walk(&cut).1, Some(Err(None)));
}

#[test]
fn a_truncated_attribute_ends_the_reading() {
    let mut message = attribute(CTA_STATUS, &2u32.to_be_bytes());
    message.extend_from_slice(&[200, 0, 3, 0, 1]);
    let read: Vec<u16> = Attributes(&message).map(|(kind, _, _)| kind).collect();
    assert_eq!(read, [CTA_STATUS]);
}
