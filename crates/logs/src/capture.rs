//! Turning a process's stdout or stderr into log envelopes, line by line, as Diego's executor
//! does: `\n` and `\r` both end a line (so `\r\n` ends one), empty lines are not sent, a line
//! longer than the limit (Diego's 61,440 bytes) is sent in pieces of at most the limit, cut
//! before a UTF-8 character rather than through it, and a last line without a newline is sent
//! at end of file. Bytes that are not UTF-8 pass through unchanged (the payload is bytes).

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::envelope::{Envelope, Log, LogStream, Message, Tags, now_nanos, source_type, tag};

/// Diego's largest log message, in bytes.
pub const MAX_LINE_BYTES: usize = 61_440;

/// Splits a byte stream into lines; pure (no I/O), fed in chunks of any size.
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// `max_line` is clamped to at least 4 bytes (one UTF-8 character).
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter { max_line: max_line.max(4), pending: Vec::new() }
    }

    /// Feeds bytes; calls `emit` for every complete line (and every full-size piece of a long one).
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(Vec<u8>)) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.append(&data[..pos], emit);
            self.flush(emit);
            data = &data[pos + 1..];
        }
        self.append(data, emit);
    }

    /// End of input: sends what is left as the last line.
    pub fn finish(&mut self, emit: &mut impl FnMut(Vec<u8>)) {
        self.flush(emit);
    }

    fn append(&mut self, data: &[u8], emit: &mut impl FnMut(Vec<u8>)) {
        self.pending.extend_from_slice(data);
        while self.pending.len() >= self.max_line {
            let cut = char_boundary(&self.pending, self.max_line);
            let rest = self.pending.split_off(cut);
            emit(std::mem::replace(&mut self.pending, rest));
        }
    }

    fn flush(&mut self, emit: &mut impl FnMut(Vec<u8>)) {
        if !self.pending.is_empty() {
            emit(std::mem::take(&mut self.pending));
        }
    }
}

/// The largest cut ≤ `max` that does not split a UTF-8 character; `max` itself when the bytes
/// there are not UTF-8 (binary output is cut anywhere).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    let mut cut = max;
    while cut > max.saturating_sub(3) && cut < bytes.len() && is_continuation(bytes[cut]) {
        cut -= 1;
    }
    // Backing off is right only if it found the lead byte of the character being cut.
    if cut == max || bytes[cut] >= 0xC0 { cut } else { max }
}

/// Who a captured line belongs to: copied onto every envelope.
#[derive(Debug, Clone)]
pub struct LineSource {
    pub source_id: String,
    pub instance_id: String,
    pub stream: LogStream,
    pub tags: Tags,
    pub max_line: usize,
}

impl LineSource {
    /// Lines of any source: `source_type` is the CF source type tag (`STG`, `CELL`, ...).
    pub fn new(source_id: &str, instance_id: &str, source_type: &str, stream: LogStream) -> LineSource {
        let mut tags = BTreeMap::new();
        tags.insert(tag::SOURCE_TYPE.to_string(), source_type.to_string());
        tags.insert(tag::SOURCE_ID.to_string(), source_id.to_string());
        LineSource {
            source_id: source_id.to_string(),
            instance_id: instance_id.to_string(),
            stream,
            tags: std::sync::Arc::new(tags),
            max_line: MAX_LINE_BYTES,
        }
    }

    /// A staging task's output: the app's source id, source type `STG`, instance 0.
    pub fn staging(app_guid: &str, stream: LogStream) -> LineSource {
        LineSource::new(app_guid, "0", source_type::STAGING, stream).with_tag(tag::APP_ID, app_guid)
    }

    /// An app instance's stdout or stderr: source id = app guid, instance id = the index,
    /// `source_type` `APP/PROC/<TYPE>` (`APP/PROC/WEB` for the web process).
    pub fn app(app_guid: &str, process_type: &str, index: u32, stream: LogStream) -> LineSource {
        let index = index.to_string();
        LineSource::new(app_guid, &index, &source_type::app_process(process_type), stream)
            .with_tag(tag::APP_ID, app_guid)
            .with_tag(tag::PROCESS_TYPE, process_type)
            .with_tag(tag::INSTANCE_ID, &index)
    }

    /// Builder: add a tag (app name, space and org ids and names, process guid, ...).
    pub fn with_tag(mut self, key: &str, value: &str) -> LineSource {
        std::sync::Arc::make_mut(&mut self.tags).insert(key.to_string(), value.to_string());
        self
    }

    /// The envelope for one line, stamped now.
    pub fn envelope(&self, line: Vec<u8>) -> Envelope {
        Envelope {
            timestamp: now_nanos(),
            source_id: self.source_id.clone(),
            instance_id: self.instance_id.clone(),
            tags: self.tags.clone(),
            message: Message::Log(Log { payload: line, stream: self.stream }),
        }
    }
}

/// Reads `reader` to its end, handing one envelope per line to `sink` (timestamps strictly
/// increasing); answers how many envelopes were made. An I/O error ends the capture after sending the partial line.
pub async fn capture<R, F>(mut reader: R, source: &LineSource, mut sink: F) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    F: FnMut(Envelope),
{
    let mut splitter = LineSplitter::new(source.max_line);
    let mut count = 0u64;
    let mut last = i64::MIN;
    let mut emit = |line: Vec<u8>| {
        count += 1;
        let mut envelope = source.envelope(line);
        // Strictly increasing: a reader paging by "after the last timestamp" (the cf CLI's
        // log-cache walk) never skips a line that shared a nanosecond with the one before.
        envelope.timestamp = envelope.timestamp.max(last.saturating_add(1));
        last = envelope.timestamp;
        sink(envelope);
    };
    let mut buf = vec![0u8; 16 * 1024];
    let result = loop {
        match reader.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => splitter.push(&buf[..n], &mut emit),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    splitter.finish(&mut emit);
    result.map(|()| count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(max);
        for c in chunks {
            s.push(c, &mut |l| out.push(l));
        }
        s.finish(&mut |l| out.push(l));
        out
    }

    #[test]
    fn lines_end_at_newline_or_carriage_return_and_empty_ones_are_dropped() {
        let lines = split(100, &[b"one\r\ntwo\n\n\nthr", b"ee\rfour"]);
        assert_eq!(lines, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec(), b"four".to_vec()]);
    }

    #[test]
    fn a_long_line_is_cut_at_the_limit_and_the_rest_follows() {
        let line = vec![b'x'; 25];
        let lines = split(10, &[&line, b"\n"]);
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
    }

    #[test]
    fn a_cut_never_splits_a_utf8_character() {
        // 8 ASCII bytes then "é" (2 bytes) then "€" (3 bytes): a cut at 10 would split "€".
        let text = "abcdefghé€z";
        let lines = split(11, &[text.as_bytes()]);
        for l in &lines {
            assert!(std::str::from_utf8(l).is_ok(), "{l:?} is a whole-character piece");
            assert!(l.len() <= 11);
        }
        assert_eq!(lines.concat(), text.as_bytes());
    }

    #[test]
    fn binary_junk_passes_through_and_is_cut_at_the_limit() {
        let junk: Vec<u8> = (0..=255u8).filter(|b| *b != b'\n' && *b != b'\r').collect();
        let lines = split(64, &[&junk]);
        assert_eq!(lines.concat(), junk);
        assert!(lines.iter().all(|l| l.len() <= 64));
    }
}
