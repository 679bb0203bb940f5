//! The protocol a connect or send is judged by, typed from the kernel's record to the judge:
//! decoded once from the socket's protocol and type, carried by the event, and written as
//! a word only at the edges (`tcp`, `udp`, `icmp`, `ip-proto-N` in JSON and text).
use std::{fmt, str::FromStr};

use agent_common::policy::egress_protocol;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum EgressProtocol {
    /// TCP, and MPTCP (judged as TCP).
    Tcp,
    Udp,
    /// ICMP or ICMPv6 (a ping socket).
    Icmp,
    /// Another IP protocol, by number.
    Other(u8),
}

impl EgressProtocol {
    /// The protocol the kernel judged a connect or send of a socket of this protocol and
    /// type by (its type's default when the socket says 0, MPTCP as TCP).
    pub const fn of_socket(protocol: u32, sock_type: u32) -> EgressProtocol {
        EgressProtocol::of_number(egress_protocol(protocol, sock_type))
    }

    pub const fn of_number(number: u8) -> EgressProtocol {
        match number {
            6 => EgressProtocol::Tcp,
            17 => EgressProtocol::Udp,
            1 | 58 => EgressProtocol::Icmp,
            n => EgressProtocol::Other(n),
        }
    }
}

impl fmt::Display for EgressProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressProtocol::Tcp => f.write_str("tcp"),
            EgressProtocol::Udp => f.write_str("udp"),
            EgressProtocol::Icmp => f.write_str("icmp"),
            EgressProtocol::Other(n) => write!(f, "ip-proto-{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {given:?}: expected tcp, udp, icmp or ip-proto-N (N 0-255)")]
pub struct UnknownProtocol {
    pub given: String,
}

impl FromStr for EgressProtocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(EgressProtocol::Tcp),
            "udp" => Ok(EgressProtocol::Udp),
            "icmp" => Ok(EgressProtocol::Icmp),
            other => other
                .strip_prefix("ip-proto-")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(EgressProtocol::Other)
                .ok_or_else(|| UnknownProtocol { given: s.to_owned() }),
        }
    }
}

impl From<EgressProtocol> for String {
    fn from(protocol: EgressProtocol) -> String {
        protocol.to_string()
    }
}

impl TryFrom<String> for EgressProtocol {
    type Error = UnknownProtocol;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_the_words_events_have_always_said() {
        use agent_common::policy::{IPPROTO_MPTCP, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM};
        let cases = [
            ((0, SOCK_STREAM), "tcp"),
            ((6, SOCK_STREAM), "tcp"),
            ((IPPROTO_MPTCP, SOCK_STREAM), "tcp"),
            ((0, SOCK_DGRAM), "udp"),
            ((17, SOCK_DGRAM), "udp"),
            ((1, SOCK_DGRAM), "icmp"),
            ((58, SOCK_DGRAM), "icmp"),
            ((132, SOCK_STREAM), "ip-proto-132"),
            ((0, SOCK_RAW), "ip-proto-0"),
            ((300, SOCK_RAW), "ip-proto-255"),
        ];
        for ((protocol, sock_type), word) in cases {
            let judged = EgressProtocol::of_socket(protocol, sock_type);
            assert_eq!(judged.to_string(), word, "{protocol} {sock_type}");
        }
    }

    #[test]
    fn every_protocol_round_trips_through_its_word() {
        let all = (0..=255u8).map(EgressProtocol::of_number);
        for protocol in all.chain([EgressProtocol::Other(6), EgressProtocol::Other(1)]) {
            let word = protocol.to_string();
            assert_eq!(word.parse::<EgressProtocol>().unwrap(), protocol, "{word}");
            let json = serde_json::to_string(&protocol).unwrap();
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<EgressProtocol>(&json).unwrap(), protocol);
        }
        for bad in ["", "TCP", "sctp", "ip-proto-", "ip-proto-256", "ip-proto--1", "ip-proto-+1"] {
            let err = bad.parse::<EgressProtocol>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
