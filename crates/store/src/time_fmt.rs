//! Times as the store keeps them (RFC 3339 UTC with microseconds, so text order is time
//! order) and as CF shows them (whole seconds, `Z`).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The current time in the store's format.
pub fn now() -> String {
    format_time(OffsetDateTime::now_utc())
}

/// A time in the store's format (converted to UTC, microseconds).
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"))
        .expect("formatting a UTC time cannot fail")
}

/// A stored time as a value (`None` if it is not RFC 3339).
pub fn time_of(stored: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(stored, &Rfc3339).ok()
}

/// A stored time in CF's wire format: `2016-06-08T16:41:26Z`.
pub fn format_cf_time(stored: &str) -> String {
    match stored.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => stored.to_string(),
    }
}

/// Parses an RFC 3339 time given by a client (for `created_ats` filters and the like)
/// into the store's format.
pub fn parse_time(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?.to_offset(UtcOffset::UTC);
    t.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z")).ok()
}

/// Seconds since the Unix epoch of a stored time.
pub fn unix_seconds(stored: &str) -> Option<i64> {
    OffsetDateTime::parse(stored, &Rfc3339).ok().map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_sort_as_text_and_render_in_whole_seconds() {
        let a = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(format_cf_time("2016-06-08T16:41:26.123456Z"), "2016-06-08T16:41:26Z");
        assert_eq!(parse_time("2016-06-08T18:41:26+02:00").unwrap(), "2016-06-08T16:41:26.000000Z");
        assert!(parse_time("yesterday").is_none());
        assert_eq!(unix_seconds("1970-01-01T00:01:00.000000Z"), Some(60));
    }
}
