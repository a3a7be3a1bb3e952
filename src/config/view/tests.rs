use std::net::IpAddr;
use std::path::Path;

use crate::config::Config;

fn parse(s: &str) -> Result<Config, String> {
    Config::from_toml(s, Path::new("c.toml")).map_err(|e| e.to_string())
}

const FLEET: &str = r#"
[instance]
instance-id = "i-0000000000000000b"
availability-zone = "eu-west-1b"

[iam]
role = "box-role"

[tags]
Name = "box"

[[view]]
name = "node-a"
sources = ["172.18.0.2", "10.1.0.0/24"]

[view.instance]
instance-id = "i-0aaaaaaaaaaaaaaaa"
local-ipv4 = "172.18.0.2"
mac = "0e:00:00:00:00:0a"

[view.iam]
role = "node-a-role"

[view.tags]
Name = "node-a"

[[view]]
name = "untrusted"
sources = ["fd00::/64"]
uids = [1001, 0]

[view.iam]
role = ""

[view.user-data]
text = "untrusted"
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_view_is_the_box_with_its_own_keys_over_it() {
    let c = parse(FLEET).unwrap();
    assert_eq!(c.views().len(), 2);
    let a = c.view("node-a").unwrap().config();
    assert_eq!(a.instance().instance_id(), "i-0aaaaaaaaaaaaaaaa");
    assert_eq!(a.instance().local_ipv4().to_string(), "172.18.0.2");
    assert_eq!(a.instance().mac(), "0e:00:00:00:00:0a");
    // Derived again from the view's address; the box's zone kept.
    assert_eq!(
        a.instance().hostname(),
        "ip-172-18-0-2.eu-west-1.compute.internal"
    );
    assert_eq!(a.instance().availability_zone().as_str(), "eu-west-1b");
    assert_eq!(a.iam().role.as_ref().unwrap().as_str(), "node-a-role");
    assert_eq!(a.tags().get("Name").unwrap(), "node-a");
    assert!(a.views().is_empty() && a.tasks().is_empty());
    let u = c.view("untrusted").unwrap().config();
    assert_eq!(u.instance().instance_id(), "i-0000000000000000b");
    assert_eq!(u.iam().role, None);
    assert_eq!(u.tags().get("Name").unwrap(), "box");
    assert_eq!(u.user_data().bytes().unwrap().as_ref(), b"untrusted");
    // The box is unchanged.
    assert_eq!(c.instance().instance_id(), "i-0000000000000000b");
    assert_eq!(c.iam().role.as_ref().unwrap().as_str(), "box-role");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn covers_by_address_network_and_uid() {
    let c = parse(FLEET).unwrap();
    let a = c.view("node-a").unwrap().covers();
    assert!(a.covers(ip("172.18.0.2"), None));
    assert!(
        a.covers(ip("::ffff:172.18.0.2"), None),
        "a dual-stack listener's v4 client"
    );
    assert!(a.covers(ip("10.1.0.77"), Some(5)));
    assert!(!a.covers(ip("172.18.0.3"), None));
    assert!(!a.covers(ip("127.0.0.1"), Some(1001)));
    assert!(!a.by_uid());
    let u = c.view("untrusted").unwrap().covers();
    assert!(u.by_uid());
    assert!(u.covers(ip("127.0.0.1"), Some(1001)));
    assert!(u.covers(ip("fd00::5"), None));
    assert!(!u.covers(ip("127.0.0.1"), Some(1002)));
    assert!(
        !u.covers(ip("127.0.0.1"), None),
        "an unknown owner is no one's"
    );
    assert_eq!(u.to_string(), "fd00::/64, uid 1001, uid 0");
}

#[test]
fn printed_views_read_back_to_the_same_config() {
    let c = parse(FLEET).unwrap();
    let printed = c.to_toml();
    assert!(printed.contains("[[view]]"), "{printed}");
    let again = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again.to_toml(), printed);
    // As the fuzzer checks it: the same meaning.
    let want = c.clone().with_listen(c.server().listen_addrs().to_vec());
    assert_eq!(again, want);
    for (a, b) in again.views().iter().zip(c.views()) {
        assert_eq!((a.name(), a.covers()), (b.name(), b.covers()));
        let (a, b) = (a.config(), b.config());
        assert_eq!(a.instance(), b.instance());
        assert_eq!(a.iam(), b.iam());
        assert_eq!(a.tags(), b.tags());
        assert_eq!(a.user_data().bytes(), b.user_data().bytes());
    }
}

