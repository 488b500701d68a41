//! Slack and webhook delivery against a real HTTP server on 127.0.0.1.

use std::time::Duration;

use pilothouse_notify::{
    Deliverer, DelivererOptions, DeliveryError, Payload, ReceiverConfig, TransportFailure,
};
use ring::hmac;
use serde_json::json;

use crate::support::{
    HttpReceiver, Reply, assert_no_secrets, closed_port, error_text, loopback_options, payload,
};

const PATH: &str = "/hooks/PathTok3n?token=QueryTok3n";
const SECRETS: &[&str] = &[
    "PathTok3n",
    "QueryTok3n",
    "/hooks/",
    "HeaderTok3n",
    "HmacTok3n",
];

/// A deliverer that may reach loopback, where the test receivers are.
fn deliverer() -> Deliverer {
    Deliverer::new(loopback_options()).expect("client")
}

fn webhook(url: &str, hmac_secret: Option<&str>) -> ReceiverConfig {
    serde_json::from_value(json!({
        "kind": "webhook", "url": url,
        "headers": {"Authorization": "Bearer HeaderTok3n", "X-Team": "ops"},
        "hmac_secret": hmac_secret
    }))
    .expect("parses")
}

/// Delivers the test payload to a receiver answering `reply`; returns the
/// error.
async fn failing_webhook(reply: Reply) -> DeliveryError {
    let receiver = HttpReceiver::start(reply).await;
    let config = webhook(&receiver.url(PATH), Some("HmacTok3n"));
    let error = deliverer()
        .deliver(&config, &payload(), "outbox-1")
        .await
        .expect_err("the receiver fails");
    assert_eq!(receiver.requests().len(), 1);
    assert_no_secrets(&error_text(&error), SECRETS);
    error
}

#[tokio::test]
async fn slack_gets_text_channel_and_username() {
    let receiver = HttpReceiver::start(Reply::new(200, "ok")).await;
    let config: ReceiverConfig = serde_json::from_value(json!({
        "kind": "slack", "url": receiver.url("/services/T000/B000/SlackTok3n"),
        "channel": "#ops", "username": "pilothouse"
    }))
    .expect("parses");
    let payload = payload();
    deliverer()
        .deliver(&config, &payload, "outbox-7")
        .await
        .expect("delivered");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/services/T000/B000/SlackTok3n");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(
        body,
        json!({"text": payload.slack_text(), "channel": "#ops", "username": "pilothouse"})
    );
    let text = body["text"].as_str().expect("text");
    assert!(text.starts_with("*[FIRING:2] aks OOMKilled*\n"), "{text}");
    assert!(
        text.contains(
            "• aks/shop/Deployment/cart container app: OOMKilled ×3 — container cart used more than its limit"
        ),
        "{text}"
    );
    assert!(
        text.contains("• (resolved) aks/shop/Deployment/search container app: OOMKilled ×3"),
        "{text}"
    );
}

#[tokio::test]
async fn webhook_gets_payload_headers_key_and_signature() {
    let receiver = HttpReceiver::start(Reply::new(202, "")).await;
    let config = webhook(&receiver.url(PATH), Some("HmacTok3n"));
    let payload = payload();
    deliverer()
        .deliver(&config, &payload, "outbox-42")
        .await
        .expect("delivered");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, PATH);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer HeaderTok3n"));
    assert_eq!(request.header("x-team"), Some("ops"));
    assert_eq!(request.header("idempotency-key"), Some("outbox-42"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("pilothouse/", env!("CARGO_PKG_VERSION")))
    );

    let received: Payload = serde_json::from_slice(&request.body).expect("a payload");
    assert_eq!(received, payload);
    let json: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(json["version"], 1);
    assert_eq!(json["status"], "firing");

    let key = hmac::Key::new(hmac::HMAC_SHA256, b"HmacTok3n");
    let expected: String = hmac::sign(&key, &request.body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        request.header("x-pilothouse-signature-256"),
        Some(format!("sha256={expected}").as_str())
    );
}

