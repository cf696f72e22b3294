//! [`HttpHint`]: `Retry-After` (RFC 9110 §10.2.3), the IETF `RateLimit`
//! field (draft-ietf-httpapi-ratelimit-headers-10), and the widely deployed
//! `RateLimit-Reset` / `X-RateLimit-Reset`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, Response, header};
use seawall_core::BoxError;

use super::{Hint, MAX_HINT, RetryHint, digits, trim};

/// Reads the retry hint of an HTTP response (feature `http`).
///
/// - **`Retry-After`** (RFC 9110 §10.2.3), either form: delta-seconds
///   (`Retry-After: 120`) or an HTTP-date (`Retry-After: Wed, 21 Oct 2015
///   07:28:00 GMT`, and the obsolete RFC 850 and asctime forms). A date is
///   measured from the response's own `Date` field when it has a valid one
///   (so the two clocks' skew does not count), otherwise from the system
///   clock; a date in the past means 0 (the backoff decides).
/// - **`RateLimit`** (draft-ietf-httpapi-ratelimit-headers-10, the list of
///   quota items `RateLimit: "default";r=0;t=30`; the name may be a string
///   or a token): the reset `t` (seconds until quota is available again) of
///   each item whose remaining quota `r` is 0. Items with quota left, or
///   without `r` or `t`, say nothing.
/// - **`RateLimit-Reset`** (the drafts up to -06) and **`X-RateLimit-Reset`**
///   (GitHub, GitLab and many others), each only when the matching
///   `RateLimit-Remaining` / `X-RateLimit-Remaining` is present and `0`:
///   these fields come on every response, and a 502 from a service with
///   quota left must not wait for the quota's hourly reset. Servers disagree
///   on the unit, so the number decides: below 10⁹ it is seconds to wait;
///   from 10⁹ (2001) to 10¹¹ it is a Unix time in seconds, measured like a
///   `Retry-After` date; 10¹¹ and above (milliseconds, most likely) is
///   ignored. A field present more than once is ignored.
///
/// When several values are present (several fields, several quota items),
/// the longest wait wins; a value that does not parse is ignored, as RFC
/// 9110 asks, and so is a value longer than 1 KiB. The result is at most [`MAX_HINT`]. Errors (`Err`) carry no
/// headers and give [`Hint::None`]. This reader never returns
/// [`Hint::DoNotRetry`].
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderMap, HeaderValue};
/// use seawall_retry::hint::{Hint, HttpHint};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("3"));
/// headers.insert("ratelimit", HeaderValue::from_static("\"burst\";r=0;t=7, \"day\";r=90;t=3600"));
/// assert_eq!(HttpHint::read(&headers), Hint::After(Duration::from_secs(7)));
///
/// headers.insert("retry-after", HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
/// headers.insert("date", HeaderValue::from_static("Sun, 06 Nov 1994 08:49:07 GMT"));
/// headers.remove("ratelimit");
/// assert_eq!(HttpHint::read(&headers), Hint::After(Duration::from_secs(30)));
///
/// // GitHub's fields: a Unix time, read only once the quota is spent.
/// let mut headers = HeaderMap::new();
/// headers.insert("date", HeaderValue::from_static("Mon, 01 Jul 2013 17:46:53 GMT"));
/// headers.insert("x-ratelimit-reset", HeaderValue::from_static("1372700873"));
/// headers.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
/// assert_eq!(HttpHint::read(&headers), Hint::None);
/// headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
/// assert_eq!(HttpHint::read(&headers), Hint::After(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpHint;

impl HttpHint {
    /// The reader.
    pub fn new() -> Self {
        HttpHint
    }

    /// The hint in `headers`, as described on the type.
    pub fn read(headers: &HeaderMap) -> Hint {
        Self::read_at(headers, SystemTime::now())
    }

