//! Where a layer's bytes go as they arrive: gathered in memory ([`Sink::Whole`], for layers
//! small enough) and unpacked once complete, or handed to an unpacker that runs while the
//! layer downloads ([`Sink::Stream`]).
//!
//! A whole gzip layer is inflated in one call by libdeflate, about twice as fast as inflating
//! a stream; anything it cannot take (several gzip members, a trailer whose size is not the
//! truth, other compressions) is unpacked from memory as a stream instead.
//!
//! For a streamed layer, the download (async) offers each chunk to a [`Feed`]; the unpacker
//! (a blocking thread) reads them through the [`FeedReader`], which also appends them to the
//! download file, so a pull cut short can still be resumed by a later one. The reader reports
//! the end of the stream only once the download says the whole blob arrived and matched its
//! digest; a download that stops any other way makes the next read fail, and the unpack with
//! it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::store::LayerRecord;
use crate::{Digest, Result, Store};

/// Chunks in flight between the download and the unpacker (backpressure beyond that).
const DEPTH: usize = 64;
/// The most a whole gzip layer may inflate to in memory (its trailer's claim); beyond, it
/// streams.
const WHOLE_OUT_MAX: usize = 128 << 20;

/// Where the download puts a layer's bytes.
pub(crate) enum Sink {
    /// Gathered, to unpack once the blob is complete and verified.
    Whole(Vec<u8>),
    /// Handed to an unpacker running meanwhile.
    Stream(Feed),
}

impl Sink {
    /// Takes the part of `chunk` (at `offset` in the blob) not had yet; see [`Feed::offer`].
    pub(crate) async fn offer(&mut self, offset: u64, chunk: &Bytes, saved: bool) {
        match self {
            Sink::Whole(bytes) => {
                let had = bytes.len() as u64;
                if offset + chunk.len() as u64 > had {
                    bytes.extend_from_slice(&chunk[had.saturating_sub(offset) as usize..]);
                }
            }
            Sink::Stream(feed) => feed.offer(offset, chunk, saved).await,
        }
    }

    /// Bytes of the blob taken so far.
    pub(crate) fn fed(&self) -> u64 {
        match self {
            Sink::Whole(bytes) => bytes.len() as u64,
            Sink::Stream(feed) => feed.fed(),
        }
    }
}

/// Unpacks a complete, verified layer blob held in memory into `staging`. Blocking.
pub(crate) fn unpack_whole(
    store: &Store,
    blob: Vec<u8>,
    staging: &Path,
    diff_id: &Digest,
    digest: &Digest,
) -> Result<LayerRecord> {
    match inflate_whole(&blob) {
        Some(tar) => {
            drop(blob);
            store.unpack_staged_tar(&tar, staging, Some(diff_id), Some(digest))
        }
        None => store.unpack_staged(&blob[..], staging, Some(diff_id), Some(digest)),
    }
}

/// Inflates a blob that is exactly one gzip member, in one call; None when it is anything else
/// (not gzip, several members, an inflated size other than its trailer claims, a claim over
/// [`WHOLE_OUT_MAX`]), which the streaming decoder then takes, with its own errors.
fn inflate_whole(blob: &[u8]) -> Option<Vec<u8>> {
    if !blob.starts_with(&[0x1f, 0x8b]) || blob.len() < 18 {
        return None;
    }
    let claimed = u32::from_le_bytes(blob[blob.len() - 4..].try_into().ok()?) as usize;
    if claimed > WHOLE_OUT_MAX {
        return None;
    }
    // Not zeroed first: libdeflate writes what it reports, and only that becomes the length.
    let mut out: Vec<u8> = Vec::with_capacity(claimed);
    let (used, inflated) = gzip_member(blob, out.spare_capacity_mut())?;
    if used != blob.len() || inflated != claimed {
        return None;
    }
    // SAFETY: libdeflate reported the first `inflated` bytes of the spare capacity written,
    // and `inflated` is at most the capacity it was given.
    unsafe { out.set_len(inflated) };
    Some(out)
}

