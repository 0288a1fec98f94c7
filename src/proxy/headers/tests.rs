#![allow(clippy::unwrap_used)]
use super::*;

/// The policy applied as the forwarder applies it: after a scan of the names.
fn apply(
    policy: &ForwardedPolicy,
    h: &mut HeaderMap,
    client: &ClientInfo,
    host: Option<&HeaderValue>,
) {
    let scan = HeaderScan::of(h);
    policy.apply(h, client, host, &scan);
}

fn client(ip: &str) -> ClientInfo {
    ClientInfo::new(SocketAddr::new(ip.parse().unwrap(), 4000), false)
}

#[test]
fn strips_hop_by_hop_and_connection_named_headers() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("close, x-secret-hop"),
    );
    h.insert("x-secret-hop", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert("x-end-to-end", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-end-to-end"));
}

#[test]
fn name_class_names_every_hop_by_hop_and_forwarded_header_and_nothing_else() {
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(name_class(name), NameClass::Hop(i), "{name}");
    }
    assert_eq!(name_class(&header::UPGRADE), NameClass::Hop(UPGRADE_INDEX));
    for name in &FORWARDED_FAMILY {
        assert_eq!(name_class(name), NameClass::Forwarded, "{name}");
    }
    for name in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        HeaderName::from_static("x-forwarded"),
        HeaderName::from_static("x-custom-ip"),
    ] {
        assert_eq!(name_class(&name), NameClass::EndToEnd, "{name}");
    }
}

#[test]
fn one_scan_tells_upgrade_requests_hop_by_hop_and_forwarded_headers_apart() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("a.example"));
    let ws = UpgradeProtocols::default();
    let scan = HeaderScan::of(&h);
    assert!(!scan.any_hop() && !scan.forwarded && !scan.is_upgrade_request(&h, &ws));

    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(
        !HeaderScan::of(&h).is_upgrade_request(&h, &ws),
        "Upgrade without Connection"
    );
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    let scan = HeaderScan::of(&h);
    assert!(scan.any_hop() && scan.is_upgrade_request(&h, &ws));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    assert!(
        !HeaderScan::of(&h).is_upgrade_request(&h, &ws),
        "Connection does not name upgrade"
    );

    h.insert(X_REAL_IP, HeaderValue::from_static("192.0.2.1"));
    assert!(HeaderScan::of(&h).forwarded);
}

#[test]
fn the_default_drop_list_and_underscored_names_are_classified_by_the_scan() {
    for name in DEFAULT_UNTRUSTED_DROP_HEADERS {
        let class = name_class(&HeaderName::from_static(name));
        assert!(
            matches!(class, NameClass::Forwarded | NameClass::Spoofable),
            "{name}: {class:?}"
        );
    }
    for name in &DEFAULT_SPOOFABLE {
        assert!(
            DEFAULT_UNTRUSTED_DROP_HEADERS.contains(&name.as_str()),
            "{name}"
        );
    }
    for name in ["x_forwarded_for", "x-user_id", "_"] {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert_eq!(name_class(&name), NameClass::Underscore, "{name}");
    }
    assert_eq!(
        name_class(&HeaderName::from_static("http2-settings")),
        NameClass::Hop(8)
    );
}

#[test]
fn only_allowed_protocols_make_an_upgrade_request() {
    let upgrade = |protocols: &[&str], offered: &[&str]| {
        let allowed = UpgradeProtocols::new(
            &protocols
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        );
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        for line in offered {
            h.append(header::UPGRADE, HeaderValue::from_str(line).unwrap());
        }
        HeaderScan::of(&h).is_upgrade_request(&h, &allowed)
    };
    assert!(upgrade(&["websocket"], &["websocket"]));
    assert!(upgrade(&["websocket"], &["WebSocket"]));
    assert!(upgrade(&["websocket"], &["websocket/13"]));
    assert!(!upgrade(&["websocket/13"], &["websocket/14"]));
    assert!(!upgrade(&["websocket"], &["h2c"]));
    assert!(!upgrade(&["websocket"], &["websocket, h2c"]));
    assert!(!upgrade(&["websocket"], &["websocket", "h2c"]));
    assert!(!upgrade(&["websocket"], &[" , "]));
    assert!(!upgrade(&[], &["websocket"]));
    assert!(upgrade(&["websocket", "h2c"], &["h2c, websocket"]));
}

#[test]
fn http2_settings_is_always_stripped() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        "http2-settings",
        HeaderValue::from_static("AAMAAABkAAQAAP__"),
    );
    strip_hop_by_hop(&mut h, true);
    assert!(!h.contains_key("http2-settings"));
    assert_eq!(h[header::UPGRADE], "websocket");
}

#[test]
fn only_chunked_alone_is_an_accepted_transfer_coding() {
    for (lines, ok) in [
        (&["chunked"][..], true),
        (&["Chunked"][..], true),
        (&[" chunked "][..], true),
        (&["gzip, chunked"][..], false),
        (&["chunked, chunked"][..], false),
        (&["identity"][..], false),
        (&["gzip", "chunked"][..], false),
        (&[""][..], false),
    ] {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(
                header::TRANSFER_ENCODING,
                HeaderValue::from_str(line).unwrap(),
            );
        }
        assert_eq!(check_transfer_coding(&h).is_ok(), ok, "{lines:?}");
    }
}

