//! Keys from what a request says about itself: a header value, the method,
//! and pairs of keys.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

use foldhash::fast::FixedState;
use http::header::HeaderName;
use http::{Method, Request};

#[cfg(test)]
use super::Pair;
use super::{Escaped, KeyFn};

/// The longest header value kept as itself in a [`HeaderValueKey`]; a longer
/// one (up to [`HeaderKey::max_len`]) is kept as a 128-bit digest.
pub const INLINE_VALUE: usize = 48;

/// The largest [`HeaderKey::max_len`]: 8 KiB, a common limit on one header.
pub const MAX_VALUE_LEN: usize = 8192;

/// Keys an `http::Request` by the value of one header: an API key, a tenant
/// id, a user id set by an authenticating proxy.
///
/// The value is whatever the client sent, so every case is a key of its own
/// and none costs memory the client chooses:
///
/// - **Present**: the value with surrounding spaces trimmed. A value of up to
///   48 bytes is kept as itself, inline (no allocation); a longer one, up to
///   [`max_len`](HeaderKey::max_len) (256 by default), as a 128-bit digest
///   keyed by a per-process random seed, so two clients collide only by
///   chance (about one in 2⁶⁴ for four billion values).
/// - **Absent** (and empty): the one key [`HeaderValueKey::Absent`], which
///   every such request shares, so anonymous clients share one budget. To key
///   them by address instead, combine with [`ClientIp`](super::ClientIp) in
///   a closure (below); to refuse them, check
///   [`is_absent`](HeaderValueKey::is_absent) in a `tower::filter` or an
///   axum middleware in front of the keyed layer.
/// - **Invalid**: longer than `max_len`, or not visible ASCII, or sent more
///   than once: the one key [`HeaderValueKey::Invalid`], shared by every such
///   request. A client cannot escape its limit by sending garbage; it only
///   joins everyone else who does.
///
/// **Values are secrets until you say otherwise.** API keys must not reach
/// logs, metrics or error messages, so a key shows as a fingerprint
/// (`key:4f1c9a02`, stable for the life of the process) unless the
/// `HeaderKey` was made with [`reveal`](HeaderKey::reveal) (for values that
/// are not secret, such as a tenant id).
///
/// ```
/// use http::Request;
/// use seawall_core::KeyFn;
/// use seawall_core::key::{HeaderKey, HeaderValueKey};
///
/// let tenants = HeaderKey::new("x-tenant").reveal(true);
/// let req = Request::get("/").header("x-tenant", " acme ").body(()).unwrap();
/// assert_eq!(tenants.key(&req).to_string(), "acme");
///
/// let api_keys = HeaderKey::new("x-api-key");
/// let req = Request::get("/").header("x-api-key", "sk_live_0123").body(()).unwrap();
/// let key = api_keys.key(&req);
/// assert!(key.to_string().starts_with("key:"), "never the secret itself");
///
/// let anonymous = Request::get("/").body(()).unwrap();
/// assert_eq!(api_keys.key(&anonymous), HeaderValueKey::Absent);
/// ```
///
/// Anonymous clients by address, the others by API key:
///
/// ```
/// use std::net::SocketAddr;
///
/// use http::Request;
/// use seawall_core::KeyFn;
/// use seawall_core::key::{ClientIp, HeaderKey, Pair};
///
/// let api_keys = HeaderKey::new("x-api-key");
/// let clients = ClientIp::new();
/// // The address only matters when there is no API key.
/// let key_fn = move |req: &Request<()>| {
///     let key = api_keys.key(req);
///     let ip = if key.is_absent() { Some(clients.key(req)) } else { None };
///     Pair(key, ip.map_or_else(String::new, |ip| ip.to_string()))
/// };
/// let mut req = Request::get("/").body(()).unwrap();
/// req.extensions_mut().insert("192.0.2.1:4000".parse::<SocketAddr>().unwrap());
/// assert_eq!(key_fn.key(&req).to_string(), "absent 192.0.2.1");
/// ```
#[derive(Clone)]
pub struct HeaderKey {
    name: HeaderName,
    max_len: usize,
    reveal: bool,
}

