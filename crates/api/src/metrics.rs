//! Prometheus metrics in text format: HTTP requests by route and status;
//! clusters by reachability, drifted objects per cluster and the duration of
//! each cluster's last drift scan (read from the store at scrape time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request counters and latency histograms, keyed by method, route template
/// and status; open connections.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(&'static str, String, u16), Series>>,
    connections: AtomicI64,
}

impl HttpMetrics {
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    fn observe(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = series
            .entry((method, route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    fn render(&self, out: &mut String) {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        out.push_str("# HELP pilothouse_http_connections HTTP connections open.\n");
        out.push_str("# TYPE pilothouse_http_connections gauge\n");
        let _ = writeln!(
            out,
            "pilothouse_http_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        out.push_str("# HELP pilothouse_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE pilothouse_http_requests_total counter\n");
        for ((method, route, status), s) in &series {
            let _ = writeln!(
                out,
                "pilothouse_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP pilothouse_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE pilothouse_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in &series {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (count, bound) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "pilothouse_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "pilothouse_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "pilothouse_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "pilothouse_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

/// The method label: one of the standard methods, else `OTHER`, so that
/// made-up methods (sent before any authentication) add no series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware recording every request under its route template (never the raw
/// path, so cluster names do not explode the label set) and a fixed set of
/// method labels: the label set stays bounded whatever clients send.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.observe(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut out = String::new();
    state.metrics.render(&mut out);
    out.push_str("# HELP pilothouse_clusters Registered clusters by reachability.\n");
    out.push_str("# TYPE pilothouse_clusters gauge\n");
    for (reachability, count) in state.store.count_clusters_by_reachability().await? {
        let _ = writeln!(
            out,
            "pilothouse_clusters{{reachability=\"{}\"}} {count}",
            reachability.as_str()
        );
    }
    let drift = state.store.drift_summary().await?;
    out.push_str("# HELP pilothouse_drift_objects Objects not in sync with Git at the latest scan, by cluster and state.\n");
    out.push_str("# TYPE pilothouse_drift_objects gauge\n");
    for cluster in drift.iter().filter(|c| c.status.is_some()) {
        let name = escape_label(&cluster.cluster);
        for (state, count) in [
            ("modified", cluster.counts.modified),
            ("missing", cluster.counts.missing),
            ("extra", cluster.counts.extra),
            ("unknown", cluster.counts.unknown),
        ] {
            let _ = writeln!(
                out,
                "pilothouse_drift_objects{{cluster=\"{name}\",state=\"{state}\"}} {count}"
            );
        }
    }
    out.push_str("# HELP pilothouse_drift_scan_duration_seconds How long each cluster's latest drift scan took.\n");
    out.push_str("# TYPE pilothouse_drift_scan_duration_seconds gauge\n");
    for cluster in &drift {
        if let Some(ms) = cluster.last_scan_duration_ms {
            let _ = writeln!(
                out,
                "pilothouse_drift_scan_duration_seconds{{cluster=\"{}\"}} {}",
                escape_label(&cluster.cluster),
                ms as f64 / 1000.0
            );
        }
    }
    out.push_str("# HELP pilothouse_incidents_open Open incidents by cluster and reason.\n");
    out.push_str("# TYPE pilothouse_incidents_open gauge\n");
    for (cluster, reason, count) in state.store.count_open_incidents().await? {
        let _ = writeln!(
            out,
            "pilothouse_incidents_open{{cluster=\"{}\",reason=\"{}\"}} {count}",
            escape_label(&cluster),
            escape_label(&reason)
        );
    }
    let unreadable = state.incidents.unreadable_notification_entries();
    out.push_str("# HELP pilothouse_notification_entries_unreadable Stored routes, silences and notification groups the notifier cannot read (they route, mute or remember nothing until replaced).\n");
    out.push_str("# TYPE pilothouse_notification_entries_unreadable gauge\n");
    for (kind, count) in [
        ("route", unreadable.routes),
        ("silence", unreadable.silences),
        ("group", unreadable.groups),
    ] {
        let _ = writeln!(
            out,
            "pilothouse_notification_entries_unreadable{{kind=\"{kind}\"}} {count}"
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// A Prometheus label value with `\\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_each_observation_in_every_bucket_at_or_above_it() {
        let metrics = HttpMetrics::default();
        metrics.observe("GET", "/api/v1/clusters", 200, 0.003);
        metrics.observe("GET", "/api/v1/clusters", 200, 0.2);
        let mut out = String::new();
        metrics.render(&mut out);
        let labels = r#"method="GET",route="/api/v1/clusters",status="200""#;
        assert!(
            out.contains(&format!("pilothouse_http_requests_total{{{labels}}} 2")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{labels},le=\"0.0025\"}} 0")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{labels},le=\"0.005\"}} 1")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{labels},le=\"0.25\"}} 2")),
            "{out}"
        );
        assert!(
            out.contains(&format!("_bucket{{{labels},le=\"+Inf\"}} 2")),
            "{out}"
        );
    }
}
