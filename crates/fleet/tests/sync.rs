//! Sync against real kube-apiservers started by testenv: apply, the no-change
//! fast path, self-heal, prune, failure isolation, an apiserver that stops, and
//! health.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use pilothouse_fleet::{
    Health, InventoryEntry, ObjectAction, ObjectHealth, SyncError, SyncOptions, SyncOutcome,
    assess_health, sync,
};
use pilothouse_testenv::{ClusterOptions, FakeNode, ProviderCloud, TestCluster};
use serde_json::{Value, json};

use common::*;

/// `key → action` of every object of an outcome.
fn actions(outcome: &SyncOutcome) -> BTreeMap<String, ObjectAction> {
    outcome
        .objects
        .iter()
        .map(|o| (o.key.to_string(), o.action))
        .collect()
}

fn expect(pairs: &[(&str, ObjectAction)]) -> BTreeMap<String, ObjectAction> {
    pairs.iter().map(|(k, a)| ((*k).to_owned(), *a)).collect()
}

/// Every object of the outcome, `key → action`, all with the same action.
fn all(outcome: &SyncOutcome, action: ObjectAction) -> BTreeMap<String, ObjectAction> {
    outcome
        .objects
        .iter()
        .map(|o| (o.key.to_string(), action))
        .collect()
}

fn message_of(outcome: &SyncOutcome, key: &str) -> String {
    outcome
        .objects
        .iter()
        .find(|o| o.key.to_string() == key)
        .and_then(|o| o.message.clone())
        .unwrap_or_else(|| panic!("no message for {key}: {outcome:#?}"))
}

fn health_of(outcome: &SyncOutcome, key: &str) -> (Option<Health>, Option<String>) {
    let object = outcome
        .objects
        .iter()
        .find(|o| o.key.to_string() == key)
        .unwrap_or_else(|| panic!("no {key} in {outcome:#?}"));
    (object.health, object.health_message.clone())
}

/// `kubectl … -o json`, parsed; panics with kubectl's stderr on failure.
fn kubectl_json(cluster: &TestCluster, args: &[&str]) -> Value {
    let output = cluster
        .kubectl()
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
}

fn deployment(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                                         "ports": [{"containerPort": 8080}]}]},
            },
        },
    })
}

fn wait_for_first_consumer_class(name: &str) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
           "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"})
}

fn claim(namespace: &str, name: &str, class: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                    "resources": {"requests": {"storage": "1Gi"}}}})
}

/// A realistic application: namespace, configuration, identity, service,
/// workloads, storage, and a custom resource of a CRD applied with it.
fn shop(mode: &str) -> Vec<Value> {
    vec![
        // deliberately not in apply order
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "gear", "namespace": "shop"}, "spec": {"size": 3}}),
        deployment("shop", "web", 2),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": "shop"},
               "spec": {"serviceName": "db", "replicas": 1,
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-wffc",
                                     "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        config_map("shop", "settings", json!({"mode": mode})),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"}}),
        claim("shop", "cache", "local-wffc"),
        wait_for_first_consumer_class("local-wffc"),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                          "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}),
        namespace("shop"),
    ]
}

const SHOP_KEYS: [&str; 10] = [
    "Namespace shop",
    "apiextensions.k8s.io/CustomResourceDefinition widgets.example.com",
    "ServiceAccount shop/web",
    "ConfigMap shop/settings",
    "storage.k8s.io/StorageClass local-wffc",
    "PersistentVolumeClaim shop/cache",
    "Service shop/web",
    "apps/Deployment shop/web",
    "apps/StatefulSet shop/db",
    "example.com/Widget shop/gear",
];

/// `resourceVersion` of every shop object, read with kubectl.
fn shop_versions(cluster: &TestCluster) -> BTreeMap<String, String> {
    let list = kubectl_json(
        cluster,
        &[
            "get",
            "namespace/shop",
            "customresourcedefinition/widgets.example.com",
            "storageclass/local-wffc",
            "-n",
            "shop",
            "serviceaccount/web",
            "configmap/settings",
            "persistentvolumeclaim/cache",
            "service/web",
            "deployment/web",
            "statefulset/db",
            "widgets.example.com/gear",
        ],
    );
    list["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| {
            let id = format!("{} {}", item["kind"], item["metadata"]["name"]);
            let version = item["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_owned();
            (id, version)
        })
        .collect()
}

