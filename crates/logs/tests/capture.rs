//! Line capture from a real process's stdout and stderr (pipes from `sh`), read back from the
//! store as a log reader would: CRLF endings, a line longer than Diego's limit split into
//! pieces, binary junk passed through as bytes, a last line without newline kept, source type
//! `APP/PROC/WEB` and the instance index as instance id.

use std::process::Stdio;

use hearth_logs::envelope::tag;
use hearth_logs::{LineSource, LogStream, MAX_LINE_BYTES, ReadRequest, Store, StoreConfig, capture};
use tokio::process::Command;

fn read_all(store: &Store, source: &str) -> Vec<std::sync::Arc<hearth_logs::Envelope>> {
    let req = ReadRequest { limit: Some(1000), ..ReadRequest::default() };
    store.read(source, &req).unwrap()
}

#[tokio::test]
async fn a_process_output_becomes_one_envelope_per_line() {
    let script = format!(
        "printf 'hello\\r\\nworld\\n'; printf 'oops\\n' >&2; head -c {} /dev/zero | tr '\\0' y; printf '\\n'; \
         printf 'bin\\001\\377\\376junk\\n'; printf 'no newline at end'",
        MAX_LINE_BYTES * 2 + 10
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let store = Store::new(StoreConfig::default()).unwrap();
    let out = LineSource::app("app-guid", "web", 3, LogStream::Out).with_tag(tag::APP_NAME, "dora");
    let err = LineSource::app("app-guid", "web", 3, LogStream::Err);
    let (s1, s2) = (store.clone(), store.clone());
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (n_out, n_err) = tokio::join!(
        capture(stdout, &out, move |e| s1.append(e).unwrap()),
        capture(stderr, &err, move |e| s2.append(e).unwrap()),
    );
    assert!(child.wait().await.unwrap().success());
    assert_eq!((n_out.unwrap(), n_err.unwrap()), (7, 1));

    let envelopes = read_all(&store, "app-guid");
    let outs: Vec<&[u8]> = envelopes
        .iter()
        .filter(|e| matches!(&e.message, hearth_logs::Message::Log(l) if l.stream == LogStream::Out))
        .map(|e| e.log_payload().unwrap())
        .collect();
    let stamps: Vec<i64> = envelopes
        .iter()
        .filter(|e| matches!(&e.message, hearth_logs::Message::Log(l) if l.stream == LogStream::Out))
        .map(|e| e.timestamp)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "one stream's timestamps strictly increase: {stamps:?}");
    assert_eq!(outs[0], b"hello", "CRLF is one line end");
    assert_eq!(outs[1], b"world");
    let long: Vec<usize> = outs[2..5].iter().map(|l| l.len()).collect();
    assert_eq!(long, [MAX_LINE_BYTES, MAX_LINE_BYTES, 10], "a long line comes in pieces");
    assert!(outs[2..5].iter().all(|l| l.iter().all(|b| *b == b'y')));
    assert_eq!(outs[5], b"bin\x01\xff\xfejunk", "bytes pass through unchanged");
    assert_eq!(outs[6], b"no newline at end", "the partial last line is kept");

    let errs: Vec<_> = envelopes.iter().filter(|e| e.log_payload() == Some(b"oops")).collect();
    assert_eq!(errs.len(), 1);
    assert!(matches!(&errs[0].message, hearth_logs::Message::Log(l) if l.stream == LogStream::Err));
    for e in &envelopes {
        assert_eq!(e.instance_id, "3");
        assert_eq!(e.tags[tag::SOURCE_TYPE], "APP/PROC/WEB");
        assert_eq!(e.tags[tag::APP_ID], "app-guid");
    }
    let hello = envelopes.iter().find(|e| e.log_payload() == Some(b"hello")).unwrap();
    assert_eq!(hello.tags[tag::APP_NAME], "dora");
}

#[tokio::test]
async fn a_worker_process_is_tagged_with_its_type() {
    let child = Command::new("sh").arg("-c").arg("echo work").stdout(Stdio::piped()).spawn().unwrap();
    let store = Store::new(StoreConfig::default()).unwrap();
    let source = LineSource::app("g", "worker", 0, LogStream::Out);
    let s = store.clone();
    capture(child.stdout.unwrap(), &source, move |e| s.append(e).unwrap()).await.unwrap();
    let got = read_all(&store, "g");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tags[tag::SOURCE_TYPE], "APP/PROC/WORKER");
}

#[tokio::test]
async fn staging_output_is_tagged_stg() {
    let child = Command::new("sh").arg("-c").arg("echo '-----> Building'").stdout(Stdio::piped()).spawn().unwrap();
    let store = Store::new(StoreConfig::default()).unwrap();
    let s = store.clone();
    let source = LineSource::staging("g", LogStream::Out);
    capture(child.stdout.unwrap(), &source, move |e| s.append(e).unwrap()).await.unwrap();
    let got = read_all(&store, "g");
    assert_eq!(got[0].log_payload(), Some(&b"-----> Building"[..]));
    assert_eq!((got[0].tags[tag::SOURCE_TYPE].as_str(), got[0].instance_id.as_str()), ("STG", "0"));
}
