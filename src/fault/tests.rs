use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use super::*;
use crate::endpoint::Endpoint;

fn spec(toml_text: &str) -> Result<Spec, String> {
    toml::from_str::<Keys>(toml_text)
        .map_err(|e| e.message().to_string())
        .and_then(Spec::try_from)
}

fn armed(id: u32, s: &str, until_ms: Option<u64>) -> Armed {
    let spec = spec(s).unwrap();
    Armed {
        id: FaultId(id),
        counters: Counters::new(&spec),
        spec,
        started_ms: 0,
        until_ms,
    }
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn check(f: &Faults, method: &http::Method, path: &str, now_ms: u64) -> Option<Hit> {
    f.check(
        Endpoint::Imds,
        method,
        path,
        Sender {
            peer: PEER,
            view: None,
        },
        now_ms,
        &mut || 0.5,
    )
}

#[test]
fn globs_match_below_the_version() {
    assert_eq!(below_version("/latest/meta-data/iam/x"), "meta-data/iam/x");
    assert_eq!(below_version("/2021-07-15/api/token"), "api/token");
    assert_eq!(below_version("/latest"), "");
    assert_eq!(below_version("/"), "");
    assert_eq!(below_version("/meta-data/x"), "meta-data/x");
    let f = Faults::new(vec![armed(
        1,
        "path = \"meta-data/iam/*\"\nstatus = 503",
        None,
    )]);
    let get = http::Method::GET;
    for p in [
        "/latest/meta-data/iam/info",
        "/latest/meta-data/iam/security-credentials/role",
        "/2016-09-02/meta-data/iam/security-credentials/",
    ] {
        assert_eq!(
            check(&f, &get, p, 0),
            Some(Hit {
                id: FaultId(1),
                effect: Effect::Status(503)
            }),
            "{p}"
        );
    }
    for p in [
        "/latest/meta-data/instance-id",
        "/latest/meta-data/iam",
        "/latest/api/token",
    ] {
        assert_eq!(check(&f, &get, p, 0), None, "{p}");
    }
}

#[test]
fn method_time_count_and_probability_limit_a_fault() {
    let f = Faults::new(vec![armed(
        2,
        "path = \"api/token\"\nmethod = \"PUT\"\ndrop = true\ncount = 2",
        Some(1000),
    )]);
    let (get, put) = (http::Method::GET, http::Method::PUT);
    assert_eq!(check(&f, &get, "/latest/api/token", 0), None);
    let hit = check(&f, &put, "/latest/api/token", 0).unwrap();
    assert_eq!(hit.effect, Effect::Withhold);
    assert!(check(&f, &put, "/latest/api/token", 1).is_some());
    // Its two requests are done.
    assert_eq!(check(&f, &put, "/latest/api/token", 2), None);
    let f = Faults::new(vec![armed(3, "drop = true", Some(1000))]);
    assert!(check(&f, &get, "/latest/meta-data/", 999).is_some());
    assert_eq!(check(&f, &get, "/latest/meta-data/", 1000), None, "ended");

    let f = Faults::new(vec![armed(4, "status = 500\nprobability = 0.25", None)]);
    let low = f.check(
        Endpoint::Imds,
        &get,
        "/latest/",
        Sender {
            peer: PEER,
            view: None,
        },
        0,
        &mut || 0.2,
    );
    let high = f.check(
        Endpoint::Imds,
        &get,
        "/latest/",
        Sender {
            peer: PEER,
            view: None,
        },
        0,
        &mut || 0.3,
    );
    assert_eq!(low.map(|h| h.effect), Some(Effect::Status(500)));
    assert_eq!(high, None);
}

#[test]
fn the_first_fault_that_acts_wins_and_delays_fall_in_their_range() {
    let f = Faults::new(vec![
        armed(1, "path = \"meta-data/x\"\nreset = true", None),
        armed(2, "delay = \"100ms..300ms\"", None),
    ]);
    let get = http::Method::GET;
    assert_eq!(
        check(&f, &get, "/latest/meta-data/x", 0).unwrap().effect,
        Effect::Reset
    );
    let d = f
        .check(
            Endpoint::Imds,
            &get,
            "/latest/meta-data/y",
            Sender {
                peer: PEER,
                view: None,
            },
            0,
            &mut || 0.5,
        )
        .unwrap();
    assert_eq!(d.effect, Effect::Delay(Duration::from_millis(200)));
    assert_eq!(f.iter().map(|a| a.counters.hits()).sum::<u64>(), 2);
}

#[test]
fn a_throttle_lets_n_per_second_per_client_through() {
    let f = Faults::new(vec![armed(1, "throttle = 2", None)]);
    let get = http::Method::GET;
    let other: IpAddr = "10.0.0.9".parse().unwrap();
    let outcomes: Vec<bool> = (0..4)
        .map(|_| check(&f, &get, "/latest/meta-data/", 5_000).is_some())
        .collect();
    assert_eq!(outcomes, [false, false, true, true]);
    // Another client has its own budget; the next second starts afresh.
    assert!(
        f.check(
            Endpoint::Imds,
            &get,
            "/latest/",
            Sender {
                peer: other,
                view: None
            },
            5_100,
            &mut || 0.0
        )
        .is_none()
    );
    assert!(check(&f, &get, "/latest/meta-data/", 6_000).is_none());
}

#[test]
fn refuse_is_found_for_the_listener_not_for_requests() {
    let f = Faults::new(vec![armed(1, "refuse = true\nfor = \"2s\"", Some(2000))]);
    assert_eq!(check(&f, &http::Method::GET, "/latest/", 0), None);
    assert_eq!(
        f.refusing(Endpoint::Imds, 1999).map(|a| a.id),
        Some(FaultId(1))
    );
    assert!(f.refusing(Endpoint::Imds, 2000).is_none());
}

#[test]
fn bad_faults_are_refused_with_what_was_wrong() {
    for (text, want) in [
        ("status = 999", "status 999 is not an HTTP status"),
        ("status = 42", "status 42 is not an HTTP status"),
        ("delay = \"-1s\"", "delay `-1s` is negative"),
        ("delay = \"2s..1s\"", "runs backwards"),
        ("delay = \"soon\"", "`soon` is not a duration"),
        (
            "path = \"meta-data/[iam\"\ndrop = true",
            "`meta-data/[iam` is not a path glob",
        ),
        ("path = \"/latest/x\"\ndrop = true", "starts with `/`"),
        (
            "probability = 1.5\ndrop = true",
            "probability 1.5 is out of range",
        ),
        ("probability = -0.1\ndrop = true", "out of range"),
        (
            "count = 0\ndrop = true",
            "count 0 is not a number of requests",
        ),
        ("method = \"POST\"\ndrop = true", "`POST` is not a method"),
        (
            "drop = true\nreset = true",
            "a fault does one thing, this one has `drop` and `reset`",
        ),
        ("path = \"x\"", "a fault needs one of"),
        ("drop = false", "`drop = false` does nothing"),
        ("throttle = 0", "throttle 0 is not a rate"),
        ("refuse = true\npath = \"x\"", "takes no `path`"),
        ("throttle = 5\ncount = 2", "takes no `count`"),
        ("drop = true\nfor = 0", "would end as it starts"),
        ("drop = true\nwhen = 3", "unknown field `when`"),
    ] {
        let e = spec(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn specs_round_trip_and_read_well() {
    for text in [
        "path = \"meta-data/iam/*\"\nmethod = \"GET\"\nfor = \"20s\"\nstatus = 503\n",
        "delay = \"100ms..2s\"\nprobability = 0.5\ncount = 3\n",
        "refuse = true\nfor = \"1m\"\n",
        "throttle = 10\n",
    ] {
        let s = spec(text).unwrap();
        let again: Spec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s, "{text}");
    }
    let s =
        spec("path = \"meta-data/iam/*\"\nmethod = \"GET\"\nfor = \"20s\"\nstatus = 503").unwrap();
    assert_eq!(s.to_string(), "status 503 on GET meta-data/iam/*, for 20s");
    let s = spec("delay = \"500ms\"\ncount = 2").unwrap();
    assert_eq!(
        s.to_string(),
        "delay 500ms on any method *, first 2 request(s)"
    );
    assert_eq!("fault-7".parse::<FaultId>().unwrap(), FaultId(7));
    assert_eq!("7".parse::<FaultId>().unwrap(), FaultId(7));
    assert!("fault-0".parse::<FaultId>().is_err());
}

#[test]
fn statuses_http_forbids_a_fault_to_send_are_refused() {
    for code in [100, 101, 103, 199, 204, 206, 304, 405, 407] {
        let e = spec(&format!("status = {code}")).unwrap_err();
        assert!(
            e.starts_with(&format!("status {code} cannot be a fault's reply: "))
                && e.contains("use 200 to 599 except 204, 206, 304, 405 and 407")
                && !e.contains('\n'),
            "{code}: {e}"
        );
    }
    for code in [
        200, 202, 205, 301, 400, 401, 403, 404, 418, 429, 500, 503, 599,
    ] {
        assert_eq!(
            spec(&format!("status = {code}")).unwrap().action,
            Action::Status(code),
            "{code}"
        );
    }
}

#[test]
fn a_path_glob_with_a_control_character_is_refused() {
    for (glob, shown) in [
        ("meta-data/x\nINFO forged", "\"meta-data/x\\nINFO forged\""),
        ("meta-data/\r*", "\"meta-data/\\r*\""),
        ("api/\u{1b}[2Jtoken", "\"api/\\u{1b}[2Jtoken\""),
    ] {
        let e = PathGlob::from_str(glob).unwrap_err().to_string();
        assert!(
            e.starts_with(shown) && e.contains("a path glob cannot hold one") && !e.contains('\n'),
            "{glob:?}: {e}"
        );
        let raw = serde_json::json!({ "path": glob, "drop": true });
        assert!(serde_json::from_value::<Spec>(raw).is_err(), "{glob:?}");
    }
}

#[test]
fn a_fault_is_scoped_to_an_endpoint_imds_by_default() {
    let s = spec("status = 503").unwrap();
    assert_eq!(s.endpoint, Endpoint::Imds);
    assert_eq!(spec("endpoint = \"imds\"\nstatus = 503").unwrap(), s);
    let e = spec("endpoint = \"ecs-agent\"\nstatus = 503").unwrap_err();
    assert!(
        e.contains("unknown endpoint `ecs-agent` (known: imds, ecs, pod-identity)"),
        "{e}"
    );
    assert_eq!(
        spec("endpoint = \"ecs\"\nstatus = 503").unwrap().endpoint,
        Endpoint::Ecs
    );
    // The default endpoint is left out when written back.
    assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"status":503}"#);
    // IMDS's globs see the path below the version.
    assert_eq!(
        glob_path(Endpoint::Imds, "/2021-07-15/meta-data/iam/x"),
        "meta-data/iam/x"
    );
    // The ECS agent's paths have no version prefix: the glob sees them whole.
    assert_eq!(
        glob_path(Endpoint::Ecs, "/v2/credentials/x"),
        "v2/credentials/x"
    );
}

/// The flags of `ctl fault add` are the same keys, read by the same checks.
#[derive(Debug, clap::Parser)]
struct Flags {
    #[command(flatten)]
    keys: Keys,
}

fn flags(args: &[&str]) -> Result<Keys, clap::Error> {
    use clap::Parser;
    Flags::try_parse_from(std::iter::once("add").chain(args.iter().copied())).map(|f| f.keys)
}

#[test]
fn flags_and_config_keys_give_the_same_fault() {
    use clap::CommandFactory;
    Flags::command().debug_assert();
    for (args, text) in [
        (
            &[
                "--path",
                "meta-data/iam/*",
                "--status",
                "503",
                "--for",
                "20s",
            ][..],
            "path = \"meta-data/iam/*\"\nstatus = 503\nfor = \"20s\"",
        ),
        (
            &[
                "--endpoint",
                "imds",
                "--method",
                "put",
                "--drop",
                "--count",
                "2",
            ][..],
            "endpoint = \"imds\"\nmethod = \"PUT\"\ndrop = true\ncount = 2",
        ),
        (&["--delay", "100ms..2s"][..], "delay = \"100ms..2s\""),
        (
            &["--refuse", "--for", "1m"][..],
            "refuse = true\nfor = \"1m\"",
        ),
        (&["--throttle", "5"][..], "throttle = 5"),
    ] {
        let from_flags = Spec::try_from(flags(args).unwrap()).unwrap();
        assert_eq!(from_flags, spec(text).unwrap(), "{args:?}");
    }
    assert_eq!(flags(&[]).unwrap(), Keys::default(), "no flag, no key");
    for (args, want) in [
        (
            &["--status", "100"][..],
            "status 100 cannot be a fault's reply",
        ),
        (&["--status", "-1"][..], "status -1 is not an HTTP status"),
        (
            &["--count", "many"][..],
            "`many` is not a number of requests",
        ),
        (&["--for", "0"][..], "would end as it starts"),
        (
            &["--endpoint", "ecs-agent"][..],
            "unknown endpoint `ecs-agent`",
        ),
        (&["--path", "/x"][..], "starts with `/`"),
    ] {
        let e = flags(args).unwrap_err();
        let bad = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<BadKey>())
            .unwrap_or_else(|| panic!("{args:?}: {e}"));
        assert!(bad.0.contains(want), "{args:?}: {bad}");
    }
}

#[test]
fn a_fault_with_a_view_hits_only_that_views_clients() {
    let f = Faults::new(vec![armed(1, "view = \"node-a\"\nstatus = 503", None)]);
    let get = http::Method::GET;
    let hit = |view| {
        f.check(
            Endpoint::Imds,
            &get,
            "/latest/",
            Sender { peer: PEER, view },
            0,
            &mut || 0.5,
        )
    };
    assert_eq!(hit(Some("node-a")).unwrap().effect, Effect::Status(503));
    assert!(hit(Some("node-b")).is_none());
    assert!(hit(None).is_none(), "the box's clients");
    let everyone = Faults::new(vec![armed(1, "status = 503", None)]);
    assert!(
        everyone
            .check(
                Endpoint::Imds,
                &get,
                "/latest/",
                Sender {
                    peer: PEER,
                    view: Some("node-b")
                },
                0,
                &mut || 0.5
            )
            .is_some()
    );
    assert_eq!(
        spec("view = \"a\"\nrefuse = true")
            .unwrap_err()
            .lines()
            .next()
            .map(|l| l.contains("takes no `view`")),
        Some(true)
    );
    assert!(
        spec("view = \"box\"\nstatus = 500")
            .unwrap_err()
            .contains("not `box`")
    );
}
