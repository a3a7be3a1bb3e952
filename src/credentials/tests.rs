//! The manager against a manual clock and real sources (files and shell scripts in a
//! temporary directory); no network, no root.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::*;
use crate::clock::ManualClock;

const ACCOUNT: &str = "123456789012";
const HOUR: Duration = Duration::from_secs(3600);

fn manager(section: &str) -> (CredentialManager, Arc<ManualClock>) {
    init_logging();
    let cfg: IamConfig = toml::from_str(section).expect("test config parses");
    let clock = Arc::new(ManualClock::fixed());
    (
        CredentialManager::new(&cfg, ACCOUNT, "aws", clock.clone()),
        clock,
    )
}

/// The IMDS documents the manager's current set renders as.
fn leaves(m: &CredentialManager) -> Vec<(String, String)> {
    crate::snapshot::iam::leaves(&m.current(), true)
}

fn leaf(m: &CredentialManager, path: &str) -> Option<String> {
    leaves(m)
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, body)| body)
}

fn doc(m: &CredentialManager, path: &str) -> Map<String, Value> {
    let body = leaf(m, path).unwrap_or_else(|| panic!("no leaf {path}"));
    serde_json::from_str(&body).expect("documents are JSON")
}

fn role_creds(m: &CredentialManager) -> Map<String, Value> {
    doc(
        m,
        &format!("meta-data/iam/security-credentials/{DEFAULT_ROLE}"),
    )
}

/// The keys of a top-level document in the order they are written.
fn key_order(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once("\" : ").map(|(k, _)| k.to_string()))
        .collect()
}

fn text<'a>(d: &'a Map<String, Value>, key: &str) -> &'a str {
    d.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {d:?}"))
}

fn time_of(d: &Map<String, Value>, key: &str) -> SystemTime {
    OffsetDateTime::parse(text(d, key), &Rfc3339)
        .unwrap()
        .into()
}

/// Moves the clock to `t` (the daemon wakes exactly at `next_refresh`).
fn advance_to(clock: &ManualClock, t: SystemTime) {
    if let Ok(d) = t.duration_since(clock.now()) {
        clock.advance(d);
    }
}

thread_local! {
    static LOG: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One global subscriber for the test binary, writing into a per-thread buffer. (A scoped
/// `with_default` per test races with other test threads over cached callsite interest and
/// can miss events.)
fn init_logging() {
    struct ThreadBuf;
    impl Write for ThreadBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            LOG.with(|l| l.borrow_mut().extend_from_slice(b));
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| ThreadBuf)
            .init();
    });
}

/// Runs `f` and returns what it logged on this thread.
fn logged<R>(f: impl FnOnce() -> R) -> (R, String) {
    init_logging();
    LOG.with(|l| l.borrow_mut().clear());
    let r = f();
    let out = LOG.with(|l| String::from_utf8(std::mem::take(&mut *l.borrow_mut())).unwrap());
    (r, out)
}

fn assert_hidden(shown: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!shown.contains(s), "`{s}` leaked into:\n{shown}");
    }
}

