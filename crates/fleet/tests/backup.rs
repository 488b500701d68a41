//! Export and restore against real kube-apiservers started by testenv: what an
//! export keeps and how it cleans it, a restore into an empty cluster with
//! namespace and storage class maps, the storage class preflight, re-runs
//! that change nothing, dry runs, an interrupted restore, and a cluster that
//! does not answer.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use pilothouse_fleet::{
    ExportError, ExportOptions, ExportedObjects, ObjectKey, RestoreAction, RestoreError,
    RestoreOptions, RestoreReport, export, restore,
};
use pilothouse_testenv::TestCluster;
use serde_json::{Value, json};

use common::*;

/// What the seeded cluster's export of `shop` holds, in apply order, without
/// Secrets.
const SHOP_KEYS: [&str; 20] = [
    "Namespace shop",
    "apiextensions.k8s.io/CustomResourceDefinition widgets.example.com",
    "ServiceAccount shop/app",
    "ConfigMap shop/settings",
    "storage.k8s.io/StorageClass managed-premium",
    "PersistentVolumeClaim shop/data",
    "rbac.authorization.k8s.io/ClusterRole shop-metrics",
    "rbac.authorization.k8s.io/ClusterRole shop-viewer",
    "rbac.authorization.k8s.io/ClusterRoleBinding shop-metrics",
    "rbac.authorization.k8s.io/Role shop/reader",
    "rbac.authorization.k8s.io/RoleBinding shop/reader",
    "rbac.authorization.k8s.io/RoleBinding shop/view-builtin",
    "rbac.authorization.k8s.io/RoleBinding shop/viewer",
    "Service shop/db",
    "Service shop/edge",
    "Service shop/web",
    "Pod shop/debug",
    "apps/Deployment shop/web",
    "apps/StatefulSet shop/db",
    "example.com/Widget shop/gear",
];

fn options() -> ExportOptions {
    ExportOptions {
        namespaces: Some(vec!["shop".to_owned()]),
        call_timeout: Duration::from_secs(20),
        ..ExportOptions::default()
    }
}

fn restore_options() -> RestoreOptions {
    RestoreOptions {
        storage_class_map: [("managed-premium".to_owned(), "gp2".to_owned())].into(),
        call_timeout: Duration::from_secs(20),
        ..RestoreOptions::default()
    }
}

/// Applies objects with client-side `kubectl apply`, as people do.
fn kubectl_apply(cluster: &TestCluster, objects: Vec<Value>) {
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(file.path(), list.to_string()).unwrap();
    kubectl(
        cluster,
        &["apply", "-f", &file.path().display().to_string()],
    );
}

fn storage_class(name: &str, provisioner: &str) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
           "provisioner": provisioner})
}

fn cluster_role(name: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
           "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
}

fn binding(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    role: (&str, &str),
    subject: (&str, &str),
) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata,
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1},
           "subjects": [{"kind": "ServiceAccount", "namespace": subject.0, "name": subject.1}]})
}

