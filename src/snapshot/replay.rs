//! A tree crawled from a real instance (`[replay]`), as served: every replayed path answers
//! the crawled bytes, listings included, and nothing of `[instance]`'s modelled tree is
//! mixed in. What the box must make itself is added on top, as on the modelled tree: the
//! identity signatures over the replayed document (with the box's key), the credentials (by
//! the caller: the instance identity credentials always, as EC2 serves them on every
//! instance, and `iam/` under `[iam] role` when there is one), `[paths]`, and the scenario's
//! time-bound state.
//! Listings follow what is there ([`TreeBuilder::replayed_listing`]): a spot notice appears
//! in `meta-data/`'s listing while it is set, and the crawled bytes come back after.

use bytes::Bytes;

use crate::config::{Config, Replay};
use crate::identity::Signatures;
use crate::metadata::TreeBuilder;

/// The replayed leaves and listings, the empty maintenance events the scenario fills, and
/// the identity `signatures`; `tags` (when a `ctl tags` change is live) replace the
/// replayed `tags/instance/`.
pub fn builder(
    config: &Config,
    replay: &Replay,
    signatures: Option<&Signatures>,
    tags_changed: bool,
) -> TreeBuilder {
    let mut b = TreeBuilder::default();
    for (path, value) in &replay.leaves {
        b.leaf(path.as_str(), value.0.clone(), path.as_str() == "user-data");
    }
    for (dir, listing) in &replay.listings {
        b.replayed_listing(dir.as_str(), listing.clone());
    }
    // Time-bound state is never replayed: it starts as on a fresh instance.
    b.text("meta-data/events/maintenance/scheduled", "[]");
    b.text("meta-data/events/maintenance/history", "[]");
    if tags_changed && config.imds().instance_metadata_tags().is_enabled() {
        b.remove("meta-data/tags/instance");
        for (k, v) in config.tags() {
            b.text(&format!("meta-data/tags/instance/{k}"), v.clone());
        }
    }
    if let Some(s) = signatures
        && replay.leaf(DOCUMENT).is_some()
    {
        b.text("dynamic/instance-identity/signature", s.signature.clone());
        b.text("dynamic/instance-identity/pkcs7", s.pkcs7.clone());
        b.text("dynamic/instance-identity/rsa2048", s.rsa2048.clone());
    }
    b
}

/// Where the identity document is.
pub const DOCUMENT: &str = "dynamic/instance-identity/document";

