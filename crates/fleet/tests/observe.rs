//! Observation for drift detection against real kube-apiservers started by
//! testenv: would-be objects equal the live ones after a sync (API server
//! defaults are no difference), changes made with kubectl show up where a sync
//! would change them, nothing on the cluster changes, unchanged objects are
//! reused, and failures stay with their objects.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use pilothouse_fleet::{
    InventoryEntry, Observation, Observed, PreviousObservation, SyncError, SyncOptions, observe,
    sync,
};
use pilothouse_testenv::TestCluster;
use serde_json::{Value, json};

use common::*;

/// `kind/name → resourceVersion` of the namespace `shop` and every object in
/// it, read with kubectl.
fn versions(cluster: &TestCluster) -> BTreeMap<String, String> {
    let get = |args: &[&str]| -> Value {
        let output = cluster
            .kubectl()
            .arg("get")
            .args(args)
            .args(["-o", "json"])
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl get {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
    };
    let list = get(&[
        "-n",
        "shop",
        "configmaps,secrets,serviceaccounts,services,deployments,statefulsets",
    ]);
    let items = list["items"].as_array().expect("a list").iter();
    items
        .chain([&get(&["namespace", "shop"])])
        .map(|item| {
            (
                format!("{}/{}", item["kind"], item["metadata"]["name"]),
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

/// What drift detection ignores on both sides: bookkeeping of the API server
/// and the status.
fn normalised(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            metadata.remove(field);
        }
    }
    object
}

/// A realistic application, deliberately not in apply order.
fn shop() -> Vec<Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": "shop"},
               "spec": {"serviceName": "db", "replicas": 1,
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "db", "image": "postgres:17",
                                              "envFrom": [{"secretRef": {"name": "db"}}]}]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                            "spec": {"accessModes": ["ReadWriteOnce"],
                                     "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"serviceAccountName": "web",
                                              "containers": [{"name": "app", "image": "nginx:1.27",
                                                  "ports": [{"containerPort": 8080}],
                                                  "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        config_map("shop", "settings", json!({"mode": "fast"})),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
               "type": "Opaque", "stringData": {"password": "not-a-secret"},
               "data": {"user": "YWRtaW4="}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"}}),
        namespace("shop"),
    ]
}

const SHOP_KEYS: [&str; 7] = [
    "Namespace shop",
    "ServiceAccount shop/web",
    "Secret shop/db",
    "ConfigMap shop/settings",
    "Service shop/web",
    "apps/Deployment shop/web",
    "apps/StatefulSet shop/db",
];

fn find<'a>(observations: &'a [Observation], key: &str) -> &'a Observation {
    observations
        .iter()
        .find(|o| o.key.to_string() == key)
        .unwrap_or_else(|| panic!("no {key} in {observations:#?}"))
}

/// The would-be and live objects of a fresh observation.
fn fresh<'a>(observations: &'a [Observation], key: &str) -> (&'a Value, Option<&'a Value>) {
    match &find(observations, key).state {
        Observed::Fresh { would_be, live } => (would_be, live.as_ref()),
        other => panic!("{key} is not fresh: {other:?}"),
    }
}

/// `key → Fresh / Reused / Failed`.
fn states(observations: &[Observation]) -> BTreeMap<String, &'static str> {
    observations
        .iter()
        .map(|o| {
            let state = match o.state {
                Observed::Fresh { .. } => "Fresh",
                Observed::Reused => "Reused",
                Observed::Failed { .. } => "Failed",
            };
            (o.key.to_string(), state)
        })
        .collect()
}

fn previous_of(observations: &[Observation]) -> Vec<PreviousObservation> {
    observations
        .iter()
        .filter_map(|o| o.to_previous())
        .collect()
}

