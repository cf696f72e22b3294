//! Keys: how a keyed layer tells peers (or hosts, routes, tenants) apart, and
//! where it keeps their state.
//!
//! - [`KeyFn`] takes a key out of a request. Any `Fn(&Req) -> K` closure is
//!   one; [`ByAuthority`] (feature `http`) keys `http::Request`s by the peer
//!   they go to: its normalised host and port, never the userinfo, at most a
//!   253-byte name. [`ClientIp`] (feature `http`) keys requests a server
//!   receives by the client's address: the connection's peer, or behind
//!   proxies you name as trusted, the rightmost forwarded address that is
//!   not one of them; IPv6 grouped by /64.
//!   [`HeaderKey`] (feature `http`) keys them by a header's value (an API key,
//!   a tenant), shown as a fingerprint unless you say it is no secret;
//!   [`ByMethod`] by method. [`Pair`] makes one key of two: per client per
//!   route.
//! - [`KeyMap`] holds one value per key with the bounds every keyed seawall
//!   layer keeps: a capacity, and eviction of idle keys. It is sharded, so
//!   calls for different keys do not contend on one lock, and a lookup of an
//!   existing key takes one uncontended read lock and no allocation.
//!
//! ```
//! use seawall_core::KeyFn;
//!
//! struct Call { peer: u32, body: &'static str }
//!
//! let by_peer = |c: &Call| c.peer;
//! assert_eq!(by_peer.key(&Call { peer: 7, body: "ping" }), 7);
//! ```

mod map;

pub use map::{KeyHash, KeyHasher, KeyMap, KeyMapConfig, KeyMapFull};

use std::fmt;
use std::hash::Hash;

/// Shows text that came from a request or a peer (a key, an error message)
/// with its control characters escaped (`\r`, `\n`, `\u{1b}`), so that it
/// cannot forge a log line or a header. Writes as it formats: no allocation,
/// and nothing at all when a `tracing` event is filtered out.
///
/// ```
/// use seawall_core::key::Escaped;
///
/// assert_eq!(Escaped("t\r\nSet-Cookie: x").to_string(), "t\\r\\nSet-Cookie: x");
/// assert_eq!(Escaped("plain: ünïcode").to_string(), "plain: ünïcode");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escape<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escape<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    if c.is_control() {
                        write!(self.0, "{}", c.escape_default())?;
                    } else {
                        fmt::Write::write_char(self.0, c)?;
                    }
                }
                Ok(())
            }
        }
        fmt::write(&mut Escape(f), format_args!("{}", self.0))
    }
}

/// Takes the key of a keyed layer out of a request.
///
/// Implemented for every `Fn(&Req) -> K` where `K` is a valid key, and by
/// [`ByAuthority`] for `http::Request`s. Keys are shown in rejections and
/// stats, hence `Display`.
pub trait KeyFn<Req> {
    /// The key: cheap to clone, hashable, shown in errors and stats.
    type Key: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static;

    /// The key of `req`.
    fn key(&self, req: &Req) -> Self::Key;
}

impl<F, Req, K> KeyFn<Req> for F
where
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    type Key = K;

    fn key(&self, req: &Req) -> K {
        self(req)
    }
}

#[cfg(feature = "http")]
mod by_authority;
#[cfg(feature = "http")]
mod client_ip;
#[cfg(feature = "http")]
mod request;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use by_authority::{ByAuthority, Host};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use client_ip::{ClientIp, ClientKey, ForwardedHeader, IpNet, IpNetError};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use request::{
    ByMethod, HeaderKey, HeaderValueKey, INLINE_VALUE, MAX_VALUE_LEN, MethodKey, Value,
};

/// Two keys as one: per client per route, per tenant per method. Shown as
/// the two keys with a space between them.
///
/// As a [`KeyFn`], `Pair(a, b)` keys a request by both `a`'s and `b`'s key.
///
/// ```
/// use seawall_core::KeyFn;
/// use seawall_core::key::Pair;
///
/// struct Call { tenant: &'static str, route: &'static str }
///
/// let per_tenant_per_route = Pair(|c: &Call| c.tenant, |c: &Call| c.route);
/// let key = per_tenant_per_route.key(&Call { tenant: "acme", route: "/orders" });
/// assert_eq!(key, Pair("acme", "/orders"));
/// assert_eq!(key.to_string(), "acme /orders");
/// ```
///
/// With the `http` feature, the same with request keys:
/// `Pair(ClientIp::new(), ByMethod)`, `Pair(HeaderKey::new("x-tenant"), route)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Pair<A, B>(pub A, pub B);

impl<A: fmt::Display, B: fmt::Display> fmt::Display for Pair<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

impl<Req, A: KeyFn<Req>, B: KeyFn<Req>> KeyFn<Req> for Pair<A, B> {
    type Key = Pair<A::Key, B::Key>;

    fn key(&self, req: &Req) -> Self::Key {
        Pair(self.0.key(req), self.1.key(req))
    }
}