impl HeaderKey {
    /// Keys requests by the header `name`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name; it is a constant in the code
    /// that builds the layer, like `HeaderName::from_static`. Use
    /// [`from_name`](HeaderKey::from_name) for a name read from config.
    pub fn new(name: &'static str) -> Self {
        Self::from_name(HeaderName::from_static(name))
    }

    /// Keys requests by the header `name`.
    pub fn from_name(name: HeaderName) -> Self {
        HeaderKey {
            name,
            max_len: 256,
            reveal: false,
        }
    }

    /// The longest value read as a key (default 256 bytes, at most
    /// [`MAX_VALUE_LEN`]; larger values are taken as that). A longer value
    /// is [`HeaderValueKey::Invalid`].
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len.min(MAX_VALUE_LEN);
        self
    }

    /// Whether keys show their value (`true`) or a fingerprint of it
    /// (`false`, the default: the value may be a secret). Only values of up
    /// to 48 bytes can be shown; longer ones always show their fingerprint.
    pub fn reveal(mut self, reveal: bool) -> Self {
        self.reveal = reveal;
        self
    }

    /// The key of a request carrying `values` for the header (usually zero
    /// or one).
    fn key_of<'a>(
        &self,
        mut values: impl Iterator<Item = &'a http::HeaderValue>,
    ) -> HeaderValueKey {
        let Some(value) = values.next() else {
            return HeaderValueKey::Absent;
        };
        if values.next().is_some() {
            return HeaderValueKey::Invalid;
        }
        let bytes = value.as_bytes();
        if bytes.len() > self.max_len + 64 {
            // Too long even with generous padding: do not scan it.
            return HeaderValueKey::Invalid;
        }
        let bytes = bytes.trim_ascii();
        if bytes.is_empty() {
            return HeaderValueKey::Absent;
        }
        if bytes.len() > self.max_len || !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return HeaderValueKey::Invalid;
        }
        if bytes.len() <= INLINE_VALUE {
            let mut inline = [0u8; INLINE_VALUE];
            inline[..bytes.len()].copy_from_slice(bytes);
            HeaderValueKey::Value(Value {
                // bytes.len() <= INLINE_VALUE = 48 fits in a u8.
                len: bytes.len() as u8,
                reveal: self.reveal,
                bytes: inline,
            })
        } else {
            HeaderValueKey::Digest(digest(bytes))
        }
    }
}

impl fmt::Debug for HeaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderKey")
            .field("name", &self.name)
            .field("max_len", &self.max_len)
            .field("reveal", &self.reveal)
            .finish()
    }
}

impl<B> KeyFn<Request<B>> for HeaderKey {
    type Key = HeaderValueKey;

    fn key(&self, req: &Request<B>) -> HeaderValueKey {
        self.key_of(req.headers().get_all(&self.name).iter())
    }
}

/// The key [`HeaderKey`] gives.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderValueKey {
    /// A value of up to 48 bytes, kept as itself.
    Value(Value),
    /// A longer value, kept as a 128-bit digest.
    Digest(u128),
    /// The request did not carry the header (or carried it empty): one key
    /// for all such requests.
    Absent,
    /// The header was too long, not visible ASCII, or repeated: one key for
    /// all such requests.
    Invalid,
}

impl HeaderValueKey {
    /// Whether this is [`HeaderValueKey::Absent`].
    pub fn is_absent(&self) -> bool {
        matches!(self, HeaderValueKey::Absent)
    }

    /// Whether this is [`HeaderValueKey::Invalid`].
    pub fn is_invalid(&self) -> bool {
        matches!(self, HeaderValueKey::Invalid)
    }
}

