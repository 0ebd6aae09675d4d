//! The one copy loop every put goes through: read in chunks, count against the limit, hash, write.
//! Nothing here holds more than one chunk of the body.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::namespace::{Digests, Hasher};

const CHUNK: usize = 64 * 1024;

/// A blob's bytes as they are read back.
pub type BlobReader = std::pin::Pin<Box<dyn AsyncRead + Send>>;

/// Copies `reader` into `writer`, hashing as it goes. Past `limit` bytes it stops with
/// `Error::TooLarge` (the caller throws the partial copy away); a failing writer is `on_write`'s error.
pub(crate) async fn copy_hashing<R, W>(
    reader: &mut R,
    writer: &mut W,
    limit: u64,
    on_write: impl Fn(std::io::Error) -> Error,
) -> Result<Digests>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf).await.map_err(Error::Read)?;
        if n == 0 {
            break;
        }
        if hasher.size() + n as u64 > limit {
            return Err(Error::TooLarge { limit });
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n]).await.map_err(&on_write)?;
    }
    Ok(hasher.finish())
}