#[tokio::test]
async fn an_application_is_created_then_unchanged_without_patches_then_configured_and_healed() {
    let cluster = start("sync-apply").await;
    let client = cluster.client().await.unwrap();

    // 1. everything is created, in apply order, the custom resource included
    let first = sync(&client, shop("fast"), &[], &options()).await.unwrap();
    assert!(first.succeeded, "{first:#?}");
    let order: Vec<String> = first.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(order, SHOP_KEYS);
    assert_eq!(actions(&first), all(&first, ObjectAction::Created));
    assert_eq!(first.inventory.len(), 10);
    assert_eq!(first.message, None);
    let settings = kubectl_json(
        &cluster,
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            "shop",
            "--show-managed-fields",
        ],
    );
    assert_eq!(settings["data"]["mode"], "fast");
    let managers: Vec<&str> = settings["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["pilothouse"]);
    assert_eq!(
        settings["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );
    let widget = kubectl_json(
        &cluster,
        &[
            "get",
            "widgets.example.com",
            "gear",
            "-n",
            "shop",
            "--show-managed-fields",
        ],
    );
    assert_eq!(widget["spec"]["size"], 3);
    assert_eq!(
        widget["metadata"]["managedFields"][0]["manager"],
        "pilothouse"
    );
    // health right after the apply, from what the PATCH returned
    assert_eq!(
        health_of(&first, "apps/Deployment shop/web").0,
        Some(Health::Progressing)
    );
    assert_eq!(
        health_of(&first, "PersistentVolumeClaim shop/cache"),
        (
            Some(Health::Healthy),
            Some("waiting for the first consumer before binding".into())
        )
    );
    assert_eq!(
        health_of(
            &first,
            "apiextensions.k8s.io/CustomResourceDefinition widgets.example.com"
        ),
        (Some(Health::Healthy), None)
    );
    assert_eq!(first.health, Health::Progressing);

    // 2. the same input again: nothing is patched. The client may only read,
    // so any PATCH would fail with 403.
    kubectl(
        &cluster,
        &[
            "create",
            "clusterrole",
            "reader",
            "--verb=get,list,watch",
            "--resource=*.*",
        ],
    );
    kubectl(
        &cluster,
        &[
            "create",
            "clusterrolebinding",
            "reader",
            "--clusterrole=reader",
            "--user=reader",
        ],
    );
    let reader = client_as(&cluster, "reader").await;
    let versions = shop_versions(&cluster);
    assert_eq!(versions.len(), 10);
    let again = sync(&reader, shop("fast"), &first.inventory, &options())
        .await
        .unwrap();
    assert!(again.succeeded, "{again:#?}");
    assert_eq!(actions(&again), all(&again, ObjectAction::Unchanged));
    assert_eq!(again.inventory, first.inventory);
    assert_eq!(shop_versions(&cluster), versions);
    // the health of unchanged objects comes from the listing
    assert_eq!(
        health_of(&again, "PersistentVolumeClaim shop/cache").0,
        Some(Health::Healthy)
    );
    assert_eq!(
        health_of(&again, "apps/Deployment shop/web").0,
        Some(Health::Progressing)
    );
    // ...whereas force_apply patches every object
    let forced = SyncOptions {
        force_apply: true,
        ..options()
    };
    let refused = sync(&reader, shop("fast"), &first.inventory, &forced)
        .await
        .unwrap();
    assert!(!refused.succeeded);
    assert_eq!(actions(&refused), all(&refused, ObjectAction::Failed));
    assert!(
        message_of(&refused, "ConfigMap shop/settings").contains("forbidden"),
        "{refused:#?}"
    );
    assert_eq!(refused.inventory, first.inventory);
    let forced_admin = sync(&client, shop("fast"), &first.inventory, &forced)
        .await
        .unwrap();
    assert!(forced_admin.succeeded, "{forced_admin:#?}");
    // the API server decides: a no-op apply writes nothing, but the first
    // re-apply of some objects (a Namespace whose apply set no fields, a claim)
    // writes once
    for object in &forced_admin.objects {
        assert!(
            matches!(
                object.action,
                ObjectAction::Unchanged | ObjectAction::Configured
            ),
            "{object:?}"
        );
    }
    assert_eq!(
        actions(&forced_admin)["ConfigMap shop/settings"],
        ObjectAction::Unchanged
    );

    // 3. a changed manifest: only that object is configured
    let changed = sync(&client, shop("safe"), &forced_admin.inventory, &options())
        .await
        .unwrap();
    let mut expected = all(&changed, ObjectAction::Unchanged);
    expected.insert("ConfigMap shop/settings".into(), ObjectAction::Configured);
    assert_eq!(actions(&changed), expected);
    assert_eq!(
        kubectl_json(&cluster, &["get", "configmap", "settings", "-n", "shop"])["data"]["mode"],
        "safe"
    );

    // 4. self-heal: changes made with kubectl under other field managers are
    // taken back (forced apply), untouched objects stay unpatched
    kubectl(
        &cluster,
        &[
            "patch",
            "configmap",
            "settings",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"data":{"mode":"hacked","extra":"kept"}}"#,
        ],
    );
    kubectl(
        &cluster,
        &["scale", "deployment", "web", "-n", "shop", "--replicas=5"],
    );
    let healed = sync(&client, shop("safe"), &changed.inventory, &options())
        .await
        .unwrap();
    let mut expected = all(&healed, ObjectAction::Unchanged);
    expected.insert("ConfigMap shop/settings".into(), ObjectAction::Configured);
    expected.insert("apps/Deployment shop/web".into(), ObjectAction::Configured);
    assert_eq!(actions(&healed), expected);
    let settings = kubectl_json(&cluster, &["get", "configmap", "settings", "-n", "shop"]);
    // our field is ours again; a field we do not set stays with its manager
    assert_eq!(settings["data"], json!({"mode": "safe", "extra": "kept"}));
    let web = kubectl_json(&cluster, &["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(web["spec"]["replicas"], 2);
    // and the next sync is quiet again
    let quiet = sync(&reader, shop("safe"), &healed.inventory, &options())
        .await
        .unwrap();
    assert_eq!(actions(&quiet), all(&quiet, ObjectAction::Unchanged));
}

#[tokio::test]
async fn prune_deletes_what_is_no_longer_desired_unless_it_is_not_ours() {
    let cluster = start("sync-prune").await;
    let client = cluster.client().await.unwrap();
    let mut keep_me = config_map("p", "keep-me", json!({"k": "v"}));
    keep_me["metadata"]["annotations"] = json!({"pilothouse.dev/prune": "disabled"});
    let base = vec![namespace("p"), config_map("p", "stays", json!({"k": "v"}))];
    let mut full = base.clone();
    full.extend([
        config_map("p", "old", json!({"k": "v"})),
        keep_me,
        config_map("p", "recreated", json!({"k": "v"})),
        config_map("p", "vanished", json!({"k": "v"})),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "old", "namespace": "p"},
               "spec": {"ports": [{"port": 80}]}}),
    ]);
    let first = sync(&client, full, &[], &options()).await.unwrap();
    assert!(first.succeeded, "{first:#?}");

    kubectl(&cluster, &["delete", "configmap", "recreated", "-n", "p"]);
    kubectl(&cluster, &["create", "configmap", "recreated", "-n", "p"]);
    kubectl(&cluster, &["delete", "configmap", "vanished", "-n", "p"]);

    let pruned = sync(&client, base.clone(), &first.inventory, &options())
        .await
        .unwrap();
    assert!(pruned.succeeded, "{pruned:#?}");
    // prunes follow the applies, in reverse apply order: Services before ConfigMaps
    let order: Vec<(String, ObjectAction)> = pruned
        .objects
        .iter()
        .map(|o| (o.key.to_string(), o.action))
        .collect();
    let expected: Vec<(String, ObjectAction)> = [
        ("Namespace p", ObjectAction::Unchanged),
        ("ConfigMap p/stays", ObjectAction::Unchanged),
        ("Service p/old", ObjectAction::Pruned),
        ("ConfigMap p/vanished", ObjectAction::Pruned),
        ("ConfigMap p/recreated", ObjectAction::PruneSkipped),
        ("ConfigMap p/old", ObjectAction::Pruned),
        ("ConfigMap p/keep-me", ObjectAction::PruneSkipped),
    ]
    .into_iter()
    .map(|(k, a)| (k.to_owned(), a))
    .collect();
    assert_eq!(order, expected);
    assert_eq!(message_of(&pruned, "ConfigMap p/vanished"), "already gone");
    assert!(message_of(&pruned, "ConfigMap p/recreated").contains("recreated by someone else"));
    assert!(message_of(&pruned, "ConfigMap p/keep-me").contains("pilothouse.dev/prune: disabled"));
    assert!(!exists(&cluster, &["configmap", "old", "-n", "p"]));
    assert!(!exists(&cluster, &["service", "old", "-n", "p"]));
    assert!(exists(&cluster, &["configmap", "keep-me", "-n", "p"]));
    assert!(exists(&cluster, &["configmap", "recreated", "-n", "p"]));
    // the inventory holds exactly what is desired: kept objects are no longer ours
    let keys: Vec<String> = pruned.inventory.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(keys, ["Namespace p", "ConfigMap p/stays"]);

    // an empty desired set prunes nothing unless allowed
    let refused = sync(&client, Vec::new(), &pruned.inventory, &options()).await;
    assert_eq!(refused, Err(SyncError::EmptyDesiredSet { inventory: 2 }));
    assert!(exists(&cluster, &["configmap", "stays", "-n", "p"]));
    let allowed = SyncOptions {
        allow_empty_prune: true,
        ..options()
    };
    let emptied = sync(&client, Vec::new(), &pruned.inventory, &allowed)
        .await
        .unwrap();
    assert_eq!(
        actions(&emptied),
        expect(&[
            ("ConfigMap p/stays", ObjectAction::Pruned),
            ("Namespace p", ObjectAction::Pruned),
        ])
    );
    assert!(emptied.inventory.is_empty());
    assert!(!exists(&cluster, &["configmap", "stays", "-n", "p"]));
    // without a namespace controller the namespace stays Terminating
    assert_eq!(
        message_of(&emptied, "Namespace p"),
        "deletion started; finalizers still hold the object"
    );
    let namespace = kubectl_json(&cluster, &["get", "namespace", "p"]);
    assert_eq!(namespace["status"]["phase"], "Terminating");
}

