//! One future that resolves on SIGINT or SIGTERM, for every long-running process.

use std::future::Future;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM from systemd, Kubernetes or run.sh).
///
/// The handlers are installed when this is called, not when the future is first polled: a server
/// polls it only once it serves, and a SIGTERM arriving in between (right after "listening" is
/// logged) would otherwise kill the process with the default action instead of draining it. Call it
/// inside the tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |stream: std::io::Result<tokio::signal::unix::Signal>,
                        name: &'static str| async move {
                match stream {
                    Ok(mut stream) => {
                        stream.recv().await;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            let (interrupt, terminate) = handlers;
            tokio::select! {
                () = wait(interrupt, "SIGINT") => tracing::info!("SIGINT received, shutting down"),
                () = wait(terminate, "SIGTERM") => tracing::info!("SIGTERM received, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %err, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
            tracing::info!("SIGINT received, shutting down");
        }
    }
}
