//! How a process runs and stops. Every background worker is a named task; the process runs
//! until SIGTERM or SIGINT (an orderly stop, exit 0) or until any worker ends, returning or
//! panicking (a failure: the process reports it, stops the same orderly way and exits non-zero
//! naming the worker, for its supervisor to restart it whole rather than run on without it).
//!
//! An orderly stop: `/health/ready` answers 503 at once, naming why; an HTTP process keeps
//! serving for the drain period (`SHUTDOWN_DRAIN_MS`) so load balancers move away first; then
//! the HTTP server stops taking connections and finishes the requests in flight, and every
//! worker is told to stop: the relay and the consumers finish the batch they hold (published
//! and checkpointed, or applied and acknowledged) and close their connections. Whatever has
//! not ended [`STOP_BUDGET`] after the signal is aborted, so the process is gone within 10 s.
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::dev::Server;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// From the signal (or the failure) to the last task aborted.
pub const STOP_BUDGET: Duration = Duration::from_millis(9_500);

/// What `/health/ready` reports beyond the servers it reaches: why the process is stopping,
/// once it is.
#[derive(Clone, Default)]
pub struct Health(Arc<RwLock<Option<String>>>);

impl Health {
    /// Why the process is not ready, if it is stopping.
    pub fn stopping(&self) -> Option<String> {
        self.0.read().map_or(None, |why| why.clone())
    }

    fn stop_because(&self, why: String) {
        if let Ok(mut slot) = self.0.write() {
            slot.get_or_insert(why);
        }
    }
}

/// The background workers of one process, and the token that asks them to stop.
pub struct Workers {
    stop: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// `B2B_TEST_PANIC_WORKER`: crash tests make this worker panic.
    panics_on_purpose: Option<String>,
}

impl Workers {
    pub fn new(panics_on_purpose: Option<String>) -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
            panics_on_purpose,
        }
    }

    /// The token a worker that stops in order (finishing its batch) watches.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// A worker that watches [`Workers::stop_token`] and returns once it has wound down.
    pub fn spawn(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let work = self.with_fault(name, work);
        self.tasks.push((name, tokio::spawn(work)));
    }

    /// A worker with nothing to finish (a listener, a periodic sweep whose transaction rolls
    /// back): dropped where it stands when the process stops.
    pub fn spawn_until_stopped(
        &mut self,
        name: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.stop.clone();
        self.spawn(name, async move {
            tokio::select! {
                () = work => {}
                () = stop.cancelled() => {}
            }
        });
    }

    fn with_fault(
        &self,
        name: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let panics = self.panics_on_purpose.as_deref() == Some(name);
        async move {
            if !panics {
                return work.await;
            }
            tokio::select! {
                () = work => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            panic!("test fault: B2B_TEST_PANIC_WORKER");
        }
    }
}

/// Runs until a signal or a worker's end, then stops in order (see the module docs). A signal
/// is an orderly stop (`Ok`); a worker that ended is the error, naming it.
pub async fn run(
    server: Option<Server>,
    workers: Workers,
    health: &Health,
    drain: Duration,
) -> anyhow::Result<()> {
    let Workers { stop, tasks, .. } = workers;
    let aborts: Vec<_> = tasks.iter().map(|(_, t)| t.abort_handle()).collect();
    let mut running: FuturesUnordered<_> = tasks
        .into_iter()
        .map(|(name, task)| async move { (name, task.await) })
        .collect();
    let server_handle = server.as_ref().map(Server::handle);
    let mut serving = server.map(tokio::spawn);
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        Some((name, ended)) = running.next() => Err(anyhow::anyhow!(ended_because(name, ended))),
        served = server_ended(&mut serving) => Err(anyhow::anyhow!("the HTTP server stopped: {served}")),
    };
    // A server that ended has been awaited: it must not be awaited again.
    if serving.as_ref().is_some_and(JoinHandle::is_finished) {
        serving = None;
    }
    let deadline = Instant::now() + STOP_BUDGET;
    match &outcome {
        Ok(()) => {
            tracing::info!("stopping on a signal");
            health.stop_because("stopping".into());
        }
        Err(error) => {
            tracing::error!(%error, "a worker ended; the process stops");
            health.stop_because(error.to_string());
        }
    }
    if server_handle.is_some() {
        tokio::time::sleep(drain).await;
    }
    stop.cancel();
    let servers = async {
        if let Some(handle) = server_handle {
            handle.stop(true).await;
        }
        if let Some(serving) = serving {
            let _ = serving.await;
        }
    };
    let workers = async {
        while let Some((name, ended)) = running.next().await {
            if let Err(error) = ended {
                tracing::warn!(worker = name, %error, "a worker failed while stopping");
            }
        }
    };
    let stopped = tokio::time::timeout_at(deadline, futures::future::join(servers, workers));
    if stopped.await.is_err() {
        tracing::warn!(budget = ?STOP_BUDGET, "not everything stopped in time; aborting the rest");
        for abort in aborts {
            abort.abort();
        }
    }
    outcome
}

/// The message a worker's end is reported with: its name, and its panic's message.
fn ended_because(name: &str, ended: Result<(), JoinError>) -> String {
    match ended {
        Ok(()) => format!("the {name} stopped"),
        Err(error) if error.is_panic() => {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("the {name} panicked: {message}")
        }
        Err(error) => format!("the {name} failed: {error}"),
    }
}

/// The HTTP server's own end (it has none while running: signals are ours, not its), or never.
async fn server_ended(serving: &mut Option<JoinHandle<std::io::Result<()>>>) -> String {
    match serving {
        Some(serving) => match serving.await {
            Ok(Ok(())) => "it ended".into(),
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        },
        None => std::future::pending().await,
    }
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
