//! Egress by name: rules that allow a connect or send by the name its address came from
//! (the kernel binds the addresses in a DNS answer to the name asked, per investigation),
//! and the names a phase may ask its resolver for.
//!
//! A name rule is written `tcp api.example.com port 443` or `udp *.s3.amazonaws.com port
//! any`. Names are kept lowercase without a trailing dot. A name is 1 to 253 bytes of
//! labels of 1 to 63 bytes each, made of `a-z`, `0-9`, `-` and `_`, none starting or ending
//! with `-`; its last label is not all digits (`10.0.0.1` is an address, and the
//! [`EgressRule`](super::EgressRule) parser takes addresses). A pattern's first label may be
//! `*`, which stands for exactly one label: `*.example.com` matches `a.example.com`, not
//! `example.com` nor `a.b.example.com`. A name rule needs at least two labels; an entry of
//! the `dns` set may have one (a resolver asks for `myservice` when a search list fails).
//!
//! Learning keeps a name as it was asked, except that a leftmost label a machine made up
//! (see [`generalise_name`]) becomes `*`, and only where the rest still holds the name's
//! registrable domain in the ICANN section of the Public Suffix List: `x7f3a9c21.example.com`
//! is learned as `*.example.com`, `7f3a9c21e0.com` and `abc123def456.co.uk` as they are.
use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use psl::{Psl as _, Type};

use super::egress::{EgressRule, Protocol};

/// Allows a protocol, a name (or a one-label pattern of names) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameRule {
    pub protocol: Protocol,
    /// Lowercase, no trailing dot; the first label may be `*`.
    pub name: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl NameRule {
    /// The rule learning makes for one connect or send to `name`: the name generalised
    /// ([`generalise_name`]), that port. `name` should be a name [`host_name`] accepts
    /// (learning checks; what it refuses is learned by its address).
    pub fn exact(protocol: Protocol, name: &str, port: u16) -> NameRule {
        NameRule { protocol, name: generalise_name(name), port: Some(port) }
    }

    /// Whether the rule allows reaching `name` (as the kernel bound it) over `protocol` at
    /// `port`.
    pub fn allows(&self, protocol: Protocol, name: &str, port: u16) -> bool {
        self.protocol == protocol
            && self.port.is_none_or(|p| p == port)
            && name_matches(&self.name, name)
    }
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} port ", self.protocol, self.name)?;
        match self.port {
            Some(port) => write!(f, "{port}"),
            None => f.write_str("any"),
        }
    }
}

/// A name rule that does not parse: the text, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a name rule: {1} (write it like \"tcp api.example.com port 443\" or \"udp *.s3.amazonaws.com port any\")"
)]
pub struct BadNameRule(pub String, pub &'static str);

impl FromStr for NameRule {
    type Err = BadNameRule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadNameRule(s.to_owned(), why);
        let words: Vec<&str> = s.split_whitespace().collect();
        let [protocol, name, "port", port] = words.as_slice() else {
            return Err(bad("expected PROTOCOL NAME port PORT"));
        };
        let protocol = Protocol::from_name(protocol)
            .ok_or(bad("the protocol is not tcp, udp or ip-proto-N"))?;
        let name = rule_name(name).map_err(bad)?;
        let port = match *port {
            "any" => None,
            p => Some(p.parse().map_err(|_| bad("the port is not 0-65535 or any"))?),
        };
        Ok(NameRule { protocol, name, port })
    }
}

/// `text` lowercase, without its trailing dots.
fn normalised(text: &str) -> String {
    text.trim_end_matches('.').to_ascii_lowercase()
}

/// `text` as a name (or pattern) of at least `min_labels` labels, normalised; or what is
/// wrong with it.
fn checked(text: &str, min_labels: usize) -> Result<String, &'static str> {
    let name = normalised(text);
    if name.parse::<IpAddr>().is_ok() || name.parse::<IpNet>().is_ok() {
        return Err("the name is an IP address or network, not a DNS name");
    }
    if name.is_empty() || name.len() > 253 {
        return Err("the name is not 1 to 253 bytes long");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if *label == "*" {
            if i > 0 || labels.len() < 2 {
                return Err("* may only stand for the first label, before another (*.example.com)");
            }
            continue;
        }
        valid_label(label)?;
    }
    if labels.len() < min_labels {
        return Err("the name has a single label (a name rule needs two or more: example.com)");
    }
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err("the last label of the name is all digits (not a DNS name)");
    }
    Ok(name)
}

/// Whether `label` (lowercase) may be a label of a name; what is wrong with it if not.
fn valid_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("the name has an empty label");
    }
    if label.len() > 63 {
        return Err("a label of the name is longer than 63 bytes");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err("a label of the name has a character other than a-z, 0-9, - and _");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label of the name starts or ends with -");
    }
    Ok(())
}

/// `text` as the name of a name rule (two labels or more, `*` allowed as the first),
/// lowercase without a trailing dot; or what is wrong with it.
pub fn rule_name(text: &str) -> Result<String, &'static str> {
    checked(text, 2)
}

/// `text` as an entry of a baseline's `dns` set (one label or more, `*` allowed as the
/// first of two or more), lowercase without a trailing dot; or what is wrong with it.
pub fn dns_name(text: &str) -> Result<String, &'static str> {
    checked(text, 1)
}

/// `name` (bound by the kernel to an address) as learning can make a name rule of it: a
/// name of two labels or more, no pattern. `None` otherwise.
pub fn host_name(name: &str) -> Option<String> {
    checked(name, 2).ok().filter(|n| !n.starts_with('*'))
}