    /// [`read`](Self::read) with `now` as the time when the response has no
    /// valid `Date` field.
    pub fn read_at(headers: &HeaderMap, now: SystemTime) -> Hint {
        let mut hint = Hint::None;
        let dated = headers.contains_key(header::RETRY_AFTER)
            || LEGACY.iter().any(|(_, reset)| headers.contains_key(reset));
        // Only a date, or a legacy reset, needs to know what time it is.
        let now = if dated {
            // The system clock also places an RFC 850 `Date`'s century.
            let local = unix_secs(now);
            headers
                .get(header::DATE)
                .and_then(|d| http_date(d.as_bytes(), local.unwrap_or(0)))
                .or(local)
        } else {
            None
        };
        for value in headers.get_all(header::RETRY_AFTER) {
            if let Some(after) = now.and_then(|now| parse_retry_after(value.as_bytes(), now)) {
                hint = hint.max(Hint::after(after));
            }
        }
        for value in headers.get_all(&RATELIMIT) {
            if let Some(reset) = ratelimit_reset(value.as_bytes()) {
                hint = hint.max(Hint::after(reset));
            }
        }
        for (remaining, reset) in &LEGACY {
            let (Some(remaining), Some(reset)) =
                (single(headers, remaining), single(headers, reset))
            else {
                continue;
            };
            if let Some(after) = legacy_reset(remaining, reset, now) {
                hint = hint.max(Hint::after(after));
            }
        }
        hint
    }
}

/// The IETF field (draft-ietf-httpapi-ratelimit-headers-07 and later).
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The widely deployed pairs of remaining quota and reset: the earlier
/// drafts' fields (up to -06) and their `X-` ancestors.
static LEGACY: [(HeaderName, HeaderName); 2] = [
    (
        HeaderName::from_static("ratelimit-remaining"),
        HeaderName::from_static("ratelimit-reset"),
    ),
    (
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderName::from_static("x-ratelimit-reset"),
    ),
];

/// The smallest legacy reset read as a Unix time (2001-09-09): below it, a
/// reset is a number of seconds (no quota resets in more than 31 years).
pub(crate) const EPOCH_FROM: u64 = 1_000_000_000;

/// The smallest legacy reset ignored (the year 5138): larger numbers are
/// neither seconds to wait nor a Unix time in seconds (most likely
/// milliseconds), and a guess would park the request or end it.
pub(crate) const EPOCH_UNTIL: u64 = 100_000_000_000;

/// The longest field value parsed, in bytes: a structured list of quota
/// items, or one number. Longer values are ignored, not scanned.
const MAX_VALUE: usize = 1024;

/// The value of `name` when the field is present exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value.as_bytes()),
        _ => None,
    }
}

/// A legacy reset (`RateLimit-Reset`, `X-RateLimit-Reset`) when its
/// remaining quota is exactly 0, given `now` in Unix seconds: seconds below
/// [`EPOCH_FROM`], a Unix time from there to [`EPOCH_UNTIL`] (measured from
/// `now`; in the past means 0), ignored above. At most [`MAX_HINT`].
pub(crate) fn legacy_reset(remaining: &[u8], reset: &[u8], now: Option<i64>) -> Option<Duration> {
    if remaining.len() > MAX_VALUE || reset.len() > MAX_VALUE {
        return None;
    }
    if digits(trim(remaining))? != 0 {
        return None;
    }
    let reset = digits(trim(reset))?;
    let secs = if reset < EPOCH_FROM {
        reset
    } else if reset < EPOCH_UNTIL {
        // Below 1e11, so it fits an i64.
        let at = i64::try_from(reset).ok()?;
        u64::try_from(at.saturating_sub(now?)).unwrap_or(0)
    } else {
        return None;
    };
    Some(Duration::from_secs(secs).min(MAX_HINT))
}

impl<B> RetryHint<Response<B>> for HttpHint {
    fn hint(&self, result: &Result<Response<B>, BoxError>) -> Hint {
        match result {
            Ok(response) => Self::read(response.headers()),
            Err(_) => Hint::None,
        }
    }
}