/// The identity document the signatures cover: the replayed one, byte for byte, or the one
/// `[instance]` makes; `None` when a replay has no document (nothing to sign).
pub fn signed_document(config: &Config) -> Option<Bytes> {
    match config.replay() {
        Some(r) => r.leaf(DOCUMENT).cloned(),
        None => Some(Bytes::from(super::identity_document(config))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use http::Method;

    use crate::config::{Config, TagKey};
    use crate::identity::Signatures;
    use crate::imds::{Request, TokenAuthority, respond};
    use crate::scenario::{Change, EventId, Scenario, SpotAction};

    const FILE: &str = "[instance]\nfrom-host = false\ninstance-id = \"i-0fedcba9876543210\"\n\
        [imds]\ninstance-metadata-tags = \"enabled\"\n[tags]\nName = \"web\"\n\
        [paths]\n\"meta-data/ami-id\" = \"ami-0mine\"\n\
        [replay.listings]\n\"meta-data\" = \"instance-id\\nami-id\\nevents/\\ntags/\\nzz-new-category/\"\n\
        \"meta-data/tags\" = \"instance/\"\n\"meta-data/tags/instance\" = \"Name\"\n\
        \"meta-data/zz-new-category\" = \"x\"\n\
        \"dynamic\" = \"instance-identity/\"\n\"dynamic/instance-identity\" = \"document\\nsignature\"\n\
        [replay.leaves]\n\"meta-data/instance-id\" = \"i-0123456789abcdef0\"\n\
        \"meta-data/ami-id\" = \"ami-0crawled\"\n\"meta-data/tags/instance/Name\" = \"web\"\n\
        \"meta-data/zz-new-category/x\" = \"1\\n\"\n\
        \"dynamic/instance-identity/document\" = \"{ \\\"crawled\\\" : true }\"\n\
        \"user-data\" = { base64 = \"H4sIAP8=\" }\n";

    fn get(s: &crate::imds::Service, path: &str) -> (u16, Vec<u8>) {
        let r = respond(
            s,
            &TokenAuthority::with_key(b"k"),
            0,
            &Request::new(&Method::GET, path),
        );
        (r.status.as_u16(), r.body.to_vec())
    }

    fn text(s: &crate::imds::Service, path: &str) -> String {
        let (status, body) = get(s, path);
        assert_eq!(status, 200, "{path}");
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn the_crawled_tree_is_served_and_the_box_adds_only_its_own_parts() {
        let cfg = Config::from_toml(FILE, Path::new("s.toml")).unwrap();
        let sigs = Signatures {
            signature: "S".into(),
            pkcs7: "P".into(),
            rsa2048: "R".into(),
        };
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut scenario = Scenario::new(cfg.scenario(), cfg.faults(), now, &mut EventId::random);
        let s = super::super::build(
            &cfg,
            Some(&sigs),
            &Default::default(),
            &scenario,
            &crate::snapshot::Workloads::none(),
            Vec::new(),
            now,
        )
        .imds
        .service;
        // The replay wins over [instance]; [paths] wins over the replay.
        assert_eq!(
            text(&s, "/latest/meta-data/instance-id"),
            "i-0123456789abcdef0"
        );
        assert_eq!(text(&s, "/latest/meta-data/ami-id"), "ami-0mine");
        assert_eq!(text(&s, "/latest/meta-data/zz-new-category/x"), "1\n");
        assert_eq!(
            text(&s, "/latest/meta-data/"),
            "instance-id\nami-id\nevents/\ntags/\nzz-new-category/"
        );
        assert_eq!(get(&s, "/latest/user-data").1, b"\x1f\x8b\x08\x00\xff");
        // The modelled tree is not mixed in.
        assert_eq!(get(&s, "/latest/meta-data/mac").0, 404);
        assert_eq!(get(&s, "/latest/dynamic/fws/").0, 404);
        // Signatures go beside the crawled document; the listing gains the new forms.
        assert_eq!(text(&s, "/latest/dynamic/instance-identity/pkcs7"), "P");
        assert_eq!(
            text(&s, "/latest/dynamic/instance-identity/"),
            "document\npkcs7\nrsa2048\nsignature"
        );
        assert_eq!(
            super::signed_document(&cfg).unwrap(),
            "{ \"crawled\" : true }"
        );
        assert_eq!(
            text(&s, "/latest/meta-data/events/maintenance/scheduled"),
            "[]"
        );

        // The scenario's state comes and goes in the crawled listing; ctl tags apply.
        scenario
            .apply(
                Change::Spot {
                    action: SpotAction::Stop,
                    time: None,
                },
                now,
            )
            .unwrap();
        scenario
            .apply(
                Change::TagSet {
                    key: TagKey::try_from("env".to_string()).unwrap(),
                    value: "prod".into(),
                },
                now,
            )
            .unwrap();
        let s = super::super::build(
            &cfg,
            Some(&sigs),
            &Default::default(),
            &scenario,
            &crate::snapshot::Workloads::none(),
            Vec::new(),
            now,
        )
        .imds
        .service;
        assert_eq!(
            text(&s, "/latest/meta-data/"),
            "instance-id\nami-id\nevents/\nspot/\ntags/\nzz-new-category/"
        );
        assert_eq!(text(&s, "/latest/meta-data/tags/instance"), "Name\nenv");
        assert_eq!(text(&s, "/latest/meta-data/tags/instance/env"), "prod");
    }

    #[test]
    fn bad_replays_are_located() {
        for (file, want) in [
            (
                "[replay.leaves]\n\"etc/passwd\" = \"x\"\n",
                "s.toml:2:1: `etc/passwd` is not a replayed path",
            ),
            (
                "[replay.leaves]\n\"meta-data/a\" = \"x\"\n\"meta-data/a/b\" = \"y\"\n",
                "s.toml:2:1: `meta-data/a` is a value, but other replayed paths make it a directory",
            ),
            (
                "[replay.leaves]\n\"meta-data/a\" = { base64 = \"!!\" }\n",
                "s.toml:2:",
            ),
        ] {
            let e = Config::from_toml(file, Path::new("s.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{e}");
        }
        let big = format!(
            "[replay.leaves]\n\"user-data\" = \"{}\"\n",
            "x".repeat(16 * 1024 + 1)
        );
        let e = Config::from_toml(&big, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("EC2 allows at most 16 KiB"), "{e}");
    }
}
