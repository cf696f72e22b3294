use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::header::{FORWARDED, HeaderMap, HeaderName};
use http::{Extensions, Request};

use super::KeyFn;

/// The most list entries (and the most lines) a forwarded header may hold,
/// across all its lines; a header with more is not read (the key is the
/// direct peer's).
const MAX_ENTRIES: usize = 32;

/// The most bytes a forwarded header may hold, across all its lines; a
/// header with more is not read (the key is the direct peer's).
const MAX_HEADER_BYTES: usize = 4096;

/// The longest node (`[v6]:port`, unescaped) read from a `Forwarded`
/// header; the longest valid one is 53 bytes.
const MAX_NODE: usize = 64;

/// Keys an `http::Request` by the client that sent it: its IP address, with
/// IPv6 addresses grouped by network, read from the connection and, behind
/// proxies you trust, from the header they set.
///
/// - **The direct peer** is the request's `SocketAddr` extension (hyper
///   users insert the connection's remote address per connection). axum
///   stores its peer as `ConnectInfo<SocketAddr>`, a type seawall does not
///   name: tell `ClientIp` where to find it with
///   [`peer_from`](ClientIp::peer_from).
/// - **No peer address** (no such extension) gives [`ClientKey::Unknown`]:
///   one key that all such requests share, so they share one budget.
///   Forwarded headers are never read without a peer to trust.
/// - **Forwarded headers are read only from trusted proxies**: when the
///   direct peer is in one of the networks given to
///   [`trusted_proxies`](ClientIp::trusted_proxies). With none configured
///   (the default) they are ignored, whatever a request carries.
/// - **From a trusted proxy**, the first header of
///   [`forwarded_headers`](ClientIp::forwarded_headers) (default:
///   `X-Forwarded-For` only) that the request carries is read, all its
///   lines in order, and walked from right to left: the client is the
///   rightmost address that is not a trusted proxy, or the leftmost when
///   every address is one. The walk stops at an entry that is not an address
///   (`unknown`, an obfuscated `_hidden`, garbage, an IPv6 zone id); the
///   key is then the direct peer's. So is it when the header holds more
///   than 32 entries, 32 lines or 4096 bytes: a request never makes the key a value
///   its client chose, only its own address or its proxy's.
/// - **The key is a network**: IPv4 addresses are keyed whole (/32) and
///   IPv6 addresses by their /64, since one client holds a whole /64 and
///   can rotate through it; both prefixes are configurable. An IPv4-mapped
///   IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address.
///
/// ```
/// use std::net::SocketAddr;
///
/// use http::Request;
/// use seawall_core::KeyFn;
/// use seawall_core::key::{ClientIp, ClientKey};
///
/// let request = |peer: &str| {
///     let mut req = Request::get("/")
///         .header("x-forwarded-for", "198.51.100.7, 203.0.113.9")
///         .body(())
///         .unwrap();
///     req.extensions_mut().insert(peer.parse::<SocketAddr>().unwrap());
///     req
/// };
///
/// // No trusted proxies: the header is ignored, the key is the peer.
/// let keys = ClientIp::new();
/// assert_eq!(keys.key(&request("192.0.2.1:50000")).to_string(), "192.0.2.1");
///
/// // Behind a trusted proxy: the rightmost address it did not add itself.
/// let keys = ClientIp::new().trusted_proxies(["10.0.0.0/8".parse().unwrap()]);
/// assert_eq!(keys.key(&request("10.1.2.3:50000")).to_string(), "203.0.113.9");
/// // The same header from anyone else is the client's own claim: ignored.
/// assert_eq!(keys.key(&request("192.0.2.1:50000")).to_string(), "192.0.2.1");
///
/// // IPv6 clients are keyed by their /64.
/// let key = keys.key(&request("[2001:db8:1:2:a:b:c:d]:443"));
/// assert_eq!(key.to_string(), "2001:db8:1:2::/64");
///
/// // No peer address at all: the one unknown key.
/// let req = Request::get("/").body(()).unwrap();
/// assert_eq!(keys.key(&req), ClientKey::Unknown);
/// ```
#[derive(Clone)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
    headers: Vec<ForwardedHeader>,
    v4_prefix: u8,
    v6_prefix: u8,
    peer: Option<PeerFn>,
}

type PeerFn = Arc<dyn Fn(&Extensions) -> Option<SocketAddr> + Send + Sync>;