/// `name` (asked of a resolver) as learning can keep it in the `dns` set: a name of one
/// label or more, no pattern. `None` otherwise.
pub fn query_name(name: &str) -> Option<String> {
    checked(name, 1).ok().filter(|n| !n.starts_with('*'))
}

/// Whether `name` matches `pattern`: the same name (ASCII case and trailing dots aside),
/// or, for a pattern `*.rest`, one valid label followed by `.rest` (`a.b.rest` does not
/// match `*.rest`).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let name = name.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(rest) => name.split_once('.').is_some_and(|(label, tail)| {
            valid_label(&label.to_ascii_lowercase()).is_ok() && tail.eq_ignore_ascii_case(rest)
        }),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The pattern learning keeps for `name`: lowercase, no trailing dot, and the leftmost
/// label replaced by `*` when a machine made it up and the rest holds the name's
/// registrable domain (ICANN section of the Public Suffix List). Never more than one label
/// is replaced; a pattern (`*.example.com`) is left as it is.
///
/// Made-up labels: all digits (`1234`); a UUID; one holding 8 or more hex digits in a row
/// with a digit among them (`7f3a9c21`, `x7f3a9c21`; `deadbeef` is a word); 10 or more
/// letters and digits with both among them (`a8k2m9x7q1`); a word, `-` and digits
/// (`shard-07`, `worker-3`); letters then two or more digits (`node12`; `s3`, `ec2` and
/// `api2` stay); and a label with a `-` and four or more digits (`bucket-name-12345678`,
/// `ip-10-0-1-23`). A word followed by `-digits` counts only when the word has no `-` of
/// its own, and `-digits` under four digits otherwise does not count: `us-east-1` and
/// `ap-southeast-2` stay (region names, not made up).
pub fn generalise_name(name: &str) -> String {
    let name = normalised(name);
    let Some((first, rest)) = name.split_once('.') else { return name };
    let labels = name.split('.').count();
    if !generated(first)
        || name.split('.').any(|l| valid_label(l).is_err())
        || labels < icann_suffix_labels(&name) + 2
    {
        return name;
    }
    format!("*.{rest}")
}

/// Whether `label` (lowercase) looks made up by a machine (see [`generalise_name`]).
fn generated(label: &str) -> bool {
    let b = label.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_lowercase()).count();
    let is_hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    let hex_run =
        b.split(|c| !is_hex(c)).any(|run| run.len() >= 8 && run.iter().any(u8::is_ascii_digit));
    let alphanumeric = digits + letters == b.len();
    let (head, tail) = label.rsplit_once('-').unwrap_or(("", label));
    let word = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_lowercase());
    let number = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let letters_then_digits = {
        let split = label.find(|c: char| c.is_ascii_digit()).unwrap_or(label.len());
        word(&label[..split]) && number(&label[split..]) && label.len() - split >= 2
    };
    !b.is_empty()
        && (digits == b.len()
            || uuid(label)
            || hex_run
            || (b.len() >= 10 && alphanumeric && digits > 0 && letters > 0)
            || (word(head) && number(tail))
            || letters_then_digits
            || (b.contains(&b'-') && digits >= 4))
}

/// 8-4-4-4-12 hex digits.
fn uuid(label: &str) -> bool {
    let groups: Vec<&str> = label.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// The labels of `name`'s (lowercase) public suffix in the ICANN section of the Public
/// Suffix List: the longest ICANN rule that matches, a private rule (`s3.amazonaws.com`,
/// `github.io`) set aside for the ICANN one under it; a TLD the list does not know
/// (`local`, `internal`) is a suffix of its own, one label.
pub fn icann_suffix_labels(name: &str) -> usize {
    let mut tail = name.trim_end_matches('.');
    loop {
        let info = psl::List.find(tail.rsplit('.').map(str::as_bytes));
        let suffix = tail.get(tail.len().saturating_sub(info.len)..).unwrap_or(tail);
        let labels = suffix.split('.').count();
        match (info.typ, suffix.split_once('.')) {
            (Some(Type::Private), Some((_, shorter))) => tail = shorter,
            _ => return labels.max(1),
        }
    }
}

/// One entry of a baseline's `egress`: a rule by address or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressEntry {
    /// `tcp 10.0.0.0/8 port 443`.
    Address(EgressRule),
    /// `tcp api.example.com port 443`.
    Name(NameRule),
}

/// Both forms of an `egress` entry, for errors.
pub const EGRESS_FORMS: &str = "an egress entry is PROTOCOL NETWORK port PORT|any \
    (\"tcp 10.0.0.0/8 port 443\") or PROTOCOL NAME port PORT|any (\"tcp api.example.com port \
    443\", \"udp *.s3.amazonaws.com port any\")";

/// `text` as an `egress` entry: an address rule if it is one, else a name rule; or what is
/// wrong with it, told as the address rule's problem when its second word looks like an
/// address or network (digits and dots, or a `:` or `/`), else as the name rule's.
pub fn egress_entry(text: &str) -> Result<EgressEntry, &'static str> {
    let address_error = match text.parse::<EgressRule>() {
        Ok(rule) => return Ok(EgressEntry::Address(rule)),
        Err(e) => e.1,
    };
    let name_error = match text.parse::<NameRule>() {
        Ok(rule) => return Ok(EgressEntry::Name(rule)),
        Err(e) => e.1,
    };
    let host = text.split_whitespace().nth(1).unwrap_or_default();
    let address =
        host.contains([':', '/']) || host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    Err(if address { address_error } else { name_error })
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
