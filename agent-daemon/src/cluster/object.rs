//! The `TrustPhase` object (`trustphases.paddock.io/v1alpha1`, cluster-scoped, one per
//! phase): `spec.mode`, `spec.baseline` (the baseline file's sets and envelope, with its
//! keys: name rules among the `egress` entries, and `dns` only once queries are judged),
//! and a `status` of promotion evidence that nodes add to. Reading one checks the
//! baseline as a file is checked; building a status is pure.
use chrono::SecondsFormat;
use kube::{
    api::{ApiResource, DynamicObject},
    core::GroupVersionKind,
};
use serde_json::{Value, json};

use crate::{
    baseline::{Baseline, Mode, Set, file, report::Status},
    identity::Phase,
};

pub const GROUP: &str = "paddock.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "TrustPhase";
pub const PLURAL: &str = "trustphases";

pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The most bytes (as JSON) a phase object's `spec` may take: etcd refuses requests over
/// 1.5 MiB by default, and the status (evidence of up to 256 agents) needs room too. A
/// baseline full to the default caps with paths and names of typical length takes about
/// 0.7 MiB.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// The size of `object`'s spec as JSON.
pub fn spec_bytes(object: &DynamicObject) -> usize {
    object.data.get("spec").map_or(0, |s| serde_json::to_vec(s).map_or(0, |v| v.len()))
}

/// The object's name for `phase`.
pub fn name(prefix: &str, phase: Phase) -> String {
    format!("{prefix}{phase}")
}

/// A phase object as read.
#[derive(Debug, Clone)]
pub struct PhaseObject {
    pub phase: Phase,
    pub mode: Mode,
    /// `Err(why)` when `spec.baseline` does not check out: nothing of this generation is
    /// taken in.
    pub baseline: Result<Baseline, String>,
    pub generation: i64,
    pub status: Status,
    pub object: DynamicObject,
}

/// Read `object` as the object of `phase`. A spec that names another phase, or a mode that
/// is none of the three, is an error (the schema refuses both; this is for an object made
/// without it).
pub fn read(object: &DynamicObject, phase: Phase) -> Result<PhaseObject, String> {
    read_after(object, phase, None)
}

/// [`read`], reusing the baseline of `previous` (the object as read before) when the
/// generation is the same: the spec has not changed, only the status (each node's writes
/// change it), so the baseline is not parsed and checked again.
pub fn read_after(
    object: &DynamicObject,
    phase: Phase,
    previous: Option<&PhaseObject>,
) -> Result<PhaseObject, String> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let source = format!("trustphase/{name}");
    let spec = object.data.get("spec").ok_or_else(|| format!("{source}: no spec"))?;
    let named = spec.get("phase").and_then(Value::as_str).unwrap_or_default();
    if named != phase.as_str() {
        return Err(format!("{source}: spec.phase is {named:?}, expected {phase:?}"));
    }
    let mode_text = spec.get("mode").and_then(Value::as_str).unwrap_or("learn");
    let mode: Mode = mode_text.parse().map_err(|e| format!("{source}: spec.mode: {e}"))?;
    let generation = object.metadata.generation.unwrap_or(0);
    let status: Status = match object.data.get("status") {
        Some(value) if !value.is_null() => {
            serde_json::from_value(value.clone()).map_err(|e| format!("{source}: status: {e}"))?
        }
        _ => Status::default(),
    };
    let baseline = match previous.filter(|p| p.phase == phase && p.generation == generation) {
        // What the status adds to the baseline is taken from this status.
        Some(p) => p.baseline.clone().map(|b| Baseline {
            learned_from: status.evidence.learned,
            updated: status.evidence.tally.last_new,
            ..b
        }),
        None => baseline_of(spec, phase, generation, &status, &source),
    };
    Ok(PhaseObject { phase, mode, baseline, generation, status, object: object.clone() })
}

fn baseline_of(
    spec: &Value,
    phase: Phase,
    generation: i64,
    status: &Status,
    source: &str,
) -> Result<Baseline, String> {
    let mut value = spec.get("baseline").cloned().unwrap_or_else(|| json!({}));
    let Some(fields) = value.as_object_mut() else {
        return Err(format!("{source}: spec.baseline is not an object"));
    };
    // A missing set is an empty one, except `dns`: missing, queries are not judged (an
    // object written before DNS learning must not start refusing every query).
    for set in Set::ALL.into_iter().filter(|s| *s != Set::Dns) {
        fields.entry(set.as_str()).or_insert_with(|| json!([]));
    }
    fields.entry("envelope").or_insert_with(|| {
        json!({"max_processes": 0, "max_syscalls_per_second": 0, "max_egress_bytes": 0,
               "tolerance": 2.0})
    });
    fields.insert("format".into(), json!(file::FORMAT));
    fields.insert("phase".into(), json!(phase.as_str()));
    fields.insert("revision".into(), json!(generation.max(0)));
    fields.insert("learned_from".into(), json!(status.evidence.learned));
    if let Some(t) = status.evidence.tally.last_new {
        fields.insert("updated".into(), json!(t.to_rfc3339_opts(SecondsFormat::Secs, true)));
    }
    file::from_value(value, &format!("{source} spec.baseline")).map_err(|e| e.to_string())
}