/// A header through which proxies tell the client's address, for
/// [`ClientIp::forwarded_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `Forwarded` (RFC 7239): the `for=` parameter of each element; IPv6
    /// quoted and bracketed (`for="[2001:db8::1]:4711"`), parameter names
    /// in any case, `unknown` and obfuscated `_names` ending the walk.
    Forwarded,
    /// `X-Forwarded-For`: comma-separated addresses, each optionally with a
    /// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
    XForwardedFor,
    /// `X-Real-IP`: one address, as nginx's `realip` module sets it; read
    /// like `X-Forwarded-For`.
    XRealIp,
}

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            ForwardedHeader::Forwarded => FORWARDED,
            ForwardedHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ForwardedHeader::XRealIp => HeaderName::from_static("x-real-ip"),
        }
    }
}

impl Default for ClientIp {
    fn default() -> Self {
        ClientIp::new()
    }
}

impl ClientIp {
    /// Keys by the direct peer (the `SocketAddr` extension): IPv4 whole,
    /// IPv6 by /64, no trusted proxies, `X-Forwarded-For` the header read
    /// once proxies are trusted.
    pub fn new() -> Self {
        ClientIp {
            trusted: Vec::new(),
            headers: vec![ForwardedHeader::XForwardedFor],
            v4_prefix: 32,
            v6_prefix: 64,
            peer: None,
        }
    }

    /// Trusts the proxies in `networks` (added to those already trusted):
    /// when the direct peer is in one of them, the client is read from the
    /// forwarded header, and addresses in them are skipped in its walk.
    /// List every proxy in front of the service, and only those.
    ///
    /// ```
    /// use seawall_core::key::{ClientIp, IpNet};
    ///
    /// let nets: Vec<IpNet> = ["10.0.0.0/8", "fd00::/8"]
    ///     .iter()
    ///     .map(|s| s.parse())
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// let keys = ClientIp::new().trusted_proxies(nets);
    /// ```
    pub fn trusted_proxies(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted.extend(networks);
        self
    }

    /// The headers read from a trusted proxy, in order of preference: the
    /// first one a request carries is the one read (default:
    /// `[XForwardedFor]`). An empty list reads none.
    ///
    /// Name only the headers your proxies set or strip: a proxy passes a
    /// header it does not know through untouched, and then that header is
    /// whatever the client wrote.
    pub fn forwarded_headers(mut self, headers: impl IntoIterator<Item = ForwardedHeader>) -> Self {
        self.headers = headers.into_iter().collect();
        self.headers.dedup();
        self
    }

    /// How many leading bits of an IPv4 address make the key (default 32:
    /// each address is a client). Above 32 counts as 32.
    pub fn ipv4_prefix(mut self, len: u8) -> Self {
        self.v4_prefix = len.min(32);
        self
    }

    /// How many leading bits of an IPv6 address make the key (default 64:
    /// the addresses of one /64 are one client). Above 128 counts as 128.
    pub fn ipv6_prefix(mut self, len: u8) -> Self {
        self.v6_prefix = len.min(128);
        self
    }

    /// Reads the direct peer from the request extension of type `T`
    /// instead of a `SocketAddr` extension: `peer` returns a `SocketAddr`,
    /// or an `Option<SocketAddr>` when `T` may not know it. A request
    /// without a `T` has no peer ([`ClientKey::Unknown`]).
    ///
    /// With axum, serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()` and write:
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use seawall_core::key::ClientIp;
    /// # #[derive(Clone)]
    /// # struct ConnectInfo<T>(T); // axum::extract::ConnectInfo, as axum defines it
    /// let keys = ClientIp::new().peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
    /// ```
    ///
    /// ```
    /// use std::net::SocketAddr;
    ///
    /// use http::Request;
    /// use seawall_core::KeyFn;
    /// use seawall_core::key::ClientIp;
    ///
    /// #[derive(Clone)]
    /// struct Conn { remote: Option<SocketAddr> }
    ///
    /// let keys = ClientIp::new().peer_from(|c: &Conn| c.remote);
    /// let mut req = Request::get("/").body(()).unwrap();
    /// req.extensions_mut().insert(Conn { remote: "192.0.2.1:1".parse().ok() });
    /// assert_eq!(keys.key(&req).to_string(), "192.0.2.1");
    /// ```
    pub fn peer_from<T, R, F>(mut self, peer: F) -> Self
    where
        T: Send + Sync + 'static,
        R: Into<Option<SocketAddr>>,
        F: Fn(&T) -> R + Send + Sync + 'static,
    {
        self.peer = Some(Arc::new(move |ext: &Extensions| {
            ext.get::<T>().and_then(|t| peer(t).into())
        }));
        self
    }

