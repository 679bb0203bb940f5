//! Tests of `decode`: each record kind, and short, unknown or empty records as errors.
use agent_common::event::{ARGS_LEN, PATH_LEN};

use super::{
    fixtures::{bytes, header as fixture_header},
    *,
};

fn exec_record(path: &str, args: &[&str]) -> ExecRecord {
    let mut record = ExecRecord {
        header: fixture_header(KIND_EXEC, 3, 9, 42),
        action: 0,
        argc: args.len() as u32,
        args_truncated: 0,
        args_len: 0,
        status: 0,
        _pad: 0,
        path: [0; PATH_LEN],
        args: [0; ARGS_LEN],
    };
    record.path[..path.len()].copy_from_slice(path.as_bytes());
    let mut at = 0;
    for a in args {
        record.args[at..at + a.len()].copy_from_slice(a.as_bytes());
        at += a.len() + 1;
    }
    record.args_len = at as u32;
    record
}

#[test]
fn decodes_an_exec_with_its_argv() {
    let record = decode(&bytes(&exec_record("/bin/ls", &["ls", "-l", "/tmp"]))).unwrap();
    assert_eq!(record.header.pid, 42);
    assert_eq!(record.header.slot, 3);
    assert_eq!(record.header.instance, 9);
    assert_eq!(record.header.comm, "test");
    assert_eq!(
        record.body,
        RecordBody::Exec {
            path: "/bin/ls".into(),
            argv: vec!["ls".into(), "-l".into(), "/tmp".into()],
            argv_truncated: false,
            action: 0,
            status: 0,
        }
    );
}

#[test]
fn decodes_connect_addresses_by_family() {
    let mut r = ConnectRecord {
        header: fixture_header(KIND_CONNECT, 0, 1, 5),
        op: agent_common::event::OP_CONNECT4,
        action: 0,
        sock_type: 1,
        protocol: 6,
        port: 8080,
        family: 2,
        _pad: 0,
        addr: [0; 16],
        name_hash: 0,
    };
    r.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    let RecordBody::Connect { addr, port, .. } = decode(&bytes(&r)).unwrap().body else {
        panic!("not a connect")
    };
    assert_eq!((addr, port), ("127.0.0.1".parse().unwrap(), 8080));
    r.op = OP_CONNECT6;
    r.addr = Ipv6Addr::LOCALHOST.octets();
    let RecordBody::Connect { addr, .. } = decode(&bytes(&r)).unwrap().body else {
        panic!("not a connect")
    };
    assert_eq!(addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn decodes_the_kinds_that_carry_two_paths_or_none() {
    let mut r = PathOpRecord {
        header: fixture_header(KIND_PATH_OP, 1, 2, 3),
        op: agent_common::event::OP_RENAME,
        status: 0,
        status2: agent_common::event::PATH_UNREADABLE,
        _pad: 0,
        path: [0; PATH_LEN],
        path2: [0; PATH_LEN],
    };
    r.path[..6].copy_from_slice(b"/tmp/a");
    assert_eq!(
        decode(&bytes(&r)).unwrap().body,
        RecordBody::FileOp {
            op: agent_common::event::OP_RENAME,
            path: "/tmp/a".into(),
            status: 0,
            path2: String::new(),
            status2: agent_common::event::PATH_UNREADABLE,
        }
    );
    let m = MigrateRecord {
        header: fixture_header(KIND_MIGRATE, 1, 2, 3),
        moved_tgid: 77,
        action: 1,
        dst_cgroup_id: 5,
    };
    assert_eq!(
        decode(&bytes(&m)).unwrap().body,
        RecordBody::Migrate { moved_pid: 77, action: 1, cgroup_id: 5 }
    );
    let full = bytes(&m);
    assert!(matches!(decode(&full[..full.len() - 1]), Err(DecodeError::Short { .. })));
}

#[test]
fn short_unknown_and_empty_records_are_errors() {
    let full = bytes(&exec_record("/bin/true", &[]));
    assert!(matches!(
        decode(&full[..full.len() - 1]),
        Err(DecodeError::Short { kind: KIND_EXEC, .. })
    ));
    assert!(matches!(decode(&full[..10]), Err(DecodeError::NoHeader { len: 10, .. })));
    assert!(matches!(decode(&[]), Err(DecodeError::NoHeader { len: 0, .. })));
    let unknown = bytes(&fixture_header(99, 0, 1, 1));
    assert_eq!(decode(&unknown), Err(DecodeError::UnknownKind { kind: 99, len: unknown.len() }));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in 0..700 {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = decode(&data);
    }
}

#[test]
fn argv_stops_at_argc_and_length() {
    assert_eq!(argv(b"a\0bb\0ccc\0", 9, 2), vec!["a", "bb"]);
    assert_eq!(argv(b"a\0bb\0ccc\0", 4, 3), vec!["a", "bb"]);
    assert!(argv(b"", 0, 0).is_empty());
}
