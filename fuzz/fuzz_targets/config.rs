//! `Config::from_toml` on arbitrary text, and what `check-config`, `print-config` and the daemon
//! do with its result:
//! - an error renders as `fuzz.toml:LINE:COL: message` lines (spans anywhere, including inside
//!   multi-byte characters, must not panic), with LINE and COL within the text;
//! - a valid config prints (`print-config`) as TOML that parses back to the same config (when
//!   no secret is inline: those print as `<redacted>`, which is refused on purpose);
//! - a valid config compiles into a snapshot (`Inputs::new`) and `respond` serves its
//!   configured paths and tags. Sources that read files or run commands are left out.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use fake_metadata::clock::ManualClock;
use fake_metadata::config::{Config, ConfigError};
use fake_metadata::credentials::{SourceConfig, StaticKeys};
use fake_metadata::imds::{self, Request};
use fake_metadata::live::Inputs;
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.toml");
    let cfg = match Config::from_toml(text, file) {
        Ok(c) => c,
        Err(e) => {
            let shown = e.to_string();
            let ConfigError::Invalid(problems) = &e else {
                panic!("parsing text gave a non-parse error: {shown}");
            };
            assert!(!problems.is_empty());
            let lines = text.split('\n').count();
            for p in problems {
                assert!(
                    p.line >= 1 && p.line <= lines,
                    "line {} of {lines}: {shown}",
                    p.line
                );
                let width = text
                    .split('\n')
                    .nth(p.line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(
                    p.col >= 1 && p.col <= width + 1,
                    "col {} of {width}: {shown}",
                    p.col
                );
                assert!(p.to_string().starts_with("fuzz.toml:"));
            }
            return;
        }
    };

    // print-config, and back.
    let printed = cfg.to_toml();
    let inline = |c: &Config| matches!(c.iam().source, SourceConfig::Static(StaticKeys::Inline(_)));
    let inline_secret = inline(&cfg) || cfg.views().iter().any(|v| inline(v.config()));
    if !inline_secret {
        let again = Config::from_toml(&printed, file)
            .unwrap_or_else(|e| panic!("print-config output does not parse: {e}\n{printed}"));
        let want = cfg
            .clone()
            .with_listen(cfg.server().listen_addrs().to_vec());
        assert_eq!(
            again, want,
            "print-config output means something else:\n{printed}"
        );
    }

    // The daemon's compile step and a few requests (no file reads, no commands).
    let reads_or_runs = |c: &Config| {
        matches!(
            c.iam().source,
            SourceConfig::File { .. }
                | SourceConfig::Process { .. }
                | SourceConfig::Static(StaticKeys::File(_))
        ) || c.user_data().file().is_some()
    };
    if reads_or_runs(&cfg) || cfg.views().iter().any(|v| reads_or_runs(v.config())) {
        return;
    }
    let paths: Vec<String> = cfg.paths().keys().map(|p| format!("/latest/{p}")).collect();
    let tags: Vec<String> = cfg
        .tags()
        .keys()
        .map(|k| format!("/latest/meta-data/tags/instance/{k}"))
        .collect();
    // What must be served: each configured path, each tag when tags are on. A `[scenario]`
    // writes into the tree after `[paths]`, and a `[paths]` entry may replace `tags/`: then
    // only "no panic" is checked.
    let plain = cfg.scenario().is_empty();
    let tags_on = plain
        && cfg.imds().instance_metadata_tags().is_enabled()
        && !cfg
            .paths()
            .keys()
            .any(|p| p.as_str().starts_with("meta-data/tags"));
    let endpoint_on = cfg.imds().http_endpoint().is_enabled();
    let inputs = Inputs::new(
        cfg,
        Arc::new(ManualClock::fixed()),
        None,
        fake_metadata::capability::BoxSecret::from_bytes([7; 32]),
    );
    let shared = inputs.published();
    let snap = shared.snapshot.load();
    let now = fake_metadata::clock::Clock::now_millis(&ManualClock::fixed());
    let token = shared.tokens.issue(now, 60);
    let fixed = [
        "/",
        "/latest/meta-data/",
        "/latest/dynamic/instance-identity/document",
    ];
    let wanted = paths
        .into_iter()
        .map(|p| (p, plain))
        .chain(tags.into_iter().map(|p| (p, tags_on)))
        .chain(fixed.iter().map(|p| (p.to_string(), false)));
    for (path, must_exist) in wanted {
        let req = Request {
            token: Some(token.as_bytes()),
            ..Request::new(&Method::GET, &path)
        };
        let r = imds::respond(&snap.imds.service, &shared.tokens, now, &req);
        if must_exist && endpoint_on {
            assert_eq!(r.status, StatusCode::OK, "{path}");
        }
    }
});
