//! The daemon's life: config → logging → bind → (prepare the state and control directories
//! for the service user, drop root) → serve → `READY=1`; SIGHUP
//! reopens the log file and reloads the config as one snapshot swap (a bad file keeps the
//! running config); SIGTERM/SIGINT send `STOPPING=1` and drain.

mod embedded;
mod journal_file;
pub mod logging;
mod memory;

pub use embedded::Running;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::accounts::Ids;
use crate::capability::{BoxSecret, SecretError};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, Overrides, Preset};
use crate::endpoint::Endpoint;
use crate::identity::IdentityKey;
use crate::live::Inputs;
use crate::machine::MachineFacts;
use crate::server;

/// The system user the package creates; `nobody` when it does not exist.
pub const SERVICE_USER: &str = "fake-metadata";

/// What `serve` was started with, kept to reload the same way.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: Option<PathBuf>,
    /// Stands in for the file when there is none (`fake-metadata aemm`: AEMM's defaults).
    pub preset: Option<Preset>,
    pub overrides: Overrides,
    /// Replaces the file's `[scenario]` (`fake-metadata aemm` builds one from its flags).
    pub scenario: Option<crate::scenario::ScenarioConfig>,
}

impl Source {
    pub fn load(&self) -> Result<Config, ConfigError> {
        let c = match (&self.path, &self.preset) {
            (None, Some(preset)) => Config::load_preset(preset, &self.overrides)?,
            (path, _) => Config::load(path.as_deref(), &self.overrides)?,
        };
        Ok(match &self.scenario {
            Some(s) => c.with_scenario(s.clone()),
            None => c,
        })
    }
}

/// Why the daemon could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bind(#[from] server::ServerError),
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error("running as root, and neither user `fake-metadata` nor `nobody` exists to drop to")]
    NoServiceUser,
    #[error("cannot drop root privileges")]
    Privileges(#[source] nix::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install the signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Secret(SecretError),
}