#[test]
fn generated_sets_rotate_before_the_minimum_is_reached() {
    let (mut m, clock) = manager("");
    assert_eq!(
        m.next_refresh(),
        clock.now(),
        "a new manager is due at once"
    );
    assert_eq!(m.refresh(), Refresh::Changed);
    let first = role_creds(&m);
    assert_eq!(text(&first, "Code"), "Success");
    assert_eq!(
        time_of(&first, "Expiration"),
        time_of(&first, "LastUpdated") + 6 * HOUR
    );
    assert_eq!(m.next_refresh(), clock.now() + 5 * HOUR);

    let min_left = config::DEFAULT_REFRESH_BEFORE;
    let step = Duration::from_secs(17 * 60);
    let (mut rotations, mut key) = (0, text(&first, "AccessKeyId").to_string());
    while rotations < 40 {
        let next = m.next_refresh();
        if clock.now() + step >= next {
            // Just before the refresh point the old set is still served...
            clock.advance(next.duration_since(clock.now()).unwrap() - Duration::from_secs(1));
            assert_eq!(text(&role_creds(&m), "AccessKeyId"), key);
            clock.advance(Duration::from_secs(1));
            assert_eq!(m.refresh(), Refresh::Changed);
            // ...and right at it a new one.
            let now_key = text(&role_creds(&m), "AccessKeyId").to_string();
            assert_ne!(now_key, key);
            key = now_key;
            rotations += 1;
        } else {
            clock.advance(step);
            assert_eq!(m.refresh(), Refresh::Unchanged);
        }
        let d = role_creds(&m);
        let left = time_of(&d, "Expiration")
            .duration_since(clock.now())
            .unwrap();
        assert!(left >= min_left, "only {left:?} left");
        assert_eq!(text(&d, "AccessKeyId"), key);
    }
}

#[test]
fn documents_have_ec2s_shape_and_order() {
    let (mut m, clock) = manager(
        "role = \"web\"\nsource = \"static\"\naccess-key-id = \"AKIAEXAMPLE\"\nsecret-access-key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"\nsession-token = \"IQoJb3JpZ2luX2VjEXAMPLE==\"\n",
    );
    let _ = m.refresh();
    let paths: Vec<String> = leaves(&m).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "meta-data/iam/info",
            "meta-data/iam/security-credentials/web",
            "meta-data/iam/security-credentials-extended/web",
            "meta-data/identity-credentials/ec2/info",
            "meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        ]
    );
    assert_eq!(
        leaf(&m, "meta-data/iam/info").unwrap(),
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-02T03:04:05Z\",\n  \"InstanceProfileArn\" : \"arn:aws:iam::123456789012:instance-profile/web\",\n  \"InstanceProfileId\" : \"AIPAXFAKEMETADATA0001\"\n}"
    );
    assert_eq!(
        leaf(&m, "meta-data/iam/security-credentials/web").unwrap(),
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-02T03:04:05Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"AKIAEXAMPLE\",\n  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",\n  \"Token\" : \"IQoJb3JpZ2luX2VjEXAMPLE==\",\n  \"Expiration\" : \"2026-01-02T09:04:05Z\"\n}"
    );
    // Issue 13: the path the newer SDKs ask first; the same set, then the account.
    assert_eq!(
        leaf(&m, "meta-data/iam/security-credentials-extended/web").unwrap(),
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-02T03:04:05Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"AKIAEXAMPLE\",\n  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",\n  \"Token\" : \"IQoJb3JpZ2luX2VjEXAMPLE==\",\n  \"Expiration\" : \"2026-01-02T09:04:05Z\",\n  \"AccountId\" : \"123456789012\"\n}"
    );
    assert_eq!(
        leaf(&m, "meta-data/identity-credentials/ec2/info").unwrap(),
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-02T03:04:05Z\",\n  \"AccountId\" : \"123456789012\"\n}"
    );
    let id_path = "meta-data/identity-credentials/ec2/security-credentials/ec2-instance";
    assert_eq!(
        key_order(&leaf(&m, id_path).unwrap()),
        [
            "Code",
            "LastUpdated",
            "Type",
            "AccessKeyId",
            "SecretAccessKey",
            "Token",
            "Expiration"
        ]
    );
    let id = doc(&m, id_path);
    assert!(text(&id, "AccessKeyId").starts_with("ASIA"));

    // Static keys are handed out again, with a new expiry, at each rotation.
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Changed);
    let d = doc(&m, "meta-data/iam/security-credentials/web");
    assert_eq!(text(&d, "AccessKeyId"), "AKIAEXAMPLE");
    assert_eq!(text(&d, "Expiration"), "2026-01-02T14:04:05Z");
}

