//! The daemon's life: config → logging → bind → (drop root) → serve → `READY=1`; SIGHUP
//! reopens the log file and reloads the config as one snapshot swap (a bad file keeps the
//! running config); SIGTERM/SIGINT send `STOPPING=1` and drain.

pub mod logging;

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Overrides};
use crate::identity::IdentityKey;
use crate::live::Instance;
use crate::server;

/// The system user the package creates; `nobody` when it does not exist.
pub const SERVICE_USER: &str = "fake-metadata";

/// What `serve` was started with, kept to reload the same way.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: Option<PathBuf>,
    pub overrides: Overrides,
    /// Replaces the file's `[scenario]` (`fake-metadata aemm` builds one from its flags).
    pub scenario: Option<crate::scenario::ScenarioConfig>,
}

impl Source {
    pub fn load(&self) -> Result<Config, crate::config::ConfigError> {
        let mut c = Config::load(self.path.as_deref(), &self.overrides)?;
        if let Some(s) = &self.scenario {
            c.scenario = s.clone();
        }
        Ok(c)
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Errors before serving are returned; after that,
/// problems are logged and the daemon keeps serving.
pub fn run(source: Source) -> Result<(), Box<dyn std::error::Error>> {
    let config = source.load()?;
    let logfile = logging::init(&config.log.level, config.log.file.as_deref());
    let listeners = server::bind(&config)?;
    // Bound before dropping root too: as root it may create /run/fake-metadata.
    let control = crate::control::bind(&config.control)?;
    drop_root(logfile.as_deref())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let identity = load_identity(&config);
    let instance = Instance::new(config, clock, identity)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut signals = signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT])?;
        let handle = signals.handle();
        let addrs: Vec<String> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(listeners, instance.shared().clone(), async {
            let _ = stop_rx.await;
        }));
        let timers = tokio::spawn(crate::live::run_timers(instance.clone()));
        let control = control.map(|l| tokio::spawn(crate::control::serve(l, instance.clone())));
        tracing::info!(addresses = %addrs.join(" "), "listening");
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!("serving on {}", addrs.join(" "))),
        ]);
        while let Some(sig) = signals.next().await {
            match sig {
                SIGHUP => {
                    if let Some(lf) = &logfile
                        && lf.reopen()
                    {
                        tracing::info!(path = %lf.path().display(), "SIGHUP: reopened log file");
                    }
                    reload(&source, &instance);
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
        if let Some(c) = control {
            // Dropping the listener removes the socket file.
            c.abort();
            let _ = c.await;
        }
        let _ = stop_tx.send(());
        serving.await??;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Swaps in the configuration read again from the same source, or keeps the running one.
pub fn reload(source: &Source, instance: &Instance) {
    let new = match source.load() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("config reload failed, keeping the running configuration: {e}");
            return;
        }
    };
    let old = instance.config();
    if new.server.listen_addrs() != old.server.listen_addrs() {
        tracing::warn!(
            "config reload: the listen addresses changed; restart the daemon to apply that"
        );
    }
    if new.log.file != old.log.file || new.log.level != old.log.level {
        tracing::warn!("config reload: [log] file/level changed; restart the daemon to apply that");
    }
    match instance.reload(new) {
        Ok(()) => tracing::info!("config reloaded"),
        Err(e) => tracing::error!("config reload failed, keeping the running configuration: {e}"),
    }
}

/// The identity signing key from the state directory (made on first start). If that fails the
/// daemon still serves, with a key that lives as long as the process, and says so.
fn load_identity(config: &Config) -> Option<IdentityKey> {
    let dir = config.server.state_directory();
    match IdentityKey::load_or_create(&dir) {
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

/// Never serve as root: once the sockets are bound, become the service user (or `nobody`).
/// A log file this process just created becomes that user's, so SIGHUP can reopen it.
fn drop_root(logfile: Option<&logging::LogFile>) -> Result<(), Box<dyn std::error::Error>> {
    use nix::unistd::{Uid, setgid, setgroups, setuid};
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let (name, user) = [SERVICE_USER, "nobody"]
        .into_iter()
        .find_map(|n| crate::accounts::user(n).map(|ids| (n, ids)))
        .ok_or(
            "running as root, and neither user `fake-metadata` nor `nobody` exists to drop to",
        )?;
    if let Some(lf) = logfile
        && let Err(e) = lf.hand_over(user.uid.as_raw(), user.gid.as_raw())
    {
        tracing::warn!(path = %lf.path().display(), error = %e,
            "cannot give the log file to {name}; reopening it on SIGHUP may fail");
    }
    setgroups(&[])?;
    setgid(user.gid)?;
    setuid(user.uid)?;
    tracing::info!(user = %name, uid = user.uid.as_raw(), "started as root: dropped privileges after binding");
    Ok(())
}
