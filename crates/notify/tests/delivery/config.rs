//! Receiver configuration: parsing, checks, the summary and `Debug`.

use pilothouse_notify::{NotifyError, ReceiverConfig};
use serde_json::json;

use crate::support::assert_no_secrets;

/// Parses `config` and checks that validating it fails on `field`, or
/// passes when `field` is `None`.
fn check(config: serde_json::Value, field: Option<&str>) {
    let parsed: ReceiverConfig = serde_json::from_value(config.clone()).expect("parses");
    match (parsed.validate(), field) {
        (Ok(()), None) => {}
        (Err(NotifyError::InvalidField { field: got, reason }), Some(want)) => {
            assert_eq!(got, want, "{config}: {reason}");
        }
        (got, want) => panic!("{config}: got {got:?}, want error on {want:?}"),
    }
}

fn slack(url: &str) -> serde_json::Value {
    json!({"kind": "slack", "url": url})
}

fn email(host: &str, tls: &str, password: Option<&str>) -> serde_json::Value {
    json!({
        "kind": "email", "smtp_host": host, "smtp_port": 587, "tls": tls,
        "username": password.map(|_| "alerts"), "password": password,
        "from": "Pilothouse <alerts@example.com>", "to": ["ops@example.com"]
    })
}

#[test]
fn urls_must_be_https_except_to_loopback() {
    check(slack("https://hooks.example.com/services/T0/B0/tok"), None);
    check(slack("http://127.0.0.1:8080/hook"), None);
    check(slack("http://127.9.9.9/hook"), None);
    check(slack("http://[::1]:9/hook"), None);
    check(slack("http://localhost:9/hook"), None);
    check(slack("http://LOCALHOST/hook"), None);
    check(
        slack("http://hooks.example.com/services/T0/B0/tok"),
        Some("url"),
    );
    check(slack("http://localhost.example.com/hook"), Some("url"));
    check(slack("http://10.0.0.1/hook"), Some("url"));
    check(slack("ftp://hooks.example.com/x"), Some("url"));
    check(slack("hooks.example.com/x"), Some("url"));
    check(slack("https://user:pw@hooks.example.com/x"), Some("url"));
    check(
        json!({"kind": "slack", "url": "https://h.example/x", "channel": ""}),
        Some("channel"),
    );
}

#[test]
fn webhook_headers_and_secret_are_checked() {
    let webhook = |headers: serde_json::Value, secret: Option<&str>| json!({"kind": "webhook", "url": "https://h.example/x", "headers": headers, "hmac_secret": secret});
    check(
        webhook(json!({"Authorization": "Bearer t0k3n"}), Some("s3cret")),
        None,
    );
    check(
        webhook(json!({"bad name": "x"}), None),
        Some("headers.bad name"),
    );
    check(
        webhook(json!({"X-Token": "a\nb"}), None),
        Some("headers.X-Token"),
    );
    check(
        webhook(json!({"Content-Type": "text/plain"}), None),
        Some("headers.Content-Type"),
    );
    check(
        webhook(json!({"Idempotency-Key": "1"}), None),
        Some("headers.Idempotency-Key"),
    );
    check(
        webhook(json!({"X-Pilothouse-Signature-256": "x"}), None),
        Some("headers.X-Pilothouse-Signature-256"),
    );
    check(webhook(json!({}), Some("")), Some("hmac_secret"));
}

#[test]
fn email_addresses_recipients_and_clear_text_passwords_are_checked() {
    check(email("smtp.example.com", "starttls", Some("pw")), None);
    check(email("smtp.example.com", "tls", None), None);
    check(email("smtp.example.com", "none", None), None);
    check(
        email("smtp.example.com", "none", Some("pw")),
        Some("password"),
    );
    check(email("10.1.2.3", "none", Some("pw")), Some("password"));
    check(email("127.0.0.1", "none", Some("pw")), None);
    check(email("::1", "none", Some("pw")), None);
    check(email("localhost", "none", Some("pw")), None);
    check(email("", "tls", None), Some("smtp_host"));
    check(email("bad host!", "tls", None), Some("smtp_host"));

    let mut config = email("smtp.example.com", "tls", None);
    config["smtp_port"] = json!(0);
    check(config, Some("smtp_port"));
    let mut config = email("smtp.example.com", "tls", None);
    config["to"] = json!([]);
    check(config, Some("to"));
    let mut config = email("smtp.example.com", "tls", None);
    config["to"] = json!(["ops@example.com", "not an address"]);
    check(config, Some("to[1]"));
    let mut config = email("smtp.example.com", "tls", None);
    config["from"] = json!("alerts");
    check(config, Some("from"));
    let mut config = email("smtp.example.com", "tls", None);
    config["username"] = json!("alerts");
    check(config, Some("password"));
    let mut config = email("smtp.example.com", "tls", None);
    config["password"] = json!("pw");
    check(config, Some("username"));
}

