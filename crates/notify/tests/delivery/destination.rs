//! The destination policy: receivers on loopback (standing in for cloud
//! metadata and internal services) are refused before anything is sent
//! unless their range is allowed, for IP literals, for names at connect
//! time, and for SMTP; and the check made when a receiver is created.

use std::net::IpAddr;

use pilothouse_notify::{
    Deliverer, DelivererOptions, DeliveryError, DestinationPolicy, NotifyError, ReceiverConfig,
    check_destination,
};
use serde_json::json;

use crate::support::{
    CountingListener, SmtpSecurity, SmtpServer, allowing, error_text, loopback_options, payload,
};

/// Stands for whichever loopback address `localhost` resolves to first.
const LOCALHOST: &str = "localhost";

fn deliverer(destinations: DestinationPolicy) -> Deliverer {
    Deliverer::new(DelivererOptions {
        destinations,
        ..DelivererOptions::default()
    })
    .expect("client")
}

fn webhook(url: &str) -> ReceiverConfig {
    serde_json::from_value(json!({"kind": "webhook", "url": url})).expect("parses")
}

fn email(host: &str, port: u16) -> ReceiverConfig {
    serde_json::from_value(json!({
        "kind": "email", "smtp_host": host, "smtp_port": port, "tls": "none",
        "from": "alerts@example.com", "to": ["ops@example.com"]
    }))
    .expect("parses")
}

/// Asserts that `error` is a permanent refusal of `address` whose message
/// says what the address is and how the operator allows a range. For
/// `localhost`, pass `LOCALHOST`: it may resolve to `::1` first.
fn assert_refused(error: &DeliveryError, address: &str, what: &str) {
    let DeliveryError::DestinationRefused { address: got, .. } = error else {
        panic!("not a refusal: {error:?}");
    };
    if address == LOCALHOST {
        assert!(got.is_loopback(), "{error:?}");
    } else {
        let want: IpAddr = address.parse().expect("an IP address");
        assert_eq!(*got, want, "{error:?}");
    }
    let address = got;
    assert!(!error.is_retryable(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&format!("refused to connect to {address}, {what}")),
        "{text}"
    );
    assert!(
        text.contains("serve --allow-receiver-network CIDR"),
        "{text}"
    );
}

#[tokio::test]
async fn loopback_webhooks_are_refused_by_default() {
    let listener = CountingListener::start([127, 0, 0, 1]).await;
    let port = listener.addr.port();
    let deliverer = deliverer(DestinationPolicy::default());
    // an IP literal, checked before the request, and a name, checked by
    // the resolver when the connection is made
    for (url, address) in [
        (format!("http://127.0.0.1:{port}/hook"), "127.0.0.1"),
        (format!("http://localhost:{port}/hook"), LOCALHOST),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/hook"),
            "::ffff:127.0.0.1",
        ),
    ] {
        let error = deliverer
            .deliver(&webhook(&url), &payload(), "outbox-1")
            .await
            .expect_err("loopback is refused");
        assert_refused(&error, address, "a loopback address");
        assert!(
            error.to_string().starts_with("webhook receiver at "),
            "{error}"
        );
    }
    assert_eq!(listener.connections().await, 0);

    // no listener needed: nothing is attempted
    let error = deliverer
        .deliver(&webhook("http://[::1]:9/hook"), &payload(), "outbox-1")
        .await
        .expect_err("loopback is refused");
    assert_refused(&error, "::1", "a loopback address");
}

#[tokio::test]
async fn metadata_addresses_are_refused_without_connecting() {
    // nothing listens there in the tests; a refusal must come before any
    // attempt, so it is not a transport error
    let deliverer = deliverer(loopback_options().destinations);
    for (url, address, what) in [
        (
            "https://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
            "a link-local address (where cloud metadata services answer)",
        ),
        (
            "https://100.100.100.200/latest/meta-data/",
            "100.100.100.200",
            "a shared (carrier-grade NAT) address",
        ),
        (
            "https://[fd00:ec2::254]/latest/meta-data/",
            "fd00:ec2::254",
            "a unique-local (private) address",
        ),
        (
            "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            "64:ff9b::a9fe:a9fe",
            "a link-local address (where cloud metadata services answer)",
        ),
        ("https://10.0.0.1/hook", "10.0.0.1", "a private address"),
    ] {
        let error = deliverer
            .deliver(&webhook(url), &payload(), "outbox-1")
            .await
            .expect_err("refused");
        assert_refused(&error, address, what);
        // the path never shows
        assert!(!error_text(&error).contains("meta-data"), "{error:?}");
    }
}

