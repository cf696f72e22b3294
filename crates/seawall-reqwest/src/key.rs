//! [`ByAuthority`]: the peer a `reqwest::Request` goes to, as a key.

use http::uri::Authority;
use reqwest::{Request, Url};
use seawall_core::KeyFn;
use seawall_core::key::Host;

/// The longest host name a key holds: a DNS name is at most 253 bytes
/// written out, plus the one trailing dot [`Host`] strips.
const MAX_HOST: usize = 254;

/// Keys a `reqwest::Request` by the peer it goes to: its URL's host and
/// port, as [`Host`], the key `seawall_core::key::ByAuthority` gives an
/// `http::Request` for the same URL. One peer is one key, so a breaker or
/// a deadline learnt for it is shared by every path on it, and a hyper
/// client's keys and this middleware's read the same.
///
/// - **No userinfo.** `http://admin:hunter2@api.internal:8080/` is keyed
///   `api.internal:8080`: credentials never reach a key, a rejection, a log
///   line or a metric label.
/// - **Normalised host.** Lower case (the URL parser lowercases and
///   IDNA-encodes names), one trailing dot dropped, IPv4 in dotted decimal,
///   IPv6 in canonical form in brackets: `[::1]`.
/// - **The port is always written.** The scheme's default port is made
///   explicit: `http://api.internal/`, `http://api.internal:80/` and
///   `http://API.internal./` are all `api.internal:80`; `https://…` is
///   `…:443`, another peer.
/// - **Bounded.** A host longer than a DNS name (253 bytes), or anything
///   that is not a usable authority, is [`Host::unknown`]: a key is never
///   more than a 253-byte name and a port, whatever a URL carries.
///
/// Taking a key costs one small allocation (the `host:port` text the
/// authority is parsed from); the key itself is inline up to a 48-byte
/// name.
///
/// ```
/// use seawall_core::KeyFn;
/// use seawall_reqwest::ByAuthority;
///
/// let req = |url: &str| reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
/// assert_eq!(ByAuthority.key(&req("http://API.internal./x")).to_string(), "api.internal:80");
/// assert_eq!(ByAuthority.key(&req("https://u:pw@api.internal/")).to_string(), "api.internal:443");
/// assert_eq!(ByAuthority.key(&req("http://[0:0:0:0:0:0:0:1]:8080/")).to_string(), "[::1]:8080");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByAuthority;

impl ByAuthority {
    /// The key of a request to `url`.
    pub fn key_of(url: &Url) -> Host {
        let Some(host) = url.host_str() else {
            return Host::unknown();
        };
        if host.is_empty() || host.len() > MAX_HOST {
            return Host::unknown();
        }
        let text = match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        // `Host` normalises what the authority holds (case, trailing dot,
        // IP forms, the 253-byte bound); a host that is no authority (the
        // opaque host of a scheme reqwest does not send) is unknown.
        Authority::try_from(text).map_or_else(|_| Host::unknown(), Host::from)
    }
}

impl KeyFn<Request> for ByAuthority {
    type Key = Host;

    fn key(&self, req: &Request) -> Host {
        ByAuthority::key_of(req.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        ByAuthority::key_of(&url.parse().unwrap()).to_string()
    }

    #[test]
    fn one_peer_one_key() {
        for url in [
            "http://API.internal/x",
            "http://api.internal:80/y",
            "http://api.internal./",
            "HTTP://Api.Internal.:80/",
            "http://user:secret@api.internal/",
        ] {
            assert_eq!(key(url), "api.internal:80", "{url}");
        }
        assert_eq!(key("https://api.internal/"), "api.internal:443");
        assert_eq!(key("https://api.internal:8443/"), "api.internal:8443");
        assert_ne!(key("http://api.internal/"), key("https://api.internal/"));
    }

    #[test]
    fn ip_addresses_are_canonical() {
        assert_eq!(key("http://127.0.0.1:3000/"), "127.0.0.1:3000");
        assert_eq!(key("http://[::1]/"), "[::1]:80");
        assert_eq!(key("http://[FE80::A]:1/"), "[fe80::a]:1");
        assert_eq!(key("https://[0:0:0:0:0:0:0:1]/"), "[::1]:443");
    }

    #[test]
    fn same_key_as_core_for_http_requests() {
        let core = |url: &str| {
            seawall_core::key::ByAuthority
                .key(&http::Request::get(url).body(()).unwrap())
                .to_string()
        };
        for url in [
            "http://API.internal/x",
            "https://api.internal/",
            "http://10.0.0.2:8080/",
            "http://[::1]:50051/",
            "http://a@api.internal./",
        ] {
            assert_eq!(key(url), core(url), "{url}");
        }
    }

    #[test]
    fn hostile_hosts_are_bounded() {
        let long = format!("http://{}.example/", "a".repeat(300));
        if let Ok(url) = long.parse::<Url>() {
            assert!(ByAuthority::key_of(&url).is_unknown());
        }
        let at_limit = format!("http://{}/", "b".repeat(253));
        assert_eq!(key(&at_limit), format!("{}:80", "b".repeat(253)));
        let over = format!("http://{}/", "b".repeat(254));
        assert_eq!(key(&over), "unknown");
        // No userinfo, whatever it holds.
        let k = key("http://admin:hunter2@api.internal:8080/");
        assert!(!k.contains("hunter2"));
        // A key never holds control characters or spaces.
        assert!(
            key("http://a.example/")
                .bytes()
                .all(|b| b.is_ascii_graphic())
        );
    }
}
