//! The one shape of every long-running part: run until the shutdown token fires, and
//! say when ready. `server` composes runners; tests start the same ones.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tells the composer that a runner is ready to serve.
#[derive(Clone)]
pub struct Ready(watch::Sender<bool>);

impl Ready {
    pub fn new() -> (Ready, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Ready(tx), rx)
    }

    pub fn signal(&self) {
        let _ = self.0.send(true);
    }
}

/// A long-running part of the platform.
pub trait Runner: Send + 'static {
    fn name(&self) -> &'static str;
    fn run(
        self: Box<Self>,
        ready: Ready,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
}

/// A runner that is ready at once and runs one loop until shutdown (the scheduler's
/// loop, a cell's heartbeat, an event listener).
pub struct Loop<F> {
    name: &'static str,
    body: F,
}

impl<F, Fut> Loop<F>
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    pub fn new(name: &'static str, body: F) -> Box<Self> {
        Box::new(Loop { name, body })
    }
}

impl<F, Fut> Runner for Loop<F>
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(
        self: Box<Self>,
        ready: Ready,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> {
        Box::pin(async move {
            ready.signal();
            (self.body)(shutdown).await;
            Ok(())
        })
    }
}

/// Runners started together; stops them all when one fails or shutdown is asked.
pub struct Group {
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)>,
    ready: Vec<watch::Receiver<bool>>,
}

impl Group {
    pub fn new(shutdown: CancellationToken) -> Group {
        Group { shutdown, tasks: Vec::new(), ready: Vec::new() }
    }

    pub fn spawn(&mut self, runner: Box<dyn Runner>) {
        let (ready, rx) = Ready::new();
        let name = runner.name();
        let token = self.shutdown.clone();
        let stop_all = self.shutdown.clone();
        let task = tokio::spawn(async move {
            let result = runner.run(ready, token).await;
            if let Err(e) = &result {
                tracing::error!(runner = name, error = %e, "runner failed; shutting down");
                stop_all.cancel();
            }
            result
        });
        self.tasks.push((name, task));
        self.ready.push(rx);
    }

    /// Waits until every runner said it is ready (or one failed).
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        for rx in &mut self.ready {
            tokio::select! {
                r = rx.wait_for(|r| *r) => { r.map_err(|_| anyhow::anyhow!("a runner stopped before it was ready"))?; }
                _ = self.shutdown.cancelled() => anyhow::bail!("shut down before ready"),
            }
        }
        Ok(())
    }

    /// Waits for every runner to end; answers the first failure.
    pub async fn wait(self) -> anyhow::Result<()> {
        let mut first_err = None;
        for (name, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e.context(format!("{name} failed")));
                }
                Err(e) => {
                    first_err.get_or_insert(anyhow::anyhow!("{name} panicked: {e}"));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