/// An application in `shop`, with what the cluster would have made around it,
/// and a namespace `other`.
async fn seed(cluster: &TestCluster) {
    kubectl_apply(
        cluster,
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}}),
            namespace("other"),
            storage_class("managed-premium", "disk.csi.azure.com"),
            storage_class("unused", "disk.csi.azure.com"),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com"},
                   "spec": {"group": "example.com", "scope": "Namespaced",
                            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                            "versions": [{"name": "v1", "served": true, "storage": true,
                                          "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                              "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}),
            cluster_role("shop-viewer"),
            cluster_role("shop-metrics"),
            cluster_role("unrelated"),
            binding(
                "ClusterRoleBinding",
                None,
                "shop-metrics",
                ("ClusterRole", "shop-metrics"),
                ("shop", "app"),
            ),
            binding(
                "ClusterRoleBinding",
                None,
                "other-binding",
                ("ClusterRole", "unrelated"),
                ("other", "x"),
            ),
        ],
    );
    kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
        ],
    );
    let selector = |app: &str| json!({"matchLabels": {"app": app}});
    let template = |app: &str| {
        json!({"metadata": {"labels": {"app": app}},
               "spec": {"containers": [{"name": app, "image": "nginx:1.27"}]}})
    };
    kubectl_apply(
        cluster,
        vec![
            config_map("shop", "settings", json!({"mode": "fast"})),
            config_map("shop", "kube-root-ca.crt", json!({"ca.crt": "x"})),
            config_map("other", "other-settings", json!({})),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"},
                   "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-token", "namespace": "shop",
                   "annotations": {"kubernetes.io/service-account.name": "app"}},
                   "type": "kubernetes.io/service-account-token"}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "shop"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": "reader", "namespace": "shop"},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
            binding(
                "RoleBinding",
                Some("shop"),
                "reader",
                ("Role", "reader"),
                ("shop", "app"),
            ),
            binding(
                "RoleBinding",
                Some("shop"),
                "viewer",
                ("ClusterRole", "shop-viewer"),
                ("shop", "app"),
            ),
            binding(
                "RoleBinding",
                Some("shop"),
                "view-builtin",
                ("ClusterRole", "view"),
                ("shop", "app"),
            ),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
                   "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "edge", "namespace": "shop"},
                   "spec": {"type": "NodePort", "selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                      {"name": "https", "port": 443}]}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "data", "namespace": "shop",
                                "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "managed-premium",
                            "volumeName": "pv-data", "resources": {"requests": {"storage": "1Gi"}}}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
                   "spec": {"serviceName": "db", "replicas": 1, "selector": selector("db"), "template": template("db"),
                            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "managed-premium",
                                         "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"replicas": 2, "selector": selector("web"), "template": template("web")}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "shop"},
                   "spec": {"nodeName": "node-1", "containers": [{"name": "sh", "image": "busybox"}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-5d8f-x2k", "namespace": "shop",
                   "labels": {"app": "web"},
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                                        "uid": "6f1c2a64-2d9e-4c1e-9a57-0f5f3c0f2a11", "controller": true}]},
                   "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "shop-lock", "namespace": "shop"}, "spec": {"holderIdentity": "a"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "gear", "namespace": "shop"}, "spec": {"size": 3}}),
        ],
    );
    cluster
        .warning_event("shop", "debug", "BackOff", "restarting")
        .await
        .unwrap();
}

fn keys(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| ObjectKey::of(o).expect("a key").to_string())
        .collect()
}

fn find<'a>(exported: &'a ExportedObjects, key: &str) -> &'a Value {
    exported
        .objects
        .iter()
        .find(|o| ObjectKey::of(o).is_some_and(|k| k.to_string() == key))
        .unwrap_or_else(|| panic!("no {key} among {:?}", keys(&exported.objects)))
}

