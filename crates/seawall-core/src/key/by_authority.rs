use std::fmt;

use http::Request;
use http::uri::Authority;

use super::KeyFn;

/// Keys an `http::Request` by the peer it goes to: the URI's authority
/// (`host:port`), or else its `Host` header.
///
/// Client requests carry an absolute URI, so taking their key clones the
/// authority's shared bytes and allocates nothing. Server-side requests
/// usually have only a path; their key is parsed from the `Host` header,
/// which copies it. Requests with neither share the key [`Host::unknown`].
///
/// ```
/// use http::Request;
/// use seawall_core::KeyFn;
/// use seawall_core::key::ByAuthority;
///
/// let req = Request::get("http://10.0.0.2:8080/health").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&req).to_string(), "10.0.0.2:8080");
///
/// let req = Request::get("/health").header("host", "api.internal").body(()).unwrap();
/// assert_eq!(ByAuthority.key(&req).to_string(), "api.internal");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByAuthority;

/// The key [`ByAuthority`] gives: a peer's authority, or none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host(Option<Authority>);

impl Host {
    /// The key of requests that name no peer.
    pub fn unknown() -> Self {
        Host(None)
    }

    /// The peer's authority, if the request named one.
    pub fn authority(&self) -> Option<&Authority> {
        self.0.as_ref()
    }
}

impl From<Authority> for Host {
    fn from(a: Authority) -> Self {
        Host(Some(a))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(a) => f.write_str(a.as_str()),
            None => f.write_str("unknown"),
        }
    }
}

impl<B> KeyFn<Request<B>> for ByAuthority {
    type Key = Host;

    fn key(&self, req: &Request<B>) -> Host {
        if let Some(a) = req.uri().authority() {
            return Host(Some(a.clone()));
        }
        let from_header = req
            .headers()
            .get(http::header::HOST)
            .and_then(|v| Authority::try_from(v.as_bytes()).ok());
        Host(from_header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Host::unknown().to_string(), "unknown");
        let req = Request::get("/x")
            .header("host", "bad host with spaces")
            .body(())
            .unwrap();
        assert_eq!(ByAuthority.key(&req), Host::unknown());
        assert!(ByAuthority.key(&req).authority().is_none());
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
}
