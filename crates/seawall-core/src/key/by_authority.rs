use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use http::Request;
use http::uri::Authority;

use super::KeyFn;

/// Keys an `http::Request` by the peer it goes to: the host and port of the
/// URI's authority, or else of its `Host` header, normalised so that one
/// peer has one key.
///
/// The key ([`Host`]) is built from the authority like this:
///
/// - **Userinfo is dropped.** `http://admin:hunter2@api.internal:8080/` is
///   keyed `api.internal:8080`: credentials never reach a key, and so never
///   a rejection, a log line or a metric label.
/// - **The host is normalised.** ASCII letters are lowercased and one
///   trailing dot is stripped (`API.internal.` is `api.internal`). An IPv4
///   address is written in dotted decimal, an IPv6 address in its canonical
///   (RFC 5952) form, always in brackets: `[::1]`.
/// - **The port is always written when it is known.** A URI without a port
///   gets its scheme's default: 80 for `http` and `ws`, 443 for `https` and
///   `wss` (gRPC runs over `http`/`https` and has no scheme of its own). So
///   `http://API.internal/`, `http://api.internal:80/` and
///   `http://api.internal./` are one key, `api.internal:80`. An empty port
///   (`host:`) counts as absent, as RFC 3986 says.
/// - **Without a URI authority, the `Host` header** is used, as server-side
///   requests carry only a path. It has no scheme, so its port stays as
///   written: `Host: api.internal` is keyed `api.internal`, and
///   `Host: api.internal:80` is another key, `api.internal:80`.
/// - **Anything unusable is [`Host::unknown`]**, shown as `unknown`: no
///   authority and no `Host` header, a `Host` header that is not an
///   authority, an empty host, a port that is not a number from 0 to 65535,
///   or a host name longer than 253 bytes (the longest DNS name). A key is
///   therefore never more than a 253-byte name and a port, whatever a
///   request carries.
///
/// Taking a key copies the host, normalised, into the key itself: it holds
/// no reference to the request's buffers, so a key kept in a map keeps no
/// request alive. Names up to 48 bytes (and every IP address) are stored
/// inline and allocate nothing; a longer name costs one allocation.
///
/// ```
/// use http::Request;
/// use seawall_core::KeyFn;
/// use seawall_core::key::ByAuthority;
///
/// let req = Request::get("http://10.0.0.2:8080/health").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&req).to_string(), "10.0.0.2:8080");
///
/// let req = Request::get("https://admin:hunter2@API.internal./").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&req).to_string(), "api.internal:443");
///
/// let req = Request::get("/health").header("host", "api.internal").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&req).to_string(), "api.internal");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByAuthority;

/// The key [`ByAuthority`] gives: a peer's normalised host and port, or
/// [`unknown`](Host::unknown). See [`ByAuthority`] for exactly what it holds.
///
/// Its `Display` is the key as shown in rejections, stats and logs:
/// `api.internal:443`, `10.0.0.2:8080`, `[::1]:50051`, `api.internal`, or
/// `unknown`. It is at most 253 bytes of host and a port.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Host(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Unknown,
    Ip(IpAddr, Option<u16>),
    Name(Name, Option<u16>),
}

/// The longest host name a key holds: a DNS name is at most 253 bytes
/// written out (255 octets on the wire).
const MAX_NAME: usize = 253;

/// Names up to this many bytes are stored in the key itself. 48 keeps a
/// `Host` at 64 bytes and covers the usual service and cluster names.
const INLINE: usize = 48;

/// A normalised host name: lowercase ASCII, no trailing dot, 1..=253 bytes.
#[derive(Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Arc<str>),
}