/// EC2 serves the instance identity credentials on every instance ("Instance identity
/// roles" in the EC2 guide); an instance without a profile has no `iam/`.
#[test]
fn no_role_serves_the_identity_credentials_only() {
    let (mut m, clock) = manager("role = \"\"\n");
    let (r, log) = logged(|| m.refresh());
    assert_eq!(r, Refresh::Changed);
    let paths: Vec<String> = leaves(&m).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "meta-data/identity-credentials/ec2/info",
            "meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        ]
    );
    assert_eq!(
        leaf(&m, "meta-data/identity-credentials/ec2/info").unwrap(),
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-02T03:04:05Z\",\n  \"AccountId\" : \"123456789012\"\n}"
    );
    let id_path = "meta-data/identity-credentials/ec2/security-credentials/ec2-instance";
    let first = doc(&m, id_path);
    assert!(text(&first, "AccessKeyId").starts_with("ASIA"));
    assert_eq!(m.to_string(), "no role");
    let secrets = [
        text(&first, "AccessKeyId"),
        text(&first, "SecretAccessKey"),
        text(&first, "Token"),
    ];
    assert_hidden(&format!("{log}\n{m:?}\n{m}"), &secrets);

    // Nothing else to wake for: the set is replaced `refresh-before` ahead of its expiry.
    assert_eq!(m.refresh(), Refresh::Unchanged);
    assert_eq!(m.next_refresh(), time_of(&first, "Expiration") - HOUR);
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Changed);
    let second = doc(&m, id_path);
    assert_ne!(text(&second, "AccessKeyId"), text(&first, "AccessKeyId"));
    assert_eq!(leaves(&m).len(), 2);
    assert_eq!(m.rotate_now(), Refresh::Changed);
    assert_ne!(
        text(&doc(&m, id_path), "AccessKeyId"),
        text(&second, "AccessKeyId")
    );
}

#[test]
fn the_instance_profile_arn_may_name_another_profile() {
    let (mut m, _) = manager("role = \"web\"\n");
    let _ = m.refresh();
    assert_eq!(
        text(&doc(&m, "meta-data/iam/info"), "InstanceProfileArn"),
        "arn:aws:iam::123456789012:instance-profile/web",
        "by default the profile is named as the role"
    );
    let arn = "arn:aws:iam::123456789012:instance-profile/team/web-profile";
    let (mut m, _) = manager(&format!(
        "role = \"web\"\ninstance-profile-arn = \"{arn}\"\n"
    ));
    let _ = m.refresh();
    let info = leaf(&m, "meta-data/iam/info").unwrap();
    assert_eq!(
        key_order(&info),
        [
            "Code",
            "LastUpdated",
            "InstanceProfileArn",
            "InstanceProfileId"
        ]
    );
    assert!(
        info.contains(&format!("\"InstanceProfileArn\" : \"{arn}\"")),
        "{info}"
    );
    // The role is still the one under security-credentials/.
    assert!(leaf(&m, "meta-data/iam/security-credentials/web").is_some());
}

#[test]
fn rotate_now_replaces_the_set() {
    let (mut m, _) = manager("");
    let _ = m.refresh();
    let before = role_creds(&m);
    assert_eq!(m.rotate_now(), Refresh::Changed);
    assert_ne!(
        text(&role_creds(&m), "AccessKeyId"),
        text(&before, "AccessKeyId")
    );
}

