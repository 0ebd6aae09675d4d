//! Live subscriptions on the store itself: a reader that does not read never holds up the
//! writer or another reader, is told per source how many envelopes it lost, and gets the
//! newest ones; filters select kinds and gauge names; dropping a subscription leaves nothing
//! behind; bad subscriptions and envelopes are refused and change nothing.

use std::time::Duration;

use hearth_logs::envelope::EnvelopeType;
use hearth_logs::{Envelope, Filter, LogStream, Sources, Store, StoreConfig};

fn line(source: &str, i: usize) -> Envelope {
    Envelope::log(source, "0", LogStream::Out, i.to_string())
}

fn text(e: &Envelope) -> String {
    String::from_utf8(e.log_payload().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn a_reader_that_does_not_read_loses_only_its_own_oldest_envelopes() {
    let store = Store::new(StoreConfig { subscriber_buffer: 100, ..StoreConfig::default() }).unwrap();
    let mut slow = store.subscribe(Sources::Some(vec!["a".into(), "b".into()]), Filter::default()).unwrap();
    let mut fast = store.subscribe(Sources::Some(vec!["a".into()]), Filter::default()).unwrap();

    let writer = store.clone();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 1000 {
            let batch = fast.next_batch(64).await;
            assert_eq!(batch.missed_total(), 0, "the fast reader keeps up");
            got.extend(batch.envelopes.iter().map(|e| text(e)));
        }
        got
    });
    for i in 0..1000 {
        writer.append(line("a", i)).unwrap();
        if i % 50 == 0 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for i in 0..30 {
        writer.append(line("b", i)).unwrap();
    }
    let got = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("the writer never waited").unwrap();
    assert_eq!(got, (0..1000).map(|i| i.to_string()).collect::<Vec<_>>());

    let batch = slow.try_next_batch(1000).expect("something waits");
    assert_eq!(batch.missed, vec![("a".to_string(), 930)], "the 930 oldest of a are gone, counted");
    assert_eq!(batch.envelopes.len(), 100);
    assert_eq!(text(&batch.envelopes[0]), "930");
    assert_eq!(text(&batch.envelopes[69]), "999");
    assert_eq!((batch.envelopes[70].source_id.as_str(), text(&batch.envelopes[70]).as_str()), ("b", "0"));
    assert!(slow.try_next_batch(10).is_none(), "the loss is told once");
}

#[tokio::test]
async fn filters_select_kinds_and_gauge_names() {
    let store = Store::default();
    let filter = Filter {
        types: [EnvelopeType::Gauge].into_iter().collect(),
        gauge_names: vec![vec!["cpu".into(), "memory".into()]],
        ..Filter::default()
    };
    let mut sub = store.subscribe(Sources::Some(vec!["a".into()]), filter).unwrap();
    store.append(line("a", 1)).unwrap();
    store.append(Envelope::gauge("a", "0", &[("cpu", "percentage", 1.0)])).unwrap();
    store.append(Envelope::gauge("a", "0", &[("cpu", "percentage", 2.0), ("memory", "bytes", 3.0)])).unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(5), sub.next_batch(10)).await.unwrap();
    assert_eq!(batch.envelopes.len(), 1, "only the gauge carrying both names");
    assert_eq!(batch.envelopes[0].envelope_type(), EnvelopeType::Gauge);
}

#[tokio::test]
async fn dropping_subscriptions_leaves_nothing_behind() {
    let store = Store::default();
    let subs: Vec<_> = (0..50)
        .map(|i| store.subscribe(Sources::Some(vec![format!("s{i}"), "shared".into()]), Filter::default()).unwrap())
        .chain([store.subscribe(Sources::All, Filter::default()).unwrap()])
        .collect();
    assert_eq!(store.subscriber_count(), 101);
    store.append(line("shared", 1)).unwrap();
    drop(subs);
    assert_eq!(store.subscriber_count(), 0);
    assert_eq!(store.source_count(), 1, "only the source holding an envelope stays");
}

#[tokio::test]
async fn bad_subscriptions_and_envelopes_are_refused_and_change_nothing() {
    let store = Store::default();
    assert!(store.subscribe(Sources::Some(vec![]), Filter::default()).is_err());
    assert!(store.subscribe(Sources::Some(vec!["a".into(), String::new()]), Filter::default()).is_err());
    let err = store.append(Envelope::log("", "0", LogStream::Out, "x")).unwrap_err();
    assert!(err.to_string().contains("source_id"), "{err}");
    assert_eq!((store.subscriber_count(), store.source_count()), (0, 0));
    assert!(Store::new(StoreConfig { max_per_source: 0, ..StoreConfig::default() }).is_err());
}