/// Seconds since the Unix epoch of `t` (`None` before 1970).
fn unix_secs(t: SystemTime) -> Option<i64> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// A `Retry-After` value, given `now` in Unix seconds: at most [`MAX_HINT`].
pub(crate) fn parse_retry_after(value: &[u8], now: i64) -> Option<Duration> {
    let value = trim(value);
    let after = match digits(value) {
        Some(secs) => Duration::from_secs(secs),
        None => {
            let at = http_date(value, now)?;
            Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
        }
    };
    Some(after.min(MAX_HINT))
}

/// The reset of a `RateLimit` field value (an RFC 9651 list of items with
/// parameters): the longest `t` among items with `r=0`, at most
/// [`MAX_HINT`].
pub(crate) fn ratelimit_reset(value: &[u8]) -> Option<Duration> {
    if value.len() > MAX_VALUE {
        return None;
    }
    let mut reset: Option<u64> = None;
    for member in split_outside_quotes(value, b',') {
        let mut parts = split_outside_quotes(member, b';');
        // The item itself: the quota policy's name; not needed.
        let _name = parts.next();
        let (mut r, mut t) = (None, None);
        for param in parts {
            let param = trim(param);
            let (key, value) = match param.iter().position(|&b| b == b'=') {
                Some(i) => (&param[..i], &param[i + 1..]),
                None => (param, &b"?1"[..]),
            };
            match key {
                b"r" => r = sf_integer(value),
                b"t" => t = sf_integer(value),
                _ => {}
            }
        }
        if let (Some(0), Some(t)) = (r, t) {
            reset = Some(reset.map_or(t, |old| old.max(t)));
        }
    }
    reset.map(|secs| Duration::from_secs(secs).min(MAX_HINT))
}

/// A non-negative RFC 9651 integer (at most 15 digits).
fn sf_integer(value: &[u8]) -> Option<u64> {
    (value.len() <= 15).then(|| digits(value)).flatten()
}

/// Splits `s` at each `sep` that is not inside a quoted string (with `\`
/// escapes), as structured fields are delimited.
fn split_outside_quotes(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        rest = None;
        Some(s)
    })
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const LONG_DAYS: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];

/// An HTTP-date (RFC 9110 §5.6.7) in Unix seconds: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37
/// GMT`) or asctime (`Sun Nov  6 08:49:37 1994`). The weekday must be a
/// weekday's name but is not checked against the date. `now` (Unix seconds)
/// places RFC 850's two-digit year: one more than 50 years ahead is in the
/// past century.
pub(crate) fn http_date(s: &[u8], now: i64) -> Option<i64> {
    let s = trim(s);
    if s.len() > 40 {
        return None;
    }
    if let [d0, d1, d2, b',', b' ', rest @ ..] = s {
        // IMF-fixdate: `DD Mon YYYY HH:MM:SS GMT`.
        DAYS.contains(&&[*d0, *d1, *d2])
            .then_some(())
            .and_then(|()| imf_fixdate(rest))
    } else if let Some(comma) = s.iter().position(|&b| b == b',') {
        // RFC 850: `Weekday, DD-Mon-YY HH:MM:SS GMT`.
        if !LONG_DAYS.contains(&&s[..comma]) {
            return None;
        }
        match &s[comma..] {
            [
                b',',
                b' ',
                d0,
                d1,
                b'-',
                m0,
                m1,
                m2,
                b'-',
                y0,
                y1,
                b' ',
                rest @ ..,
            ] => {
                let yy = num(&[*y0, *y1])?;
                let year = full_year(yy, now);
                let time = time_gmt(rest)?;
                seconds(year, month(&[*m0, *m1, *m2])?, num(&[*d0, *d1])?, time)
            }
            _ => None,
        }
    } else {
        // asctime: `Wdy Mon DD HH:MM:SS YYYY`, DD may be ` 6`.
        match s {
            [w0, w1, w2, b' ', m0, m1, m2, b' ', d0, d1, b' ', rest @ ..] => {
                if !DAYS.contains(&&[*w0, *w1, *w2]) {
                    return None;
                }
                let day = if *d0 == b' ' {
                    num(&[*d1])?
                } else {
                    num(&[*d0, *d1])?
                };
                let [time @ .., b' ', y0, y1, y2, y3] = rest else {
                    return None;
                };
                let time = hms(time)?;
                seconds(
                    num(&[*y0, *y1, *y2, *y3])?,
                    month(&[*m0, *m1, *m2])?,
                    day,
                    time,
                )
            }
            _ => None,
        }
    }
}

