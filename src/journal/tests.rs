use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::*;
use crate::client::{Owner, Process};

fn local(uid: u32, cgroup: &str) -> Client {
    Client {
        peer: "169.254.169.254:40000".parse().unwrap(),
        owner: Some(Arc::new(Owner {
            uid,
            user: Some(format!("user{uid}").into()),
            cgroup: Some(cgroup.into()),
            process: OnceLock::new(),
        })),
    }
}

fn remote(addr: &str) -> Client {
    Client::at(addr.parse::<SocketAddr>().unwrap())
}

fn record(j: &Journal, client: &Client, t: u64, path: &str, v: Option<u8>) {
    j.record(&Record {
        time_ms: t,
        endpoint: if v.is_some() {
            Endpoint::Imds
        } else {
            Endpoint::Ecs
        },
        method: &http::Method::GET,
        path,
        status: Some(200),
        imds_version: v,
        bytes: 10,
        fault: None,
        note: None,
        client,
        view: None,
    });
}

#[test]
fn the_ring_keeps_the_last_entries_and_a_reader_behind_is_told_what_it_missed() {
    let j = Journal::new(3, 0);
    let c = remote("10.0.0.2:1234");
    for i in 1..=5 {
        record(&j, &c, i, &format!("/p{i}"), Some(1));
    }
    let b = j.read(0);
    let paths: Vec<_> = b.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/p3", "/p4", "/p5"]);
    assert_eq!(b.missed, 2, "entries 1 and 2 are gone");
    assert_eq!(b.next, 6);
    let b = j.read(5);
    assert_eq!(b.entries.len(), 1);
    assert_eq!(b.missed, 0);
    assert!(j.read(6).entries.is_empty());
    // A reused slot keeps its buffer: no allocation once the ring is full.
    record(&j, &c, 6, "/p", Some(1));
    let b = j.read(6);
    assert_eq!(b.entries[0].path, "/p");
    assert_eq!(b.entries[0].seq, 6);
}

#[test]
fn clear_forgets_entries_and_counts() {
    let j = Journal::new(10, 0);
    let c = remote("10.0.0.2:1234");
    record(&j, &c, 1, "/a", Some(1));
    j.clear(50);
    assert!(j.read(0).entries.is_empty());
    assert_eq!(j.read(0).missed, 0);
    let t = j.tally().report();
    assert_eq!((t.requests, t.no_token, t.clients.len()), (0, 0, 0));
    assert_eq!(t.since, "1970-01-01T00:00:00.050Z");
    record(&j, &c, 60, "/b", Some(2));
    assert_eq!(j.read(0).entries.len(), 1);
    // The file's reader still gets what a clear hid from the others.
    let all = j.read_through_clears(1);
    let paths: Vec<&str> = all.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!((paths, all.missed), (vec!["/a", "/b"], 0));
}

#[test]
fn counts_by_user_and_service_and_the_no_token_ones() {
    let j = Journal::new(2, 0);
    let (a, b) = (
        local(1000, "/user.slice/a"),
        local(0, "/system.slice/b.service"),
    );
    let r = remote("172.17.0.2:5555");
    record(&j, &a, 1, "/latest/meta-data/", Some(1));
    record(&j, &a, 2, "/latest/meta-data/", Some(1));
    record(&j, &b, 3, "/latest/api/token", Some(2));
    record(&j, &r, 4, "/v2/credentials/<id>", None);
    let t = j.tally().report();
    assert_eq!((t.requests, t.no_token, t.imds, t.ecs), (4, 2, 3, 1));
    assert_eq!(t.clients.len(), 3);
    let first = &t.clients[0];
    assert_eq!(first.asker.uid, Some(1000));
    assert_eq!(first.asker.user.as_deref(), Some("user1000"));
    assert_eq!(first.asker.cgroup.as_deref(), Some("/user.slice/a"));
    assert_eq!((first.requests, first.no_token), (2, 2));
    assert_eq!(first.paths[0].path, "/latest/meta-data/");
    let docker = t.clients.iter().find(|c| c.asker.uid.is_none()).unwrap();
    assert_eq!(docker.asker.source, "172.17.0.2");
    assert_eq!(docker.paths[0].endpoint, "ecs");
    // One uid, two services: two clients.
    record(&j, &local(1000, "/user.slice/c"), 5, "/x", Some(1));
    assert_eq!(j.tally().report().clients.len(), 4);
}

#[test]
fn the_table_is_bounded_and_says_what_it_did_not_itemize() {
    let j = Journal::new(1, 0);
    for i in 0..(MAX_CLIENTS + 10) {
        let c = remote(&format!("10.1.{}.{}:1", i / 250, i % 250));
        record(&j, &c, 1, "/a", Some(1));
    }
    let t = j.tally().report();
    assert_eq!(t.clients.len(), MAX_CLIENTS);
    assert_eq!((t.not_itemized, t.not_itemized_no_token), (10, 10));
    assert_eq!(t.no_token, (MAX_CLIENTS + 10) as u64);
    let j = Journal::new(1, 0);
    let c = remote("10.0.0.9:1");
    for i in 0..(MAX_PATHS + 3) {
        record(&j, &c, 1, &format!("/p{i}"), Some(2));
    }
    let t = j.tally().report();
    assert_eq!(t.clients[0].paths.len(), MAX_PATHS);
    assert_eq!(t.clients[0].other_requests, 3);
}