#[tokio::test]
async fn a_rejected_object_fails_alone_and_nothing_is_pruned() {
    let cluster = start("sync-failure").await;
    let client = cluster.client().await.unwrap();
    let first = sync(
        &client,
        vec![
            namespace("f"),
            config_map("f", "one", json!({"v": "1"})),
            config_map("f", "two", json!({"v": "1"})),
        ],
        &[],
        &options(),
    )
    .await
    .unwrap();
    assert!(first.succeeded);

    let second = sync(
        &client,
        vec![
            namespace("f"),
            config_map("f", "one", json!({"v": "2"})),
            config_map("f", "three", json!({"v": "1"})),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": "f"},
                   "spec": {"ports": [{"port": 70000}]}}),
            json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g", "namespace": "f"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "homeless"}}),
        ],
        &first.inventory,
        &options(),
    )
    .await
    .unwrap();
    assert!(!second.succeeded);
    assert_eq!(
        actions(&second),
        expect(&[
            ("Namespace f", ObjectAction::Unchanged),
            ("Secret homeless", ObjectAction::Failed),
            ("ConfigMap f/one", ObjectAction::Configured),
            ("ConfigMap f/three", ObjectAction::Created),
            ("Service f/bad", ObjectAction::Failed),
            ("example.com/Gizmo f/g", ObjectAction::Failed),
            ("ConfigMap f/two", ObjectAction::PruneSkipped),
        ])
    );
    let rejected = message_of(&second, "Service f/bad");
    assert!(
        rejected.contains("spec.ports[0].port") && rejected.contains("70000"),
        "{rejected}"
    );
    assert_eq!(
        message_of(&second, "example.com/Gizmo f/g"),
        "the cluster does not serve example.com/v1"
    );
    assert_eq!(
        message_of(&second, "Secret homeless"),
        "Secret is namespaced but the manifest has no metadata.namespace"
    );
    assert_eq!(
        second.message.as_deref(),
        Some("pruning skipped: 3 objects failed to apply")
    );
    assert_eq!(health_of(&second, "Service f/bad").0, Some(Health::Unknown));
    assert_eq!(second.health, Health::Unknown);
    // the others were applied; nothing was pruned
    assert_eq!(
        kubectl_json(&cluster, &["get", "configmap", "one", "-n", "f"])["data"]["v"],
        "2"
    );
    assert!(exists(&cluster, &["configmap", "three", "-n", "f"]));
    assert!(exists(&cluster, &["configmap", "two", "-n", "f"]));
    // the inventory is the previous one plus what was applied
    let mut keys: Vec<String> = second.inventory.iter().map(|e| e.key.to_string()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ConfigMap f/one",
            "ConfigMap f/three",
            "ConfigMap f/two",
            "Namespace f"
        ]
    );
    let one = |inventory: &[InventoryEntry]| {
        inventory
            .iter()
            .find(|e| e.key.name == "one")
            .unwrap()
            .manifest_sha256
            .clone()
    };
    assert_ne!(one(&second.inventory), one(&first.inventory));
}