/// Every spoofable header of the default list, an underscored one and an end-to-end one.
fn spoofable_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in DEFAULT_UNTRUSTED_DROP_HEADERS {
        h.insert(name, HeaderValue::from_static("6.6.6.6"));
    }
    h.insert("x_forwarded_for", HeaderValue::from_static("6.6.6.6"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    h
}

#[test]
fn spoofable_and_underscored_headers_are_dropped_from_untrusted_peers_only() {
    let policy = ForwardedPolicy {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..ForwardedPolicy::default()
    };
    let mut h = spoofable_headers();
    apply(&policy, &mut h, &client("192.0.2.7"), None);
    let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["x-forwarded-for", "x-forwarded-proto", "x-kept"]);
    assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");

    let mut h = spoofable_headers();
    apply(&policy, &mut h, &client("10.1.2.3"), None);
    for name in DEFAULT_UNTRUSTED_DROP_HEADERS {
        assert_eq!(h[name], "6.6.6.6", "{name}");
    }
    assert_eq!(h["x_forwarded_for"], "6.6.6.6");
}

#[test]
fn a_configured_drop_list_replaces_the_default_and_underscores_can_be_kept() {
    let mut config = ForwardingConfig {
        untrusted_drop_headers: vec!["x-tenant".to_owned()],
        drop_underscore_headers: false,
        ..ForwardingConfig::default()
    };
    let policy = ForwardedPolicy::from_config(&config).unwrap();
    let mut h = spoofable_headers();
    h.insert("x-tenant", HeaderValue::from_static("other"));
    apply(&policy, &mut h, &client("192.0.2.7"), None);
    assert!(!h.contains_key("x-tenant"));
    assert!(
        !h.contains_key(X_REAL_IP),
        "the forwarded family is always dropped"
    );
    assert_eq!(h["x-original-url"], "6.6.6.6");
    assert_eq!(h["x_forwarded_for"], "6.6.6.6");

    config.untrusted_drop_headers = DEFAULT_UNTRUSTED_DROP_HEADERS
        .iter()
        .rev()
        .map(|n| (*n).to_owned())
        .collect();
    let policy = ForwardedPolicy::from_config(&config).unwrap();
    assert!(policy.custom_drop.is_none(), "the default in another order");
}

#[test]
fn a_lone_connection_option_names_nothing_and_a_header_name_is_named() {
    for (value, named) in [
        ("keep-alive", vec![]),
        ("Close", vec![]),
        ("x-hop", vec!["x-hop"]),
        ("keep-alive, X-Hop", vec!["x-hop"]),
    ] {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static(value));
        let got: Vec<String> = take_connection(&mut h, false)
            .unwrap_or_default()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(got, named, "Connection: {value}");
        assert!(h.is_empty(), "Connection: {value} left in place");
    }
    let mut h = HeaderMap::new();
    h.append(header::CONNECTION, HeaderValue::from_static("close"));
    h.append(
        header::CONNECTION,
        HeaderValue::from_static("x-second-line"),
    );
    assert_eq!(
        take_connection(&mut h, true),
        Some(vec![HeaderName::from_static("x-second-line")])
    );
    assert_eq!(
        h.get_all(header::CONNECTION).iter().count(),
        2,
        "kept for the upgrade"
    );
}

#[test]
fn untrusted_peer_cannot_spoof_forwarded_headers() {
    let policy = ForwardedPolicy {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        forwarded_header: true,
        ..ForwardedPolicy::default()
    };
    let mut h = HeaderMap::new();
    h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    h.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
    let host = HeaderValue::from_static("app.example");
    apply(&policy, &mut h, &client("192.0.2.7"), Some(&host));
    assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
    assert_eq!(h[&X_FORWARDED_PROTO], "http");
    assert_eq!(h[&X_FORWARDED_HOST], "app.example");
    assert_eq!(
        h[header::FORWARDED],
        "for=192.0.2.7;proto=http;host=\"app.example\""
    );
}

#[test]
fn ip_values_match_display() {
    for ip in [
        "0.0.0.0",
        "9.10.99.100",
        "255.255.255.255",
        "127.0.0.1",
        "::1",
        "2001:db8::7",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(ip_value(ip), ip.to_string().as_str());
    }
}

#[test]
fn connection_keep_alive_is_removed_and_named_headers_too() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1);
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("Upgrade, X-Hop"),
    );
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("x-hop", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h[header::CONNECTION], "upgrade");
    assert_eq!(h[header::UPGRADE], "websocket");
    assert!(!h.contains_key("x-hop"));
}

#[test]
fn a_connection_names_its_peer_in_canonical_form_on_every_request() {
    let policy = ForwardedPolicy::default();
    let client = client("::ffff:192.0.2.9");
    for _ in 0..2 {
        let mut h = HeaderMap::new();
        apply(&policy, &mut h, &client, None);
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.9");
    }
    let mut h = HeaderMap::new();
    apply(&policy, &mut h, &self::client("2001:db8::7"), None);
    assert_eq!(h[&X_FORWARDED_FOR], "2001:db8::7");
}

#[test]
fn trusted_peer_is_appended() {
    let policy = ForwardedPolicy {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        forwarded_header: false,
        ..ForwardedPolicy::default()
    };
    let mut h = HeaderMap::new();
    h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    apply(&policy, &mut h, &client("::ffff:10.1.2.3"), None);
    assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 10.1.2.3");
    assert_eq!(h[&X_FORWARDED_PROTO], "https");
}
