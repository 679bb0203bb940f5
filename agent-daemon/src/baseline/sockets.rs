//! Socket kinds a baseline may allow beyond TCP and UDP over IP: `FAMILY TYPE PROTOCOL`, as
//! `inet raw icmp`, `inet6 dgram icmpv6`, `packet raw 768`, `netlink raw 0`. Families,
//! types and IP protocols are written by name where they have one, else as numbers
//! (`af-42`, `type-9`, `200`).
use std::{fmt, str::FromStr};

use agent_common::policy::{AF_INET, AF_INET6, socket_kind_judged};

const FAMILIES: [(u16, &str); 12] = [
    (1, "unix"),
    (2, "inet"),
    (10, "inet6"),
    (16, "netlink"),
    (17, "packet"),
    (29, "can"),
    (31, "bluetooth"),
    (38, "alg"),
    (40, "vsock"),
    (44, "xdp"),
    (45, "mctp"),
    (4, "ipx"),
];
const TYPES: [(u16, &str); 7] = [
    (1, "stream"),
    (2, "dgram"),
    (3, "raw"),
    (4, "rdm"),
    (5, "seqpacket"),
    (6, "dccp"),
    (10, "packet"),
];
const IP_PROTOCOLS: [(u16, &str); 8] = [
    (0, "ip"),
    (1, "icmp"),
    (6, "tcp"),
    (17, "udp"),
    (58, "icmpv6"),
    (132, "sctp"),
    (136, "udplite"),
    (262, "mptcp"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKind {
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
}

impl SocketKind {
    /// Whether this kind is judged by its kind at all (see `policy::socket_kind_judged`).
    pub fn judged(&self) -> bool {
        socket_kind_judged(self.family as u32, self.sock_type as u32, self.protocol as u32)
    }

    fn ip(&self) -> bool {
        self.family as u32 == AF_INET || self.family as u32 == AF_INET6
    }
}

fn named(table: &[(u16, &'static str)], value: u16) -> Option<&'static str> {
    table.iter().find(|(v, _)| *v == value).map(|(_, n)| *n)
}

fn value(table: &[(u16, &str)], name: &str) -> Option<u16> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

impl fmt::Display for SocketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match named(&FAMILIES, self.family) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "af-{}", self.family)?,
        }
        match named(&TYPES, self.sock_type) {
            Some(name) => write!(f, " {name}")?,
            None => write!(f, " type-{}", self.sock_type)?,
        }
        match named(&IP_PROTOCOLS, self.protocol).filter(|_| self.ip()) {
            Some(name) => write!(f, " {name}"),
            None => write!(f, " {}", self.protocol),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a socket kind: {1} (write it like \"inet raw icmp\", \"packet raw 768\" or \"af-42 dgram 0\")"
)]
pub struct BadSocketKind(pub String, pub &'static str);

impl FromStr for SocketKind {
    type Err = BadSocketKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadSocketKind(s.to_owned(), why);
        let words: Vec<&str> = s.split_whitespace().collect();
        let [family, sock_type, protocol] = words.as_slice() else {
            return Err(bad("expected FAMILY TYPE PROTOCOL"));
        };
        let family = value(&FAMILIES, family)
            .or_else(|| family.strip_prefix("af-").and_then(|n| n.parse().ok()))
            .ok_or(bad("the family is not a known name or af-N"))?;
        let sock_type = value(&TYPES, sock_type)
            .or_else(|| sock_type.strip_prefix("type-").and_then(|n| n.parse().ok()))
            .ok_or(bad("the type is not a known name or type-N"))?;
        let ip = family as u32 == AF_INET || family as u32 == AF_INET6;
        let protocol = value(&IP_PROTOCOLS, protocol)
            .filter(|_| ip)
            .or_else(|| protocol.parse().ok())
            .ok_or(bad("the protocol is not a number (or an IP protocol's name)"))?;
        let kind = SocketKind { family, sock_type, protocol };
        if !kind.judged() {
            return Err(bad(
                "TCP, UDP and unix sockets are judged by where they connect, not by kind",
            ));
        }
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_text() {
        for text in [
            "inet raw icmp",
            "inet6 dgram icmpv6",
            "packet raw 768",
            "netlink raw 0",
            "af-99 type-9 7",
            "inet stream sctp",
        ] {
            let kind: SocketKind = text.parse().unwrap();
            assert_eq!(kind.to_string(), text);
        }
        assert_eq!("inet raw 1".parse::<SocketKind>().unwrap().to_string(), "inet raw icmp");
    }

    #[test]
    fn bad_kinds_say_what_is_wrong() {
        for (text, why) in [
            ("inet raw", "expected FAMILY"),
            ("inetx raw 1", "family"),
            ("inet rawx 1", "type"),
            ("packet raw icmp", "protocol"),
            ("inet stream tcp", "judged by where they connect"),
            ("unix stream 0", "judged by where they connect"),
        ] {
            let err = text.parse::<SocketKind>().unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(text), "{text}: {err}");
        }
    }
}