impl fmt::Display for HeaderValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValueKey::Value(value) if value.reveal => {
                // Visible ASCII and spaces only (checked when it was made);
                // escaped anyway, in case that check ever changes.
                write!(f, "{}", Escaped(value.as_str()))
            }
            HeaderValueKey::Value(value) => {
                write!(f, "key:{:08x}", fingerprint(value.as_bytes()) as u32)
            }
            HeaderValueKey::Digest(digest) => write!(f, "key:{:08x}", *digest as u32),
            HeaderValueKey::Absent => f.write_str("absent"),
            HeaderValueKey::Invalid => f.write_str("invalid"),
        }
    }
}

impl fmt::Debug for HeaderValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug shows what Display shows: never a secret value.
        write!(f, "HeaderValueKey({self})")
    }
}

/// A short header value, inline. Compared and hashed by its bytes.
#[derive(Clone, Copy)]
pub struct Value {
    len: u8,
    reveal: bool,
    bytes: [u8; INLINE_VALUE],
}

impl Value {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn as_str(&self) -> &str {
        // Only visible ASCII and spaces are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// The per-process seeds of fingerprints and digests.
fn seeds() -> &'static [FixedState; 3] {
    static SEEDS: OnceLock<[FixedState; 3]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let seed = crate::rand::random_seed();
        [0, 1, 2].map(|n| FixedState::with_seed(crate::rand::derive(seed, n)))
    })
}

fn fingerprint(bytes: &[u8]) -> u64 {
    seeds()[0].hash_one(bytes)
}

fn digest(bytes: &[u8]) -> u128 {
    let [_, high, low] = seeds();
    (u128::from(high.hash_one(bytes)) << 64) | u128::from(low.hash_one(bytes))
}

/// Keys an `http::Request` by its method: the nine standard methods, and
/// one [`MethodKey::Other`] for every extension method (a client could
/// otherwise make up a new method, and key, per request).
///
/// ```
/// use http::Request;
/// use seawall_core::KeyFn;
/// use seawall_core::key::{ByMethod, MethodKey};
///
/// let req = Request::post("/orders").body(()).unwrap();
/// assert_eq!(ByMethod.key(&req), MethodKey::Post);
/// let req = Request::builder().method("BREW").body(()).unwrap();
/// assert_eq!(ByMethod.key(&req).to_string(), "OTHER");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByMethod;

impl<B> KeyFn<Request<B>> for ByMethod {
    type Key = MethodKey;

    fn key(&self, req: &Request<B>) -> MethodKey {
        MethodKey::from(req.method())
    }
}

/// The key [`ByMethod`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum MethodKey {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    /// Any extension method.
    Other,
}

impl From<&Method> for MethodKey {
    fn from(method: &Method) -> Self {
        match *method {
            Method::GET => MethodKey::Get,
            Method::HEAD => MethodKey::Head,
            Method::POST => MethodKey::Post,
            Method::PUT => MethodKey::Put,
            Method::DELETE => MethodKey::Delete,
            Method::CONNECT => MethodKey::Connect,
            Method::OPTIONS => MethodKey::Options,
            Method::TRACE => MethodKey::Trace,
            Method::PATCH => MethodKey::Patch,
            _ => MethodKey::Other,
        }
    }
}