impl Name {
    /// `host` lowercased; the caller has checked it is ASCII and 1..=253 bytes.
    fn lowercase(host: &str) -> Name {
        if host.len() <= INLINE {
            let mut bytes = [0; INLINE];
            for (to, from) in bytes.iter_mut().zip(host.bytes()) {
                *to = from.to_ascii_lowercase();
            }
            Name::Inline {
                // At most INLINE (48) bytes: fits in a u8.
                len: host.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(Arc::from(host.to_ascii_lowercase()))
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Built from a `&str` by lowercasing ASCII bytes only, so the
            // prefix is ASCII, hence UTF-8; the fallback is never taken.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Heap(s) => s,
        }
    }
}

// Equality and hashing by the text, so the same name is one key however it
// is stored.
impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Host {
    /// The key of requests that name no usable peer (see [`ByAuthority`]).
    pub fn unknown() -> Self {
        Host(Repr::Unknown)
    }

    /// Whether this is the [`unknown`](Host::unknown) key.
    pub fn is_unknown(&self) -> bool {
        matches!(self.0, Repr::Unknown)
    }

    /// The port: as written, or the scheme's default; `None` when neither
    /// is known (a `Host` header without a port) and for the unknown key.
    pub fn port(&self) -> Option<u16> {
        match &self.0 {
            Repr::Unknown => None,
            Repr::Ip(_, port) | Repr::Name(_, port) => *port,
        }
    }

    /// The key of `authority` when the request's scheme is `scheme`, as
    /// [`ByAuthority`] takes it.
    fn parse(authority: &str, scheme: Option<&str>) -> Host {
        parse(authority, default_port(scheme)).unwrap_or_else(Host::unknown)
    }
}

/// The key of an authority with no scheme to go by: normalised as a `Host`
/// header is (see [`ByAuthority`]), its port kept as written.
impl From<Authority> for Host {
    fn from(a: Authority) -> Self {
        Host::parse(a.as_str(), None)
    }
}

impl From<&Authority> for Host {
    fn from(a: &Authority) -> Self {
        Host::parse(a.as_str(), None)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = match &self.0 {
            Repr::Unknown => return f.write_str("unknown"),
            Repr::Ip(IpAddr::V4(ip), port) => {
                write!(f, "{ip}")?;
                port
            }
            Repr::Ip(IpAddr::V6(ip), port) => {
                write!(f, "[{ip}]")?;
                port
            }
            Repr::Name(name, port) => {
                f.write_str(name.as_str())?;
                port
            }
        };
        match port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

// The same text as `Display`: a key is safe to show, it holds no userinfo.
impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Host({self})")
    }
}

fn default_port(scheme: Option<&str>) -> Option<u16> {
    let scheme = scheme?;
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else {
        None
    }
}

/// Parses `[userinfo@]host[:port]`; `None` when it names no usable peer.
/// Does its own splitting rather than `Authority::host`/`port_u16`, which
/// read an out-of-range port (`h:99999`) as no port at all.
fn parse(authority: &str, default: Option<u16>) -> Option<Host> {
    // The host starts after the last '@': userinfo may contain '@' only
    // percent-encoded, and `Authority` parsing has rejected the rest.
    let host_port = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let close = rest.find(']')?;
        (&rest[..close], port_after(&rest[close + 1..])?)
    } else {
        match host_port.rfind(':') {
            Some(colon) => (&host_port[..colon], port_after(&host_port[colon..])?),
            None => (host_port, None),
        }
    };
    let port = port.or(default);
    if host_port.starts_with('[') {
        // IPv6 (or a future IP literal, `v1.…`, which we do not key).
        let ip: Ipv6Addr = host.parse().ok()?;
        return Some(Host(Repr::Ip(IpAddr::V6(ip), port)));
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_NAME || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Some(Host(Repr::Ip(IpAddr::V4(ip), port)));
    }
    Some(Host(Repr::Name(Name::lowercase(host), port)))
}