#[tokio::test]
async fn a_synced_application_would_be_what_it_is_and_observing_changes_nothing() {
    let cluster = start("observe-same").await;
    let client = cluster.client().await.unwrap();
    let applied = sync(&client, shop(), &[], &options()).await.unwrap();
    assert!(applied.succeeded, "{applied:#?}");
    let before = versions(&cluster);
    assert_eq!(before.len(), 7, "{before:?}");

    let mut desired = shop();
    desired.push(config_map("shop", "new", json!({"k": "v"})));
    let (observed, extra) = observe(&client, desired, &[], &[], &options())
        .await
        .unwrap();
    assert!(extra.is_empty());
    // the sync's apply order
    let order: Vec<String> = observed.iter().map(|o| o.key.to_string()).collect();
    let applied_order: Vec<String> = applied.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(applied_order, SHOP_KEYS);
    let mut expected = applied_order.clone();
    expected.insert(3, "ConfigMap shop/new".to_owned());
    assert_eq!(order, expected);

    // API server defaults (a Service's clusterIP and sessionAffinity, a
    // Deployment's strategy, a claim template's volumeMode, …) are on both
    // sides: no difference
    for key in SHOP_KEYS {
        let (would_be, live) = fresh(&observed, key);
        let live = live.unwrap_or_else(|| panic!("{key} is missing"));
        assert_eq!(normalised(would_be), normalised(live), "{key}");
        // the dry-run starts from the version read
        assert_eq!(
            would_be["metadata"]["resourceVersion"], live["metadata"]["resourceVersion"],
            "{key}"
        );
        assert_eq!(
            find(&observed, key).live_resource_version.as_deref(),
            live["metadata"]["resourceVersion"].as_str()
        );
    }
    let (web, _) = fresh(&observed, "apps/Deployment shop/web");
    assert_eq!(web["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(web["metadata"]["managedFields"][0]["manager"], "pilothouse");
    let (db, _) = fresh(&observed, "Secret shop/db");
    // stringData is folded into data, as the API server stores it
    assert_eq!(
        db["data"],
        json!({"password": "bm90LWEtc2VjcmV0", "user": "YWRtaW4="})
    );
    assert!(!format!("{observed:?}").contains("bm90LWEtc2VjcmV0"));

    // an object that does not exist: what it would be created as
    let new = find(&observed, "ConfigMap shop/new");
    assert_eq!(new.live_resource_version, None);
    let (would_be, live) = fresh(&observed, "ConfigMap shop/new");
    assert_eq!(live, None);
    assert_eq!(would_be["data"], json!({"k": "v"}));
    assert_eq!(would_be["metadata"]["namespace"], "shop");

    // nothing changed on the cluster, nothing was created
    assert_eq!(versions(&cluster), before);
    assert!(!exists(&cluster, &["configmap", "new", "-n", "shop"]));
}

#[tokio::test]
async fn changes_made_with_kubectl_show_up_where_a_sync_would_change_them() {
    let cluster = start("observe-drift").await;
    let client = cluster.client().await.unwrap();
    // many ConfigMaps of one kind: reading them again after a change lists them
    let bulk = || {
        (0..20).map(|i| {
            let mut object = config_map("shop", &format!("bulk-{i}"), json!({"i": i.to_string()}));
            object["metadata"]["labels"] = json!({"bulk": "yes"});
            object
        })
    };
    let mut full = shop();
    full.extend(bulk());
    full.push(config_map("shop", "retired", json!({"k": "v"})));
    let applied = sync(&client, full, &[], &options()).await.unwrap();
    assert!(applied.succeeded, "{applied:#?}");
    let retired: Vec<InventoryEntry> = applied
        .inventory
        .iter()
        .filter(|e| e.key.name == "retired")
        .cloned()
        .collect();
    let desired = || {
        let mut desired = shop();
        desired.extend(bulk());
        desired
    };
    let (first, extra) = observe(&client, desired(), &retired, &[], &options())
        .await
        .unwrap();
    assert!(states(&first).values().all(|s| *s == "Fresh"));
    let gone = |extra: &[pilothouse_fleet::ExtraObservation]| {
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].key.to_string(), "ConfigMap shop/retired");
        extra[0].live.clone().unwrap().is_none()
    };
    assert!(!gone(&extra));

    // nothing changed: everything is reused, nothing is fetched. The client
    // may only list: a GET or a dry-run would fail with 403.
    kubectl(
        &cluster,
        &[
            "create",
            "clusterrole",
            "lister",
            "--verb=list",
            "--resource=*.*",
        ],
    );
    kubectl(
        &cluster,
        &[
            "create",
            "clusterrolebinding",
            "lister",
            "--clusterrole=lister",
            "--user=lister",
        ],
    );
    let lister = client_as(&cluster, "lister").await;
    let (same, _) = observe(&lister, desired(), &[], &previous_of(&first), &options())
        .await
        .unwrap();
    assert!(states(&same).values().all(|s| *s == "Reused"), "{same:#?}");
    // ...whereas what is not reused is fetched and dry-run
    let (refused, _) = observe(&lister, desired(), &[], &[], &options())
        .await
        .unwrap();
    let Observed::Failed { message } = &find(&refused, "Secret shop/db").state else {
        panic!("{refused:#?}");
    };
    assert!(message.contains("forbidden"), "{message}");

    kubectl(
        &cluster,
        &["scale", "deployment", "web", "-n", "shop", "--replicas=5"],
    );
    kubectl(
        &cluster,
        &[
            "annotate",
            "configmap",
            "settings",
            "-n",
            "shop",
            "team.example.com/owner=payments",
        ],
    );
    kubectl(&cluster, &["delete", "service", "web", "-n", "shop"]);
    kubectl(
        &cluster,
        &[
            "label",
            "configmaps",
            "-n",
            "shop",
            "-l",
            "bulk=yes",
            "touched=yes",
        ],
    );
    let (second, extra) = observe(
        &client,
        desired(),
        &retired,
        &previous_of(&same),
        &options(),
    )
    .await
    .unwrap();
    assert!(!gone(&extra));
    let mut expected = states(&first);
    expected.iter_mut().for_each(|(_, s)| *s = "Reused");
    for changed in [
        "apps/Deployment shop/web",
        "ConfigMap shop/settings",
        "Service shop/web",
    ] {
        expected.insert(changed.to_owned(), "Fresh");
    }
    for i in 0..20 {
        expected.insert(format!("ConfigMap shop/bulk-{i}"), "Fresh");
    }
    assert_eq!(states(&second), expected);
    // scaled: a sync would set the replicas back
    let (would_be, live) = fresh(&second, "apps/Deployment shop/web");
    assert_eq!(would_be["spec"]["replicas"], 2);
    assert_eq!(live.unwrap()["spec"]["replicas"], 5);
    // annotated with a key Git does not set: on both sides, no drift
    let (would_be, live) = fresh(&second, "ConfigMap shop/settings");
    let live = live.unwrap();
    assert_eq!(
        would_be["metadata"]["annotations"]["team.example.com/owner"],
        "payments"
    );
    assert_eq!(normalised(would_be), normalised(live));
    // deleted: missing, and what a sync would create
    let (would_be, live) = fresh(&second, "Service shop/web");
    assert_eq!(live, None);
    assert_eq!(would_be["spec"]["ports"][0]["port"], 80);
    assert_eq!(
        find(&second, "Service shop/web").live_resource_version,
        None
    );
    // labelled in bulk: read again, on both sides
    for i in 0..20 {
        let key = format!("ConfigMap shop/bulk-{i}");
        let (would_be, live) = fresh(&second, &key);
        let live = live.unwrap();
        assert_eq!(live["metadata"]["labels"]["touched"], "yes", "{key}");
        assert_eq!(normalised(would_be), normalised(live), "{key}");
    }

    // once more: the missing Service is never reused; a Secret labelled since
    // is read again (alone: Secrets are fetched one by one)
    kubectl(
        &cluster,
        &["label", "secret", "db", "-n", "shop", "seen=yes"],
    );
    kubectl(&cluster, &["delete", "configmap", "retired", "-n", "shop"]);
    let before = versions(&cluster);
    let (third, extra) = observe(
        &client,
        desired(),
        &retired,
        &previous_of(&second),
        &options(),
    )
    .await
    .unwrap();
    assert!(gone(&extra));
    let mut expected = states(&first);
    expected.iter_mut().for_each(|(_, s)| *s = "Reused");
    expected.insert("Service shop/web".to_owned(), "Fresh");
    expected.insert("Secret shop/db".to_owned(), "Fresh");
    assert_eq!(states(&third), expected);
    let (would_be, live) = fresh(&third, "Secret shop/db");
    assert_eq!(live.unwrap()["metadata"]["labels"]["seen"], "yes");
    assert_eq!(normalised(would_be), normalised(live.unwrap()));
    // a changed manifest is observed afresh although the object did not change
    let mut changed = desired();
    changed[3]["data"]["mode"] = json!("safe");
    let (fourth, _) = observe(&client, changed, &[], &previous_of(&third), &options())
        .await
        .unwrap();
    let (would_be, live) = fresh(&fourth, "ConfigMap shop/settings");
    assert_eq!(would_be["data"]["mode"], "safe");
    assert_eq!(live.unwrap()["data"]["mode"], "fast");
    assert_eq!(states(&fourth)["ConfigMap shop/bulk-0"], "Reused");
    // observing changed nothing
    assert_eq!(versions(&cluster), before);
    assert!(!exists(&cluster, &["service", "web", "-n", "shop"]));
}

