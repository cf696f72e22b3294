//! `ClientIp` against what a hostile client can put in a request: spoofed
//! forwarded headers, garbage, huge headers, odd address forms.
#![cfg(feature = "http")]

use std::net::{IpAddr, SocketAddr};

use http::{HeaderValue, Request};
use proptest::prelude::*;
use seawall_core::KeyFn;
use seawall_core::key::{ClientIp, ClientKey, ForwardedHeader, IpNet};

const PROXY: &str = "10.0.0.1:443";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn behind_proxies() -> ClientIp {
    ClientIp::new().trusted_proxies([net("10.0.0.0/8"), net("fd00::/8")])
}

fn request(peer: Option<&str>, headers: &[(&str, &[u8])]) -> Request<()> {
    let mut req = Request::get("/").body(()).unwrap();
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(peer) = peer {
        req.extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
    }
    req
}

fn key(keys: &ClientIp, peer: &str, headers: &[(&str, &str)]) -> String {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    keys.key(&request(Some(peer), &headers)).to_string()
}

fn xff(keys: &ClientIp, value: &str) -> String {
    key(keys, PROXY, &[("x-forwarded-for", value)])
}

fn fwd(keys: &ClientIp, value: &str) -> String {
    let keys = keys.clone().forwarded_headers([ForwardedHeader::Forwarded]);
    key(&keys, PROXY, &[("forwarded", value)])
}

#[test]
fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
    let spoof = [
        ("x-forwarded-for", "1.2.3.4"),
        ("forwarded", "for=1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
    ];
    let all = [
        ForwardedHeader::Forwarded,
        ForwardedHeader::XForwardedFor,
        ForwardedHeader::XRealIp,
    ];
    // No trusted proxies at all: headers are never read, even from 10/8.
    let none = ClientIp::new().forwarded_headers(all);
    assert_eq!(key(&none, PROXY, &spoof), "10.0.0.1");
    assert_eq!(key(&none, "192.0.2.7:1", &spoof), "192.0.2.7");
    // Trusted proxies, but this peer is not one of them.
    let keys = behind_proxies().forwarded_headers(all);
    assert_eq!(key(&keys, "192.0.2.7:1", &spoof), "192.0.2.7");
    // A client that claims to be a trusted proxy changes nothing.
    assert_eq!(
        key(&keys, "192.0.2.7:1", &[("x-forwarded-for", "10.0.0.9")]),
        "192.0.2.7"
    );
}

#[test]
fn a_chain_of_proxies_gives_the_rightmost_untrusted_address() {
    let keys = behind_proxies();
    // client 203.0.113.9 -> 10.0.0.5 -> 10.0.0.1 (peer); the client
    // prepended a lie, 1.1.1.1.
    assert_eq!(xff(&keys, "1.1.1.1, 203.0.113.9, 10.0.0.5"), "203.0.113.9");
    assert_eq!(xff(&keys, "203.0.113.9"), "203.0.113.9");
    // Several header lines are one list, in order.
    let two_lines = request(
        Some(PROXY),
        &[
            ("x-forwarded-for", b"1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", b"10.0.0.5"),
        ],
    );
    assert_eq!(keys.key(&two_lines).to_string(), "203.0.113.9");
    // Garbage left of the answer is never reached.
    assert_eq!(xff(&keys, "garbage, <script>, 203.0.113.9"), "203.0.113.9");
    // Every address a trusted proxy: the leftmost.
    assert_eq!(xff(&keys, "10.9.9.9, 10.0.0.5"), "10.9.9.9");
    // Forwarded: the same walk.
    assert_eq!(
        fwd(
            &keys,
            "for=1.1.1.1, for=203.0.113.9;proto=https, for=10.0.0.5"
        ),
        "203.0.113.9"
    );
    // A trusted proxy written as an IPv4-mapped address is still trusted.
    assert_eq!(xff(&keys, "203.0.113.9, ::ffff:10.0.0.5"), "203.0.113.9");
}