/// Every endpoint renders its documents from `current()`: IMDS's carry exactly the typed
/// set's keys, times and failure, and the set's `Debug` shows no key.
#[test]
fn imds_documents_are_the_typed_set() {
    let (mut m, clock) = manager("role = \"web\"\n");
    let waiting = m.current();
    let why = waiting.role.as_ref().unwrap().set.as_ref().unwrap_err();
    assert!(waiting.identity.is_none());
    let failed = doc(&m, "meta-data/iam/security-credentials/web");
    assert_eq!(text(&failed, "Code"), why.code);
    assert_eq!(text(&failed, "Message"), why.message);
    assert_eq!(text(&failed, "LastUpdated"), ec2_time(why.since));

    let _ = m.refresh();
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Changed);
    let set = m.current();
    assert_eq!(set.account_id, ACCOUNT);
    let role = set.role.as_ref().unwrap();
    assert_eq!(role.name.as_str(), "web");
    for (path, issued) in [
        (
            "meta-data/iam/security-credentials/web",
            role.set.as_ref().unwrap(),
        ),
        (
            "meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
            set.identity.as_ref().unwrap(),
        ),
    ] {
        let d = doc(&m, path);
        let keys = &issued.keys;
        assert_eq!(text(&d, "AccessKeyId"), keys.access_key_id.expose());
        assert_eq!(text(&d, "SecretAccessKey"), keys.secret_access_key.expose());
        assert_eq!(
            text(&d, "Token"),
            keys.session_token.as_ref().unwrap().expose()
        );
        assert_eq!(text(&d, "LastUpdated"), ec2_time(issued.issued));
        assert_eq!(text(&d, "Expiration"), ec2_time(issued.expires));
    }
    let info = doc(&m, "meta-data/iam/info");
    assert_eq!(text(&info, "InstanceProfileArn"), role.instance_profile_arn);
    assert_hidden(
        &format!("{set:?}"),
        &[
            role.set.as_ref().unwrap().keys.secret_access_key.expose(),
            set.identity.as_ref().unwrap().keys.access_key_id.expose(),
        ],
    );
    assert!(crate::snapshot::iam::leaves(&CredentialSet::default(), true).is_empty());
}

#[test]
fn debug_and_display_hide_keys() {
    let (mut m, _) = manager(
        "source = \"static\"\naccess-key-id = \"AKIAHIDDENKEYID\"\nsecret-access-key = \"HIDDENSECRET\"\nsession-token = \"HIDDENTOKEN\"\n",
    );
    let _ = m.refresh();
    let generated = role_creds(&m); // the static keys
    assert_eq!(text(&generated, "SecretAccessKey"), "HIDDENSECRET");
    let id = doc(
        &m,
        "meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
    );
    let shown = format!("{m:?}\n{m}\n{:?}\n{}", m.cfg, m.cfg);
    assert!(shown.contains("AKIA…"), "{shown}");
    assert_hidden(
        &shown,
        &[
            "AKIAHIDDENKEYID",
            "HIDDENSECRET",
            "HIDDENTOKEN",
            text(&id, "AccessKeyId"),
            text(&id, "SecretAccessKey"),
            text(&id, "Token"),
        ],
    );
}

#[test]
fn key_file_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    std::fs::write(
        &path,
        "access-key-id = \"AKIAFROMFILE\"\nsecret-access-key = \"FILESECRET\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (mut m, _) = manager(&format!(
        "source = \"static\"\ncredentials-file = {:?}\n",
        path.display().to_string()
    ));
    let (_, log) = logged(|| m.refresh());
    assert!(
        log.contains("is readable by group or others (mode 0644)"),
        "{log}"
    );
    assert_eq!(text(&role_creds(&m), "Code"), FAILURE_CODE);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _ = m.rotate_now();
    let d = role_creds(&m);
    assert_eq!(text(&d, "AccessKeyId"), "AKIAFROMFILE");
    assert_eq!(text(&d, "Token"), "", "long-term keys have an empty token");
}

fn write_ini(path: &Path, id: &str, secret: &str) {
    std::fs::write(
        path,
        format!("[default]\naws_access_key_id = OTHER\naws_secret_access_key = OTHER\n\n[dev]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\naws_session_token = TOKEN{id}\n"),
    )
    .unwrap();
}