#[test]
fn the_json_line_has_every_key_and_no_more_than_it_knows() {
    let j = Journal::new(4, 0);
    let c = local(1000, "/user.slice/a");
    c.owner
        .as_ref()
        .unwrap()
        .process
        .set(Process {
            pid: 42,
            command: "curl".into(),
        })
        .unwrap();
    record(&j, &c, 1_765_000_000_123, "/latest/meta-data/", Some(1));
    record(
        &j,
        &remote("[::ffff:172.17.0.2]:80"),
        1,
        "/v4/<id>/task",
        None,
    );
    let b = j.read(0);
    let v = serde_json::to_value(b.entries[0].to_json()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "seq": 1, "time": "2025-12-06T05:46:40.123Z", "endpoint": "imds", "method": "GET",
            "path": "/latest/meta-data/", "status": 200, "imds_version": 1, "bytes": 10,
            "uid": 1000, "user": "user1000", "pid": 42, "command": "curl",
            "cgroup": "/user.slice/a", "source": "169.254.169.254", "port": 40000,
            "container": null, "fault": null
        })
    );
    let v = serde_json::to_value(b.entries[1].to_json()).unwrap();
    assert!(v.get("imds_version").is_none(), "{v}");
    assert_eq!(v["uid"], serde_json::Value::Null);
    assert_eq!(v["source"], "172.17.0.2", "an IPv4 client of a v6 socket");
}

#[test]
fn a_long_path_is_cut() {
    let j = Journal::new(2, 0);
    let long = format!("/{}", "é".repeat(MAX_PATH));
    record(&j, &remote("10.0.0.2:1"), 1, &long, Some(1));
    let p = &j.read(0).entries[0].path;
    assert!(
        p.len() <= MAX_PATH + '…'.len_utf8() && p.ends_with('…'),
        "{p}"
    );
}

mod rules {
    use super::*;
    use crate::journal::assert::{Clients, Rule, check};

    fn journal() -> Journal {
        let j = Journal::new(16, 0);
        let (app, web) = (local(1000, "/system.slice/app.service"), local(33, "/web"));
        record(
            &j,
            &app,
            1,
            "/latest/meta-data/iam/security-credentials/r",
            Some(2),
        );
        record(
            &j,
            &app,
            2,
            "/latest/meta-data/iam/security-credentials/r",
            Some(2),
        );
        record(&j, &web, 3, "/latest/user-data", Some(1));
        j
    }

    fn path(glob: &str, min: Option<u64>, max: Option<u64>) -> Rule {
        Rule::Path {
            glob: glob::Pattern::new(glob).unwrap(),
            min,
            max,
        }
    }

    #[test]
    fn no_v1_names_the_offender_and_its_paths() {
        let j = journal();
        let said = check(&j.tally().report(), &Rule::NoV1, &Clients::default()).unwrap_err();
        assert!(
            said.contains(": 1\n  user user33 (uid 33), /web: 1"),
            "{said}"
        );
        assert!(said.contains("imds /latest/user-data (1)"), "{said}");
        let only_app = Clients {
            user: Some("user1000".into()),
            source: None,
            view: None,
        };
        check(&j.tally().report(), &Rule::NoV1, &only_app).unwrap();
        let by_uid = Clients {
            user: Some("33".into()),
            source: None,
            view: None,
        };
        check(&j.tally().report(), &Rule::NoV1, &by_uid).unwrap_err();
        // A user with no request at all: a typo, not a pass.
        let nobody = Clients {
            user: Some("no-such-user".into()),
            source: None,
            view: None,
        };
        let said = check(&j.tally().report(), &Rule::NoV1, &nobody).unwrap_err();
        assert!(
            said.starts_with("no requests from --user no-such-user"),
            "{said}"
        );
    }

    #[test]
    fn path_counts_hold_between_bounds() {
        let r = journal().tally().report();
        let all = Clients::default();
        let iam = "/latest/meta-data/iam/*";
        check(&r, &path(iam, Some(2), Some(2)), &all).unwrap();
        let said = check(&r, &path(iam, None, Some(1)), &all).unwrap_err();
        assert!(
            said.starts_with("2 requests to /latest/meta-data/iam/*"),
            "{said}"
        );
        check(&r, &path(iam, Some(3), None), &all).unwrap_err();
        check(&r, &path("/nothing*", None, Some(0)), &all).unwrap();
    }

    #[test]
    fn what_was_not_itemized_makes_a_maximum_unsure() {
        let j = Journal::new(1, 0);
        for i in 0..(MAX_CLIENTS + 1) {
            let c = remote(&format!("10.2.{}.{}:1", i / 250, i % 250));
            record(&j, &c, 1, "/latest/user-data", Some(2));
        }
        let r = j.tally().report();
        let said = check(
            &r,
            &path("/latest/user-data", None, Some(1000)),
            &Clients::default(),
        )
        .unwrap_err();
        assert!(said.contains("cannot tell"), "{said}");
        // A minimum that the itemized requests already reach holds.
        check(
            &r,
            &path("/latest/user-data", Some(10), None),
            &Clients::default(),
        )
        .unwrap();
    }
}
