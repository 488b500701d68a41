//! `unified_diff`: the readable, kubectl-diff-like text.

use pilothouse_drift::unified_diff;
use serde_json::{Value, json};

fn check(would_be: &Value, live: &Value, expected: &str) {
    let got = unified_diff(would_be, live);
    assert_eq!(got, expected, "got:\n{got}");
}

fn deployment(replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
                    ],
                },
            },
        },
    })
}

fn secret(data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "data": data,
    })
}

#[test]
fn deployment_change() {
    let mut live = deployment(3, "nginx:1.27");
    live["status"] = json!({"replicas": 3});
    live["metadata"]["resourceVersion"] = json!("42");
    live["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    check(
        &deployment(2, "nginx:1.28"),
        &live,
        "\
--- live/apps/v1/Deployment/shop/web
+++ desired/apps/v1/Deployment/shop/web
@@ -6,7 +6,7 @@
   name: web
   namespace: shop
 spec:
-  replicas: 3
+  replicas: 2
   selector:
     matchLabels:
       app: web
@@ -16,7 +16,7 @@
         app: web
     spec:
       containers:
-      - image: nginx:1.27
+      - image: nginx:1.28
         name: web
         ports:
         - containerPort: 8080
",
    );
}

#[test]
fn nothing_to_show() {
    let mut live = deployment(2, "nginx:1.28");
    live["status"] = json!({"replicas": 2});
    live["metadata"]["generation"] = json!(7);
    check(&deployment(2, "nginx:1.28"), &live, "");
}

#[test]
fn missing_object_is_all_added() {
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    check(
        &namespace,
        &Value::Null,
        "\
--- live/v1/Namespace/shop
+++ desired/v1/Namespace/shop
@@ -0,0 +1,4 @@
+apiVersion: v1
+kind: Namespace
+metadata:
+  name: shop
",
    );
}

#[test]
fn secret_values_are_masked() {
    check(
        &secret(json!({"a": "MQ==", "b": "Mg=="})),
        &secret(json!({"a": "MQ==", "b": "Mw==", "c": "NA=="})),
        "\
--- live/v1/Secret/shop/db
+++ desired/v1/Secret/shop/db
@@ -1,8 +1,7 @@
 apiVersion: v1
 data:
   a: (secret)
-  b: (secret, before)
-  c: (secret, before)
+  b: (secret, after)
 kind: Secret
 metadata:
   name: db
",
    );
    // equal values, other fields differ: values still hidden
    let got = unified_diff(&secret(json!({"a": "MQ=="})), &{
        let mut live = secret(json!({"a": "MQ=="}));
        live["type"] = json!("Opaque");
        live
    });
    assert!(got.contains("-type: Opaque"), "{got}");
    assert!(!got.contains("MQ=="), "{got}");
}