#[test]
fn absent_or_unreadable_headers_fall_back_to_the_peer() {
    let keys = behind_proxies();
    assert_eq!(key(&keys, PROXY, &[]), "10.0.0.1");
    for bad in [
        "",
        " , ,",
        "garbage",
        "203.0.113.9, garbage",
        "unknown",
        "203.0.113.9, unknown",
        "_hidden",
        "999.1.1.1",
        "01.2.3.4",
        "1.2.3.4:99999",
        "1.2.3.4:",
        "[2001:db8::1",
        "2001:db8::1]",
        "fe80::1%eth0",
        "[fe80::1%eth0]:80",
        "1.2.3.4 5.6.7.8",
    ] {
        assert_eq!(xff(&keys, bad), "10.0.0.1", "{bad:?}");
    }
    // X-Forwarded-For is the default header; the others need naming.
    assert_eq!(
        key(&keys, PROXY, &[("forwarded", "for=203.0.113.9")]),
        "10.0.0.1"
    );
    assert_eq!(
        key(&keys, PROXY, &[("x-real-ip", "203.0.113.9")]),
        "10.0.0.1"
    );
}

#[test]
fn non_utf8_bytes_are_not_addresses() {
    let keys = behind_proxies();
    let req = request(Some(PROXY), &[("x-forwarded-for", b"203.0.113.9\xff")]);
    assert_eq!(keys.key(&req).to_string(), "10.0.0.1");
    // Left of the answer, they do not matter.
    let req = request(
        Some(PROXY),
        &[("x-forwarded-for", b"\xff\xfe, 203.0.113.9")],
    );
    assert_eq!(keys.key(&req).to_string(), "203.0.113.9");
    let keys = keys.forwarded_headers([ForwardedHeader::Forwarded]);
    let req = request(Some(PROXY), &[("forwarded", b"for=\"\xff\"")]);
    assert_eq!(keys.key(&req).to_string(), "10.0.0.1");
}

#[test]
fn huge_headers_fall_back_to_the_peer() {
    let keys = behind_proxies();
    // 10 000 entries: over the entry cap, not read.
    let many = vec!["203.0.113.9"; 10_000].join(",");
    assert_eq!(xff(&keys, &many), "10.0.0.1");
    // 32 entries are read, 33 are not.
    let at_cap = vec!["203.0.113.9"; 32].join(",");
    assert_eq!(xff(&keys, &at_cap), "203.0.113.9");
    let over_cap = vec!["203.0.113.9"; 33].join(",");
    assert_eq!(xff(&keys, &over_cap), "10.0.0.1");
    // Over the byte cap, in one entry or in padding.
    assert_eq!(
        xff(&keys, &format!("{}, 203.0.113.9", "a".repeat(5000))),
        "10.0.0.1"
    );
    assert_eq!(
        xff(&keys, &format!("203.0.113.9{}", " ".repeat(5000))),
        "10.0.0.1"
    );
    // Spread over many lines: the caps count all lines together.
    let lines: Vec<(&str, &[u8])> = (0..40)
        .map(|_| ("x-forwarded-for", b"203.0.113.9".as_slice()))
        .collect();
    assert_eq!(
        keys.key(&request(Some(PROXY), &lines)).to_string(),
        "10.0.0.1"
    );
    // 10 000 empty lines: over the line cap, not read.
    let empty: Vec<(&str, &[u8])> = (0..10_000)
        .map(|_| ("x-forwarded-for", b"".as_slice()))
        .collect();
    assert_eq!(
        keys.key(&request(Some(PROXY), &empty)).to_string(),
        "10.0.0.1"
    );
    let fwd_many = vec!["for=203.0.113.9"; 10_000].join(",");
    assert_eq!(fwd(&keys, &fwd_many), "10.0.0.1");
}