#[test]
fn file_source_follows_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    write_ini(&path, "AKIAFIRST", "SECRETFIRST");
    let (mut m, clock) = manager(&format!(
        "source = \"file\"\nfile = {:?}\nprofile = \"dev\"\n",
        path.display().to_string()
    ));
    assert_eq!(m.refresh(), Refresh::Changed);
    assert_eq!(text(&role_creds(&m), "AccessKeyId"), "AKIAFIRST");
    assert_eq!(m.next_refresh(), clock.now() + FILE_POLL);

    // The same content again (rewritten, so a new mtime) changes nothing.
    write_ini(&path, "AKIAFIRST", "SECRETFIRST");
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Unchanged);

    // New keys on disk are served at the next look.
    write_ini(&path, "AKIASECOND", "SECRETSECOND");
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Changed);
    let d = role_creds(&m);
    assert_eq!(text(&d, "AccessKeyId"), "AKIASECOND");
    assert_eq!(text(&d, "SecretAccessKey"), "SECRETSECOND");
    assert_eq!(text(&d, "Token"), "TOKENAKIASECOND");
    assert_eq!(time_of(&d, "LastUpdated"), clock.now());

    // A broken file is logged once, without its content; the last good set stays.
    std::fs::write(
        &path,
        "[dev]\naws_access_key_id = AKIABROKEN\naws_secret_access_key = BROKEN SECRET\n",
    )
    .unwrap();
    let (r, log) = logged(|| {
        advance_to(&clock, m.next_refresh());
        let a = m.refresh();
        advance_to(&clock, m.next_refresh());
        (a, m.refresh())
    });
    assert_eq!(r, (Refresh::Unchanged, Refresh::Unchanged));
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(
        log.contains(":3: a key or token must be non-empty"),
        "{log}"
    );
    assert_hidden(
        &log,
        &[
            "AKIABROKEN",
            "BROKEN SECRET",
            "SECRETSECOND",
            "TOKENAKIASECOND",
        ],
    );
    assert_eq!(text(&role_creds(&m), "AccessKeyId"), "AKIASECOND");

    // Still broken when the set expires: the failure document.
    let expires = time_of(&role_creds(&m), "Expiration");
    while clock.now() < expires {
        advance_to(&clock, m.next_refresh());
        let _ = m.refresh();
    }
    assert_eq!(text(&role_creds(&m), "Code"), FAILURE_CODE);

    // Fixed: served again at the next look.
    write_ini(&path, "AKIATHIRD", "SECRETTHIRD");
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Changed);
    assert_eq!(text(&role_creds(&m), "AccessKeyId"), "AKIATHIRD");
}

/// A `credential_process` script whose behaviour the test changes by rewriting it.
struct Script {
    path: std::path::PathBuf,
}

impl Script {
    fn set(&self, body: &str) {
        std::fs::write(&self.path, body).unwrap();
    }

    fn prints(&self, id: &str, expiration: Option<&str>) {
        let exp = expiration.map_or(String::new(), |e| format!(", \"Expiration\": \"{e}\""));
        self.set(&format!(
            "cat <<'EOF'\n{{\"Version\": 1, \"AccessKeyId\": \"{id}\", \"SecretAccessKey\": \"SECRET{id}\", \"SessionToken\": \"TOKEN{id}\"{exp}}}\nEOF\n"
        ));
    }
}