    /// The key of a request whose direct peer is `peer` (`None` when it is
    /// not known) and whose headers are `headers`: what [`KeyFn::key`]
    /// gives once it has found the peer. For frameworks that hand out the
    /// peer another way.
    pub fn key_of(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientKey {
        let Some(peer) = peer.map(canonical) else {
            return ClientKey::Unknown;
        };
        let client = if self.trusts(peer) {
            self.forwarded(headers).unwrap_or(peer)
        } else {
            peer
        };
        ClientKey::Ip(self.network(client))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    fn network(&self, ip: IpAddr) -> IpNet {
        let prefix = match ip {
            IpAddr::V4(_) => self.v4_prefix,
            IpAddr::V6(_) => self.v6_prefix,
        };
        IpNet::masked(ip, prefix)
    }

    /// The client a trusted proxy names in the first configured header the
    /// request carries; `None` to key by the peer.
    fn forwarded(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let (kind, lines) = self.headers.iter().find_map(|&kind| {
            let mut lines = headers.get_all(kind.name()).iter().peekable();
            lines.peek()?;
            Some((kind, lines))
        })?;
        let mut entries = Entries::default();
        let mut bytes = 0usize;
        for (i, line) in lines.enumerate() {
            bytes += line.len();
            // Lines are capped like entries, so empty ones cost bounded work too.
            if bytes > MAX_HEADER_BYTES || i >= MAX_ENTRIES {
                return None;
            }
            let ok = match kind {
                ForwardedHeader::Forwarded => forwarded_elements(line.as_bytes(), &mut entries),
                ForwardedHeader::XForwardedFor | ForwardedHeader::XRealIp => {
                    plain_list(line.as_bytes(), &mut entries)
                }
            };
            if !ok {
                return None;
            }
        }
        let entries = &entries.items[..entries.len];
        for entry in entries.iter().rev() {
            match *entry {
                Some(ip) if self.trusts(ip) => {}
                Some(ip) => return Some(ip),
                None => return None,
            }
        }
        // Every address is a trusted proxy: the one farthest from us.
        entries.first().copied().flatten()
    }
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIp")
            .field("trusted_proxies", &self.trusted)
            .field("forwarded_headers", &self.headers)
            .field("ipv4_prefix", &self.v4_prefix)
            .field("ipv6_prefix", &self.v6_prefix)
            .field(
                "peer",
                &if self.peer.is_some() {
                    "custom"
                } else {
                    "SocketAddr"
                },
            )
            .finish()
    }
}

impl<B> KeyFn<Request<B>> for ClientIp {
    type Key = ClientKey;

    fn key(&self, req: &Request<B>) -> ClientKey {
        let peer = match &self.peer {
            Some(peer) => peer(req.extensions()),
            None => req.extensions().get::<SocketAddr>().copied(),
        };
        self.key_of(peer.map(|p| p.ip()), req.headers())
    }
}

/// The key [`ClientIp`] gives: the client's network, or no known peer.
///
/// Its `Display` is the address for a whole address (`192.0.2.1`, `::1`),
/// the network otherwise (`2001:db8:1:2::/64`), and `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The client's address masked to the configured prefix (IPv4 /32 and
    /// IPv6 /64 by default); an IPv4-mapped IPv6 address is its IPv4
    /// address.
    Ip(IpNet),
    /// The request carried no peer address: every such request has this
    /// one key, and so shares one budget.
    Unknown,
}

impl ClientKey {
    /// Whether this is [`ClientKey::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, ClientKey::Unknown)
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Ip(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            ClientKey::Ip(net) => write!(f, "{net}"),
            ClientKey::Unknown => f.write_str("unknown"),
        }
    }
}

/// An IP network in CIDR form: `10.0.0.0/8`, `2001:db8::/32`, or one
/// address (`192.0.2.1` is `192.0.2.1/32`).
///
/// Host bits below the prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
/// An IPv4-mapped IPv6 network of at least /96 is its IPv4 network, and
/// [`contains`](IpNet::contains) reads an IPv4-mapped address as IPv4, so
/// `::ffff:10.1.2.3` is in `10.0.0.0/8`.
///
/// ```
/// use seawall_core::key::IpNet;
///
/// let net: IpNet = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.200.0.1".parse().unwrap()));
/// assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpNet>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr`'s first `prefix_len` bits. Fails when
    /// `prefix_len` is over 32 for IPv4 or 128 for IPv6.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IpNet, IpNetError> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix_len > max {
            return Err(IpNetError(()));
        }
        let (addr, prefix_len) = match addr {
            IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix_len - 96),
                None => (addr, prefix_len),
            },
            _ => (addr, prefix_len),
        };
        Ok(IpNet::masked(addr, prefix_len))
    }

    /// `addr` with the bits below `prefix` cleared; `prefix` is in range.
    fn masked(addr: IpAddr, prefix: u8) -> IpNet {
        let addr = match addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        IpNet { addr, prefix }
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// How many leading bits make the network.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    fn max_prefix_len(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(_), ip @ IpAddr::V4(_)) | (IpAddr::V6(_), ip @ IpAddr::V6(_)) => {
                IpNet::masked(ip, self.prefix).addr == self.addr
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| IpNetError(()))?;
        let prefix = match prefix {
            None => match addr {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
            Some(p) if (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| IpNetError(()))?
            }
            Some(_) => return Err(IpNetError(())),
        };
        IpNet::new(addr, prefix)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