#[test]
fn ipv6_forms_are_read() {
    let keys = behind_proxies().ipv6_prefix(128);
    assert_eq!(xff(&keys, "2001:db8::1"), "2001:db8::1");
    assert_eq!(xff(&keys, "[2001:db8::1]"), "2001:db8::1");
    assert_eq!(xff(&keys, "[2001:db8::1]:4711"), "2001:db8::1");
    assert_eq!(xff(&keys, "[2001:DB8:0:0::1]"), "2001:db8::1");
    assert_eq!(xff(&keys, "203.0.113.9:4711"), "203.0.113.9");
    // Zone ids are rejected: a link-local scope names no client.
    assert_eq!(xff(&keys, "[fe80::1%25eth0]"), "10.0.0.1");
    assert_eq!(fwd(&keys, "for=\"[2001:db8::1]:4711\""), "2001:db8::1");
    assert_eq!(fwd(&keys, "for=\"[2001:db8::1]\""), "2001:db8::1");
    assert_eq!(fwd(&keys, "for=\"[2001:db8::1]:_port\""), "2001:db8::1");
    assert_eq!(fwd(&keys, "for=\"203.0.113.9:80\""), "203.0.113.9");
    // Unquoted, `[` and `:` are not token characters (RFC 7239 §6).
    assert_eq!(fwd(&keys, "for=[2001:db8::1]"), "10.0.0.1");
    assert_eq!(fwd(&keys, "for=\"[fe80::1%eth0]\""), "10.0.0.1");
    // A trusted IPv6 proxy is skipped like an IPv4 one.
    assert_eq!(
        key(
            &keys,
            "[fd00::1]:443",
            &[("x-forwarded-for", "2001:db8::1, fd00::2")]
        ),
        "2001:db8::1"
    );
}

#[test]
fn forwarded_syntax() {
    let keys = behind_proxies();
    // Parameter names in any case, other parameters around `for`.
    assert_eq!(fwd(&keys, "For=203.0.113.9"), "203.0.113.9");
    assert_eq!(fwd(&keys, "FOR=203.0.113.9"), "203.0.113.9");
    assert_eq!(
        fwd(
            &keys,
            "proto=https;For=\"203.0.113.9\";by=10.0.0.1;host=\"a.example\""
        ),
        "203.0.113.9"
    );
    // Quoted strings: escapes are read, commas and semicolons inside do not split.
    assert_eq!(fwd(&keys, "for=\"203.0.113.\\9\""), "203.0.113.9");
    assert_eq!(
        fwd(&keys, "for=203.0.113.9;host=\"a,b;c\\\"d\""),
        "203.0.113.9"
    );
    assert_eq!(
        fwd(&keys, "for=\"1.1.1.1, for=2.2.2.2\", for=203.0.113.9"),
        "203.0.113.9"
    );
    // An open quote swallows the rest of its line: that element ends the walk.
    assert_eq!(fwd(&keys, "for=\"1.1.1.1, for=203.0.113.9"), "10.0.0.1");
    // ...but not the next line, which a proxy appended.
    let keys_fwd = keys.clone().forwarded_headers([ForwardedHeader::Forwarded]);
    let req = request(
        Some(PROXY),
        &[
            ("forwarded", b"for=\"1.1.1.1"),
            ("forwarded", b"for=203.0.113.9"),
        ],
    );
    assert_eq!(keys_fwd.key(&req).to_string(), "203.0.113.9");
    // Obfuscated and unknown nodes end the walk (RFC 7239 §6.2, §6.3).
    for stop in [
        "for=unknown",
        "for=_hidden",
        "for=\"_SEVKISEK\"",
        "for=203.0.113.9, for=_hidden",
        "for=203.0.113.9, for=unknown, for=10.0.0.5",
    ] {
        assert_eq!(fwd(&keys, stop), "10.0.0.1", "{stop:?}");
    }
    // Left of the answer, they are never reached.
    assert_eq!(fwd(&keys, "for=_hidden, for=203.0.113.9"), "203.0.113.9");
    // Malformed elements end the walk.
    for bad in [
        "for=203.0.113.9;for=198.51.100.1",
        "proto=https",
        "for",
        "for=",
        "for =203.0.113.9",
        "for=203.0.113.9;",
        "for=\"203.0.113.9\"x",
        "for=\"203.0.113.9",
        "for=\"203.0.113.9\\",
        "f or=203.0.113.9",
        "for=203.0.113.9:80",
    ] {
        assert_eq!(fwd(&keys, bad), "10.0.0.1", "{bad:?}");
    }
    // Whitespace around elements and pairs is allowed.
    assert_eq!(
        fwd(&keys, "  for=1.1.1.1 ,\tfor=203.0.113.9 ; proto=http "),
        "203.0.113.9"
    );
}