#[test]
fn process_source_keeps_the_last_good_set_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script {
        path: dir.path().join("creds.sh"),
    };
    script.prints("AKIAPROCONE", None);
    // `sh FILE`, not `exec FILE`: rewriting an executable while another thread forks can fail
    // with ETXTBSY.
    let (mut m, clock) = manager(&format!(
        "role = \"fake-metadata-role\"\nsource = \"process\"\ncommand = \"sh '{}'\"\ncommand-timeout = \"1s\"\nlifetime = \"2h\"\nrefresh-before = \"1h\"\n",
        script.path.display()
    ));
    assert_eq!(m.refresh(), Refresh::Changed);
    let good = role_creds(&m);
    assert_eq!(text(&good, "AccessKeyId"), "AKIAPROCONE");
    assert_eq!(text(&good, "Token"), "TOKENAKIAPROCONE");
    assert_eq!(m.next_refresh(), clock.now() + HOUR);
    let expires = time_of(&good, "Expiration");
    let secrets = [
        "AKIAPROCONE",
        "SECRETAKIAPROCONE",
        "TOKENAKIAPROCONE",
        "LEAKED",
    ];

    let (_, log) = logged(|| {
        // Exit 1, with a message on stderr.
        script.set("echo 'STS said no' >&2\nexit 1\n");
        advance_to(&clock, m.next_refresh());
        let _ = m.refresh(); // the identity set rotates now, so the leaves do change
        assert_eq!(role_creds(&m), good, "the last good set is still served");
        assert_eq!(m.next_refresh(), clock.now() + PROCESS_RETRY);

        // Output that is not JSON (and holds something secret-looking).
        script.set("echo '{\"Version\": 1, \"SecretAccessKey\": \"LEAKED\"'\n");
        advance_to(&clock, m.next_refresh());
        assert_eq!(m.refresh(), Refresh::Unchanged);

        // A command that hangs is killed at its timeout.
        script.set("sleep 30\n");
        advance_to(&clock, m.next_refresh());
        let started = Instant::now();
        assert_eq!(m.refresh(), Refresh::Unchanged);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(role_creds(&m), good);

        // Retries go on until the set expires; then the failure document.
        script.set("exit 3\n");
        while clock.now() < expires {
            advance_to(&clock, m.next_refresh());
            let _ = m.refresh();
        }
        // Changes to what is served are logged once the daemon has swapped them in.
        assert!(
            matches!(m.news.last(), Some(super::News::Expired(_))),
            "the expiry waits for announce()"
        );
        m.announce();
        assert!(m.news.is_empty());
    });
    assert!(
        log.contains("(exit status 1) after writing 12 bytes on standard error"),
        "{log}"
    );
    assert!(
        !log.contains("STS said no"),
        "a helper's output is never logged: {log}"
    );
    assert!(log.contains("is not JSON"), "{log}");
    assert!(log.contains("did not finish within 1s"), "{log}");
    assert!(
        log.contains("expired and no new set could be obtained"),
        "{log}"
    );
    assert_hidden(&log, &secrets);

    let failed = role_creds(&m);
    let body = leaf(
        &m,
        &format!("meta-data/iam/security-credentials/{DEFAULT_ROLE}"),
    )
    .unwrap();
    assert_eq!(key_order(&body), ["Code", "Message", "LastUpdated"]);
    assert_eq!(text(&failed, "Code"), FAILURE_CODE);
    assert!(text(&failed, "Message").contains("process source"));
    assert_eq!(doc(&m, "meta-data/iam/info"), failed);
    assert_hidden(&format!("{failed:?}"), &secrets);
    // Identity credentials are generated, so they stay available.
    let id = doc(
        &m,
        "meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
    );
    assert_eq!(text(&id, "Code"), "Success");

    // The command works again: a new set at the next retry. Its stated expiry is sooner than
    // `lifetime`, so it is served as stated and fetched again `refresh-before` ahead of it.
    let soon = OffsetDateTime::from(clock.now() + Duration::from_secs(100 * 60) + PROCESS_RETRY)
        .format(&Rfc3339)
        .unwrap();
    script.prints("AKIAPROCTWO", Some(&soon));
    advance_to(&clock, m.next_refresh());
    assert_eq!(m.refresh(), Refresh::Changed);
    let d = role_creds(&m);
    assert_eq!(text(&d, "AccessKeyId"), "AKIAPROCTWO");
    assert_eq!(
        time_of(&d, "Expiration"),
        SystemTime::from(OffsetDateTime::parse(&soon, &Rfc3339).unwrap())
    );
    assert_eq!(m.next_refresh(), time_of(&d, "Expiration") - HOUR);
}