/// Runs the daemon until SIGTERM/SIGINT. Errors before serving are returned; after that,
/// problems are logged and the daemon keeps serving.
pub fn run(source: Source) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    // The handlers come first: logrotate's SIGHUP may arrive at any moment of start-up, and
    // its default action would end the process. What arrives before the loop waits in the
    // stream.
    let mut signals = {
        let _rt = runtime.enter();
        signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT]).map_err(DaemonError::Signals)?
    };
    // Before the config reads them: a change from here on is followed (see `follow_facts`).
    let facts = MachineFacts::gather();
    let config = source.load()?;
    let logfile = logging::init(config.log().level(), config.log().file());
    // Opened as root, like the log file, then given to the service user.
    let journal_file = config.journal().file().map(|p| {
        let f = logging::LogFile::new(p, ("journal file", "not writing it"));
        f.reopen();
        f
    });
    let mut listeners = server::bind(&config)?;
    listeners.extend(container_listeners(&config)?);
    let state_dir = config.server().state_directory();
    let user = service_user()?;
    // Bound before dropping root too: as root it may create /run/fake-metadata, which is
    // then given to the service user (as systemd's RuntimeDirectory= would be), so that the
    // socket can be removed at stop.
    let run_dirs: Vec<_> = config
        .control()
        .candidates()
        .iter()
        .filter_map(|p| p.parent().map(std::path::Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    let control = crate::control::bind(config.control())?;
    if let (Some((_, ids)), Some(c)) = (&user, &control) {
        hand_over_runtime_dir(c.path(), &run_dirs, ids);
    }
    if let Some((name, ids)) = &user {
        prepare_state_dir(
            state_dir,
            config.server().state_directory_is_default(),
            name,
            ids,
        );
    }
    let files: Vec<&logging::LogFile> = logfile.iter().chain(&journal_file).map(|f| &**f).collect();
    drop_root(user, &files)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let identity = load_identity(state_dir);
    let secret = load_secret(state_dir)?;
    let max_connections = config.server().max_connections().get();
    warn_if_partial(&config);
    let inputs = Inputs::new(config, clock, identity, secret);
    runtime.block_on(async move {
        let handle = signals.handle();
        // Each endpoint's addresses, IMDS's first (tests read the first one).
        let addrs = |e: Endpoint| -> String {
            let a: Vec<String> = listeners
                .iter()
                .filter(|l| l.endpoint == e)
                .filter_map(|l| l.local_addr().ok())
                .map(|a| a.to_string())
                .collect();
            a.join(" ")
        };
        let (imds, ecs, pod) = (
            addrs(Endpoint::Imds),
            addrs(Endpoint::Ecs),
            addrs(Endpoint::PodIdentity),
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(
            listeners,
            inputs.published().clone(),
            max_connections,
            async {
                let _ = stop_rx.await;
            },
        ));
        let timers = tokio::spawn(crate::live::run_timers(inputs.clone()));
        let journal_writer = journal_file
            .clone()
            .map(|f| tokio::spawn(journal_file::write(f, inputs.published().clone())));
        let follow = tokio::spawn(follow_facts(source.clone(), inputs.clone(), facts));
        let control = control.map(|l| tokio::spawn(crate::control::serve(l, inputs.clone())));
        tracing::info!(addresses = %imds, ecs = %ecs, pod_identity = %pod, "listening");
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!(
                "serving IMDS on {imds}; ECS on {ecs}; Pod Identity on {pod}"
            )),
        ]);
        memory::release_startup_code();
        while let Some(sig) = signals.next().await {
            match sig {
                SIGHUP => {
                    for lf in logfile.iter().chain(&journal_file) {
                        if lf.reopen() {
                            tracing::info!(path = %lf.path().display(), "SIGHUP: reopened {}", lf.what());
                        }
                    }
                    // Reading the config (and its user data) is file I/O: off the runtime.
                    let (s, i) = (source.clone(), inputs.clone());
                    let _ = tokio::task::spawn_blocking(move || reload(&s, &i)).await;
                }
                _ => {
                    tracing::info!(signal = sig, "stopping: draining requests in flight");
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                    break;
                }
            }
        }
        handle.close();
        timers.abort();
        if let Some(w) = journal_writer {
            w.abort();
        }
        follow.abort();
        if let Some(c) = control {
            // Dropping the listener removes the socket file.
            c.abort();
            let _ = c.await;
        }
        let _ = stop_tx.send(());
        match serving.await {
            Ok(r) => r.map_err(DaemonError::Serve)?,
            Err(e) => return Err(DaemonError::Serve(std::io::Error::other(e))),
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// The listeners for containers (`[intercept] containers`, on by default), one per endpoint:
/// on the address `install` DNATs them to (`169.254.169.254:<port>` for IMDS), but only when
/// that address is on an interface here, i.e. `install` has run (at boot the interception
/// unit runs first). A daemon on a machine without interception (`serve` by hand) so listens
/// on loopback only.
fn container_listeners(config: &Config) -> Result<Vec<server::Listener>, DaemonError> {
    let targets = config
        .intercept_plan()
        .map(|p| p.container_targets())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (endpoint, target) in targets {
        match server::bind_container(endpoint, target)? {
            Some(l) => out.push(l),
            None => tracing::debug!(
                "{} is not on lo: no {endpoint} listener for containers (run `fake-metadata \
                 install`, then restart the daemon)",
                target.ip()
            ),
        }
    }
    Ok(out)
}

/// Swaps in the configuration read again from the same source, or keeps the running one.
pub fn reload(source: &Source, inputs: &Inputs) {
    let new = match source.load() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("config reload failed, keeping the running configuration: {e}");
            return;
        }
    };
    // Each section says what of its change only a restart applies.
    for line in inputs.config().needs_restart(&new) {
        tracing::warn!("{line}");
    }
    warn_if_partial(&new);
    inputs.reload(new);
    tracing::info!("config reloaded");
}

/// How often the box's own facts (its default route's address and MAC, its name) are read
/// again while `[instance] from-host` takes values from them.
const FACTS_EVERY: Duration = Duration::from_secs(5);

/// Follows the box's facts: when they change, the config is loaded again as on SIGHUP, so
/// `from-host` serves the box as it is now. The daemon starts before the network (cloud-init
/// asks it first at boot, as on EC2), so the address DHCP gives comes after it; so does a
/// new lease, a new name. `seen`: the facts gathered just before the first load.
async fn follow_facts(source: Source, inputs: Arc<Inputs>, mut seen: MachineFacts) {
    let mut tick = tokio::time::interval(FACTS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !inputs.config().instance().from_host() {
            continue;
        }
        let Ok(now) = tokio::task::spawn_blocking(MachineFacts::gather).await else {
            continue;
        };
        if now == seen {
            continue;
        }
        tracing::info!(
            address = ?now.primary.as_ref().map(|p| p.ipv4),
            hostname = now.hostname.as_deref(),
            "the box's address or name changed: loading the config again"
        );
        seen = now;
        let (s, i) = (source.clone(), inputs.clone());
        let _ = tokio::task::spawn_blocking(move || reload(&s, &i)).await;
    }
}

/// A `[replay]` whose crawl did not finish is served as it is, said once per load; so are
/// the config's warnings (two views that cover one client).
fn warn_if_partial(config: &Config) {
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    if let Some(why) = config.replay().and_then(|r| r.partial.as_deref()) {
        tracing::warn!(
            "[replay] is partial (the crawl did not finish), serving what it has: {why}"
        );
    }
}