#[test]
fn error_messages_name_the_field() {
    let config: ReceiverConfig =
        serde_json::from_value(slack("http://hooks.example.com/services/T0/B0/tok"))
            .expect("parses");
    let error = config.validate().expect_err("plain http");
    let text = error.to_string();
    assert!(
        text.starts_with("receiver config: `url` must use https"),
        "{text}"
    );
    assert_no_secrets(&text, &["/services", "tok"]);
}

#[test]
fn unknown_kinds_fields_and_tls_modes_are_rejected() {
    for bad in [
        json!({"kind": "pager", "url": "https://h.example/x"}),
        json!({"kind": "slack", "url": "https://h.example/x", "chanel": "#ops"}),
        json!({"url": "https://h.example/x"}),
        email("smtp.example.com", "ssl", None),
    ] {
        assert!(
            serde_json::from_value::<ReceiverConfig>(bad.clone()).is_err(),
            "{bad} parsed"
        );
    }
}

#[test]
fn serialized_form_round_trips() {
    for config in [
        json!({"kind": "slack", "url": "https://h.example/x", "channel": "#ops"}),
        json!({"kind": "webhook", "url": "https://h.example/x", "headers": {"A": "b"}, "hmac_secret": "s"}),
        json!({"kind": "webhook", "url": "https://h.example/x"}),
        email("smtp.example.com", "starttls", Some("pw")),
    ] {
        let parsed: ReceiverConfig = serde_json::from_value(config).expect("parses");
        let again: ReceiverConfig =
            serde_json::from_value(serde_json::to_value(&parsed).expect("serializes"))
                .expect("parses again");
        assert_eq!(again, parsed);
    }
}

#[test]
fn summary_and_debug_hold_no_secrets() {
    let slack: ReceiverConfig = serde_json::from_value(json!({
        "kind": "slack", "url": "https://hooks.example.com/services/T0/B0/SlackTok3n?x=QueryTok3n",
        "channel": "#ops", "username": "pilothouse"
    }))
    .expect("parses");
    assert_eq!(
        slack.summary(),
        json!({"kind": "slack", "endpoint": "https://hooks.example.com:443", "channel": "#ops", "username": "pilothouse"})
    );

    let webhook: ReceiverConfig = serde_json::from_value(json!({
        "kind": "webhook", "url": "http://127.0.0.1:8080/hooks/PathTok3n?token=QueryTok3n",
        "headers": {"Authorization": "Bearer HeaderTok3n"}, "hmac_secret": "HmacTok3n"
    }))
    .expect("parses");
    assert_eq!(
        webhook.summary(),
        json!({"kind": "webhook", "endpoint": "http://127.0.0.1:8080", "header_names": ["Authorization"], "signed": true})
    );

    let email: ReceiverConfig = serde_json::from_value(json!({
        "kind": "email", "smtp_host": "smtp.example.com", "smtp_port": 465, "tls": "tls",
        "username": "alerts", "password": "SmtpTok3n",
        "from": "alerts@example.com", "to": ["ops@example.com"]
    }))
    .expect("parses");
    assert_eq!(
        email.summary(),
        json!({"kind": "email", "smtp_host": "smtp.example.com", "smtp_port": 465, "tls": "tls",
               "authenticated": true, "from": "alerts@example.com", "to": ["ops@example.com"]})
    );

    let secrets = [
        "SlackTok3n",
        "QueryTok3n",
        "/services",
        "PathTok3n",
        "/hooks/",
        "HeaderTok3n",
        "HmacTok3n",
        "SmtpTok3n",
    ];
    for config in [&slack, &webhook, &email] {
        assert_no_secrets(&config.summary().to_string(), &secrets);
        let debug = format!("{config:?} {config:#?}");
        assert_no_secrets(&debug, &secrets);
    }
    let debug = format!("{webhook:?}");
    assert!(debug.contains("http://127.0.0.1:8080/***"), "{debug}");
    assert!(debug.contains("Authorization"), "{debug}");
}