#[test]
fn process_credentials_expiring_too_soon_are_still_served_but_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script {
        path: dir.path().join("creds.sh"),
    };
    let clock_start = ManualClock::fixed().now();
    let exp = OffsetDateTime::from(clock_start + Duration::from_secs(20 * 60))
        .format(&Rfc3339)
        .unwrap();
    script.prints("AKIASHORT", Some(&exp));
    let (mut m, clock) = manager(&format!(
        "source = \"process\"\ncommand = \"sh '{}'\"\n",
        script.path.display()
    ));
    let (r, log) = logged(|| m.refresh());
    assert_eq!(r, Refresh::Changed);
    assert!(
        log.contains("expire in less than `refresh-before`"),
        "{log}"
    );
    assert_eq!(text(&role_creds(&m), "AccessKeyId"), "AKIASHORT");
    // Fetched again soon, not in a loop.
    assert_eq!(m.next_refresh(), clock.now() + PROCESS_RETRY);

    // A set that has already expired is refused.
    let past = OffsetDateTime::from(clock_start - HOUR)
        .format(&Rfc3339)
        .unwrap();
    script.prints("AKIAPAST", Some(&past));
    let (_, log) = logged(|| m.rotate_now());
    assert!(
        log.contains("states an `Expiration` that has passed (2026-01-02T02:04:05Z)"),
        "{log}"
    );
    assert_eq!(text(&role_creds(&m), "AccessKeyId"), "AKIASHORT");
}

fn workload(kind: fn(String) -> Workload, name: &str, role: &str) -> WorkloadRole {
    WorkloadRole {
        workload: kind(name.to_string()),
        role: RoleName::try_from(role.to_string()).unwrap(),
        source: SourceConfig::Generated,
    }
}

fn key_of(set: &CredentialSet, w: &Workload) -> String {
    let r = &set.workloads[w];
    r.set
        .as_ref()
        .unwrap()
        .keys
        .access_key_id
        .expose()
        .to_string()
}

#[test]
fn the_keyring_gives_each_workload_its_own_role_rotated_with_the_instance() {
    let (instance, clock) = manager("");
    let cfg = IamConfig::default();
    let mut ring = Keyring::new(instance, &cfg, ACCOUNT, "aws", clock.clone());
    let web = workload(Workload::Task, "web", "web-task-role");
    let cart = workload(Workload::Pod, "shop/cart", "cart-pod-role");
    ring.set_workloads(&[web.clone(), cart.clone()]);
    let first = ring.current();
    assert_eq!(first.workloads.len(), 2);
    assert_eq!(
        first.workloads[&web.workload].name.as_str(),
        "web-task-role"
    );
    assert_ne!(
        key_of(&first, &web.workload),
        key_of(&first, &cart.workload)
    );
    // The same workloads again keep their keys; a changed role gets new ones; a workload
    // left out is gone.
    ring.set_workloads(&[web.clone(), cart.clone()]);
    assert_eq!(ring.current(), first);
    let other = workload(Workload::Task, "web", "other-role");
    ring.set_workloads(std::slice::from_ref(&other));
    let second = ring.current();
    assert_eq!(second.workloads.len(), 1);
    assert_eq!(
        second.workloads[&other.workload].name.as_str(),
        "other-role"
    );
    assert_ne!(
        key_of(&second, &other.workload),
        key_of(&first, &web.workload)
    );
    // A rotation renews the instance's and every workload's keys.
    assert_eq!(ring.rotate_now(), Refresh::Changed);
    let third = ring.current();
    assert_ne!(
        key_of(&third, &other.workload),
        key_of(&second, &other.workload)
    );
    // Rotation is due at the same time for all; a workload issues no identity credentials
    // of its own (the next refresh is the instance's or the role's).
    let due = ring.next_refresh();
    assert!(due > clock.now(), "{due:?}");
    clock.advance(Duration::from_secs(6 * 3600));
    assert_eq!(ring.refresh(), Refresh::Changed);
    assert_ne!(
        key_of(&ring.current(), &other.workload),
        key_of(&third, &other.workload)
    );
}
