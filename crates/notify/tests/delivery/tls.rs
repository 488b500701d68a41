//! HTTPS and SMTP over TLS (STARTTLS and implicit) against real servers on
//! 127.0.0.1 with certificates from a test CA: rustls on ring end to end.

use pilothouse_notify::{
    Deliverer, DelivererOptions, DeliveryError, ReceiverConfig, TransportFailure,
};
use serde_json::json;

use crate::support::{HttpsReceiver, SmtpSecurity, SmtpServer, TestCa, loopback_options, payload};

/// A deliverer trusting `ca` that may reach loopback, where the test
/// servers are.
fn trusting(ca: &TestCa) -> Deliverer {
    Deliverer::new(DelivererOptions {
        extra_root_certs: vec![ca.root.clone()],
        ..loopback_options()
    })
    .expect("client")
}

fn webhook(port: u16) -> ReceiverConfig {
    serde_json::from_value(json!({
        "kind": "webhook", "url": format!("https://localhost:{port}/hook"),
        "headers": {"Authorization": "Bearer HeaderTok3n"}
    }))
    .expect("parses")
}

fn email(port: u16, tls: &str) -> ReceiverConfig {
    serde_json::from_value(json!({
        "kind": "email", "smtp_host": "localhost", "smtp_port": port, "tls": tls,
        "username": "alerts", "password": "SmtpTok3n",
        "from": "alerts@example.com", "to": ["ops@example.com"]
    }))
    .expect("parses")
}

#[tokio::test]
async fn https_webhook_with_a_trusted_ca() {
    let ca = TestCa::new();
    let server = HttpsReceiver::start(&ca).await;
    trusting(&ca)
        .deliver(&webhook(server.port), &payload(), "outbox-9")
        .await
        .expect("delivered");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains("idempotency-key: outbox-9\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\"group_key\":\"cluster=aks,reason=OOMKilled\""),
        "{request}"
    );
}

#[tokio::test]
async fn https_with_an_unknown_ca_fails_retryably() {
    let ca = TestCa::new();
    let server = HttpsReceiver::start(&ca).await;
    let error = Deliverer::new(loopback_options())
        .expect("client")
        .deliver(&webhook(server.port), &payload(), "outbox-9")
        .await
        .expect_err("untrusted certificate");
    assert!(
        matches!(
            error,
            DeliveryError::Transport {
                failure: TransportFailure::Connect,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn smtp_starttls_and_implicit_tls() {
    let ca = TestCa::new();
    for (security, tls) in [
        (SmtpSecurity::StartTls(ca.acceptor.clone()), "starttls"),
        (SmtpSecurity::Implicit(ca.acceptor.clone()), "tls"),
    ] {
        let server = SmtpServer::start(security, "250 ok").await;
        trusting(&ca)
            .deliver(&email(server.port, tls), &payload(), "outbox-3")
            .await
            .unwrap_or_else(|e| panic!("{tls}: {e:?}"));
        let mails = server.mails();
        assert_eq!(mails.len(), 1, "{tls}");
        assert!(mails[0].encrypted, "{tls}");
        assert_eq!(
            mails[0].auth.as_deref(),
            Some("\0alerts\0SmtpTok3n"),
            "{tls}"
        );
        assert_eq!(mails[0].to, ["ops@example.com"], "{tls}");
    }
}

#[tokio::test]
async fn starttls_is_required_when_configured() {
    let ca = TestCa::new();
    // a server that does not offer STARTTLS
    let server = SmtpServer::start(SmtpSecurity::Plain, "250 ok").await;
    let error = trusting(&ca)
        .deliver(&email(server.port, "starttls"), &payload(), "outbox-3")
        .await
        .expect_err("no STARTTLS");
    assert!(matches!(error, DeliveryError::Smtp { .. }), "{error:?}");
    assert!(server.mails().is_empty());
    let text = crate::support::error_text(&error);
    crate::support::assert_no_secrets(&text, &["SmtpTok3n"]);
}
