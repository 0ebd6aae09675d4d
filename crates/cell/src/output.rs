//! An instance's output into its app's logs: the container's stdout and stderr go to
//! files (they outlive the server, so a restarted cell still has them); a follower per
//! stream reads what is appended and hands it, line by line, to the logs component as
//! `APP/PROC/<TYPE>` envelopes. After a restart a cell follows from the end (what was
//! written while no cell watched was captured before, or is lost as in Diego).

use std::path::PathBuf;
use std::time::Duration;

use hearth_logs::{LineSource, Store, capture};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How often a follower looks for new output when there was none.
const POLL: Duration = Duration::from_millis(100);

/// Follows `path` into `store` until `done` fires, then takes what is left and stops. The
/// handle ends once every line read is in the store (a task's last lines before its
/// container, and the file, go).
pub fn follow(
    store: Store,
    path: PathBuf,
    source: LineSource,
    from_end: bool,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let captured = tokio::spawn(async move {
        let sink = store.clone();
        let _ = capture(reader, &source, move |envelope| {
            let _ = sink.append(envelope);
        })
        .await;
    });
    tokio::spawn(async move {
        // The file appears when the container's process starts.
        let mut file = loop {
            match tokio::fs::File::open(&path).await {
                Ok(f) => break f,
                Err(_) if !done.is_cancelled() => tokio::time::sleep(POLL).await,
                Err(_) => return,
            }
        };
        if from_end && file.seek(std::io::SeekFrom::End(0)).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) if done.is_cancelled() => return,
                Ok(0) => {
                    tokio::select! {
                        _ = done.cancelled() => {}
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
                Ok(n) => {
                    if writer.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "reading an instance's output failed");
                    return;
                }
            }
        }
    });
    captured
}