/// The identity signing key from the state directory (made on first start). If that fails the
/// daemon still serves, with a key that lives as long as the process, and says so.
fn load_identity(dir: &Path) -> Option<IdentityKey> {
    match IdentityKey::load_or_create(dir) {
        Ok(k) => {
            tracing::info!(certificate = %dir.join(crate::identity::CERT_FILE).display(), "identity key ready");
            Some(k)
        }
        Err(e) => {
            tracing::warn!("{e}; signing identity documents with a temporary key until restart");
            IdentityKey::ephemeral()
                .map_err(|e| {
                    tracing::error!(
                        "cannot make a temporary identity key: {e}; serving unsigned documents"
                    )
                })
                .ok()
        }
    }
}

/// The secret the tasks' and pods' ids and tokens are derived from, kept in the state
/// directory so that the environment `ctl task env` printed stays good across restarts; a
/// secret for this run only when the directory cannot keep one (the ids then change at the
/// next start). A secret file others may read is refused: whoever reads it has every role.
fn load_secret(dir: &Path) -> Result<BoxSecret, DaemonError> {
    match BoxSecret::load_or_create(dir) {
        Ok(s) => Ok(s),
        Err(e @ SecretError::Exposed { .. }) => Err(DaemonError::Secret(e)),
        Err(e) => {
            tracing::warn!(
                "{e}; task and pod ids last until the daemon stops (run `ctl task env` again after a restart)"
            );
            BoxSecret::ephemeral().map_err(DaemonError::Secret)
        }
    }
}

/// The user a root start serves as: the service user, or `nobody`; `None` when not root.
fn service_user() -> Result<Option<(&'static str, Ids)>, DaemonError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    [SERVICE_USER, "nobody"]
        .into_iter()
        .find_map(|n| crate::accounts::user(n).map(|ids| (n, ids)))
        .map(Some)
        .ok_or(DaemonError::NoServiceUser)
}

/// What systemd's `StateDirectory=` does for the unit, done by hand for a root start: the
/// state directory exists (0755: the certificate in it is public) and belongs to the user the
/// daemon will serve as, so that it keeps its identity key there across starts. A directory
/// made here, or the default one, is given to the user with the files in it (those of an
/// earlier root start); a configured directory that already exists is left as it is.
fn prepare_state_dir(dir: &Path, is_default: bool, name: &str, ids: &Ids) {
    use std::os::unix::fs::DirBuilderExt;
    let made = !dir.exists();
    if made
        && let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
    {
        tracing::warn!(path = %dir.display(), error = %e, "cannot create the state directory");
        return;
    }
    if !made && !is_default {
        return;
    }
    let mut paths = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        paths.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    for p in paths {
        if let Err(e) = nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &p,
            Some(ids.uid),
            Some(ids.gid),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            tracing::warn!(path = %p.display(), error = %e, "cannot give the state directory to {name}");
        }
    }
}

/// Gives the control socket's directory to the service user when this start created it, or
/// when it is the default one, so that the socket can be removed at stop.
fn hand_over_runtime_dir(socket: &Path, created: &[PathBuf], ids: &Ids) {
    let Some(dir) = socket.parent() else { return };
    let default = Path::new(crate::config::DEFAULT_SOCKET).parent();
    if !created.iter().any(|c| c == dir) && default != Some(dir) {
        return;
    }
    if let Err(e) = nix::unistd::chown(dir, Some(ids.uid), Some(ids.gid)) {
        tracing::warn!(path = %dir.display(), error = %e,
            "cannot give the control socket's directory to the service user; the socket will stay after stop");
    }
}

/// Never serve as root: once the sockets are bound, become the service user (or `nobody`).
/// A log file this process just created becomes that user's, so SIGHUP can reopen it.
fn drop_root(user: Option<(&str, Ids)>, files: &[&logging::LogFile]) -> Result<(), DaemonError> {
    use nix::unistd::{setgid, setgroups, setuid};
    let Some((name, user)) = user else {
        return Ok(());
    };
    for lf in files {
        if let Err(e) = lf.hand_over(user.uid.as_raw(), user.gid.as_raw()) {
            tracing::warn!(path = %lf.path().display(), error = %e,
                "cannot give the file to {name}; reopening it on SIGHUP may fail");
        }
    }
    setgroups(&[])
        .and_then(|()| setgid(user.gid))
        .and_then(|()| setuid(user.uid))
        .map_err(DaemonError::Privileges)?;
    tracing::info!(user = %name, uid = user.uid.as_raw(), "started as root: dropped privileges after binding");
    Ok(())
}