#[test]
fn the_first_configured_header_present_is_the_one_read() {
    let keys = behind_proxies().forwarded_headers([
        ForwardedHeader::Forwarded,
        ForwardedHeader::XForwardedFor,
        ForwardedHeader::XRealIp,
    ]);
    let both = [
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=203.0.113.9"),
    ];
    assert_eq!(key(&keys, PROXY, &both), "203.0.113.9");
    assert_eq!(
        key(&keys, PROXY, &[("x-forwarded-for", "198.51.100.1")]),
        "198.51.100.1"
    );
    assert_eq!(
        key(&keys, PROXY, &[("x-real-ip", "198.51.100.2")]),
        "198.51.100.2"
    );
    // Present but unreadable: the peer, not the next header.
    let bad_first = [
        ("forwarded", "for=unknown"),
        ("x-forwarded-for", "198.51.100.1"),
    ];
    assert_eq!(key(&keys, PROXY, &bad_first), "10.0.0.1");
    // No headers named: none read.
    let none = behind_proxies().forwarded_headers([]);
    assert_eq!(key(&none, PROXY, &both), "10.0.0.1");
}

#[test]
fn ipv6_is_grouped_by_prefix() {
    let keys = ClientIp::new();
    let a = key(&keys, "[2001:db8:1:2::1]:1", &[]);
    let b = key(&keys, "[2001:db8:1:2:ffff:ffff:ffff:ffff]:2", &[]);
    let c = key(&keys, "[2001:db8:1:3::1]:1", &[]);
    assert_eq!(a, b);
    assert_eq!(a, "2001:db8:1:2::/64");
    assert_ne!(a, c);
    // The keys themselves compare, not just their text.
    let k = |peer: &str| keys.key(&request(Some(peer), &[]));
    assert_eq!(k("[2001:db8:1:2::1]:1"), k("[2001:db8:1:2::2]:1"));
    assert_ne!(k("[2001:db8:1:2::1]:1"), k("[2001:db8:1:3::1]:1"));
    // Configurable: /48, /128.
    let wide = ClientIp::new().ipv6_prefix(48);
    assert_eq!(key(&wide, "[2001:db8:1:ffff::1]:1", &[]), "2001:db8:1::/48");
    let exact = ClientIp::new().ipv6_prefix(200);
    assert_eq!(key(&exact, "[2001:db8::1]:1", &[]), "2001:db8::1");
    // Through a proxy, the forwarded address is grouped the same way.
    assert_eq!(
        xff(&behind_proxies(), "2001:db8:1:2::1"),
        "2001:db8:1:2::/64"
    );
    // IPv4: whole addresses by default, a prefix when asked.
    assert_eq!(key(&keys, "192.0.2.77:1", &[]), "192.0.2.77");
    let v4 = ClientIp::new().ipv4_prefix(24);
    assert_eq!(key(&v4, "192.0.2.77:1", &[]), "192.0.2.0/24");
    assert_eq!(
        key(&ClientIp::new().ipv4_prefix(0), "192.0.2.77:1", &[]),
        "0.0.0.0/0"
    );
    assert_eq!(
        key(&ClientIp::new().ipv6_prefix(0), "[2001:db8::1]:1", &[]),
        "::/0"
    );
}

#[test]
fn ipv4_mapped_addresses_are_ipv4() {
    let keys = ClientIp::new();
    // Not grouped by /64 with every other IPv4 client.
    assert_eq!(key(&keys, "[::ffff:192.0.2.1]:1", &[]), "192.0.2.1");
    assert_ne!(
        key(&keys, "[::ffff:192.0.2.1]:1", &[]),
        key(&keys, "[::ffff:192.0.2.2]:1", &[])
    );
    assert_eq!(
        keys.key(&request(Some("[::ffff:192.0.2.1]:1"), &[])),
        keys.key(&request(Some("192.0.2.1:2"), &[]))
    );
    // A mapped peer is trusted by its IPv4 network; a mapped client is IPv4.
    assert_eq!(
        key(
            &behind_proxies(),
            "[::ffff:10.0.0.1]:1",
            &[("x-forwarded-for", "::ffff:203.0.113.9")]
        ),
        "203.0.113.9"
    );
    // A mapped network is its IPv4 network.
    assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
}

