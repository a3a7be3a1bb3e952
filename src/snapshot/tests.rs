//! The snapshot build end to end, from a config as the daemon compiles it (with generated
//! credentials and the configured scenario), through `imds::respond`.

use std::path::Path;
use std::sync::Arc;

use http::Method;

use super::*;
use crate::clock::ManualClock;
use crate::credentials::CredentialManager;
use crate::imds::{Content, Request, Response, respond};
use crate::scenario::EventId;

const T0: u64 = 1_767_323_045_000;

fn golden(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the daemon would serve for `toml`, at a fixed time.
fn served(toml: &str) -> imds::Service {
    let cfg = Config::from_toml(toml, Path::new("t.toml")).unwrap();
    let clock = Arc::new(ManualClock::fixed());
    let mut credentials = CredentialManager::new(
        cfg.iam(),
        cfg.instance().account_id().as_str(),
        cfg.instance().partition().0,
        clock.clone(),
    );
    let _ = credentials.refresh();
    let now = clock.now();
    let scenario = Scenario::new(cfg.scenario(), cfg.faults(), now, &mut EventId::random);
    build(
        &cfg,
        None,
        &credentials.current(),
        &scenario,
        &super::Workloads::none(),
        Vec::new(),
        now,
    )
    .imds
    .service
}

fn get(s: &imds::Service, path: &str) -> Response {
    respond(
        s,
        &TokenAuthority::with_key(b"k"),
        T0,
        &Request::new(&Method::GET, path),
    )
}

fn body(r: &Response) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

#[test]
fn meta_data_listing_is_golden() {
    let r = get(&served(""), "/latest/meta-data/");
    assert_eq!(r.status, 200);
    assert_eq!(r.content, Content::Text);
    assert_eq!(
        body(&r),
        String::from_utf8(golden("golden/meta-data.txt")).unwrap()
    );
}

#[test]
fn identity_document_is_golden() {
    let r = get(&served(""), "/latest/dynamic/instance-identity/document");
    assert_eq!(
        body(&r),
        String::from_utf8(golden("golden/document.json")).unwrap()
    );
    assert_eq!(r.content, Content::Text, "EC2 labels JSON text/plain");
}

#[test]
fn no_trailing_newline_anywhere() {
    let s = served("");
    for p in s.tree.paths() {
        let r = get(&s, &format!("/latest/{p}"));
        assert_eq!(r.status, 200, "{p}");
        assert!(!r.body.ends_with(b"\n"), "{p} ends with a newline");
    }
}

#[test]
fn extra_paths_and_overrides() {
    let s = served(
        "[paths]\n\"meta-data/custom/thing\" = \"42\"\n\"meta-data/instance-type\" = \"m7g.large\"\n",
    );
    assert_eq!(body(&get(&s, "/latest/meta-data/custom/thing")), "42");
    assert_eq!(body(&get(&s, "/latest/meta-data/custom")), "thing");
    assert_eq!(
        body(&get(&s, "/latest/meta-data/instance-type")),
        "m7g.large"
    );
    assert!(body(&get(&s, "/latest/meta-data")).contains("custom/\n"));
}

#[test]
fn dated_trees_are_the_captured_ones() {
    // The 2009-04-04 crawl of a real t2.micro (cloud-init issue 2750, 2017) and the
    // 2016-09-02 / 2018-09-24 trees of cloud-init's test data (2016–2019).
    let s = served("[instance.public-key]\nname = \"k\"\nopenssh-key = \"ssh-ed25519 AAAA k\"\n");
    let old = body(&get(&s, "/2009-04-04/meta-data/")).to_string();
    for gone in [
        "iam/",
        "mac",
        "metrics/",
        "network/",
        "services/",
        "events/",
        "system",
    ] {
        assert!(
            !old.lines().any(|l| l == gone),
            "{gone} in 2009-04-04: {old}"
        );
    }
    for kept in [
        "profile",
        "placement/",
        "block-device-mapping/",
        "instance-action",
        "public-keys/",
    ] {
        assert!(old.lines().any(|l| l == kept), "{kept} missing: {old}");
    }
    // The 2016-09-02 key set, exactly (that instance had no role).
    let no_role = served(
        "[iam]\nrole = \"\"\n[instance.public-key]\nname = \"k\"\nopenssh-key = \"ssh-ed25519 AAAA k\"\n",
    );
    assert_eq!(
        body(&get(&no_role, "/2016-09-02/meta-data/")),
        "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nhostname\n\
         instance-action\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\n\
         metrics/\nnetwork/\nplacement/\nprofile\npublic-hostname\npublic-ipv4\n\
         public-keys/\nreservation-id\nsecurity-groups\nservices/"
    );
    for v in ["2016-09-02", "2018-09-24"] {
        assert_eq!(
            body(&get(&s, &format!("/{v}/meta-data/placement/"))),
            "availability-zone",
            "{v}"
        );
    }
    let events = body(&get(&s, "/2018-09-24/meta-data/")).to_string();
    assert!(events.contains("events/\n") && events.contains("identity-credentials/\n"));
    // The 2018-09-24 key set, exactly: that instance had no role, and still its identity
    // credentials (SECONDARY_IP_METADATA_2018_09_24).
    assert_eq!(
        body(&get(&no_role, "/2018-09-24/meta-data/")),
        "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nevents/\nhostname\n\
         identity-credentials/\ninstance-action\ninstance-id\ninstance-type\nlocal-hostname\n\
         local-ipv4\nmac\nmetrics/\nnetwork/\nplacement/\nprofile\npublic-hostname\n\
         public-ipv4\npublic-keys/\nreservation-id\nsecurity-groups\nservices/"
    );
    assert_eq!(
        body(&get(
            &no_role,
            "/2018-09-24/meta-data/identity-credentials/ec2/"
        )),
        "info\nsecurity-credentials/"
    );
    assert_eq!(get(&no_role, "/latest/meta-data/iam/").status, 404);

    // The version table as the guide has it (fidelity audit, "rows that disagree"):
    // ami-launch-index is in 1.0 (every revision of the user guide, the 2009 developer
    // guide); hibernation/ launched in November 2018, so a 2018-09-24 tree has none even
    // on a hibernation-enabled instance, and 2019-10-01 has it.
    assert_eq!(
        body(&get(&s, "/1.0/meta-data/ami-launch-index")),
        "0",
        "ami-launch-index under 1.0"
    );
    let hib = served("[instance]\nhibernation = true\n");
    assert_eq!(
        get(&hib, "/2018-09-24/meta-data/hibernation/configured").status,
        404
    );
    assert_eq!(
        body(&get(&hib, "/2019-10-01/meta-data/hibernation/configured")),
        "true"
    );
}

#[test]
fn current_categories_and_their_settings() {
    let s = served("");
    assert_eq!(body(&get(&s, "/latest/meta-data/profile")), "default-hvm");
    assert_eq!(body(&get(&s, "/latest/meta-data/system")), "nitro");
    assert_eq!(
        get(&s, "/latest/meta-data/hibernation/configured").status,
        404
    );
    let s = served(
        "[instance]\nprofile = \"default-paravirtual\"\nsystem = \"other\"\nhibernation = true\nipv6 = \"2600:1f18::5\"\n",
    );
    assert_eq!(
        body(&get(&s, "/latest/meta-data/profile")),
        "default-paravirtual"
    );
    assert_eq!(body(&get(&s, "/latest/meta-data/system")), "other");
    assert_eq!(
        body(&get(&s, "/latest/meta-data/hibernation/configured")),
        "true"
    );
    assert_eq!(body(&get(&s, "/latest/meta-data/ipv6")), "2600:1f18::5");
    assert!(body(&get(&s, "/latest/meta-data/")).contains("\nhibernation/\n"));
}

#[test]
fn the_generation_follows_the_instance_type_unless_set() {
    let xen = served("[instance]\ninstance-type = \"t2.micro\"\n");
    assert_eq!(xen.options.generation, imds::Generation::Xen);
    assert_eq!(body(&get(&xen, "/latest/meta-data/system")), "xen");
    let forced =
        served("[instance]\ninstance-type = \"t2.micro\"\n[imds]\ngeneration = \"nitro\"\n");
    assert_eq!(forced.options.generation, imds::Generation::Nitro);
    assert_eq!(
        served("[imds]\ngeneration = \"xen\"\n").options.generation,
        imds::Generation::Xen
    );
    assert_eq!(served("").options.generation, imds::Generation::Nitro);
}

#[test]
fn extended_credentials_are_the_same_set_plus_the_account() {
    // Off by default: a 404, as on instances EC2 has not allowlisted (as of June 2025).
    let plain = served("");
    assert_eq!(
        get(
            &plain,
            "/latest/meta-data/iam/security-credentials-extended/"
        )
        .status,
        404
    );
    assert_eq!(
        body(&get(&plain, "/latest/meta-data/iam/")),
        "info\nsecurity-credentials/"
    );
    let s =
        served("[instance]\naccount-id = \"210987654321\"\n[iam]\nextended-credentials = true\n");
    let role = body(&get(&s, "/latest/meta-data/iam/security-credentials/")).to_string();
    assert_eq!(
        body(&get(
            &s,
            "/latest/meta-data/iam/security-credentials-extended/"
        )),
        role
    );
    let old: serde_json::Value = serde_json::from_str(body(&get(
        &s,
        &format!("/latest/meta-data/iam/security-credentials/{role}"),
    )))
    .unwrap();
    let mut new: serde_json::Value = serde_json::from_str(body(&get(
        &s,
        &format!("/latest/meta-data/iam/security-credentials-extended/{role}"),
    )))
    .unwrap();
    assert_eq!(new["AccountId"], "210987654321");
    new.as_object_mut().unwrap().remove("AccountId");
    assert_eq!(new, old);
    // Only under `latest`, and only with a role.
    assert_eq!(
        get(
            &s,
            "/2024-04-11/meta-data/iam/security-credentials-extended/"
        )
        .status,
        404
    );
    assert_eq!(
        get(
            &served("[iam]\nrole = \"\"\nextended-credentials = true\n"),
            "/latest/meta-data/iam/security-credentials-extended/"
        )
        .status,
        404
    );
}

/// The default instance profile is in the instance's partition: an ARN's second field is
/// `aws-cn` in the China regions (IAM's ARN format), as `services/partition` says.
#[test]
fn the_default_profile_arn_is_in_the_instances_partition() {
    let arn = |toml: &str| {
        let info: serde_json::Value =
            serde_json::from_str(body(&get(&served(toml), "/latest/meta-data/iam/info"))).unwrap();
        info["InstanceProfileArn"].as_str().unwrap().to_string()
    };
    assert_eq!(
        arn("[instance]\navailability-zone = \"cn-north-1a\"\naccount-id = \"210987654321\"\n"),
        "arn:aws-cn:iam::210987654321:instance-profile/fake-metadata-role"
    );
    assert_eq!(
        arn("[instance]\navailability-zone = \"us-gov-west-1a\"\n"),
        "arn:aws-us-gov:iam::123456789012:instance-profile/fake-metadata-role"
    );
    assert_eq!(
        arn(""),
        "arn:aws:iam::123456789012:instance-profile/fake-metadata-role"
    );
}

/// `ancestor-ami-ids` (in the guide's table since 2007-10-10): the AMIs this one was
/// rebundled from, one per line; not served when none are set, as for an AMI never rebundled.
#[test]
fn ancestor_ami_ids_are_served_only_when_set() {
    let s =
        served("[instance]\nancestor-ami-ids = [\"ami-0123456789abcdef0\", \"ami-5fb8c835\"]\n");
    assert_eq!(
        body(&get(&s, "/latest/meta-data/ancestor-ami-ids")),
        "ami-0123456789abcdef0\nami-5fb8c835"
    );
    let listing = body(&get(&s, "/latest/meta-data/")).to_string();
    assert!(
        listing.lines().any(|l| l == "ancestor-ami-ids"),
        "{listing}"
    );
    assert_eq!(
        get(&s, "/2007-10-10/meta-data/ancestor-ami-ids").status,
        200
    );
    assert_eq!(
        get(&s, "/2007-08-29/meta-data/ancestor-ami-ids").status,
        404
    );
    let plain = served("");
    assert_eq!(
        get(&plain, "/latest/meta-data/ancestor-ami-ids").status,
        404
    );
    // Each one is an AMI id, refused at its value otherwise.
    let e = Config::from_toml(
        "[instance]\nancestor-ami-ids = [\"ami-0123456789abcdef0\", \"i-0123456789abcdef0\"]\n",
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("t.toml:2:"), "{e}");
    assert!(e.contains("i-0123456789abcdef0"), "{e}");
}
