//! Email delivery against a real SMTP server on 127.0.0.1.

use pilothouse_notify::{Deliverer, DeliveryError, ReceiverConfig};
use serde_json::json;

use crate::support::{
    SmtpSecurity, SmtpServer, assert_no_secrets, closed_port, error_text, loopback_options, payload,
};

/// A deliverer that may reach loopback, where the test servers are.
fn deliverer() -> Deliverer {
    Deliverer::new(loopback_options()).expect("client")
}

/// A plain-text SMTP receiver on `port`, with credentials when `password`.
fn email(port: u16, password: Option<&str>) -> ReceiverConfig {
    serde_json::from_value(json!({
        "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "tls": "none",
        "username": password.map(|_| "alerts"), "password": password,
        "from": "Pilothouse <alerts@example.com>",
        "to": ["ops@example.com", "Oncall <oncall@example.org>"]
    }))
    .expect("parses")
}

#[tokio::test]
async fn email_has_subject_recipients_body_and_message_id() {
    let server = SmtpServer::start(SmtpSecurity::Plain, "250 ok").await;
    let payload = payload();
    deliverer()
        .deliver(&email(server.port, None), &payload, "outbox-42")
        .await
        .expect("delivered");

    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(!mail.encrypted);
    assert_eq!(mail.auth, None);
    assert_eq!(mail.from, "alerts@example.com");
    assert_eq!(mail.to, ["ops@example.com", "oncall@example.org"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[FIRING:2] aks OOMKilled")
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<pilothouse.outbox-42@example.com>")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Pilothouse <alerts@example.com>")
    );
    let to = mail.header("To").expect("To");
    assert!(
        to.contains("ops@example.com") && to.contains("oncall@example.org"),
        "{to}"
    );
    assert!(
        mail.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{}",
        mail.data
    );
    assert!(mail.header("Date").is_some());

    let body = mail.body();
    assert_eq!(
        body.replace("\r\n", "\n"),
        payload.text_body(),
        "{}",
        mail.data
    );
    assert!(
        body.contains("- aks/shop/Deployment/cart container app: OOMKilled ×3"),
        "{body}"
    );
    assert!(body.contains("exit code: 137"), "{body}");
}

#[tokio::test]
async fn the_same_key_gives_the_same_message_id() {
    let server = SmtpServer::start(SmtpSecurity::Plain, "250 ok").await;
    for _ in 0..2 {
        deliverer()
            .deliver(&email(server.port, None), &payload(), "outbox/7")
            .await
            .expect("delivered");
    }
    let ids: Vec<Option<String>> = server
        .mails()
        .iter()
        .map(|m| m.header("Message-ID"))
        .collect();
    let expected = Some("<pilothouse.outbox=2F7@example.com>".to_owned());
    assert_eq!(ids, [expected.clone(), expected]);
}

#[tokio::test]
async fn credentials_are_sent_to_a_loopback_server() {
    let server = SmtpServer::start(SmtpSecurity::Plain, "250 ok").await;
    deliverer()
        .deliver(
            &email(server.port, Some("SmtpTok3n")),
            &payload(),
            "outbox-1",
        )
        .await
        .expect("delivered");
    let mails = server.mails();
    assert_eq!(mails[0].auth.as_deref(), Some("\0alerts\0SmtpTok3n"));
}

#[tokio::test]
async fn rejected_recipient_is_permanent() {
    let server = SmtpServer::start(SmtpSecurity::Plain, "550 5.1.1 no such user").await;
    let error = deliverer()
        .deliver(
            &email(server.port, Some("SmtpTok3n")),
            &payload(),
            "outbox-1",
        )
        .await
        .expect_err("rejected");
    assert!(!error.is_retryable(), "{error}");
    assert!(matches!(error, DeliveryError::Smtp { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("refused (550)"), "{text}");
    assert_no_secrets(&error_text(&error), &["SmtpTok3n"]);
    assert!(server.mails().is_empty());
}

#[tokio::test]
async fn temporary_refusal_is_retryable() {
    let server = SmtpServer::start(SmtpSecurity::Plain, "451 4.3.0 try later").await;
    let error = deliverer()
        .deliver(&email(server.port, None), &payload(), "outbox-1")
        .await
        .expect_err("refused");
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains("temporarily refused (451)"),
        "{error}"
    );
}

#[tokio::test]
async fn smtp_connection_refused_is_retryable() {
    let error = deliverer()
        .deliver(
            &email(closed_port().await, Some("SmtpTok3n")),
            &payload(),
            "outbox-1",
        )
        .await
        .expect_err("nobody listens");
    assert!(error.is_retryable(), "{error}");
    assert_no_secrets(&error_text(&error), &["SmtpTok3n"]);
}
