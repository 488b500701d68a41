//! Readable renderings of a [`Payload`]: a title, a Slack message and a
//! plain-text email body.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use crate::{IncidentStatus, IncidentSummary, NotificationStatus, Payload};

/// Longest message excerpt in a Slack line, in characters.
const SLACK_MESSAGE_CHARS: usize = 120;
/// Longest message in an email body, in characters.
const EMAIL_MESSAGE_CHARS: usize = 2000;
/// Most pods or nodes named per incident in an email body.
const EMAIL_NAMES: usize = 10;

impl Payload {
    /// The group as people read it: its label values in label order
    /// (`aks OOMKilled`), else its key, else the receiver's name.
    pub fn group_title(&self) -> String {
        if !self.group_labels.is_empty() {
            let values: Vec<&str> = self.group_labels.values().map(String::as_str).collect();
            values.join(" ")
        } else if !self.group_key.is_empty() {
            self.group_key.clone()
        } else {
            self.receiver.clone()
        }
    }

    /// The notification's one-line title (an email's subject):
    /// `[FIRING:2] aks OOMKilled` — `n` counts the unresolved incidents
    /// listed — or `[RESOLVED] aks OOMKilled`.
    pub fn title(&self) -> String {
        let group = single_line(&self.group_title());
        match self.status {
            NotificationStatus::Firing => {
                let firing = self
                    .incidents
                    .iter()
                    .filter(|i| i.status != IncidentStatus::Resolved)
                    .count();
                format!("[FIRING:{firing}] {group}")
            }
            NotificationStatus::Resolved => format!("[RESOLVED] {group}"),
        }
    }

    /// The Slack message text (mrkdwn, escaped): the title in bold, then one
    /// line per incident — `cluster/namespace/Kind/workload container c:
    /// reason ×count — message excerpt` — and how many were left out.
    pub fn slack_text(&self) -> String {
        let mut text = format!("*{}*", slack_escape(&self.title()));
        if self.repeat {
            text.push_str(" (reminder)");
        }
        for incident in &self.incidents {
            text.push_str("\n• ");
            text.push_str(&slack_escape(&incident_line(incident)));
            if let Some(message) = incident.message.as_deref().map(single_line)
                && !message.is_empty()
            {
                text.push_str(" — ");
                text.push_str(&slack_escape(&excerpt(&message, SLACK_MESSAGE_CHARS)));
            }
        }
        if self.truncated > 0 {
            let _ = write!(text, "\n…and {} more", self.truncated);
        }
        text
    }

    /// A plain-text body (an email's): the title, the group, then every
    /// incident with its times, exit code, image, revision, pods, nodes and
    /// message.
    pub fn text_body(&self) -> String {
        let mut body = String::new();
        let _ = writeln!(body, "{}", self.title());
        if self.repeat {
            body.push_str("(reminder: nothing changed since the last notification)\n");
        }
        let _ = writeln!(body, "\nReceiver: {}", self.receiver);
        let _ = writeln!(body, "Group: {}", self.group_key);
        for (name, value) in &self.group_labels {
            let _ = writeln!(body, "  {name}: {value}");
        }
        for incident in &self.incidents {
            let _ = writeln!(body, "\n- {}", incident_line(incident));
            let _ = write!(
                body,
                "  severity {}; first seen {}; last seen {}",
                incident.severity,
                time(incident.first_seen_at),
                time(incident.last_seen_at)
            );
            if let Some(at) = incident.resolved_at {
                let _ = write!(body, "; resolved {}", time(at));
            }
            if incident.reopen_count > 0 {
                let _ = write!(body, "; reopened {}×", incident.reopen_count);
            }
            body.push('\n');
            if let Some(code) = incident.exit_code {
                let _ = writeln!(body, "  exit code: {code}");
            }
            if let Some(image) = &incident.image {
                let _ = writeln!(body, "  image: {image}");
            }
            if let Some(revision) = &incident.revision {
                let _ = writeln!(body, "  revision: {revision}");
            }
            if !incident.pods.is_empty() {
                let _ = writeln!(body, "  pods: {}", names(&incident.pods));
            }
            if !incident.nodes.is_empty() {
                let _ = writeln!(body, "  nodes: {}", names(&incident.nodes));
            }
            if let Some(message) = &incident.message {
                let message = excerpt(message.trim(), EMAIL_MESSAGE_CHARS);
                let _ = writeln!(body, "  message: {}", message.replace('\n', "\n    "));
            }
        }
        if self.truncated > 0 {
            let _ = writeln!(body, "\n…and {} more incidents", self.truncated);
        }
        body
    }
}