fn imf_fixdate(s: &[u8]) -> Option<i64> {
    match s {
        [
            d0,
            d1,
            b' ',
            m0,
            m1,
            m2,
            b' ',
            y0,
            y1,
            y2,
            y3,
            b' ',
            rest @ ..,
        ] => seconds(
            num(&[*y0, *y1, *y2, *y3])?,
            month(&[*m0, *m1, *m2])?,
            num(&[*d0, *d1])?,
            time_gmt(rest)?,
        ),
        _ => None,
    }
}

/// `HH:MM:SS GMT`.
fn time_gmt(s: &[u8]) -> Option<(i64, i64, i64)> {
    match s {
        [time @ .., b' ', b'G', b'M', b'T'] => hms(time),
        _ => None,
    }
}

/// `HH:MM:SS`, seconds up to 60 (a leap second).
fn hms(s: &[u8]) -> Option<(i64, i64, i64)> {
    match s {
        [h0, h1, b':', m0, m1, b':', s0, s1] => {
            let (h, m, s) = (num(&[*h0, *h1])?, num(&[*m0, *m1])?, num(&[*s0, *s1])?);
            (h < 24 && m < 60 && s <= 60).then_some((h, m, s))
        }
        _ => None,
    }
}

fn num(s: &[u8]) -> Option<i64> {
    // At most 4 digits here: always fits.
    digits(s).and_then(|n| i64::try_from(n).ok())
}

fn month(s: &[u8; 3]) -> Option<i64> {
    let i = MONTHS.iter().position(|m| *m == s)?;
    i64::try_from(i + 1).ok()
}

/// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is
/// the most recent past year with those digits.
fn full_year(yy: i64, now: i64) -> i64 {
    let this_year = civil_year(now);
    let year = this_year - this_year.rem_euclid(100) + yy;
    if year > this_year + 50 {
        year - 100
    } else {
        year
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Unix seconds of a civil date and time, `None` for an impossible date.
fn seconds(year: i64, month: i64, day: i64, (h, m, s): (i64, i64, i64)) -> Option<i64> {
    let days_in_month = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); exact for the years 0..=9999 read here.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil year of Unix second `t`.
fn civil_year(t: i64) -> i64 {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
    const LATER: i64 = 1_780_000_000; // Thu, 28 May 2026 20:26:40 GMT

    #[test]
    fn the_three_date_forms_agree() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            " Sun, 06 Nov 1994 08:49:37 GMT\t",
        ] {
            assert_eq!(http_date(form.as_bytes(), NOW), Some(NOW), "{form}");
        }
        assert_eq!(http_date(b"Thu, 01 Jan 1970 00:00:00 GMT", NOW), Some(0));
        assert_eq!(
            http_date(b"Tue, 29 Feb 2000 23:59:60 GMT", NOW),
            Some(951_868_800)
        );
        assert_eq!(
            http_date(b"Fri, 31 Dec 9999 23:59:59 GMT", NOW),
            Some(253_402_300_799)
        );
        assert_eq!(
            http_date(b"Sat Dec 31 23:59:59 1999", NOW),
            Some(946_684_799)
        );
    }

    #[test]
    fn a_two_digit_year_is_within_fifty_years_ahead() {
        let in_2026 = 1_780_000_000;
        let year = |s: &str, now| http_date(s.as_bytes(), now).map(civil_year);
        assert_eq!(year("Monday, 01-Jan-76 00:00:00 GMT", in_2026), Some(2076));
        assert_eq!(year("Monday, 01-Jan-77 00:00:00 GMT", in_2026), Some(1977));
        assert_eq!(year("Monday, 01-Jan-26 00:00:00 GMT", in_2026), Some(2026));
        assert_eq!(year("Monday, 01-Jan-94 00:00:00 GMT", NOW), Some(1994));
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            "",
            "GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov -994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Funday, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov  6 08:49:37 94",
            "Sün, 06 Nov 1994 08:49:37 GMT",
            ",",
            ", 06-Nov-94 08:49:37 GMT",
        ] {
            assert_eq!(http_date(bad.as_bytes(), NOW), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_in_both_forms() {
        let secs = |s: &str| parse_retry_after(s.as_bytes(), NOW);
        assert_eq!(secs("120"), Some(Duration::from_secs(120)));
        assert_eq!(secs(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            secs("Sun, 06 Nov 1994 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            secs("Sun, 06 Nov 1994 08:49:36 GMT"),
            Some(Duration::ZERO),
            "in the past"
        );
        assert_eq!(secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(secs("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_HINT));
        assert_eq!(secs("99999999999999999999999999"), Some(MAX_HINT));
        for bad in ["", "-1", "1.5", "soon", "0x10", "1 2", "١٢"] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ratelimit_reset_of_exhausted_quotas() {
        let reset = |s: &str| ratelimit_reset(s.as_bytes());
        assert_eq!(reset("\"default\";r=0;t=30"), Some(Duration::from_secs(30)));
        assert_eq!(reset("default;r=0;t=30"), Some(Duration::from_secs(30)));
        assert_eq!(reset("\"default\";r=5;t=30"), None, "quota left");
        assert_eq!(
            reset("\"a\";r=0;t=3, \"b\";r=0;t=9, \"c\";r=1;t=99"),
            Some(Duration::from_secs(9))
        );
        assert_eq!(
            reset("\"a,b;c\";r=0;t=4"),
            Some(Duration::from_secs(4)),
            "quoted separators"
        );
        assert_eq!(
            reset("\"a\\\";r=1\";r=0;t=4"),
            Some(Duration::from_secs(4)),
            "escaped quote"
        );
        assert_eq!(
            reset("\"a\";r=0;pk=:abc=:;t=2"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(reset("\"a\"; r=0; t=2"), Some(Duration::from_secs(2)));
        assert_eq!(reset("\"a\";r=0;t=999999999999999"), Some(MAX_HINT));
        for bad in [
            "",
            "\"a\";r=0",
            "\"a\";t=3",
            "\"a\";r=0;t=-3",
            "\"a\";r=-0;t=3",
            "\"a\";r=0;t=1000000000000000",
            "\"a\";r=0;t=3.5",
            "\"a\";r;t=3",
            "limit=10, remaining=0, reset=30",
            "\"unterminated;r=0;t=3",
        ] {
            assert_eq!(reset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn legacy_reset_only_when_the_quota_is_spent() {
        let s = Duration::from_secs;
        let now = Some(LATER);
        let reset = |remaining: &str, reset: &str| {
            legacy_reset(remaining.as_bytes(), reset.as_bytes(), now)
        };
        assert_eq!(reset("0", "30"), Some(s(30)));
        assert_eq!(reset(" 0 ", " 30 "), Some(s(30)));
        assert_eq!(reset("00", "0"), Some(Duration::ZERO));
        assert_eq!(reset("1", "30"), None, "quota left");
        assert_eq!(reset("999999999999999999999", "30"), None);
        // Seconds below 1e9, a Unix time from there on.
        assert_eq!(reset("0", "999999999"), Some(MAX_HINT));
        let at = (LATER + 90).to_string();
        assert_eq!(reset("0", &at), Some(s(90)), "Unix time, from now");
        assert_eq!(reset("0", &(LATER - 5).to_string()), Some(Duration::ZERO));
        assert_eq!(reset("0", "1000000000"), Some(Duration::ZERO), "2001");
        assert_eq!(reset("0", "99999999999"), Some(MAX_HINT), "year 5138");
        // Milliseconds (or anything past 1e11): ignored.
        assert_eq!(reset("0", "100000000000"), None);
        assert_eq!(reset("0", &((LATER + 90) * 1000).to_string()), None);
        assert_eq!(reset("0", "18446744073709551616"), None);
        // A Unix time without a clock: ignored, seconds are still read.
        assert_eq!(legacy_reset(b"0", at.as_bytes(), None), None);
        assert_eq!(legacy_reset(b"0", b"7", None), Some(s(7)));
        for (remaining, bad) in [
            ("0", ""),
            ("0", "-1"),
            ("0", "1.5"),
            ("0", "30s"),
            ("0", "1 0"),
            ("", "30"),
            ("-0", "30"),
            ("none", "30"),
        ] {
            assert_eq!(reset(remaining, bad), None, "{remaining:?} {bad:?}");
        }
        let long = format!("{}1", "0".repeat(MAX_VALUE));
        assert_eq!(reset("0", &long), None, "longer than the cap");
        assert_eq!(reset(&long, "1"), None, "longer than the cap");
    }

    #[test]
    fn read_takes_legacy_fields_once_each() {
        let at = UNIX_EPOCH + Duration::from_secs(LATER as u64);
        let s = Duration::from_secs;
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("20"));
        assert_eq!(HttpHint::read_at(&h, at), Hint::None, "no remaining");
        h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(HttpHint::read_at(&h, at), Hint::After(s(20)));
        // The `X-` pair speaks for itself, the longest wins.
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let epoch = HeaderValue::from_str(&(LATER + 45).to_string()).unwrap();
        h.insert("x-ratelimit-reset", epoch);
        assert_eq!(HttpHint::read_at(&h, at), Hint::After(s(45)));
        // The response's `Date` is "now" for a Unix time, as for a date.
        h.insert(
            header::DATE,
            HeaderValue::from_static("Thu, 28 May 2026 20:26:10 GMT"),
        );
        assert_eq!(HttpHint::read_at(&h, UNIX_EPOCH), Hint::After(s(75)));
        // A pair with a repeated field says nothing.
        h.append("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(HttpHint::read_at(&h, at), Hint::After(s(20)));
        h.append("ratelimit-reset", HeaderValue::from_static("20"));
        assert_eq!(HttpHint::read_at(&h, at), Hint::None);
        // Retry-After and the structured field still count with them.
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        h.insert("ratelimit", HeaderValue::from_static("d;r=0;t=9"));
        assert_eq!(HttpHint::read_at(&h, at), Hint::After(s(9)));
    }

    #[test]
    fn a_long_structured_field_is_not_scanned() {
        let mut value = "\"a\";r=1;t=1, ".repeat(MAX_VALUE / 8);
        value.push_str("\"b\";r=0;t=5");
        assert!(value.len() > MAX_VALUE);
        assert_eq!(ratelimit_reset(value.as_bytes()), None);
        assert_eq!(
            ratelimit_reset(&value.as_bytes()[value.len() - 11..]),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn read_takes_the_longest_and_the_date_field_as_now() {
        let mut h = HeaderMap::new();
        let at = UNIX_EPOCH + Duration::from_secs(NOW as u64);
        assert_eq!(HttpHint::read_at(&h, at), Hint::None);
        h.append(header::RETRY_AFTER, HeaderValue::from_static("5"));
        h.append(header::RETRY_AFTER, HeaderValue::from_static("garbage"));
        h.append(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(
            HttpHint::read_at(&h, at),
            Hint::After(Duration::from_secs(5))
        );
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        assert_eq!(
            HttpHint::read_at(&h, at),
            Hint::After(Duration::from_secs(10))
        );
        // The response's `Date` is the reference, not the local clock.
        h.insert(
            header::DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:42 GMT"),
        );
        assert_eq!(
            HttpHint::read_at(&h, UNIX_EPOCH),
            Hint::After(Duration::from_secs(5))
        );
        // An RFC 850 `Date` is placed in the century the local clock says.
        let in_2026 = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let mut h2 = HeaderMap::new();
        h2.insert(
            header::DATE,
            HeaderValue::from_static("Sunday, 07-Jun-26 00:00:00 GMT"),
        );
        h2.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 07 Jun 2026 00:00:09 GMT"),
        );
        assert_eq!(
            HttpHint::read_at(&h2, in_2026),
            Hint::After(Duration::from_secs(9))
        );
        h.insert(header::DATE, HeaderValue::from_static("not a date"));
        assert_eq!(
            HttpHint::read_at(&h, at),
            Hint::After(Duration::from_secs(10))
        );
        h.append("ratelimit", HeaderValue::from_static("\"q\";r=0;t=60"));
        assert_eq!(
            HttpHint::read_at(&h, at),
            Hint::After(Duration::from_secs(60))
        );
        let bytes = HeaderValue::from_bytes(b"\xff\xfe 12").unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, bytes);
        assert_eq!(HttpHint::read_at(&h, at), Hint::None);
    }

    #[test]
    fn days_and_years_round_trip() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (1969, 12, 31),
            (9999, 12, 31),
            (0, 1, 1),
        ] {
            let t = seconds(y, m, d, (0, 0, 0)).unwrap();
            assert_eq!(civil_year(t), y, "{y}-{m}-{d}");
        }
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            "[0-9 ,;=\"tr\\-]{0,60}".prop_map(String::into_bytes),
            "[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
                .prop_map(String::into_bytes),
            "[A-Za-z]{3,9}, [0-9]{2}-[A-Za-z]{3}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
                .prop_map(String::into_bytes),
            "[A-Za-z]{3} [A-Za-z]{3} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn hostile_values_never_panic_and_stay_bounded(
            value in bytes(),
            date in bytes(),
            now in any::<i64>(),
        ) {
            // `now` anywhere in i64 (a system clock gone mad): no overflow.
            let now = now.clamp(-(1 << 45), 1 << 45);
            if let Some(after) = parse_retry_after(&value, now) {
                prop_assert!(after <= MAX_HINT);
            }
            if let Some(reset) = ratelimit_reset(&value) {
                prop_assert!(reset <= MAX_HINT);
            }
            if let Some(reset) = legacy_reset(&date, &value, Some(now)) {
                prop_assert!(reset <= MAX_HINT);
            }
            if let Some(reset) = legacy_reset(b"0", &value, Some(now)) {
                prop_assert!(reset <= MAX_HINT);
            }
            let _ = http_date(&date, now);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                h.append(header::RETRY_AFTER, v.clone());
                h.append("ratelimit", v.clone());
                h.append("ratelimit-reset", v.clone());
                h.append("x-ratelimit-reset", v);
                h.append("ratelimit-remaining", HeaderValue::from_static("0"));
                h.append("x-ratelimit-remaining", HeaderValue::from_static("0"));
            }
            if let Ok(v) = HeaderValue::from_bytes(&date) {
                h.append(header::DATE, v);
            }
            match HttpHint::read(&h) {
                Hint::None => {}
                Hint::After(d) => prop_assert!(d <= MAX_HINT),
                Hint::DoNotRetry => prop_assert!(false, "never from HTTP"),
            }
        }

        #[test]
        fn every_valid_imf_date_parses_to_itself(t in 0i64..253_402_300_800) {
            let z = t.div_euclid(86_400);
            let secs = t.rem_euclid(86_400);
            let year = civil_year(t);
            // Find month and day by walking the year (simple, test-only).
            let mut month = 1;
            while month < 12 && seconds(year, month + 1, 1, (0, 0, 0)).unwrap() / 86_400 <= z {
                month += 1;
            }
            let day = z - seconds(year, month, 1, (0, 0, 0)).unwrap() / 86_400 + 1;
            let weekday = DAYS[usize::try_from((z + 3).rem_euclid(7)).unwrap()];
            let text = format!(
                "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
                std::str::from_utf8(weekday).unwrap(),
                std::str::from_utf8(MONTHS[usize::try_from(month - 1).unwrap()]).unwrap(),
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
            );
            prop_assert_eq!(http_date(text.as_bytes(), 0), Some(t), "{}", text);
        }
    }
}