#[test]
fn no_peer_is_the_one_unknown_key() {
    let keys = behind_proxies();
    let a = keys.key(&request(None, &[("x-forwarded-for", b"203.0.113.9")]));
    let b = keys.key(&request(None, &[]));
    assert_eq!(a, ClientKey::Unknown);
    assert_eq!(a, b);
    assert!(a.is_unknown());
    assert_eq!(a.to_string(), "unknown");
    // A custom peer source that finds nothing: unknown too.
    #[derive(Clone)]
    struct Conn(Option<SocketAddr>);
    let custom = ClientIp::new().peer_from(|c: &Conn| c.0);
    assert!(custom.key(&request(None, &[])).is_unknown());
    let mut req = request(Some("192.0.2.1:1"), &[]);
    assert!(custom.key(&req).is_unknown(), "reads Conn, not SocketAddr");
    req.extensions_mut().insert(Conn(None));
    assert!(custom.key(&req).is_unknown());
    req.extensions_mut()
        .insert(Conn("192.0.2.9:1".parse().ok()));
    assert_eq!(custom.key(&req).to_string(), "192.0.2.9");
    // A closure returning a bare SocketAddr, as axum's ConnectInfo gives.
    #[derive(Clone)]
    struct ConnectInfo<T>(T);
    let axum_like = ClientIp::new().peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
    req.extensions_mut().insert(ConnectInfo(
        "[2001:db8::5]:1".parse::<SocketAddr>().unwrap(),
    ));
    assert_eq!(axum_like.key(&req).to_string(), "2001:db8::/64");
}

#[test]
fn key_of_works_without_a_request() {
    let keys = behind_proxies();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(
        keys.key_of(Some(proxy), &headers).to_string(),
        "203.0.113.9"
    );
    assert_eq!(keys.key_of(None, &headers), ClientKey::Unknown);
    let shown = format!("{keys:?}");
    assert!(
        shown.contains("10.0.0.0/8") && shown.contains("XForwardedFor"),
        "{shown}"
    );
}

#[test]
fn ip_nets_parse_strictly() {
    assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("10.1.2.3").to_string(), "10.1.2.3/32");
    assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
    assert_eq!(net("::1").prefix_len(), 128);
    assert_eq!(
        net("0.0.0.0/0").addr(),
        "0.0.0.0".parse::<IpAddr>().unwrap()
    );
    assert!(net("0.0.0.0/0").contains("255.1.2.3".parse().unwrap()));
    assert!(!net("0.0.0.0/0").contains("::1".parse().unwrap()));
    assert!(net("::/0").contains("2001:db8::1".parse().unwrap()));
    assert!(!net("10.0.0.0/8").contains("fd00::1".parse().unwrap()));
    for bad in [
        "",
        "/",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/+8",
        "10.0.0.0/ 8",
        " 10.0.0.0/8",
        "10.0.0.0/8/8",
        "10.0.0/8",
        "10.0.0.0/0008",
        "host/8",
        "fe80::1%eth0/64",
    ] {
        assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
    }
    let err = "10.0.0.0/33".parse::<IpNet>().unwrap_err();
    assert!(err.to_string().contains("invalid IP network"));
    assert!(IpNet::new("10.0.0.0".parse().unwrap(), 33).is_err());
    assert!(IpNet::new("::".parse().unwrap(), 128).is_ok());
}