impl fmt::Display for MethodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MethodKey::Get => "GET",
            MethodKey::Head => "HEAD",
            MethodKey::Post => "POST",
            MethodKey::Put => "PUT",
            MethodKey::Delete => "DELETE",
            MethodKey::Connect => "CONNECT",
            MethodKey::Options => "OPTIONS",
            MethodKey::Trace => "TRACE",
            MethodKey::Patch => "PATCH",
            MethodKey::Other => "OTHER",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(values: &[&[u8]]) -> Request<()> {
        let mut req = Request::get("/").body(()).unwrap();
        for v in values {
            req.headers_mut()
                .append("x-api-key", http::HeaderValue::from_bytes(v).unwrap());
        }
        req
    }

    #[test]
    fn each_hostile_shape_has_one_shared_key() {
        let keys = HeaderKey::new("x-api-key").max_len(64);
        assert_eq!(keys.key(&req(&[])), HeaderValueKey::Absent);
        assert_eq!(keys.key(&req(&[b"   "])), HeaderValueKey::Absent);
        assert_eq!(keys.key(&req(&[b"a", b"b"])), HeaderValueKey::Invalid);
        assert_eq!(keys.key(&req(&[&[b'x'; 65]])), HeaderValueKey::Invalid);
        assert_eq!(keys.key(&req(&[&[b'x'; 10_000]])), HeaderValueKey::Invalid);
        assert_eq!(keys.key(&req(&["ünï".as_bytes()])), HeaderValueKey::Invalid);
        assert_eq!(keys.key(&req(&[b"a\tb"])), HeaderValueKey::Invalid);
    }

    #[test]
    fn values_are_compared_whole_and_trimmed() {
        let keys = HeaderKey::new("x-api-key");
        assert_eq!(keys.key(&req(&[b" k1 "])), keys.key(&req(&[b"k1"])));
        assert_ne!(keys.key(&req(&[b"k1"])), keys.key(&req(&[b"k2"])));
        // Up to 48 bytes inline, then a digest; both exact in practice.
        let long_a = [b'a'; 100];
        let mut long_b = long_a;
        long_b[99] = b'b';
        let a = keys.key(&req(&[&long_a]));
        assert!(matches!(a, HeaderValueKey::Digest(_)));
        assert_eq!(a, keys.key(&req(&[&long_a])));
        assert_ne!(a, keys.key(&req(&[&long_b])));
        let at_inline = keys.key(&req(&[&[b'c'; INLINE_VALUE]]));
        assert!(matches!(at_inline, HeaderValueKey::Value(_)));
    }

    #[test]
    fn secrets_never_show() {
        let keys = HeaderKey::new("x-api-key");
        for value in [&b"sk_live_secret"[..], &[b's'; 100][..]] {
            let key = keys.key(&req(&[value]));
            let shown = format!("{key} {key:?}");
            assert!(
                !shown.contains("secret") && !shown.contains("sss"),
                "{shown}"
            );
            assert!(key.to_string().starts_with("key:"));
        }
        // The same value has the same fingerprint; another, another.
        let a = keys.key(&req(&[b"one"])).to_string();
        assert_eq!(a, keys.key(&req(&[b"one"])).to_string());
        assert_ne!(a, keys.key(&req(&[b"two"])).to_string());
        // Revealed values show themselves; reveal does not change equality.
        let shown = HeaderKey::new("x-api-key").reveal(true);
        assert_eq!(shown.key(&req(&[b"acme"])).to_string(), "acme");
        assert_eq!(shown.key(&req(&[b"acme"])), keys.key(&req(&[b"acme"])));
    }

    #[test]
    fn max_len_is_capped() {
        let keys = HeaderKey::new("x-api-key").max_len(usize::MAX);
        assert_eq!(keys.max_len, MAX_VALUE_LEN);
        let value = vec![b'v'; MAX_VALUE_LEN + 1];
        assert_eq!(keys.key(&req(&[&value])), HeaderValueKey::Invalid);
        assert!(matches!(
            keys.key(&req(&[&value[..MAX_VALUE_LEN]])),
            HeaderValueKey::Digest(_)
        ));
    }

    #[test]
    fn extension_methods_share_one_key() {
        for m in ["BREW", "X-ANYTHING", "get"] {
            let req = Request::builder().method(m).body(()).unwrap();
            assert_eq!(ByMethod.key(&req), MethodKey::Other);
        }
        let req = Request::patch("/").body(()).unwrap();
        assert_eq!(ByMethod.key(&req).to_string(), "PATCH");
    }

    #[test]
    fn keys_stay_small() {
        // Per-key state budget: a breaker or budget key at most 100 bytes.
        assert!(std::mem::size_of::<HeaderValueKey>() <= 64);
        assert!(std::mem::size_of::<Pair<HeaderValueKey, MethodKey>>() <= 100);
    }
}
