//! A fleet node: ractor_cluster's `NodeServer` with the job's cookie, and a watch over its
//! sessions. A peer whose cookie differs never authenticates: the head logs it as refused and a
//! worker's [`Node::connect`] fails saying so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};

/// What happened to one session, by the peer's address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SessionEvent {
    Opened(String),
    Authenticated(String),
    Disconnected(String),
}

#[derive(Default)]
struct Events {
    log: Mutex<Vec<SessionEvent>>,
    changed: tokio::sync::Notify,
    /// Sessions authenticated and not yet disconnected (`exspin_fleet_nodes_alive`).
    alive: std::sync::atomic::AtomicI64,
}

struct Watch(Arc<Events>);

impl Watch {
    fn push(&self, e: SessionEvent) {
        self.0.log.lock().push(e);
        self.0.changed.notify_waiters();
    }
}

impl NodeEventSubscription for Watch {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.push(SessionEvent::Opened(ses.peer_addr));
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        tracing::info!(peer = %ses.peer_addr, "fleet: node authenticated");
        metrics::counter!("exspin_fleet_nodes_joined_total").increment(1);
        let alive = self
            .0
            .alive
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        metrics::gauge!("exspin_fleet_nodes_alive").set(alive as f64);
        self.push(SessionEvent::Authenticated(ses.peer_addr));
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let authenticated = self
            .0
            .log
            .lock()
            .contains(&SessionEvent::Authenticated(ses.peer_addr.clone()));
        if authenticated {
            tracing::warn!(peer = %ses.peer_addr, "fleet: node left");
            metrics::counter!("exspin_fleet_nodes_left_total").increment(1);
            let alive = self
                .0
                .alive
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
                - 1;
            metrics::gauge!("exspin_fleet_nodes_alive").set(alive as f64);
        } else {
            tracing::warn!(
                peer = %ses.peer_addr,
                "fleet: refused a node that did not authenticate (wrong or missing cookie)"
            );
            metrics::counter!("exspin_fleet_nodes_refused_total").increment(1);
        }
        self.push(SessionEvent::Disconnected(ses.peer_addr));
    }
}

/// Why a node could not join its head.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to the head at {addr}: {why}")]
    Unreachable { addr: String, why: String },
    #[error("the head at {addr} refused this node: its cookie differs from this --cookie-file's")]
    Refused { addr: String },
    #[error("the head at {addr} did not authenticate this node within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// A running node server.
pub struct Node {
    pub server: ActorRef<NodeServerMessage>,
    handle: ractor::concurrency::JoinHandle<()>,
    events: Arc<Events>,
    /// How this node dials out over TLS (None: plain TCP).
    connector: Option<tokio_rustls::TlsConnector>,
    /// Actors this node serves to its peers (the head's weights server), stopped with it.
    served: Vec<ractor::ActorCell>,
}

/// Reads a cookie file: its first line, which must not be empty.
pub fn read_cookie(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "reading the cookie file {}: {e} (write a shared secret into it, e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        )
    })?;
    let cookie = text.lines().next().unwrap_or("").trim().to_string();
    anyhow::ensure!(
        !cookie.is_empty(),
        "the cookie file {} is empty; write a shared secret into it",
        path.display()
    );
    Ok(cookie)
}

