//! The writer against serde_json: the same bytes for every shape and every string.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

fn same<T: Serialize + ?Sized>(value: &T) {
    let mut ours = Vec::new();
    super::to_writer(&mut ours, value).unwrap();
    let theirs = serde_json::to_vec(value).unwrap();
    assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
}

#[test]
fn strings_are_escaped_as_serde_json_escapes_them_wherever_the_byte_falls() {
    // Every ASCII byte, each at every offset of an eight-byte word, with non-ASCII around.
    for b in 0u8..=127 {
        for at in 0..17 {
            let mut s = "é".repeat(at % 3) + &"x".repeat(at);
            s.push(b as char);
            s.push_str("tail ünïcode ✓ 🦀");
            same(&s);
        }
    }
    for s in
        ["", "\"", "\\", "\"\"\"\"\"\"\"\"\"", "a\u{7f}b", "\u{1}\u{1f}\u{8}\u{c}\n\r\t", "plain url http://a/b?c=d&e"]
    {
        same(s);
    }
}

#[test]
fn every_shape_is_written_as_serde_json_writes_it() {
    #[derive(Serialize)]
    enum E {
        Unit,
        New(u8),
        Tuple(i32, String),
        Struct { a: Option<bool>, b: Vec<f64> },
    }
    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Wrapper(String);
    #[derive(Serialize)]
    struct Pair(u64, i64);
    #[derive(Serialize)]
    struct All<'a> {
        unit: Unit,
        wrapper: Wrapper,
        pair: Pair,
        variants: Vec<E>,
        ints: (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
        floats: (f32, f64, f64, f64),
        none: Option<&'a str>,
        chars: (char, char),
        bytes: &'a [u8],
        int_keys: BTreeMap<u32, &'a str>,
        text_keys: BTreeMap<&'a str, serde_json::Value>,
        bool_keys: BTreeMap<bool, u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        shown: String,
    }
    same(&All {
        unit: Unit,
        wrapper: Wrapper("w\"".into()),
        pair: Pair(u64::MAX, i64::MIN),
        variants: vec![E::Unit, E::New(7), E::Tuple(-1, "t".into()), E::Struct { a: Some(true), b: vec![0.5, -1e300] }],
        ints: (i8::MIN, i16::MIN, i32::MIN, i64::MIN, i128::MIN, u8::MAX, u16::MAX, u32::MAX, u64::MAX, u128::MAX),
        floats: (1.5, 0.1, f64::NAN, f64::INFINITY),
        none: None,
        chars: ('"', '✓'),
        bytes: b"\x00\xff",
        int_keys: BTreeMap::from([(1, "one"), (20, "twenty")]),
        text_keys: BTreeMap::from([("k\"ey", json!({"nested": [1, 2.5, null, true, "s"]}))]),
        bool_keys: BTreeMap::from([(true, 1), (false, 0)]),
        skipped: None,
        shown: format!("{}", 42),
    });
    same(&json!({"empty_object": {}, "empty_array": [], "n": -0.0, "big": 12345678901234567890u64}));
    same(&Vec::<u8>::new());
}

#[test]
fn display_values_are_escaped_piece_by_piece() {
    struct Shown;
    impl std::fmt::Display for Shown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("http://x/")?;
            f.write_str("a\"b\n")?;
            write!(f, "{}", 5)
        }
    }
    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }
    same(&Shown);
    same(&BTreeMap::from([(Shown.to_string(), 1)]));
}

#[test]
fn a_map_key_that_is_not_a_string_or_number_is_an_error() {
    let map = BTreeMap::from([(vec![1], 2)]);
    assert!(super::to_writer(&mut Vec::new(), &map).is_err());
    assert!(serde_json::to_vec(&map).is_err());
}

#[test]
fn links_on_a_clean_base_are_copied_and_others_escaped_and_every_serializer_reads_the_same() {
    use crate::render::{Joined, LinkBase};
    for base in ["http://api.example/v3/apps/5f0e-guid", "http://h/v3/apps/with\"quote\\and\ncontrol", ""] {
        let link = LinkBase::new(base);
        same(&Joined::link(link, "/processes"));
        same(&Joined::action(link, "/actions/start"));
        let expected = json!({"href": format!("{base}/processes")});
        assert_eq!(serde_json::to_value(Joined::link(link, "/processes")).unwrap(), expected);
    }
    assert!(super::is_clean("http://127.0.0.1:8080/v3/apps/0f4c2a7e-aaaa-bbbb-cccc-123456789abc ünï ✓"));
    for text in ["a\"", "\\", "tab\there", "0123456789abcdef\u{1f}", "\u{7f}ok\u{0}", "\u{7f} is no control"] {
        let needs_escaping = text.contains(|c: char| c < ' ' || c == '"' || c == '\\');
        assert_eq!(super::is_clean(text), !needs_escaping, "{text:?}");
    }
}