/// Inflates the gzip member at the start of `blob` into `out` with libdeflate, answering the
/// bytes of `blob` it took (header, deflate stream and trailer) and of `out` it filled; None
/// for bad data or too small an `out`. Neither the trailer's CRC nor a header CRC is checked
/// (the streaming decoder checks both, so a blob whose CRCs lie is taken here and refused
/// there): the blob's digest was checked before, and the diff id of what it inflates to is
/// checked after, which a CRC could only repeat, at the cost of a pass over the output.
fn gzip_member(blob: &[u8], out: &mut [std::mem::MaybeUninit<u8>]) -> Option<(usize, usize)> {
    use libdeflate_sys as sys;
    let header = gzip_header_len(blob)?;
    let stream = &blob[header..];
    let (mut used, mut inflated) = (0usize, 0usize);
    // SAFETY: the decompressor is checked for null, used by this call alone and freed once;
    // libdeflate reads at most `stream.len()` bytes from `stream`, writes (never reads) at
    // most `out.len()` bytes into `out`, and writes the two counts through pointers to live
    // locals.
    let result = unsafe {
        let decompressor = sys::libdeflate_alloc_decompressor();
        if decompressor.is_null() {
            return None;
        }
        let result = sys::libdeflate_deflate_decompress_ex(
            decompressor,
            stream.as_ptr().cast(),
            stream.len(),
            out.as_mut_ptr().cast(),
            out.len(),
            &mut used,
            &mut inflated,
        );
        sys::libdeflate_free_decompressor(decompressor);
        result
    };
    const TRAILER: usize = 8; // CRC-32 and size
    let whole = header + used + TRAILER;
    (result == sys::libdeflate_result_LIBDEFLATE_SUCCESS && whole <= blob.len()).then_some((whole, inflated))
}

/// The length of the gzip member header at the start of `blob` (RFC 1952: ten fixed bytes,
/// then the extra field, name, comment and header CRC its flags announce); None when `blob`
/// does not start with one (another method, reserved flags set, a header longer than `blob`).
fn gzip_header_len(blob: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;
    let fixed = blob.get(..10)?;
    if fixed[..3] != [0x1f, 0x8b, 8] || fixed[3] & RESERVED != 0 {
        return None;
    }
    let flags = fixed[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes(blob.get(at..at + 2)?.try_into().ok()?) as usize;
        at += 2 + len;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            at += blob.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= blob.len()).then_some(at)
}

enum Piece {
    /// Bytes already in the download file (left by an earlier pull).
    Saved(Bytes),
    /// Bytes just downloaded: the reader appends them to the download file.
    Fresh(Bytes),
    /// The whole blob arrived and matched its digest.
    End,
}

/// The download's end of a layer's stream.
pub(crate) struct Feed {
    tx: mpsc::Sender<Piece>,
    /// Bytes of the blob handed over so far.
    fed: u64,
    /// False once the unpacker stopped reading (it failed): nothing more is handed over.
    open: bool,
}

/// The unpacker's end: reads the blob's bytes in order, appending fresh ones to the file.
pub(crate) struct FeedReader {
    rx: mpsc::Receiver<Piece>,
    current: Bytes,
    file: File,
    path: PathBuf,
    ended: bool,
}

/// Opens (creating) the download file at `path` for appending and joins the two ends.
pub(crate) fn channel(path: &Path) -> io::Result<(Feed, FeedReader)> {
    let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let (tx, rx) = mpsc::channel(DEPTH);
    let reader = FeedReader { rx, current: Bytes::new(), file, path: path.to_path_buf(), ended: false };
    Ok((Feed { tx, fed: 0, open: true }, reader))
}

impl Feed {
    /// Hands over the part of `chunk`, which starts at `offset` in the blob, that the
    /// unpacker has not had yet (a download restarted from the beginning repeats bytes).
    /// `saved`: the chunk came from the download file. Nothing happens once the unpacker
    /// stopped: the download still runs to its end, to tell a bad blob from a bad layer.
    pub(crate) async fn offer(&mut self, offset: u64, chunk: &Bytes, saved: bool) {
        let end = offset + chunk.len() as u64;
        if !self.open || end <= self.fed {
            return;
        }
        let part = chunk.slice(self.fed.saturating_sub(offset) as usize..);
        self.fed = end;
        let piece = if saved { Piece::Saved(part) } else { Piece::Fresh(part) };
        self.open = self.tx.send(piece).await.is_ok();
    }

    /// Whether the unpacker still reads.
    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.open
    }

    /// Bytes handed over so far.
    pub(crate) fn fed(&self) -> u64 {
        self.fed
    }

    /// Tells the unpacker the blob is complete and verified.
    pub(crate) async fn finish(self) {
        let _ = self.tx.send(Piece::End).await;
    }
}

impl FeedReader {
    /// Reads what is left up to the verified end (a compressed stream may end before its
    /// blob does), so the unpack succeeds only for a whole, verified blob.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 64 * 1024];
        while self.read(&mut sink)? > 0 {}
        Ok(())
    }
}

