//! DNS records to events, and the names an investigation's answers bound: the kernel
//! reports a connect's name by its hash (`agent_common::dns::name_hash`), and the name's
//! text came with the query and the answer that bound it, read earlier from the same ring.
use std::{collections::HashMap, net::IpAddr};

use agent_common::dns::{
    DNS_CUT, DNS_MALFORMED, DNS_MORE, DNS_QUERY, DNS_UNSOLICITED, TYPE_A, TYPE_AAAA, TYPE_CNAME,
    name_hash,
};

use crate::events::{Action, DnsAnswer, EventKind};

/// Names remembered per investigation. Past this many, new names are not remembered and a
/// connect bound to one of them is reported and judged by its address alone.
pub const MAX_NAMES: usize = 16384;

/// The names of one investigation's queries and answers, by hash.
#[derive(Default)]
pub struct Names(HashMap<u64, String>);

impl Names {
    /// Remember `name` (as the kernel hashed it).
    pub fn note(&mut self, name: &str) {
        if self.0.len() < MAX_NAMES || self.0.contains_key(&name_hash(name.as_bytes())) {
            self.0.insert(name_hash(name.as_bytes()), name.to_owned());
        }
    }

    /// The name of `hash`; `None` for 0 (no binding) or a name not remembered.
    pub fn of(&self, hash: u64) -> Option<String> {
        if hash == 0 { None } else { self.0.get(&hash).cloned() }
    }
}

fn type_name(qtype: u16) -> String {
    match qtype {
        TYPE_A => "A".into(),
        TYPE_AAAA => "AAAA".into(),
        TYPE_CNAME => "CNAME".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => n.to_string(),
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => n.to_string(),
    }
}

/// What the `DNS_*` flags say paddock could not vouch for.
fn notes(flags: u32) -> Vec<String> {
    [
        (DNS_MALFORMED, "malformed"),
        (DNS_UNSOLICITED, "unsolicited"),
        (DNS_CUT, "cut"),
        (DNS_MORE, "more"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, note)| note.to_owned())
    .collect()
}

/// The fields of a kernel DNS record.
pub struct DnsFields {
    pub op: u32,
    pub flags: u32,
    pub qtype: u16,
    pub rcode: u8,
    pub name: String,
    pub server: IpAddr,
    pub server_port: u16,
    pub answers: Vec<(IpAddr, u32)>,
    pub action: Action,
}

/// The event of a DNS record; its name is remembered for the connects that follow.
pub fn event(names: &mut Names, r: DnsFields) -> EventKind {
    let query = r.op == DNS_QUERY;
    if r.flags & DNS_MALFORMED == 0 && !r.name.is_empty() {
        names.note(&r.name);
    }
    EventKind::Dns {
        op: if query { "query" } else { "answer" }.into(),
        name: r.name,
        qtype: type_name(r.qtype),
        server: r.server,
        port: r.server_port,
        rcode: (!query).then(|| rcode_name(r.rcode)),
        answers: r.answers.into_iter().map(|(address, ttl)| DnsAnswer { address, ttl }).collect(),
        notes: notes(r.flags),
        action: r.action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_by_the_kernel_hash_and_zero_is_none() {
        let mut names = Names::default();
        names.note("api.example.com");
        assert_eq!(names.of(name_hash(b"api.example.com")).as_deref(), Some("api.example.com"));
        assert_eq!(names.of(name_hash(b"API.example.com.")).as_deref(), Some("api.example.com"));
        assert_eq!(names.of(0), None);
        assert_eq!(names.of(name_hash(b"other.example.com")), None);
    }

    #[test]
    fn an_answer_event_names_its_code_type_addresses_and_doubts() {
        let mut names = Names::default();
        let kind = event(
            &mut names,
            DnsFields {
                op: agent_common::dns::DNS_ANSWER,
                flags: DNS_UNSOLICITED,
                qtype: TYPE_AAAA,
                rcode: 3,
                name: "x.example.com".into(),
                server: "127.0.0.1".parse().unwrap(),
                server_port: 53,
                answers: vec![("::1".parse().unwrap(), 30)],
                action: Action::None,
            },
        );
        let EventKind::Dns { op, qtype, rcode, answers, notes, .. } = kind else { panic!() };
        assert_eq!((op.as_str(), qtype.as_str()), ("answer", "AAAA"));
        assert_eq!(rcode.as_deref(), Some("NXDOMAIN"));
        assert_eq!(answers, [DnsAnswer { address: "::1".parse().unwrap(), ttl: 30 }]);
        assert_eq!(notes, ["unsolicited"]);
    }
}