#[tokio::test]
async fn objects_the_api_server_rejects_fail_alone() {
    let cluster = start("observe-failure").await;
    let client = cluster.client().await.unwrap();
    let applied = sync(
        &client,
        vec![namespace("f"), config_map("f", "one", json!({"v": "1"}))],
        &[],
        &options(),
    )
    .await
    .unwrap();
    assert!(applied.succeeded);
    let desired = vec![
        namespace("f"),
        config_map("f", "one", json!({"v": "2"})),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": "f"},
               "spec": {"ports": [{"port": 70000}]}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g", "namespace": "f"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "homeless"}}),
        config_map("ghost", "c", json!({})),
    ];
    let (observed, _) = observe(&client, desired, &[], &[], &options())
        .await
        .unwrap();
    let message = |key: &str| match &find(&observed, key).state {
        Observed::Failed { message } => message.clone(),
        other => panic!("{key} did not fail: {other:?}"),
    };
    let rejected = message("Service f/bad");
    assert!(
        rejected.contains("spec.ports[0].port") && rejected.contains("70000"),
        "{rejected}"
    );
    assert_eq!(
        message("example.com/Gizmo f/g"),
        "the cluster does not serve example.com/v1"
    );
    assert_eq!(
        message("Secret homeless"),
        "Secret is namespaced but the manifest has no metadata.namespace"
    );
    assert_eq!(
        message("ConfigMap ghost/c"),
        "namespaces \"ghost\" not found"
    );
    let (would_be, live) = fresh(&observed, "ConfigMap f/one");
    assert_eq!(would_be["data"]["v"], "2");
    assert_eq!(live.unwrap()["data"]["v"], "1");
    assert!(matches!(
        find(&observed, "Namespace f").state,
        Observed::Fresh { .. }
    ));
    // nothing to reuse from what failed
    assert_eq!(previous_of(&observed).len(), 2);
}