#[tokio::test]
async fn a_stopped_apiserver_ends_the_sync_with_failures_and_a_restart_converges() {
    let mut cluster = start("sync-outage").await;
    let client = cluster.client().await.unwrap();
    let desired = || {
        let mut objects = vec![namespace("o")];
        objects.extend((0..20).map(|i| config_map("o", &format!("c{i}"), json!({"i": "x"}))));
        objects.push(deployment("o", "web", 1));
        objects
    };
    let first = sync(&client, desired(), &[], &options()).await.unwrap();
    assert!(first.succeeded);

    cluster.stop_apiserver();
    let short = SyncOptions {
        call_timeout: Duration::from_secs(2),
        ..SyncOptions::default()
    };
    let down = sync(&client, desired(), &first.inventory, &short)
        .await
        .unwrap();
    assert!(!down.succeeded);
    assert_eq!(actions(&down), all(&down, ObjectAction::Failed));
    for object in &down.objects {
        let message = object.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("Connection refused")
                || message.contains("not attempted: the cluster stopped answering"),
            "{message}"
        );
    }
    assert_eq!(down.inventory, first.inventory);
    let assessed = assess_health(&client, &first.inventory, &short).await;
    assert!(
        matches!(assessed, Err(SyncError::Unreachable { .. })),
        "{assessed:?}"
    );

    cluster.restart_apiserver().await.unwrap();
    let mut changed = desired();
    changed[1]["data"]["i"] = json!("y");
    let back = sync(&client, changed, &down.inventory, &options())
        .await
        .unwrap();
    assert!(back.succeeded, "{back:#?}");
    let mut expected = all(&back, ObjectAction::Unchanged);
    expected.insert("ConfigMap o/c0".into(), ObjectAction::Configured);
    assert_eq!(actions(&back), expected);
}