/// `object` with `spec.baseline` replaced by `baseline`'s sets and envelope (and `mode`
/// when given); metadata (resourceVersion included) kept, so that a replace is refused
/// when the object changed meanwhile.
pub fn with_spec(object: &DynamicObject, baseline: &Baseline, mode: Option<Mode>) -> DynamicObject {
    let mut out = object.clone();
    if let Some(spec) = out.data.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("baseline".into(), file::entries_value(baseline));
        if let Some(mode) = mode {
            spec.insert("mode".into(), json!(mode.as_str()));
        }
    }
    out.data.as_object_mut().map(|o| o.remove("status"));
    out
}

/// `object` with `status` replaced.
pub fn with_status(object: &DynamicObject, status: &Status) -> DynamicObject {
    let mut out = object.clone();
    if let Some(data) = out.data.as_object_mut() {
        data.insert("status".into(), serde_json::to_value(status).unwrap_or(Value::Null));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: Value) -> DynamicObject {
        let mut o = DynamicObject::new("read-only", &resource());
        o.metadata.generation = Some(3);
        o.data = json!({"spec": spec});
        o
    }

    #[test]
    fn a_spec_reads_as_the_baseline_file_reads() {
        let o = object(json!({"phase": "read-only", "mode": "enforce", "baseline": {
            "syscalls": ["read"], "execs": ["/bin/ls"], "egress": ["tcp 10.0.0.0/8 port 443"],
        }}));
        let read = read(&o, Phase::ReadOnly).unwrap();
        assert_eq!(read.mode, Mode::Enforce);
        let b = read.baseline.unwrap();
        assert_eq!((b.revision, b.syscalls.len(), b.egress.len()), (3, 1, 1));
        // Round trip through a spec.
        let again = super::read(&with_spec(&o, &b, None), Phase::ReadOnly).unwrap();
        assert_eq!(again.baseline.unwrap(), b);
    }

    #[test]
    fn a_status_only_change_reuses_the_baseline_read_before() {
        let o = object(json!({"phase": "read-only", "baseline": {"syscalls": ["read"]}}));
        let first = read(&o, Phase::ReadOnly).unwrap();
        // Same generation (the spec cannot have changed), a new status: the baseline read
        // before is kept, with what the status says of it.
        let mut later = o.clone();
        later.data["spec"]["baseline"]["syscalls"] = json!(["not a syscall"]);
        later.data["status"] = json!({"runs": 4, "learnedFrom": 4});
        let again = read_after(&later, Phase::ReadOnly, Some(&first)).unwrap();
        let b = again.baseline.unwrap();
        assert_eq!((b.syscalls.len(), b.learned_from), (1, 4));
        // A new generation is read afresh.
        later.metadata.generation = Some(4);
        assert!(read_after(&later, Phase::ReadOnly, Some(&first)).unwrap().baseline.is_err());
    }

    #[test]
    fn name_rules_and_dns_read_and_write_as_in_the_file() {
        let o = object(json!({"phase": "read-only", "mode": "enforce", "baseline": {
            "egress": ["tcp 10.0.0.0/8 port 443", "tcp api.example.com port 443",
                       "udp *.s3.amazonaws.com port any"],
            "dns": ["api.example.com", "*.s3.amazonaws.com", "myservice"],
        }}));
        let b = read(&o, Phase::ReadOnly).unwrap().baseline.unwrap();
        assert_eq!((b.egress.len(), b.egress_names.len()), (1, 2));
        assert_eq!(b.dns.as_ref().map(|d| d.len()), Some(3));
        let written = with_spec(&o, &b, None);
        let spec = &written.data["spec"]["baseline"];
        assert_eq!(
            spec["egress"],
            json!([
                "tcp 10.0.0.0/8 port 443",
                "tcp api.example.com port 443",
                "udp *.s3.amazonaws.com port any"
            ]),
            "address rules first, then name rules"
        );
        assert_eq!(spec["dns"], json!(["*.s3.amazonaws.com", "api.example.com", "myservice"]));
        assert_eq!(spec, &file::entries_value(&b), "the file's keys and entries");
        assert_eq!(read(&written, Phase::ReadOnly).unwrap().baseline.unwrap(), b);
    }

    #[test]
    fn without_dns_queries_are_not_judged_and_an_empty_dns_allows_none() {
        let o = object(json!({"phase": "read-only", "baseline": {"syscalls": ["read"]}}));
        let b = read(&o, Phase::ReadOnly).unwrap().baseline.unwrap();
        assert_eq!(b.dns, None);
        let written = with_spec(&o, &b, None);
        assert!(written.data["spec"]["baseline"].get("dns").is_none(), "not written as []");
        let o = object(json!({"phase": "read-only", "baseline": {"dns": []}}));
        let b = read(&o, Phase::ReadOnly).unwrap().baseline.unwrap();
        assert_eq!(b.dns, Some(Default::default()));
        assert_eq!(with_spec(&o, &b, None).data["spec"]["baseline"]["dns"], json!([]));
    }

    #[test]
    fn a_bad_entry_is_named_and_another_phase_refused() {
        let o = object(json!({"phase": "read-only", "baseline": {
            "egress": ["tcp 10.0.0.0/33 port 443"]}}));
        let why = read(&o, Phase::ReadOnly).unwrap().baseline.unwrap_err();
        assert!(why.contains("trustphase/read-only") && why.contains("egress[0]"), "{why}");
        let err = read(&o, Phase::Shadow).unwrap_err();
        assert!(err.contains("spec.phase is \"read-only\""), "{err}");
        for (baseline, field) in [
            (json!({"egress": ["tcp -api.example.com port 443"]}), "egress[0]"),
            (json!({"dns": ["ok.example.com", "a..b"]}), "dns[1]"),
        ] {
            let o = object(json!({"phase": "read-only", "baseline": baseline}));
            let why = read(&o, Phase::ReadOnly).unwrap().baseline.unwrap_err();
            assert!(why.contains(field), "{why}");
        }
    }
}