#[tokio::test]
async fn unsigned_webhook_has_no_signature() {
    let receiver = HttpReceiver::start(Reply::new(200, "")).await;
    let config = webhook(&receiver.url("/"), None);
    deliverer()
        .deliver(&config, &payload(), "outbox-1")
        .await
        .expect("delivered");
    let requests = receiver.requests();
    assert_eq!(requests[0].header("x-pilothouse-signature-256"), None);
    assert_eq!(requests[0].header("idempotency-key"), Some("outbox-1"));
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let error = failing_webhook(Reply::new(500, "boom")).await;
    assert!(error.is_retryable(), "{error}");
    assert!(
        matches!(error, DeliveryError::HttpStatus { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), None);
}

#[tokio::test]
async fn nothing_of_an_error_answer_is_kept() {
    // what an internal service (a cloud metadata endpoint) would answer
    const MARKER: &str = "AKIA-SECRET-MARKER-7f3e";
    let body = format!("{{\"AccessKeyId\": \"{MARKER}\", \"Token\": \"{MARKER}\"}}");
    let error = failing_webhook(Reply::new(500, &body)).await;
    let text = error.to_string();
    assert!(text.ends_with("answered HTTP 500 (server error)"), "{text}");
    assert_no_secrets(&error_text(&error), &[MARKER, "AccessKeyId"]);
    assert_no_secrets(&format!("{error:#?}"), &[MARKER, "AccessKeyId"]);

    let error = failing_webhook(Reply::new(404, &body)).await;
    assert!(
        error
            .to_string()
            .ends_with("answered HTTP 404 (client error)"),
        "{error}"
    );
    assert_no_secrets(&error_text(&error), &[MARKER]);
}

#[tokio::test]
async fn too_many_requests_is_retryable_after_the_hint() {
    let mut reply = Reply::new(429, "slow down");
    reply.headers.push(("retry-after", "30".to_owned()));
    let error = failing_webhook(reply).await;
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert!(
        error
            .to_string()
            .ends_with("answered HTTP 429 (client error; retry after 30 s)"),
        "{error}"
    );

    let mut reply = Reply::new(503, "");
    reply.headers.push(("retry-after", "7".to_owned()));
    let error = failing_webhook(reply).await;
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn client_errors_are_permanent_and_carry_no_echo() {
    // a receiver that echoes what it got, secrets included
    let echo = format!("bad request to {PATH} with Bearer HeaderTok3n signed by HmacTok3n");
    let error = failing_webhook(Reply::new(400, &echo)).await;
    assert!(!error.is_retryable(), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with("webhook receiver at http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.ends_with("answered HTTP 400 (client error)"), "{text}");
    assert_no_secrets(&error_text(&error), &["bad request"]);

    let error = failing_webhook(Reply::new(404, "")).await;
    assert!(!error.is_retryable(), "{error}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    // the redirect points at a second receiver, which gets nothing
    let target = HttpReceiver::start(Reply::new(200, "ok")).await;
    let mut reply = Reply::new(302, "moved");
    reply.headers.push(("location", target.url("/elsewhere")));
    let error = failing_webhook(reply).await;
    assert!(!error.is_retryable(), "{error}");
    assert!(
        matches!(error, DeliveryError::HttpStatus { status: 302, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("answered HTTP 302 (redirects are not followed)"),
        "{error}"
    );
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let url = format!("http://127.0.0.1:{}{PATH}", closed_port().await);
    let error = deliverer()
        .deliver(&webhook(&url, Some("HmacTok3n")), &payload(), "outbox-1")
        .await
        .expect_err("nobody listens");
    assert!(error.is_retryable(), "{error}");
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
    assert_no_secrets(&error_text(&error), SECRETS);
}

#[tokio::test]
async fn slow_receivers_time_out_retryably() {
    let mut reply = Reply::new(200, "ok");
    reply.delay = Duration::from_secs(5);
    let receiver = HttpReceiver::start(reply).await;
    let deliverer = Deliverer::new(DelivererOptions {
        timeout: Duration::from_millis(300),
        ..loopback_options()
    })
    .expect("client");
    let error = deliverer
        .deliver(&webhook(&receiver.url(PATH), None), &payload(), "outbox-1")
        .await
        .expect_err("too slow");
    assert!(error.is_retryable(), "{error}");
    assert!(
        matches!(
            error,
            DeliveryError::Transport {
                failure: TransportFailure::Timeout,
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_secrets(&error_text(&error), SECRETS);
}

#[tokio::test]
async fn invalid_config_is_permanent_and_sends_nothing() {
    let receiver = HttpReceiver::start(Reply::new(200, "ok")).await;
    // plain http to a host that is not loopback
    let config = webhook("http://hooks.example.com/hooks/PathTok3n", None);
    let error = deliverer()
        .deliver(&config, &payload(), "outbox-1")
        .await
        .expect_err("invalid");
    assert!(
        matches!(error, DeliveryError::InvalidConfig(_)),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_no_secrets(&error_text(&error), SECRETS);

    let error = deliverer()
        .deliver(&webhook(&receiver.url("/"), None), &payload(), "bad key\n")
        .await
        .expect_err("invalid key");
    assert!(
        matches!(error, DeliveryError::InvalidConfig(_)),
        "{error:?}"
    );
    assert!(receiver.requests().is_empty());
}