#[tokio::test]
async fn an_export_keeps_what_a_restore_needs_cleaned_for_re_creation() {
    let cluster = start("backup-export").await;
    seed(&cluster).await;
    let client = cluster.client().await.unwrap();

    let exported = export(&client, &options()).await.unwrap();
    assert_eq!(keys(&exported.objects), SHOP_KEYS, "{exported:?}");
    assert_eq!(exported.unreadable, []);
    assert_eq!(exported.counts.values().sum::<usize>(), SHOP_KEYS.len());
    assert_eq!(exported.counts["rbac.authorization.k8s.io/RoleBinding"], 3);
    assert_eq!(exported.counts["Service"], 3);
    assert_eq!(exported.counts["example.com/Widget"], 1);
    assert!(!exported.counts.contains_key("Secret"));

    // nothing the cluster decided is left
    for object in &exported.objects {
        let metadata = object["metadata"].as_object().unwrap();
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "ownerReferences",
            "selfLink",
        ] {
            assert!(!metadata.contains_key(field), "{field} in {object}");
        }
        assert_eq!(object.get("status"), None, "{object}");
        let annotations = metadata.get("annotations").cloned().unwrap_or(json!({}));
        assert_eq!(
            annotations.get("kubectl.kubernetes.io/last-applied-configuration"),
            None
        );
    }
    let web = find(&exported, "Service shop/web");
    assert_eq!(web["spec"].get("clusterIP"), None);
    assert_eq!(web["spec"].get("clusterIPs"), None);
    assert_eq!(web["spec"]["ports"][0]["port"], 80);
    assert_eq!(
        find(&exported, "Service shop/db")["spec"]["clusterIP"],
        "None"
    );
    // the node port asked for stays, the allocated one goes
    let edge = &find(&exported, "Service shop/edge")["spec"]["ports"];
    assert_eq!(edge[0]["nodePort"], 30080, "{edge}");
    assert_eq!(edge[1].get("nodePort"), None, "{edge}");
    let claim = find(&exported, "PersistentVolumeClaim shop/data");
    assert_eq!(claim["spec"].get("volumeName"), None);
    assert_eq!(claim["spec"]["storageClassName"], "managed-premium");
    assert_eq!(claim["metadata"].get("annotations"), None, "{claim}");
    assert_eq!(
        find(&exported, "Pod shop/debug")["spec"].get("nodeName"),
        None
    );
    assert_eq!(
        find(&exported, "Namespace shop")["metadata"],
        json!({"name": "shop", "labels": {"team": "a"}})
    );
    assert_eq!(
        find(
            &exported,
            "rbac.authorization.k8s.io/ClusterRoleBinding shop-metrics"
        )["subjects"],
        json!([{"kind": "ServiceAccount", "namespace": "shop", "name": "app"}])
    );

    // Secrets only when asked, and never service account tokens
    let with_secrets = export(
        &client,
        &ExportOptions {
            include_secrets: true,
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(with_secrets.counts.get("Secret"), Some(&1));
    assert_eq!(
        find(&with_secrets, "Secret shop/creds")["data"],
        json!({"password": "aHVudGVyMg=="})
    );
    assert!(!format!("{with_secrets:?}").contains("aHVudGVyMg"));

    // every namespace but the cluster's own, without the API server's Service
    let everything = export(
        &client,
        &ExportOptions {
            namespaces: None,
            ..options()
        },
    )
    .await
    .unwrap();
    let namespaces: Vec<String> = keys(&everything.objects)
        .into_iter()
        .filter(|k| k.starts_with("Namespace "))
        .collect();
    assert_eq!(
        namespaces,
        ["Namespace default", "Namespace other", "Namespace shop"]
    );
    let all = keys(&everything.objects);
    assert!(all.contains(&"ConfigMap other/other-settings".to_owned()));
    assert!(!all.iter().any(|k| k.contains("kube-system")), "{all:?}");
    assert!(!all.contains(&"Service default/kubernetes".to_owned()));
    assert!(
        !all.iter()
            .any(|k| k.contains("other-binding") || k.contains("unused"))
    );

    let missing = export(
        &client,
        &ExportOptions {
            namespaces: Some(vec!["shop".into(), "nope".into()]),
            ..options()
        },
    )
    .await;
    assert_eq!(
        missing.err(),
        Some(ExportError::NoSuchNamespace {
            namespace: "nope".into()
        })
    );
}

/// Whether every field of `expected` is in `live` with the same value (arrays
/// element by element); the path of the first difference.
fn contains(live: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (live, expected) {
        (Value::Object(live), Value::Object(expected)) => {
            for (field, value) in expected {
                let here = format!("{path}.{field}");
                contains(live.get(field).unwrap_or(&Value::Null), value, &here)?;
            }
            Ok(())
        }
        (Value::Array(live), Value::Array(expected)) if live.len() == expected.len() => live
            .iter()
            .zip(expected)
            .enumerate()
            .try_for_each(|(i, (l, e))| contains(l, e, &format!("{path}[{i}]"))),
        (live, expected) if live == expected => Ok(()),
        (live, expected) => Err(format!("{path}: {live} instead of {expected}")),
    }
}

/// The object with every string `from` replaced by `to`: what the maps do.
fn replaced(value: &Value, pairs: &[(&str, &str)]) -> Value {
    match value {
        Value::String(text) => pairs
            .iter()
            .find(|(from, _)| from == text)
            .map_or_else(|| value.clone(), |(_, to)| json!(to)),
        Value::Array(items) => Value::Array(items.iter().map(|v| replaced(v, pairs)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replaced(v, pairs)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Reads an object live; `None` when it does not exist.
async fn read(client: &Client, object: &Value) -> Option<Value> {
    let key = ObjectKey::of(object).unwrap();
    let api_version = object["apiVersion"].as_str().unwrap();
    let version = api_version.rsplit('/').next().unwrap();
    let gvk = GroupVersionKind::gvk(&key.group, version, &key.kind);
    // a custom kind whose definition is missing is not served
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.ok()?;
    let api: Api<DynamicObject> = match &key.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let found = api.get_opt(&key.name).await.unwrap()?;
    Some(serde_json::to_value(found).unwrap())
}

/// `key → resourceVersion` of the objects on the cluster (`None`: missing).
async fn versions(client: &Client, objects: &[Value]) -> BTreeMap<String, Option<String>> {
    let mut found = BTreeMap::new();
    for object in objects {
        let version = read(client, object).await.map(|live| {
            live["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_owned()
        });
        found.insert(ObjectKey::of(object).unwrap().to_string(), version);
    }
    found
}

fn actions(report: &RestoreReport) -> BTreeMap<String, RestoreAction> {
    report
        .objects
        .iter()
        .map(|o| (o.key.to_string(), o.action))
        .collect()
}

fn all_are(report: &RestoreReport, action: RestoreAction) {
    let wrong: Vec<_> = report
        .objects
        .iter()
        .filter(|o| o.action != action)
        .collect();
    assert!(wrong.is_empty(), "not {action:?}: {wrong:#?}");
}

#[tokio::test]
async fn a_restore_maps_namespaces_and_storage_classes_and_a_second_one_changes_nothing() {
    let (source, target) = tokio::join!(start("backup-a"), start("backup-b"));
    seed(&source).await;
    let exported = export(
        &source.client().await.unwrap(),
        &ExportOptions {
            include_secrets: true,
            ..options()
        },
    )
    .await
    .unwrap();
    let client = target.client().await.unwrap();
    let mapped = RestoreOptions {
        namespace_map: [("shop".to_owned(), "store".to_owned())].into(),
        ..restore_options()
    };
    let pairs = [("shop", "store"), ("managed-premium", "gp2")];
    let expected: Vec<Value> = exported
        .objects
        .iter()
        .filter(|o| o["kind"] != "StorageClass")
        .map(|o| replaced(o, &pairs))
        .collect();

    // the mapped class does not exist on the target: refused before anything
    let refused = restore(&client, exported.objects.clone(), &mapped).await;
    assert_eq!(
        refused.err(),
        Some(RestoreError::MissingStorageClasses {
            classes: vec!["gp2".into()]
        })
    );
    let before = versions(&client, &expected).await;
    assert!(before.values().all(Option::is_none), "{before:?}");

    kubectl_apply(&target, vec![storage_class("gp2", "ebs.csi.aws.com")]);
    let report = restore(&client, exported.objects.clone(), &mapped)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:#?}");
    all_are(&report, RestoreAction::Created);
    // the Secret in, the replaced StorageClass out
    assert_eq!(report.summary.created, SHOP_KEYS.len());
    let skipped: Vec<String> = report.skipped.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(skipped, ["storage.k8s.io/StorageClass managed-premium"]);
    assert!(!exists(&target, &["storageclass/managed-premium"]));

    // object by object: what was exported, with the maps applied
    for object in &expected {
        let live = read(&client, object)
            .await
            .unwrap_or_else(|| panic!("missing on the target: {object}"));
        contains(&live, object, "").unwrap_or_else(|d| panic!("{}: {d}", object["kind"]));
    }
    let claim = expected
        .iter()
        .find(|o| o["kind"] == "PersistentVolumeClaim")
        .unwrap();
    let claim = read(&client, claim).await.unwrap();
    assert_eq!(claim["metadata"]["name"], "data");
    assert_eq!(claim["spec"]["storageClassName"], "gp2");
    let set = kubectl(
        &target,
        &[
            "get",
            "statefulset/db",
            "-n",
            "store",
            "-o",
            "jsonpath={.spec.volumeClaimTemplates[0].spec.storageClassName}",
        ],
    );
    assert_eq!(set, "gp2");
    let subjects = kubectl(
        &target,
        &[
            "get",
            "rolebinding/reader",
            "-n",
            "store",
            "-o",
            "jsonpath={.subjects[0].namespace}",
        ],
    );
    assert_eq!(subjects, "store");
    assert!(!exists(&target, &["namespace/shop"]));

    // again: nothing changes
    let restored = versions(&client, &expected).await;
    let again = restore(&client, exported.objects.clone(), &mapped)
        .await
        .unwrap();
    all_are(&again, RestoreAction::Unchanged);
    assert_eq!(again.summary.unchanged, SHOP_KEYS.len());
    assert_eq!(versions(&client, &expected).await, restored);

    // a dry run changes nothing either, and tells what would change
    let dry = RestoreOptions {
        dry_run: true,
        ..mapped.clone()
    };
    let unchanged = restore(&client, exported.objects.clone(), &dry)
        .await
        .unwrap();
    assert!(unchanged.dry_run);
    all_are(&unchanged, RestoreAction::Unchanged);
    let mut edited = exported.objects.clone();
    let settings = edited
        .iter_mut()
        .find(|o| o["kind"] == "ConfigMap")
        .unwrap();
    settings["data"]["mode"] = json!("slow");
    let would = restore(&client, edited, &dry).await.unwrap();
    let mut expected_actions: BTreeMap<String, RestoreAction> = actions(&again);
    expected_actions.insert("ConfigMap store/settings".into(), RestoreAction::Configured);
    assert_eq!(actions(&would), expected_actions);
    assert_eq!(versions(&client, &expected).await, restored);

    // into a namespace that does not exist yet: created, as far as can be told
    let elsewhere = RestoreOptions {
        namespace_map: [("shop".to_owned(), "fresh".to_owned())].into(),
        ..dry.clone()
    };
    let fresh = restore(&client, exported.objects.clone(), &elsewhere)
        .await
        .unwrap();
    assert!(fresh.succeeded(), "{fresh:#?}");
    for object in &fresh.objects {
        if object.key.namespace.is_some() {
            assert_eq!(object.action, RestoreAction::Created, "{object:?}");
            assert_eq!(
                object.message.as_deref(),
                Some("not checked by the server: namespace fresh would be created by this restore")
            );
        }
    }
    assert_eq!(actions(&fresh)["Namespace fresh"], RestoreAction::Created);
    assert!(!exists(&target, &["namespace/fresh"]));
    assert_eq!(versions(&client, &expected).await, restored);
}

#[tokio::test]
async fn an_interrupted_restore_converges_when_run_again() {
    let (source, target) = tokio::join!(start("backup-c"), start("backup-d"));
    seed(&source).await;
    let exported = export(&source.client().await.unwrap(), &options())
        .await
        .unwrap();
    let client = target.client().await.unwrap();
    kubectl_apply(&target, vec![storage_class("gp2", "ebs.csi.aws.com")]);

    // a dry run into the empty cluster: everything would be created, nothing is
    let dry = RestoreOptions {
        dry_run: true,
        ..restore_options()
    };
    let would = restore(&client, exported.objects.clone(), &dry)
        .await
        .unwrap();
    assert!(would.succeeded(), "{would:#?}");
    all_are(&would, RestoreAction::Created);
    let note = |key: &str| {
        would
            .objects
            .iter()
            .find(|o| o.key.to_string() == key)
            .and_then(|o| o.message.clone())
    };
    assert_eq!(note("Namespace shop"), None);
    assert_eq!(
        note("rbac.authorization.k8s.io/ClusterRole shop-viewer"),
        None
    );
    assert_eq!(would.objects.len(), SHOP_KEYS.len() - 1);
    assert_eq!(
        note("apps/Deployment shop/web").as_deref(),
        Some("not checked by the server: namespace shop would be created by this restore")
    );
    assert_eq!(
        note("example.com/Widget shop/gear").as_deref(),
        Some(
            "not checked by the server: its CustomResourceDefinition would be created by this \
             restore"
        )
    );
    assert!(!exists(&target, &["namespace/shop"]));
    assert!(!exists(&target, &["crd/widgets.example.com"]));

    // the first half made it before the restore was stopped
    let half = SHOP_KEYS.len() / 2;
    let first = restore(
        &client,
        exported.objects[..half].to_vec(),
        &restore_options(),
    )
    .await
    .unwrap();
    assert!(first.succeeded(), "{first:#?}");
    // and someone changed an object in between
    kubectl(
        &target,
        &[
            "patch",
            "configmap/settings",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ],
    );

    let second = restore(&client, exported.objects.clone(), &restore_options())
        .await
        .unwrap();
    assert!(second.succeeded(), "{second:#?}");
    let mut expected = BTreeMap::new();
    for (i, key) in SHOP_KEYS.iter().enumerate() {
        let action = match *key {
            "ConfigMap shop/settings" => RestoreAction::Configured,
            "storage.k8s.io/StorageClass managed-premium" => continue,
            _ if i < half => RestoreAction::Unchanged,
            _ => RestoreAction::Created,
        };
        expected.insert((*key).to_owned(), action);
    }
    assert_eq!(actions(&second), expected);
    let mode = kubectl(
        &target,
        &[
            "get",
            "configmap/settings",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.mode}",
        ],
    );
    assert_eq!(mode, "fast");

    // no duplicates: the target exports what the source did
    let back = export(&client, &options()).await.unwrap();
    let mut source_counts = exported.counts.clone();
    source_counts.remove("storage.k8s.io/StorageClass");
    let mut target_counts = back.counts.clone();
    assert_eq!(target_counts.remove("storage.k8s.io/StorageClass"), Some(1));
    assert_eq!(target_counts, source_counts);
}

#[tokio::test]
async fn a_cluster_that_does_not_answer_is_an_error_not_an_empty_backup() {
    let (client, silent) = silent_client().await;
    let quick = ExportOptions {
        call_timeout: Duration::from_secs(1),
        ..options()
    };
    let exported = export(&client, &quick).await;
    assert!(
        matches!(exported, Err(ExportError::Unreachable { .. })),
        "{exported:?}"
    );

    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "shop"}, "spec": {"storageClassName": "gp2"}});
    let quick = RestoreOptions {
        call_timeout: Duration::from_secs(1),
        ..RestoreOptions::default()
    };
    let preflight = restore(&client, vec![claim], &quick).await;
    assert!(
        matches!(preflight, Err(RestoreError::Unreachable { .. })),
        "{preflight:?}"
    );
    let dry = RestoreOptions {
        dry_run: true,
        ..quick
    };
    let dry_run = restore(&client, vec![config_map("shop", "c", json!({}))], &dry).await;
    assert!(
        matches!(dry_run, Err(RestoreError::Unreachable { .. })),
        "{dry_run:?}"
    );
    let invalid = restore(&client, vec![json!({"kind": "ConfigMap"})], &dry).await;
    assert_eq!(
        invalid.err(),
        Some(RestoreError::InvalidObject {
            index: 0,
            reason: "no apiVersion".into()
        })
    );
    silent.abort();
}