#[tokio::test]
async fn a_cluster_that_never_answers_ends_the_sync_after_one_call_timeout() {
    // a server that accepts connections and never says a word
    let (client, silent) = silent_client().await;
    let desired: Vec<Value> = (0..50)
        .map(|i| config_map("q", &format!("c{i}"), json!({})))
        .collect();
    let options = SyncOptions {
        call_timeout: Duration::from_secs(1),
        ..SyncOptions::default()
    };
    let objects = desired.len();
    let outcome = sync(&client, desired, &[], &options).await.unwrap();
    // the calls in flight when the first timed out, not one per object
    assert!(
        silent.connections() <= options.concurrency + 1,
        "{} connections for {objects} objects",
        silent.connections()
    );
    assert!(!outcome.succeeded);
    assert_eq!(actions(&outcome), all(&outcome, ObjectAction::Failed));
    assert_eq!(
        message_of(&outcome, "ConfigMap q/c0"),
        "cannot discover v1: no answer within 1s"
    );
    silent.abort();
}

fn healths(assessed: &[ObjectHealth]) -> BTreeMap<String, (Health, Option<String>)> {
    assessed
        .iter()
        .map(|h| (h.key.to_string(), (h.health, h.message.clone())))
        .collect()
}

#[tokio::test]
async fn health_follows_the_status_of_what_was_applied() {
    let cluster = start("sync-health").await;
    let client = cluster.client().await.unwrap();
    let desired = vec![
        namespace("h"),
        wait_for_first_consumer_class("local-wffc"),
        claim("h", "lazy", "local-wffc"),
        claim("h", "plain", "standard"),
        deployment("h", "web", 3),
    ];
    let applied = sync(&client, desired, &[], &options()).await.unwrap();
    assert!(applied.succeeded, "{applied:#?}");
    assert_eq!(
        health_of(&applied, "apps/Deployment h/web"),
        (
            Some(Health::Progressing),
            Some("waiting for the controller to observe generation 1 (observed 0)".into())
        )
    );
    assert_eq!(
        health_of(&applied, "PersistentVolumeClaim h/plain"),
        (Some(Health::Progressing), Some("phase Pending".into()))
    );
    assert_eq!(
        health_of(&applied, "PersistentVolumeClaim h/lazy").0,
        Some(Health::Healthy)
    );

    // what a deployment controller would report after a rollout
    let resource = ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        plural: "deployments".into(),
    };
    let deployments: Api<DynamicObject> = Api::namespaced_with(client.clone(), "h", &resource);
    let set_status = |status: Value| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch_status(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .unwrap();
        }
    };
    set_status(
        json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                      "readyReplicas": 3, "availableReplicas": 3}),
    )
    .await;
    let assessed = assess_health(&client, &applied.inventory, &options())
        .await
        .unwrap();
    let expected: BTreeMap<String, (Health, Option<String>)> = [
        ("Namespace h", (Health::Healthy, None)),
        (
            "storage.k8s.io/StorageClass local-wffc",
            (Health::Healthy, None),
        ),
        (
            "PersistentVolumeClaim h/lazy",
            (
                Health::Healthy,
                Some("waiting for the first consumer before binding".to_owned()),
            ),
        ),
        (
            "PersistentVolumeClaim h/plain",
            (Health::Progressing, Some("phase Pending".to_owned())),
        ),
        ("apps/Deployment h/web", (Health::Healthy, None)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(healths(&assessed), expected);

    set_status(
        json!({"updatedReplicas": 1, "availableReplicas": 1, "conditions": [{
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet \"web-5d4f\" has timed out progressing.",
        "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
    )
    .await;
    kubectl(
        &cluster,
        &[
            "delete",
            "persistentvolumeclaim",
            "plain",
            "-n",
            "h",
            "--wait=false",
        ],
    );
    let assessed = healths(
        &assess_health(&client, &applied.inventory, &options())
            .await
            .unwrap(),
    );
    assert_eq!(
        assessed["apps/Deployment h/web"],
        (
            Health::Degraded,
            Some("ReplicaSet \"web-5d4f\" has timed out progressing.".to_owned())
        )
    );
    // a claim being deleted is held by its protection finalizer, or gone
    let plain = &assessed["PersistentVolumeClaim h/plain"];
    assert!(
        *plain == (Health::Missing, None)
            || *plain == (Health::Progressing, Some("being deleted".to_owned())),
        "{plain:?}"
    );
}

#[tokio::test]
async fn in_a_live_cluster_a_synced_deployment_becomes_healthy() {
    let cluster = TestCluster::start_with(ClusterOptions::live("sync-live"))
        .await
        .unwrap_or_else(|error| {
            panic!("cannot start a test cluster (run scripts/install-test-binaries.sh): {error}")
        });
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::None))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let desired = || vec![namespace("live"), deployment("live", "web", 2)];
    let applied = sync(&client, desired(), &[], &options()).await.unwrap();
    assert!(applied.succeeded, "{applied:#?}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let assessed = assess_health(&client, &applied.inventory, &options())
            .await
            .unwrap();
        if Health::worst(assessed.iter().map(|h| h.health)) == Health::Healthy {
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {assessed:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // the controller moved the status (and the resourceVersion) since the
    // apply: the next sync patches, finds nothing to change, and sees it healthy
    let again = sync(&client, desired(), &applied.inventory, &options())
        .await
        .unwrap();
    assert_eq!(actions(&again), all(&again, ObjectAction::Unchanged));
    assert_eq!(again.health, Health::Healthy);
    assert_ne!(again.inventory, applied.inventory);
}