#[cfg(test)]
mod size {
    use super::*;
    use crate::baseline::{Caps, Destination, Observation, Protocol, learn_within};

    /// A baseline with every set full to its default cap, entries of typical length (paths
    /// of 60 bytes, real egress rules), fits in the object with room to spare.
    #[test]
    fn a_baseline_full_to_the_default_caps_fits_well_under_etcds_limit() {
        let caps = Caps::default();
        let mut b = Baseline::empty(Phase::Autonomous);
        let path = |kind: &str, i: usize| {
            format!("/srv/agent/workspace/{kind}/project-{i:05}/module/file.py")
        };
        for i in 0..caps.execs {
            learn_within(&mut b, &Observation::Exec { path: path("bin", i), literal: true }, &caps);
        }
        for i in 0..caps.file_writes {
            learn_within(&mut b, &Observation::FileWrite(path("out", i)), &caps);
            learn_within(&mut b, &Observation::FileRead(path("in", i)), &caps);
        }
        for i in 0..caps.unix {
            learn_within(
                &mut b,
                &Observation::Unix { path: path("sock", i), literal: true },
                &caps,
            );
        }
        // Names a person gave (`service-abcd`): learning keeps them as they are.
        let name = |i: usize| {
            let word: String =
                (0..4).map(|k| char::from(b'a' + (i / 26usize.pow(k) % 26) as u8)).collect();
            format!("service-{word}.team.example.com")
        };
        // Half the egress rules by address, half by name (a name rule is longer).
        for i in 0..caps.egress {
            let addr = std::net::IpAddr::from([10, (i >> 8) as u8, i as u8, 7]);
            let d = Destination { protocol: Protocol::Tcp, addr, port: 443 };
            let o = match i % 2 {
                0 => Observation::Egress(d),
                _ => Observation::NamedEgress { name: name(i), destination: d },
            };
            learn_within(&mut b, &o, &caps);
        }
        for i in 0..caps.dns {
            learn_within(&mut b, &Observation::DnsQuery(name(i)), &caps);
        }
        for id in 0..400 {
            let name = crate::syscalls::name(id).into_owned();
            learn_within(&mut b, &Observation::Syscall(name), &caps);
        }
        let mut o = DynamicObject::new("autonomous", &resource());
        o.data = json!({"spec": {"phase": "autonomous", "mode": "learn"}});
        let o = with_spec(&o, &b, None);
        let bytes = spec_bytes(&o);
        eprintln!("a baseline full to the default caps: {} entries, {bytes} bytes", b.size());
        assert!(bytes < MAX_SPEC_BYTES, "{bytes}");
        assert!(b.execs.len() + b.file_writes.len() > 7000, "the sets are full");
        assert_eq!(Set::Egress.len(&b), caps.egress);
        assert_eq!(Set::Dns.len(&b), caps.dns);
    }
}