/// `(resolved) aks/shop/Deployment/cart container app: OOMKilled ×3`.
fn incident_line(incident: &IncidentSummary) -> String {
    let mut line = String::new();
    match incident.status {
        IncidentStatus::Open => {}
        IncidentStatus::Resolved => line.push_str("(resolved) "),
        IncidentStatus::Unknown => line.push_str("(unknown) "),
    }
    line.push_str(&incident.cluster);
    if let Some(namespace) = &incident.namespace {
        let _ = write!(line, "/{namespace}");
    }
    let _ = write!(line, "/{}/{}", incident.workload_kind, incident.workload);
    if let Some(container) = &incident.container {
        let _ = write!(line, " container {container}");
    }
    let _ = write!(line, ": {} ×{}", incident.reason, incident.count);
    single_line(&line)
}

/// The first `max` characters, with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Control characters (line breaks included) as spaces, trimmed.
fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Escapes what Slack's mrkdwn treats as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A unix-ms time as an HTTP date (`Tue, 14 Nov 2023 22:13:20 GMT`).
fn time(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms)),
        Err(_) => ms.to_string(),
    }
}

/// Up to [`EMAIL_NAMES`] names, then how many more.
fn names(list: &[String]) -> String {
    let shown = list[..list.len().min(EMAIL_NAMES)].join(", ");
    match list.len().saturating_sub(EMAIL_NAMES) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn incident() -> IncidentSummary {
        IncidentSummary {
            id: 1,
            status: IncidentStatus::Open,
            cluster: "aks".into(),
            namespace: Some("shop".into()),
            workload_kind: "Deployment".into(),
            workload: "cart".into(),
            container: Some("app".into()),
            reason: "OOMKilled".into(),
            severity: "critical".into(),
            count: 3,
            reopen_count: 1,
            first_seen_at: 1_700_000_000_000,
            last_seen_at: 1_700_000_600_000,
            resolved_at: None,
            exit_code: Some(137),
            message: Some("killed <oom> & gone\nsecond line".into()),
            image: Some("cart:1.2".into()),
            revision: Some("3f2a".into()),
            pods: (0..12).map(|i| format!("cart-{i}")).collect(),
            nodes: vec!["node-1".into()],
        }
    }

    fn labels() -> BTreeMap<String, String> {
        [("cluster", "aks"), ("reason", "OOMKilled")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn title_counts_unresolved_incidents() {
        let mut resolved = incident();
        resolved.status = IncidentStatus::Resolved;
        let payload = Payload::new(
            "ops",
            "k",
            labels(),
            false,
            vec![incident(), incident(), resolved.clone()],
        );
        assert_eq!(payload.title(), "[FIRING:2] aks OOMKilled");
        let payload = Payload::new("ops", "k", labels(), false, vec![resolved]);
        assert_eq!(payload.title(), "[RESOLVED] aks OOMKilled");
        let payload = Payload::new("ops", "k", BTreeMap::new(), false, vec![]);
        assert_eq!(payload.title(), "[RESOLVED] k");
    }

    #[test]
    fn slack_text_lists_incidents_escaped() {
        let mut payload = Payload::new("ops", "k", labels(), true, vec![incident()]);
        payload.truncated = 4;
        assert_eq!(
            payload.slack_text(),
            "*[FIRING:1] aks OOMKilled* (reminder)\n\
             • aks/shop/Deployment/cart container app: OOMKilled ×3 — \
             killed &lt;oom&gt; &amp; gone second line\n\
             …and 4 more"
        );
    }

    #[test]
    fn text_body_has_details() {
        let body = Payload::new("ops", "k", labels(), false, vec![incident()]).text_body();
        assert!(body.starts_with("[FIRING:1] aks OOMKilled\n"), "{body}");
        for needle in [
            "- aks/shop/Deployment/cart container app: OOMKilled ×3\n",
            "first seen Tue, 14 Nov 2023 22:13:20 GMT",
            "reopened 1×",
            "exit code: 137",
            "image: cart:1.2",
            "revision: 3f2a",
            "pods: cart-0, cart-1, cart-2, cart-3, cart-4, cart-5, cart-6, cart-7, cart-8, cart-9 and 2 more",
            "message: killed <oom> & gone\n    second line",
        ] {
            assert!(body.contains(needle), "missing {needle:?} in\n{body}");
        }
    }

    #[test]
    fn excerpt_cuts_on_characters() {
        assert_eq!(excerpt("ééé", 2), "éé…");
        assert_eq!(excerpt("ab", 2), "ab");
    }
}
