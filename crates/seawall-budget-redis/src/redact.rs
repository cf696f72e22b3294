//! Keeping the Redis password out of everything the budget prints.
//!
//! The URL is the one secret a budget's config holds
//! (`redis://user:password@host`, or `?pass=` on a socket URL). It reaches
//! `Debug` (of the config, the builder and both layers), the `ConfigError`
//! of a bad URL, and, through a server that echoes a command's arguments in
//! its error (an old Redis answering `HELLO 3 AUTH user password` with
//! "unknown command ... with args beginning with ..."), the errors kept in
//! `stats().last_error` and written to tracing. [`redact_url`] makes the
//! printable form of a URL; [`scrub`] takes the secrets out of any other
//! text before it is kept or printed.

use std::borrow::Cow;

/// The longest URL a config accepts, in bytes. A Redis URL is a scheme, a
/// user, a password, a host, a port and a database; anything longer is a
/// mistake (a pasted file), refused before it is parsed or printed.
pub const MAX_URL_LEN: usize = 4096;

/// The most characters [`redact_url`] prints; a longer URL is cut with `…`.
const MAX_PRINTED: usize = 256;

/// What a password (or the whole URL, when it cannot be read) prints as.
const MASK: &str = "***";

/// A URL that does not start with `scheme://`.
const INVALID: &str = "<invalid url>";

/// Query parameters that carry a password (`redis+unix:///s.sock?pass=...`).
fn is_secret_param(key: &str) -> bool {
    let key = percent_decode(key).to_ascii_lowercase();
    key.contains("pass") || key.contains("secret") || key.contains("token")
}

/// Where the value of `piece` (`[path?]key=value`) starts, when its key
/// names a secret.
fn secret_value(piece: &str) -> Option<usize> {
    let eq = piece.find('=')?;
    let key = &piece[..eq];
    let key = key.rsplit_once('?').map_or(key, |(_, k)| k);
    is_secret_param(key).then_some(eq + 1)
}

/// A string that is not `scheme://...`, printed as written when it cannot
/// hold a secret (`localhost:6379`: a host and port, the common mistake an
/// operator needs to see), else as `<invalid url>`.
fn plain_or_invalid(text: &str) -> String {
    let harmless = !text.is_empty()
        && text.len() <= MAX_PRINTED
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        && text.matches(':').count() <= 1;
    if harmless {
        text.to_owned()
    } else {
        INVALID.to_owned()
    }
}

/// `url` with its password replaced by `***`, for printing:
/// `redis://user:***@host:6379/0`. The user, host, port, database and other
/// query parameters stay, so an operator can still tell which Redis it is.
///
/// Conservative where the URL is odd: everything between the first `:` and
/// the *last* `@` after the scheme is the password (so one holding an
/// unencoded `@`, `/` or `#` is still hidden whole); a user part that looks
/// like more than a user name is hidden too; the value of every query
/// parameter whose name holds `pass`, `secret` or `token` is hidden; a string
/// that does not start with `scheme://` prints as `<invalid url>` unless it is
/// a bare host and port (`localhost:6379`, printed as written), and the
/// result is cut to 256 characters.
///
/// ```
/// use seawall_budget_redis::redact_url;
///
/// assert_eq!(redact_url("redis://app:s3cret@redis.internal:6380/2"), "redis://app:***@redis.internal:6380/2");
/// assert_eq!(redact_url("redis://:s3cret@h"), "redis://:***@h");
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"), "redis+unix:///run/redis.sock?db=1&pass=***");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// assert_eq!(redact_url("app:s3cret@host:6379"), "<invalid url>");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return plain_or_invalid(url);
    };
    let scheme_ok = scheme.len() <= 32
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return INVALID.to_owned();
    }
    let mut out = String::with_capacity(url.len().min(MAX_PRINTED) + 8);
    out.push_str(scheme);
    out.push_str("://");
    let hostpart = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, hostpart) = (&rest[..at], &rest[at + 1..]);
            let (user, has_password) = match userinfo.split_once(':') {
                Some((user, _)) => (user, true),
                None => (userinfo, false),
            };
            // A user name is a plain word; anything with URL structure in it
            // (a misplaced `@` in a query, say) may hold a secret.
            let plain = user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '%' | '~'));
            out.push_str(if plain { user } else { MASK });
            if has_password {
                out.push(':');
                out.push_str(MASK);
            }
            out.push('@');
            hostpart
        }
        None => rest,
    };
    // Every `key=value` piece is looked at, wherever it stands: a query
    // that began before a misplaced `@` goes on after it. Pieces run to the
    // next `&`, fragment included, so a value holding an unencoded `#` or
    // `?` is hidden whole.
    for (i, piece) in hostpart.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match secret_value(piece) {
            Some(at) => {
                out.push_str(&piece[..at]);
                out.push_str(MASK);
            }
            None => out.push_str(piece),
        }
    }
    if out.chars().count() > MAX_PRINTED {
        out = out.chars().take(MAX_PRINTED).collect();
        out.push('…');
    }
    out
}

