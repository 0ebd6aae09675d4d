//! `Runtime::stream_in` and `Runtime::stream_out`: tar streams into and out of a
//! container (staging delivers app bits and fetches droplets with them). The work happens
//! in a helper inside the container's mount namespace and root (`helper_stream`); this
//! side only pipes bytes and reports the helper's errors.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdout};

use crate::error::Error;
use crate::helper::HelperOp;
use crate::id::ContainerId;
use crate::runtime::Runtime;
use crate::spec::User;
use crate::state::Action;

impl Runtime {
    /// Unpacks a tar stream into `dest_dir` (an absolute path inside the container,
    /// created if missing) as `owner` (container ids, e.g. 2000:2000): everything
    /// unpacked belongs to it, and it needs write permission where things are created,
    /// like a process of the container running as that user. A tar entry that would land outside `dest_dir` (`..`, absolute paths,
    /// through symlinks, hard links out) is refused with an error; entries before it stay.
    pub async fn stream_in(
        &self,
        id: &ContainerId,
        dest_dir: &str,
        mut tar: impl AsyncRead + Unpin,
        owner: User,
    ) -> Result<(), Error> {
        self.info(id).await?.status.apply(id, Action::Stream)?;
        let op = HelperOp::StreamIn { dest: dest_dir.to_string(), owner };
        let mut child = self.stream_helper(id, op, Stdio::piped(), Stdio::null())?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let copy = async move {
            let copied = tokio::io::copy(&mut tar, &mut stdin).await;
            drop(stdin); // end of the tar for the helper
            copied
        };
        let (copied, output) = tokio::join!(copy, child.wait_with_output());
        let output = output.map_err(Error::io(&self.helper))?;
        let failure = |message: String| Error::Helper { id: id.clone(), op: "stream in", message };
        if !output.status.success() {
            return Err(failure(String::from_utf8_lossy(&output.stderr).trim().to_string()));
        }
        copied.map(|_| ()).map_err(|e| failure(format!("reading the tar: {e}")))
    }

    /// A tar stream of a file or directory inside the container. Its entries start with
    /// the path's last component; owners are container ids. A missing path is an error
    /// here; an error while packing ends the stream with that error.
    pub async fn stream_out(&self, id: &ContainerId, path: &str) -> Result<TarStream, Error> {
        self.info(id).await?.status.apply(id, Action::Stream)?;
        let op = HelperOp::StreamOut { path: path.to_string() };
        let mut child = self.stream_helper(id, op, Stdio::null(), Stdio::piped())?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        let read = stdout.read_line(&mut first).await;
        let mut done = finish(child, id.clone());
        if read.is_err() || first != "ok\n" {
            let message = match done.as_mut().await {
                Err(e) => e.to_string(),
                Ok(()) => format!("unexpected answer {first:?}"),
            };
            return Err(Error::Helper { id: id.clone(), op: "stream out", message });
        }
        Ok(TarStream { stdout, done: Some(done) })
    }

    fn stream_helper(&self, id: &ContainerId, op: HelperOp, stdin: Stdio, stdout: Stdio) -> Result<Child, Error> {
        self.helper_command(id, op)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::io(&self.helper))
    }
}

type Done = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// Waits for a stream-out helper; its error message (stderr) becomes an io error.
fn finish(mut child: Child, id: ContainerId) -> Done {
    let mut stderr = child.stderr.take().expect("piped stderr");
    Box::pin(async move {
        let mut message = String::new();
        let _ = stderr.read_to_string(&mut message).await;
        let status = child.wait().await?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("container {id}: stream out failed: {}", message.trim())))
        }
    })
}

/// A tar stream from `Runtime::stream_out`. It ends with an error if packing failed.
/// Dropping it early stops the helper.
pub struct TarStream {
    stdout: BufReader<ChildStdout>,
    done: Option<Done>,
}

impl AsyncRead for TarStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stdout).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {}
            other => return other,
        }
        // End of the helper's output: the stream ends as the helper did.
        let Some(done) = self.done.as_mut() else { return Poll::Ready(Ok(())) };
        match done.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.done = None;
                Poll::Ready(result)
            }
        }
    }
}
