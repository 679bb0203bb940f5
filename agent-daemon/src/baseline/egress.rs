//! Egress destinations and the rules a baseline allows them by: protocol, network (CIDR) and
//! port. Written `tcp 10.0.0.0/8 port 443`, `udp 127.0.0.53/32 port 53`, `tcp ::1/128 port any`.
use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    /// Another IP protocol, by number.
    Other(u8),
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Other(n) => n,
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            other => {
                other.strip_prefix("ip-proto-").and_then(|n| n.parse().ok()).map(Protocol::Other)
            }
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Other(n) => write!(f, "ip-proto-{n}"),
        }
    }
}

/// Where one connect or send went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} port {}", self.protocol, self.addr, self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EgressRule {
    pub protocol: Protocol,
    pub network: IpNet,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl EgressRule {
    /// The rule learning makes for one destination: that host and port exactly.
    pub fn exact(d: &Destination) -> EgressRule {
        EgressRule { protocol: d.protocol, network: IpNet::from(d.addr), port: Some(d.port) }
    }

    pub fn allows(&self, d: &Destination) -> bool {
        self.protocol == d.protocol
            && self.network.contains(&d.addr)
            && self.port.is_none_or(|p| p == d.port)
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} port ", self.protocol, self.network)?;
        match self.port {
            Some(port) => write!(f, "{port}"),
            None => f.write_str("any"),
        }
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it is: the
/// kernel stores IPv4 rules mapped, so both name the same destinations and are one rule.
fn canonical_network(network: IpNet) -> IpNet {
    match network {
        IpNet::V6(net) if net.prefix_len() >= 96 => match net.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, net.prefix_len() - 96).map_or(network, IpNet::V4),
            None => network,
        },
        other => other,
    }
}

impl Destination {
    /// The destination as it is judged: an IPv4-mapped IPv6 address is the IPv4 address.
    pub fn canonical(self) -> Destination {
        Destination { addr: self.addr.to_canonical(), ..self }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an egress rule: {1} (write it like \"tcp 10.0.0.0/8 port 443\" or \"udp 10.0.0.53/32 port any\")"
)]
pub struct BadRule(pub String, pub &'static str);

impl FromStr for EgressRule {
    type Err = BadRule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadRule(s.to_owned(), why);
        let words: Vec<&str> = s.split_whitespace().collect();
        let [protocol, network, "port", port] = words.as_slice() else {
            return Err(bad("expected PROTOCOL NETWORK port PORT"));
        };
        let protocol = Protocol::from_name(protocol)
            .ok_or(bad("the protocol is not tcp, udp or ip-proto-N"))?;
        let network: IpNet =
            network.parse().map_err(|_| bad("the network is not a CIDR such as 10.0.0.0/8"))?;
        if network.trunc() != network {
            return Err(bad("the network has host bits set (use its first address)"));
        }
        let network = canonical_network(network);
        let port = match *port {
            "any" => None,
            p => Some(p.parse().map_err(|_| bad("the port is not 0-65535 or any"))?),
        };
        Ok(EgressRule { protocol, network, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(p: Protocol, addr: &str, port: u16) -> Destination {
        Destination { protocol: p, addr: addr.parse().unwrap(), port }
    }

    #[test]
    fn rules_round_trip_through_text() {
        for text in [
            "tcp 10.0.0.0/8 port 443",
            "udp 127.0.0.53/32 port 53",
            "tcp ::1/128 port any",
            "ip-proto-132 192.168.0.0/16 port 9",
        ] {
            let rule: EgressRule = text.parse().unwrap();
            assert_eq!(rule.to_string(), text);
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, why) in [
            ("tcp 10.0.0.0/8 443", "expected PROTOCOL"),
            ("sctp 10.0.0.0/8 port 1", "protocol"),
            ("tcp 10.0.0/8 port 1", "CIDR"),
            ("tcp 10.0.0.1/8 port 1", "host bits"),
            ("tcp 10.0.0.0/8 port 70000", "port"),
        ] {
            let err = text.parse::<EgressRule>().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains(text), "{err}");
        }
    }

    #[test]
    fn matching_needs_protocol_network_and_port() {
        let rule: EgressRule = "tcp 10.1.0.0/16 port 443".parse().unwrap();
        assert!(rule.allows(&dest(Protocol::Tcp, "10.1.2.3", 443)));
        assert!(!rule.allows(&dest(Protocol::Udp, "10.1.2.3", 443)));
        assert!(!rule.allows(&dest(Protocol::Tcp, "10.2.0.1", 443)));
        assert!(!rule.allows(&dest(Protocol::Tcp, "10.1.2.3", 444)));
        let any: EgressRule = "udp 10.0.0.53/32 port any".parse().unwrap();
        assert!(any.allows(&dest(Protocol::Udp, "10.0.0.53", 5353)));
        let exact = EgressRule::exact(&dest(Protocol::Tcp, "::1", 80));
        assert_eq!(exact.to_string(), "tcp ::1/128 port 80");
    }

    #[test]
    fn ipv4_mapped_destinations_and_rules_are_ipv4() {
        let mapped = dest(Protocol::Tcp, "::ffff:10.1.2.3", 443).canonical();
        assert_eq!(mapped, dest(Protocol::Tcp, "10.1.2.3", 443));
        let rule: EgressRule = "tcp ::ffff:10.1.0.0/112 port 443".parse().unwrap();
        assert_eq!(rule.to_string(), "tcp 10.1.0.0/16 port 443");
        assert!(rule.allows(&dest(Protocol::Tcp, "10.1.2.3", 443)));
        let v6: EgressRule = "tcp 2001:db8::/32 port 443".parse().unwrap();
        assert_eq!(v6.to_string(), "tcp 2001:db8::/32 port 443");
    }
}