#[test]
fn keys_are_small_copy_values() {
    fn is_key<K: Copy + std::hash::Hash + Eq + std::fmt::Display + Send + Sync + 'static>() {}
    is_key::<ClientKey>();
    assert!(std::mem::size_of::<ClientKey>() <= 24);
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Header-value bytes (no CR, LF, NUL), weighted toward the characters
    // the parsers care about.
    let interesting = prop::sample::select(
        b"0123456789abcdefABCDEF.:[]%,;=\"\\ \t_-forFORunknown\xff\x80".to_vec(),
    );
    let any = (0u8..=255).prop_filter("header value byte", |b| {
        *b == b'\t' || (*b >= 0x20 && *b != 0x7f)
    });
    let raw = prop::collection::vec(prop_oneof![3 => interesting, 1 => any], 0..200);
    // Pieces that parse, so that walks also end in addresses.
    let piece = prop::sample::select(vec![
        "203.0.113.9",
        "for=203.0.113.9",
        "For=\"[2001:db8::1]:80\"",
        "for=\"203.0.113.\\7\"",
        "10.0.0.5",
        "for=10.0.0.5",
        "::ffff:198.51.100.1",
        "[2001:db8::2]:4711",
        "fd00::9",
        "_hidden",
        "unknown",
        ", ",
        ";proto=https",
    ]);
    let built = prop::collection::vec(
        prop_oneof![piece.prop_map(|p| p.as_bytes().to_vec()), raw.clone()],
        0..6,
    )
    .prop_map(|parts| parts.concat());
    prop_oneof![raw, built]
}

proptest! {
    #[test]
    fn arbitrary_headers_never_panic_and_give_the_peer_or_a_written_address(
        values in prop::collection::vec(header_bytes(), 1..4),
        trusted_peer in any::<bool>(),
        which in 0usize..3,
    ) {
        let kind = [
            ForwardedHeader::Forwarded,
            ForwardedHeader::XForwardedFor,
            ForwardedHeader::XRealIp,
        ][which];
        let name = ["forwarded", "x-forwarded-for", "x-real-ip"][which];
        let keys = behind_proxies().ipv6_prefix(128).forwarded_headers([kind]);
        let peer = if trusted_peer { PROXY } else { "192.0.2.7:1" };
        let headers: Vec<(&str, &[u8])> = values.iter().map(|v| (name, v.as_slice())).collect();
        let key = keys.key(&request(Some(peer), &headers));
        let peer_key = keys.key(&request(Some(peer), &[]));
        match key {
            ClientKey::Unknown => prop_assert!(false, "a request with a peer is never unknown"),
            k if k == peer_key => {}
            ClientKey::Ip(net) => {
                prop_assert!(trusted_peer, "an untrusted peer's headers were read");
                // The address is written in the header, in some form.
                let written = values.iter().any(|v| {
                    // Escapes in quoted strings are read as the escaped byte.
                    let text = String::from_utf8_lossy(v).to_ascii_lowercase().replace('\\', "");
                    mentions(&text, net.addr())
                });
                prop_assert!(written, "{net} is not in {values:?}");
            }
        }
    }

    #[test]
    fn written_addresses_are_found_among_garbage(
        garbage in prop::collection::vec(header_bytes(), 0..3),
        client in any::<[u8; 4]>(),
    ) {
        // Whatever a client writes, the address the trusted proxy appends wins.
        let client = IpAddr::from(client);
        prop_assume!(!net("10.0.0.0/8").contains(client));
        let mut values: Vec<Vec<u8>> = garbage;
        values.push(client.to_string().into_bytes());
        let headers: Vec<(&str, &[u8])> =
            values.iter().map(|v| ("x-forwarded-for", v.as_slice())).collect();
        let key = behind_proxies().key(&request(Some(PROXY), &headers));
        let total: usize = values.iter().map(Vec::len).sum();
        let entries: usize = values
            .iter()
            .map(|v| {
                v.split(|&b| b == b',')
                    .filter(|e| e.iter().any(|&b| b != b' ' && b != b'\t'))
                    .count()
            })
            .sum();
        if total <= 4096 && entries <= 32 {
            prop_assert_eq!(key.to_string(), client.to_string());
        } else {
            prop_assert_eq!(key.to_string(), "10.0.0.1");
        }
    }
}

/// Whether `text` holds `ip` in some written form: its canonical text, the
/// IPv4-mapped form, or an uncompressed/differently-cased IPv6 form that
/// parses to it.
fn mentions(text: &str, ip: IpAddr) -> bool {
    if text.contains(&ip.to_string()) {
        return true;
    }
    // Any run of address characters in the text that parses to `ip`.
    let is_addr = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
    text.split(|c: char| !is_addr(c)).any(|run| {
        (0..run.len()).any(|i| {
            (i + 1..=run.len()).any(|j| {
                run.get(i..j)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|p| p == ip || p == ip_mapped(ip))
            })
        })
    })
}

fn ip_mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}