impl Read for FeedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.current.is_empty() {
                let n = buf.len().min(self.current.len());
                buf[..n].copy_from_slice(&self.current[..n]);
                let _ = self.current.split_to(n);
                return Ok(n);
            }
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Saved(bytes)) => self.current = bytes,
                Some(Piece::Fresh(bytes)) => {
                    self.file
                        .write_all(&bytes)
                        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
                    self.current = bytes;
                }
                Some(Piece::End) => self.ended = true,
                None => return Err(io::Error::other("the layer's download stopped before its end")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn one_gzip_member_inflates_whole_and_anything_else_is_left_to_the_stream() {
        let data: Vec<u8> = (0..300_000u32).flat_map(|n| (n % 251).to_le_bytes()).collect();
        let one = gzip(&data);
        assert_eq!(inflate_whole(&one).as_deref(), Some(&data[..]));
        // Two members (valid gzip, which the streaming decoder reads whole).
        let two = [gzip(b"first "), gzip(b"second")].concat();
        assert_eq!(inflate_whole(&two), None);
        // A trailer that claims less, or more, than the member inflates to.
        for lie in [data.len() as u32 - 1, data.len() as u32 + 1, WHOLE_OUT_MAX as u32 + 1] {
            let mut lying = one.clone();
            let at = lying.len() - 4;
            lying[at..].copy_from_slice(&lie.to_le_bytes());
            assert_eq!(inflate_whole(&lying), None, "a trailer claiming {lie}");
        }
        assert_eq!(inflate_whole(b"plain tar bytes, not gzip at all"), None);
        assert_eq!(inflate_whole(&one[..one.len() / 2]), None, "a truncated member");
        assert_eq!(inflate_whole(&one[..one.len() - 1]), None, "a member without its whole trailer");
    }

    #[test]
    fn a_gzip_header_with_every_optional_field_is_read_and_a_bad_one_is_not() {
        let data = b"layer bytes ".repeat(1000);
        let mut gz = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("built by a test")
            .extra(vec![7; 300])
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let full = gz.finish().unwrap();
        assert_eq!(gzip_header_len(&full), Some(10 + 2 + 300 + "layer.tar\0".len() + "built by a test\0".len()));
        assert_eq!(inflate_whole(&full).as_deref(), Some(&data[..]));
        // A header CRC (FHCRC) adds two bytes after the rest.
        let mut with_crc = full.clone();
        with_crc[3] |= 0x02;
        with_crc.splice(gzip_header_len(&full).unwrap()..gzip_header_len(&full).unwrap(), [0xab, 0xcd]);
        assert_eq!(inflate_whole(&with_crc).as_deref(), Some(&data[..]));
        let mut reserved = full.clone();
        reserved[3] |= 0x20;
        assert_eq!(gzip_header_len(&reserved), None, "a reserved flag");
        let mut method = full.clone();
        method[2] = 7;
        assert_eq!(gzip_header_len(&method), None, "not deflate");
        assert_eq!(gzip_header_len(&full[..20]), None, "a name running past the end");
    }

    #[tokio::test]
    async fn a_whole_sink_keeps_each_byte_once() {
        let mut sink = Sink::Whole(Vec::new());
        sink.offer(0, &Bytes::from_static(b"abc"), true).await;
        sink.offer(0, &Bytes::from_static(b"abcdef"), false).await;
        sink.offer(6, &Bytes::from_static(b"g"), false).await;
        assert_eq!(sink.fed(), 7);
        assert!(matches!(sink, Sink::Whole(ref b) if b == b"abcdefg"));
    }

    fn reader_thread(mut reader: FeedReader) -> std::thread::JoinHandle<io::Result<Vec<u8>>> {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out)?;
            Ok(out)
        })
    }

    #[tokio::test]
    async fn bytes_arrive_in_order_once_and_fresh_ones_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abc").unwrap();
        let (mut feed, reader) = channel(&path).unwrap();
        let read = reader_thread(reader);
        feed.offer(0, &Bytes::from_static(b"abc"), true).await;
        feed.offer(3, &Bytes::from_static(b"def"), false).await;
        // A restarted download repeats the start: only what is new goes on.
        feed.offer(0, &Bytes::from_static(b"abcdefg"), false).await;
        assert!(feed.is_open());
        assert_eq!(feed.fed(), 7);
        feed.finish().await;
        assert_eq!(read.join().unwrap().unwrap(), b"abcdefg");
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefg");
    }

    #[tokio::test]
    async fn a_download_that_stops_without_its_end_fails_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut feed, reader) = channel(&dir.path().join("blob")).unwrap();
        let read = reader_thread(reader);
        feed.offer(0, &Bytes::from_static(b"half"), false).await;
        drop(feed);
        let err = read.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("stopped before its end"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("blob")).unwrap(), b"half", "what arrived stays for a resume");
    }

    #[tokio::test]
    async fn the_download_learns_when_the_unpacker_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut feed, reader) = channel(&dir.path().join("blob")).unwrap();
        drop(reader);
        feed.offer(0, &Bytes::from_static(b"x"), false).await;
        assert!(!feed.is_open());
        feed.offer(1, &Bytes::from_static(b"y"), false).await;
        assert_eq!(feed.fed(), 1, "nothing is handed over after that");
    }
}