/// The secrets a URL carries, as written and percent-decoded: its password
/// and the values of its password query parameters. Empty for a URL without.
pub(crate) fn secrets(url: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |raw: &str| {
        for s in [Cow::Borrowed(raw), percent_decode(raw)] {
            if !s.is_empty() && !found.iter().any(|f| f == s.as_ref()) {
                found.push(s.into_owned());
            }
        }
    };
    let Some((_, rest)) = url.split_once("://") else {
        return found;
    };
    let hostpart = match rest.rfind('@') {
        Some(at) => {
            if let Some((_, password)) = rest[..at].split_once(':') {
                add(password);
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    // The whole rest, not only what follows the `@`: a query may hold an `@`.
    for piece in rest.split('&').chain(hostpart.split('&')) {
        if let Some(at) = secret_value(piece) {
            let value = &piece[at..];
            add(value);
            // `query_pairs` decodes `+` as a space.
            add(&value.replace('+', " "));
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found
}

/// `text` with every occurrence of every secret replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Percent-decodes `s` (invalid escapes are kept as written; bytes that do
/// not form UTF-8 are replaced).
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            // Two hex digits: at most 0xff, so the cast cannot truncate.
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_replaced_and_the_rest_kept() {
        for (url, printed) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://app:pw@h:6380/3", "redis://app:***@h:6380/3"),
            ("redis://app@h:6380", "redis://app@h:6380"),
            ("redis://:pw@h", "redis://:***@h"),
            ("redis://app:@h", "redis://app:***@h"),
            (
                "rediss://app:pw@h:6380/#insecure",
                "rediss://app:***@h:6380/#insecure",
            ),
            ("redis://app:p%40ss%3Aw@h", "redis://app:***@h"),
            ("redis://app:p@ss/w#x@h:1/0", "redis://app:***@h:1/0"),
            (
                "redis+unix:///run/r.sock?db=2&user=app&pass=pw",
                "redis+unix:///run/r.sock?db=2&user=app&pass=***",
            ),
            (
                "unix:///run/r.sock?pa%73s=pw",
                "unix:///run/r.sock?pa%73s=***",
            ),
            (
                "unix:///run/r.sock?pass=p#w&x",
                "unix:///run/r.sock?pass=***&x",
            ),
            ("unix:///s?user=a@b&pass=pw", "unix://***@b&pass=***"),
            ("unix:///s?pass=x@b&db=1", "unix://***@b&db=1"),
            ("http://u:pw@h", "http://u:***@h"),
            ("", INVALID),
            ("not a url", INVALID),
            ("localhost:6379", "localhost:6379"),
            ("h:u:pw", INVALID),
            ("u:pw@h:6379", INVALID),
            ("re dis://u:pw@h", INVALID),
            ("://u:pw@h", INVALID),
        ] {
            assert_eq!(redact_url(url), printed, "{url}");
        }
    }

    #[test]
    fn a_long_url_is_cut() {
        let url = format!("redis://u:pw@{}:1", "h".repeat(100_000));
        let printed = redact_url(&url);
        assert_eq!(printed.chars().count(), MAX_PRINTED + 1);
        assert!(printed.starts_with("redis://u:***@hhh"));
        assert!(printed.ends_with('…'));
    }

    #[test]
    fn secrets_are_found_raw_and_decoded_and_scrubbed() {
        let s = secrets("redis://app:p%40ss@h");
        assert_eq!(s, ["p%40ss", "p@ss"]);
        assert_eq!(
            scrub("auth p@ss and p%40ss failed", &s),
            "auth *** and *** failed"
        );
        let s = secrets("redis+unix:///s?pass=a+b&db=1");
        assert!(s.contains(&"a b".to_owned()), "{s:?}");
        assert!(secrets("redis://h:6379").is_empty());
        assert!(secrets("redis://app@h").is_empty());
        assert!(secrets("garbage").is_empty());
        assert!(secrets("unix:///s?pass=x@b&db=1").contains(&"x@b".to_owned()));
        assert_eq!(scrub("nothing here", &[]), "nothing here");
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