#[tokio::test]
async fn only_the_allowed_range_is_reached() {
    let allowed = CountingListener::start([127, 0, 0, 1]).await;
    let other = CountingListener::start([127, 0, 0, 2]).await;
    let deliverer = deliverer(allowing(&["127.0.0.1/32"]));

    let error = deliverer
        .deliver(
            &webhook(&format!("http://{}/hook", other.addr)),
            &payload(),
            "outbox-1",
        )
        .await
        .expect_err("127.0.0.2 is not allowed");
    assert_refused(&error, "127.0.0.2", "a loopback address");
    assert_eq!(other.connections().await, 0);

    deliverer
        .deliver(
            &webhook(&format!("http://{}/hook", allowed.addr)),
            &payload(),
            "outbox-1",
        )
        .await
        .expect("127.0.0.1 is allowed");
    assert_eq!(allowed.connections().await, 1);
}

#[tokio::test]
async fn loopback_smtp_servers_are_refused_by_default() {
    let listener = CountingListener::start([127, 0, 0, 1]).await;
    let deliverer = deliverer(DestinationPolicy::default());
    for (host, address) in [("127.0.0.1", "127.0.0.1"), ("localhost", LOCALHOST)] {
        let error = deliverer
            .deliver(&email(host, listener.addr.port()), &payload(), "outbox-1")
            .await
            .expect_err("loopback is refused");
        assert_refused(&error, address, "a loopback address");
        assert!(
            error
                .to_string()
                .starts_with(&format!("email receiver at {host}:")),
            "{error}"
        );
    }
    assert_eq!(listener.connections().await, 0);
}

#[tokio::test]
async fn an_allowed_smtp_server_is_reached_by_name() {
    let server = SmtpServer::start(SmtpSecurity::Plain, "250 ok").await;
    deliverer(loopback_options().destinations)
        .deliver(&email("localhost", server.port), &payload(), "outbox-1")
        .await
        .expect("delivered");
    assert_eq!(server.mails().len(), 1);
}

/// Checks `config` against `policy`: `Ok` when `field` is `None`, else an
/// invalid `field` whose reason contains `reason`.
async fn check(
    config: serde_json::Value,
    policy: &DestinationPolicy,
    field: Option<&str>,
    reason: &str,
) {
    let parsed: ReceiverConfig = serde_json::from_value(config.clone()).expect("parses");
    match (check_destination(&parsed, policy).await, field) {
        (Ok(()), None) => {}
        (
            Err(NotifyError::InvalidField {
                field: got,
                reason: why,
            }),
            Some(want),
        ) => {
            assert_eq!(got, want, "{config}: {why}");
            assert!(why.contains(reason), "{config}: {why}");
        }
        (got, want) => panic!("{config}: got {got:?}, want error on {want:?}"),
    }
}

#[tokio::test]
async fn receivers_are_checked_when_created() {
    let none = DestinationPolicy::default();
    let loopback = loopback_options().destinations;
    let refused = "a loopback address; receivers may not target loopback, private, \
                   link-local or metadata addresses unless the operator allows the range \
                   (serve --allow-receiver-network CIDR)";

    let url = |url: &str| json!({"kind": "webhook", "url": url});
    let slack = |url: &str| json!({"kind": "slack", "url": url});
    let smtp = |host: &str| {
        json!({"kind": "email", "smtp_host": host, "smtp_port": 25, "tls": "none",
               "from": "alerts@example.com", "to": ["ops@example.com"]})
    };

    check(
        url("https://127.0.0.1/x"),
        &none,
        Some("url"),
        &format!("is 127.0.0.1, {refused}"),
    )
    .await;
    check(
        url("https://localhost/x"),
        &none,
        Some("url"),
        // a name's address is not echoed
        &format!("resolves to {refused}"),
    )
    .await;
    check(
        slack("https://169.254.169.254/x"),
        &loopback,
        Some("url"),
        "is 169.254.169.254, a link-local address",
    )
    .await;
    check(
        smtp("127.0.0.1"),
        &none,
        Some("smtp_host"),
        "is 127.0.0.1, a loopback address",
    )
    .await;
    check(smtp("localhost"), &none, Some("smtp_host"), "resolves to ").await;
    check(
        url("https://pilothouse-test.invalid/x"),
        &none,
        Some("url"),
        "cannot be resolved",
    )
    .await;
    // the configuration checks come first
    check(
        url("http://10.0.0.1/x"),
        &loopback,
        Some("url"),
        "must use https",
    )
    .await;

    check(url("https://127.0.0.1/x"), &loopback, None, "").await;
    check(url("https://localhost/x"), &loopback, None, "").await;
    check(smtp("localhost"), &loopback, None, "").await;
    check(
        url("https://127.0.0.1/x"),
        &allowing(&["127.0.0.0/8"]),
        None,
        "",
    )
    .await;
    check(
        url("https://10.1.2.3/x"),
        &allowing(&["10.0.0.0/8"]),
        None,
        "",
    )
    .await;
}