#[tokio::test]
async fn a_stopped_apiserver_is_unreachable_not_in_sync() {
    let mut cluster = start("observe-outage").await;
    let client = cluster.client().await.unwrap();
    let desired = || {
        let mut objects = vec![namespace("o")];
        objects.extend((0..20).map(|i| config_map("o", &format!("c{i}"), json!({"i": "x"}))));
        objects
    };
    let applied = sync(&client, desired(), &[], &options()).await.unwrap();
    assert!(applied.succeeded);
    let (observed, _) = observe(&client, desired(), &[], &[], &options())
        .await
        .unwrap();

    cluster.stop_apiserver();
    let short = SyncOptions {
        call_timeout: Duration::from_secs(2),
        ..SyncOptions::default()
    };
    for previous in [Vec::new(), previous_of(&observed)] {
        let down = observe(&client, desired(), &applied.inventory, &previous, &short).await;
        assert!(
            matches!(down, Err(SyncError::Unreachable { .. })),
            "{down:?}"
        );
    }
}

#[tokio::test]
async fn a_cluster_that_never_answers_is_unreachable_after_one_call_timeout() {
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
    let observed = observe(&client, desired, &[], &[], &options).await;
    // the calls in flight when the first timed out, not one per object
    assert!(
        silent.connections() <= SyncOptions::default().concurrency + 1,
        "{} connections for {objects} objects",
        silent.connections()
    );
    assert_eq!(
        observed.err(),
        Some(SyncError::Unreachable {
            message: "no answer within 1s".to_owned()
        })
    );
    silent.abort();
}
