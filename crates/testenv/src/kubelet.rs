//! A fake kubelet for live mode: takes pods the scheduler bound to a node to
//! Running and Ready, and finishes their deletion, as a kubelet would.
//!
//! It touches a pod once, when it is bound and still has no container statuses,
//! so tests can set any later status themselves; pods annotated
//! `testenv.pilothouse.dev/kubelet: ignore` are left alone entirely.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::objects::PodState;

/// Annotation that keeps the fake kubelet away from a pod.
pub const IGNORE_ANNOTATION: &str = "testenv.pilothouse.dev/kubelet";

/// The running fake kubelet; stops when dropped.
pub(crate) struct FakeKubelet {
    task: JoinHandle<()>,
}

impl FakeKubelet {
    pub fn start(client: Client) -> Self {
        let task = tokio::spawn(async move {
            let pods: Api<Pod> = Api::all(client.clone());
            loop {
                if let Ok(list) = pods
                    .list(&ListParams::default().fields("spec.nodeName!="))
                    .await
                {
                    for pod in list.items {
                        tend(&client, &pod).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self { task }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tend(client: &Client, pod: &Pod) {
    let (Some(namespace), Some(name)) = (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
    ) else {
        return;
    };
    let ignored = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IGNORE_ANNOTATION))
        .is_some_and(|v| v == "ignore");
    if ignored {
        return;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if pod.metadata.deletion_timestamp.is_some() {
        let _ = api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await;
        return;
    }
    let status = pod.status.as_ref();
    let untouched = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_none_or(Vec::is_empty)
        && status
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending");
    if !untouched {
        return;
    }
    let containers: Vec<(String, String)> = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect();
    let body = json!({"status": PodState::running().status(&containers)});
    let _ = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await;
}