/// The port in `rest`, which is what follows the host: `""` (none), `":"`
/// (empty: none), or `":<digits>"`. `None` when it is anything else.
fn port_after(rest: &str) -> Option<Option<u16>> {
    let Some(digits) = rest.strip_prefix(':') else {
        return rest.is_empty().then_some(None);
    };
    if digits.is_empty() {
        return Some(None);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().map(Some)
}

impl<B> KeyFn<Request<B>> for ByAuthority {
    type Key = Host;

    fn key(&self, req: &Request<B>) -> Host {
        if let Some(a) = req.uri().authority() {
            return Host::parse(a.as_str(), req.uri().scheme_str());
        }
        // Only what `Authority` accepts is read (no spaces, no control
        // characters, no bytes above ASCII), then normalised the same way.
        req.headers()
            .get(http::header::HOST)
            .and_then(|v| Authority::try_from(v.as_bytes()).ok())
            .map_or_else(Host::unknown, |a| Host::parse(a.as_str(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> String {
        ByAuthority
            .key(&Request::get(uri).body(()).unwrap())
            .to_string()
    }

    fn host_header(host: &str) -> Host {
        ByAuthority.key(&Request::get("/x").header("host", host).body(()).unwrap())
    }

    #[test]
    fn uri_authority_wins_over_host_header() {
        let req = Request::get("http://a.example:81/x")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(ByAuthority.key(&req).to_string(), "a.example:81");
    }

    #[test]
    fn missing_or_bad_host_is_unknown() {
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(ByAuthority.key(&req), Host::unknown());
        assert!(ByAuthority.key(&req).is_unknown());
        assert_eq!(Host::unknown().to_string(), "unknown");
        assert_eq!(Host::unknown().port(), None);
        assert!(host_header("bad host with spaces").is_unknown());
        assert!(host_header("a\tb").is_unknown());
        assert!(host_header("").is_unknown());
        assert!(host_header(":80").is_unknown());
        assert!(host_header(".").is_unknown());
    }

    #[test]
    fn same_peer_same_key() {
        let a = Request::get("http://p:1/a").body(()).unwrap();
        let b = Request::get("http://p:1/b").body(()).unwrap();
        assert_eq!(ByAuthority.key(&a), ByAuthority.key(&b));
        assert_eq!(
            Host::from(Authority::from_static("p:1")),
            ByAuthority.key(&a)
        );
    }

    #[test]
    fn userinfo_never_reaches_the_key() {
        let k = ByAuthority.key(
            &Request::get("http://admin:hunter2@api.internal:8080/x")
                .body(())
                .unwrap(),
        );
        assert_eq!(k.to_string(), "api.internal:8080");
        assert!(!format!("{k:?}").contains("hunter2"));
        assert_eq!(key("http://a@b@api.internal/"), "api.internal:80");
        assert_eq!(
            host_header("admin:pw@api.internal").to_string(),
            "api.internal"
        );
        let from = Host::from(Authority::from_static("u:p@h:1"));
        assert_eq!(from.to_string(), "h:1");
    }

    #[test]
    fn case_trailing_dot_and_default_port_make_one_peer() {
        let keys = [
            key("http://API.internal/x"),
            key("http://api.internal:80/y"),
            key("http://api.internal./"),
            key("HTTP://Api.Internal.:80/"),
            key("http://api.internal:/"),
            key("http://api.internal:080/"),
        ];
        for k in &keys {
            assert_eq!(k, "api.internal:80");
        }
        let hosts = [
            ByAuthority.key(&Request::get("http://API.internal/x").body(()).unwrap()),
            ByAuthority.key(&Request::get("http://api.internal:80/").body(()).unwrap()),
            ByAuthority.key(&Request::get("http://api.internal./").body(()).unwrap()),
        ];
        assert!(hosts.iter().all(|h| *h == hosts[0]));
        let hash = |h: &Host| {
            let mut s = std::hash::DefaultHasher::new();
            h.hash(&mut s);
            s.finish()
        };
        assert!(hosts.iter().all(|h| hash(h) == hash(&hosts[0])));
        assert_eq!(hosts[0].port(), Some(80));
    }

    #[test]
    fn each_scheme_has_its_default_port() {
        assert_eq!(key("https://api.internal/"), "api.internal:443");
        assert_eq!(key("https://api.internal:443/"), "api.internal:443");
        assert_eq!(key("ws://api.internal/"), "api.internal:80");
        assert_eq!(key("wss://api.internal/"), "api.internal:443");
        // A scheme we know no default for: no port is made up.
        assert_eq!(key("grpc://api.internal/"), "api.internal");
        // A written port is kept; http and https on one host are two peers.
        assert_eq!(key("https://api.internal:8443/"), "api.internal:8443");
        assert_ne!(key("http://api.internal/"), key("https://api.internal/"));
    }

    #[test]
    fn ip_addresses_are_canonical_with_brackets_for_v6() {
        assert_eq!(key("http://10.0.0.2:8080/"), "10.0.0.2:8080");
        assert_eq!(key("http://10.0.0.2./"), "10.0.0.2:80");
        assert_eq!(key("http://[::1]/"), "[::1]:80");
        assert_eq!(key("http://[::1]:50051/"), "[::1]:50051");
        assert_eq!(key("https://[0:0:0:0:0:0:0:1]/"), "[::1]:443");
        assert_eq!(key("http://[FE80::A]:1/"), "[fe80::a]:1");
        assert_eq!(host_header("[::1]").to_string(), "[::1]");
        assert_eq!(host_header("[::1]:9").to_string(), "[::1]:9");
        // A zone id or a future IP literal is not an address we key.
        assert!(host_header("[fe80::1%25eth0]:1").is_unknown());
    }

    #[test]
    fn host_header_keeps_its_port_as_written() {
        assert_eq!(host_header("API.internal.").to_string(), "api.internal");
        assert_eq!(
            host_header("api.internal:80").to_string(),
            "api.internal:80"
        );
        assert_eq!(host_header("api.internal:").to_string(), "api.internal");
        assert_eq!(host_header("api.internal").port(), None);
        assert_eq!(host_header("api.internal:8080").port(), Some(8080));
    }

    #[test]
    fn a_port_out_of_range_is_unknown_not_the_default() {
        // `Authority::port_u16` reads these as "no port", which would key
        // them as the default port's peer.
        assert!(host_header("api.internal:99999").is_unknown());
        assert!(host_header("api.internal:65536").is_unknown());
        assert_eq!(host_header("api.internal:65535").port(), Some(65535));
        let req = Request::get("http://api.internal:70000/").body(());
        if let Ok(req) = req {
            assert!(ByAuthority.key(&req).is_unknown());
        }
    }

    #[test]
    fn long_names_are_bounded() {
        let at_limit = "a".repeat(MAX_NAME);
        let k = host_header(&at_limit);
        assert_eq!(k.to_string(), at_limit);
        // One trailing dot is not part of the name.
        assert_eq!(host_header(&format!("{at_limit}.")), k);
        // Over the limit, and over it by far: the one unknown key.
        assert!(host_header(&"a".repeat(MAX_NAME + 1)).is_unknown());
        let huge = format!("http://{}:80/", "b".repeat(10_000));
        assert_eq!(key(&huge), "unknown");
        // Inline and on the heap alike, the name is normalised.
        let long = format!("{}.Internal", "x".repeat(100));
        assert_eq!(host_header(&long).to_string(), long.to_ascii_lowercase());
        assert_eq!(host_header(&long), host_header(&long.to_ascii_lowercase()));
        assert!(std::mem::size_of::<Host>() <= 64);
    }

    #[test]
    fn a_key_holds_no_control_characters() {
        // Header values may carry obs-text and tabs; a key never does.
        let req = Request::get("/x")
            .header("host", http::HeaderValue::from_bytes(b"a\xffb").unwrap())
            .body(())
            .unwrap();
        assert!(ByAuthority.key(&req).is_unknown());
        for k in [
            key("http://a.example/"),
            host_header("b.example:1").to_string(),
        ] {
            assert!(k.bytes().all(|b| b.is_ascii_graphic()), "{k:?}");
        }
    }
}