// The CIDR text, as written in configs and logs.
impl fmt::Debug for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// An [`IpNet`] that could not be built: not `address` or
/// `address/prefix`, or a prefix longer than the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetError(());

impl fmt::Display for IpNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid IP network: expected an address or address/prefix (prefix up to 32 for IPv4, 128 for IPv6)")
    }
}

impl std::error::Error for IpNetError {}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The entries of one forwarded header, left to right: an address, or
/// `None` for an entry the walk stops at.
struct Entries {
    items: [Option<IpAddr>; MAX_ENTRIES],
    len: usize,
}

impl Default for Entries {
    fn default() -> Self {
        Entries {
            items: [None; MAX_ENTRIES],
            len: 0,
        }
    }
}

impl Entries {
    /// Adds an entry; `false` when there are already `MAX_ENTRIES`.
    fn push(&mut self, entry: Option<IpAddr>) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = entry;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Reads one line of `X-Forwarded-For` or `X-Real-IP`; `false` when there
/// are too many entries. Empty entries are skipped, as the list rule says.
fn plain_list(line: &[u8], entries: &mut Entries) -> bool {
    line.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
        .all(|e| entries.push(node(e)))
}

/// Reads one line of `Forwarded`; `false` when there are too many entries.
/// Commas inside quoted strings do not split; a quote left open at the end
/// of the line makes the last element one the walk stops at.
fn forwarded_elements(line: &[u8], entries: &mut Entries) -> bool {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            if !push_element(&line[start..i], entries) {
                return false;
            }
            start = i + 1;
        }
    }
    let last = &line[start..];
    if quoted || escaped {
        return entries.push(None);
    }
    push_element(last, entries)
}

fn push_element(element: &[u8], entries: &mut Entries) -> bool {
    let element = trim_ows(element);
    element.is_empty() || entries.push(forwarded_for(element))
}

/// The address in the `for=` parameter of one `Forwarded` element; `None`
/// when it has none, more than one, or the element is not well formed.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_unquoted(element, b';') {
        let pair = trim_ows(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let mut buf = [0; MAX_NODE];
        let value = unquote(value, &mut buf)?;
        if name.eq_ignore_ascii_case(b"for") {
            if found.is_some() {
                return None;
            }
            found = Some(node(value));
        }
    }
    found.flatten()
}

/// `s` split at `sep` outside quoted strings; the quotes are balanced (the
/// caller checked).
fn split_unquoted(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    s.split(move |&b| {
        if escaped {
            escaped = false;
        } else if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == sep {
            return true;
        }
        false
    })
}

/// A parameter value: a token, or a quoted string unescaped into `buf`.
/// `None` when it is neither, or a quoted string longer than `buf` (no
/// node is that long; other parameters are only checked, not kept).
fn unquote<'a>(value: &'a [u8], buf: &'a mut [u8; MAX_NODE]) -> Option<&'a [u8]> {
    let Some(inner) = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
    else {
        return (!value.is_empty() && value.iter().all(|&b| is_tchar(b))).then_some(value);
    };
    let mut len = 0;
    let mut escaped = false;
    for &b in inner {
        // qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text; no other controls.
        if b != b'\t' && (b < 0x20 || b == 0x7f) {
            return None;
        }
        if !escaped && b == b'\\' {
            escaped = true;
            continue;
        }
        if !escaped && b == b'"' {
            return None;
        }
        escaped = false;
        // Too long for a node: still checked, but kept as unusable.
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
        }
        len += 1;
    }
    if escaped {
        return None;
    }
    Some(if len <= MAX_NODE { &buf[..len] } else { b"_" })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` (an obfuscated `:_port` too). `None` for
/// `unknown`, obfuscated names, zone ids and anything else.
fn node(s: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(s).ok()?;
    if s.len() > MAX_NODE {
        return None;
    }
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !after.is_empty() {
            port(after.strip_prefix(':')?)?;
        }
        IpAddr::V6(v6.parse().ok()?)
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else {
        let (v4, p) = s.split_once(':')?;
        port(p)?;
        IpAddr::V4(v4.parse().ok()?)
    };
    Some(canonical(ip))
}

/// A port: 1 to 5 digits up to 65535, or an obfuscated `_port`.
fn port(p: &str) -> Option<()> {
    if let Some(obf) = p.strip_prefix('_') {
        let ok = !obf.is_empty()
            && obf
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        return ok.then_some(());
    }
    let ok = (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    (ok && p.parse::<u16>().is_ok()).then_some(())
}