#[test]
fn mistakes_in_a_view_are_located() {
    let unknown = "[[view]]\nname = \"a\"\nsources = [\"10.0.0.1\"]\n\n[view.instance]\ninstance-idd = \"i-0aaaaaaaaaaaaaaaa\"\n";
    let e = parse(unknown).unwrap_err();
    assert!(
        e.starts_with("c.toml:6:1:") && e.contains("instance-idd"),
        "{e}"
    );
    for (toml, at, says) in [
        (
            "[[view]]\nname = \"box\"\nsources = [\"10.0.0.1\"]\n",
            "c.toml:2:8:",
            "not `box`",
        ),
        (
            "[[view]]\nname = \"a\"\nsources = [\"10.0.0.7/24\"]\n",
            "c.toml:3:",
            "write the network `10.0.0.0/24`, or the address `10.0.0.7`",
        ),
        (
            "[[view]]\nname = \"a\"\nsources = [\"nope\"]\n",
            "c.toml:3:",
            "not an address or a network",
        ),
        ("[[view]]\nname = \"a\"\n", "c.toml:2:1:", "covers no one"),
        (
            "[[view]]\nname = \"a\"\nuids = [1]\n[[view]]\nname = \"a\"\nuids = [2]\n",
            "c.toml:5:1:",
            "already defined",
        ),
        (
            "[[view]]\nname = \"a\"\nuids = [\"no-such-user-here\"]\n",
            "c.toml:3:1:",
            "no user `no-such-user-here`",
        ),
        (
            "[[view]]\nname = \"a\"\nuids = [1]\n[view.instance]\nregion = \"eu-west-1\"\n",
            "c.toml:4:",
            "view `a`: availability zone `us-east-1a` is not in region `eu-west-1`",
        ),
        (
            "[[view]]\nname = \"a\"\nuids = [1]\nsecret = 1\n",
            "c.toml:4:1:",
            "unknown field `secret`",
        ),
    ] {
        let e = parse(toml).unwrap_err();
        assert!(e.starts_with(at) && e.contains(says), "{toml}\n=> {e}");
    }
}

#[test]
fn overlapping_views_warn_naming_both() {
    let c = parse(
        "[[view]]\nname = \"a\"\nsources = [\"10.0.0.0/16\"]\nuids = [7]\n\n[[view]]\nname = \"b\"\nsources = [\"10.0.3.4\"]\n\n[[view]]\nname = \"c\"\nuids = [7]\n",
    )
    .unwrap();
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("c.toml:7:1:"), "{w:?}");
    assert!(
        w[0].contains(
            "views `a` and `b` both cover 10.0.0.0/16 and 10.0.3.4: `a` (the first) wins"
        ),
        "{w:?}"
    );
    assert!(w[1].contains("views `a` and `c` both cover uid 7"), "{w:?}");
}

#[test]
fn flags_over_the_file_reach_the_views() {
    let o = crate::config::Overrides {
        listen: vec!["127.0.0.1:9".parse().unwrap()],
        http_tokens: Some(crate::config::HttpTokens::Required),
    };
    let c = parse(FLEET).unwrap().overridden(&o);
    for v in c.views() {
        assert!(v.config().imds_options().tokens_required, "{}", v.name());
        assert_eq!(
            v.config().server().listen_addrs(),
            c.server().listen_addrs()
        );
    }
}
