//! The daemon's core without its process concerns (signals, logging, privileges): a server
//! and its timers running in the background on the current tokio runtime, for tests and
//! tools.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::capability::BoxSecret;
use crate::clock::Clock;
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::identity::IdentityKey;
use crate::live::{Inputs, run_timers};
use crate::server;

/// A server running in the background on the current tokio runtime, for tests and tools.
pub struct Running {
    /// IMDS's addresses.
    pub addrs: Vec<SocketAddr>,
    /// Every listener's endpoint and address.
    pub listening: Vec<(Endpoint, SocketAddr)>,
    pub inputs: Arc<Inputs>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    timers: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts serving `config` (its `listen` addresses; port 0 picks a free one).
    pub fn start(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
        let listeners = server::bind(&config)?;
        let listening: Vec<(Endpoint, SocketAddr)> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| (l.endpoint, a)))
            .collect::<Result<_, _>>()?;
        let addrs = listening
            .iter()
            .filter(|(e, _)| *e == Endpoint::Imds)
            .map(|(_, a)| *a)
            .collect();
        let max_connections = config.server().max_connections().get();
        let inputs = Inputs::new(
            config,
            clock,
            Some(IdentityKey::ephemeral()?),
            BoxSecret::ephemeral()?,
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::serve(
            listeners,
            inputs.published().clone(),
            max_connections,
            async {
                let _ = rx.await;
            },
        ));
        let timers = tokio::spawn(run_timers(inputs.clone()));
        Ok(Running {
            addrs,
            listening,
            inputs,
            stop: Some(tx),
            task,
            timers,
        })
    }

    /// `endpoint`'s first address.
    pub fn addr_of(&self, endpoint: Endpoint) -> Option<SocketAddr> {
        self.listening
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, a)| *a)
    }

    /// IMDS's first address, e.g. `127.0.0.1:43127`.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// `http://ADDR` of the first listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Stops accepting and drains.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.timers.abort();
        (&mut self.task).await.expect("server task does not panic")
    }
}