impl Node {
    /// Starts a node named `name` listening on `listen` (port 0: any free port); with `tls`,
    /// every link in and out is mutual TLS under the job's CA.
    pub async fn start(
        name: &str,
        listen: SocketAddr,
        cookie: String,
        tls: Option<&super::tls::TlsFiles>,
    ) -> anyhow::Result<Node> {
        let (encryption, connector) = match tls {
            Some(files) => (
                Some(ractor_cluster::IncomingEncryptionMode::Tls(
                    files.acceptor()?,
                )),
                Some(files.connector()?),
            ),
            None => (None, None),
        };
        let server = NodeServer::new(
            listen.port(),
            cookie,
            name.to_string(),
            listen.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(listen.ip());
        let (server, handle) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| anyhow::anyhow!("starting the fleet node on {listen}: {e}"))?;
        let events = Arc::new(Events::default());
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "exspin-watch".into(),
                subscription: Box::new(Watch(events.clone())),
            })
            .map_err(|e| anyhow::anyhow!("watching the fleet node: {e}"))?;
        Ok(Node {
            server,
            handle,
            events,
            connector,
            served: Vec::new(),
        })
    }

    /// Connects to the node at `addr` and waits until the session authenticates (within
    /// `timeout`). Fails when the peer closes the session first: its cookie is another.
    pub async fn connect(&self, addr: &str, timeout: Duration) -> Result<(), ConnectError> {
        let seen = self.events.log.lock().len();
        let unreachable = |why: String| ConnectError::Unreachable {
            addr: addr.to_string(),
            why,
        };
        match &self.connector {
            None => ractor_cluster::client_connect(&self.server, addr).await,
            Some(tls) => {
                let name = super::tls::server_name(addr).map_err(|e| unreachable(e.to_string()))?;
                ractor_cluster::client_connect_enc(&self.server, addr, tls.clone(), name).await
            }
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.events.changed.notified();
            tokio::pin!(notified);
            // Registered before the log is read, so an event between the two is not missed.
            notified.as_mut().enable();
            {
                let log = self.events.log.lock();
                for e in &log[seen..] {
                    match e {
                        SessionEvent::Authenticated(_) => return Ok(()),
                        SessionEvent::Disconnected(_) => {
                            return Err(ConnectError::Refused {
                                addr: addr.to_string(),
                            });
                        }
                        SessionEvent::Opened(_) => {}
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ConnectError::Timeout {
                    addr: addr.to_string(),
                    timeout,
                });
            }
        }
    }

    /// [`Node::connect`] tried again with back-off (0.2 s doubling to 5 s) while the head is not
    /// there (not listening yet, or restarting), for at most `within`. A refusal is final when it
    /// comes twice in a row: a head that closes while shutting down looks like one refusal, a
    /// head with another cookie refuses every time. `stopped` ends the wait early.
    pub async fn connect_with_retry(
        &self,
        addr: &str,
        timeout: Duration,
        within: Duration,
        stopped: impl Fn() -> bool,
    ) -> Result<(), ConnectError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut wait = Duration::from_millis(200);
        let mut refused = false;
        loop {
            match self.connect(addr, timeout).await {
                Ok(()) => return Ok(()),
                Err(e @ ConnectError::Refused { .. }) if refused => return Err(e),
                Err(ConnectError::Refused { .. }) => refused = true,
                Err(e) if tokio::time::Instant::now() + wait >= deadline || stopped() => {
                    return Err(e);
                }
                Err(e) => {
                    refused = false;
                    tracing::debug!("{e}; trying again in {wait:?}");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Resolves when more than `already` sessions that had authenticated have disconnected
    /// (the head went away; `already`: the losses seen before).
    pub async fn disconnected(&self, already: usize) {
        loop {
            let notified = self.events.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let log = self.events.log.lock();
                let mut authenticated = std::collections::HashSet::new();
                let mut lost = 0;
                for e in log.iter() {
                    match e {
                        SessionEvent::Authenticated(p) => {
                            authenticated.insert(p.clone());
                        }
                        SessionEvent::Disconnected(p) if authenticated.remove(p) => lost += 1,
                        _ => {}
                    }
                }
                if lost > already {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Serves the published weights under `run_dir` to workers that copy them over the link
    /// (`exspin worker --fetch-weights`).
    pub async fn serve_weights(&mut self, run_dir: std::path::PathBuf) -> anyhow::Result<()> {
        let (server, _) = Actor::spawn(None, super::weights::WeightsServer, run_dir)
            .await
            .map_err(|e| anyhow::anyhow!("starting the weights server: {e}"))?;
        self.served.push(server.get_cell());
        Ok(())
    }

    pub async fn stop(self) {
        for cell in &self.served {
            cell.stop(None);
        }
        self.server.stop(None);
        let _ = self.handle.await;
    }
}
