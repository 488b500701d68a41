//! Cloud profiles: what changes when desired state lands on AKS, GKE or EKS —
//! storage classes of volume claims and the load-balancer annotations of
//! `LoadBalancer` services. Rendering, restore and migration all call
//! [`apply`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::RenderError;

/// A cloud with a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cloud {
    /// Azure Kubernetes Service.
    Aks,
    /// Google Kubernetes Engine.
    Gke,
    /// Amazon Elastic Kubernetes Service.
    Eks,
}

impl Cloud {
    /// All clouds with a profile.
    pub const ALL: [Cloud; 3] = [Cloud::Aks, Cloud::Gke, Cloud::Eks];

    /// The cloud's short name (`aks`, `gke`, `eks`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aks => "aks",
            Cloud::Gke => "gke",
            Cloud::Eks => "eks",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cloud {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aks" => Ok(Cloud::Aks),
            "gke" => Ok(Cloud::Gke),
            "eks" => Ok(Cloud::Eks),
            other => Err(format!("unknown cloud {other:?} (aks, gke or eks)")),
        }
    }
}

/// Storage-class rules of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageClassProfile {
    /// Class given to claims and volumes that name none.
    #[serde(default)]
    pub default: Option<String>,
    /// Source class → this cloud's class. Classes not listed are kept.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

/// Load-balancer rules of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerProfile {
    /// Annotations added to every `LoadBalancer` service (an annotation the
    /// service already sets wins).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// What a cloud changes in objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudProfile {
    /// Storage classes.
    #[serde(default)]
    pub storage_class: StorageClassProfile,
    /// Load balancers.
    #[serde(default)]
    pub load_balancer: LoadBalancerProfile,
}

/// The profiles of every cloud: built-in defaults, overridden per cloud by
/// `gitops/clouds.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudProfiles {
    profiles: BTreeMap<Cloud, CloudProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    profiles: BTreeMap<String, CloudProfile>,
}

fn pairs(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl CloudProfile {
    /// The built-in profile of a cloud.
    pub fn builtin(cloud: Cloud) -> Self {
        let (default, others, annotations) = match cloud {
            Cloud::Aks => (
                "managed-premium",
                ["standard", "standard-rwo", "gp2"],
                pairs(&[(
                    "service.beta.kubernetes.io/azure-load-balancer-internal",
                    "true",
                )]),
            ),
            Cloud::Gke => (
                "standard-rwo",
                ["standard", "managed-premium", "gp2"],
                pairs(&[("networking.gke.io/load-balancer-type", "Internal")]),
            ),
            Cloud::Eks => (
                "gp2",
                ["standard", "managed-premium", "standard-rwo"],
                pairs(&[
                    (
                        "service.beta.kubernetes.io/aws-load-balancer-scheme",
                        "internal",
                    ),
                    (
                        "service.beta.kubernetes.io/aws-load-balancer-type",
                        "external",
                    ),
                    (
                        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type",
                        "ip",
                    ),
                ]),
            ),
        };
        CloudProfile {
            storage_class: StorageClassProfile {
                default: Some(default.to_string()),
                map: others
                    .iter()
                    .map(|s| (s.to_string(), default.to_string()))
                    .collect(),
            },
            load_balancer: LoadBalancerProfile { annotations },
        }
    }
}

impl Default for CloudProfiles {
    fn default() -> Self {
        CloudProfiles {
            profiles: Cloud::ALL
                .iter()
                .map(|c| (*c, CloudProfile::builtin(*c)))
                .collect(),
        }
    }
}

impl CloudProfiles {
    /// The profile of a cloud.
    pub fn get(&self, cloud: Cloud) -> &CloudProfile {
        // Every cloud has an entry: defaults fill the ones a file omits.
        &self.profiles[&cloud]
    }

    /// Parses the text of a `clouds.yaml`. Clouds the file does not list
    /// keep their built-in profile.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Self, RenderError> {
        let invalid = |message: String| RenderError::InvalidProfiles {
            file: file.to_path_buf(),
            message,
        };
        let value = crate::yaml::parse_single(text).map_err(|source| RenderError::Yaml {
            path: file.to_path_buf(),
            source,
        })?;
        let parsed: ProfilesFile = crate::kustomization::decode_strict(value)
            .map_err(|(field, message)| invalid(format!("field {field}: {message}")))?;
        let mut out = CloudProfiles::default();
        for (name, profile) in parsed.profiles {
            let cloud =
                Cloud::from_str(&name).map_err(|e| invalid(format!("profiles.{name}: {e}")))?;
            if profile.storage_class.default.as_deref() == Some("") {
                return Err(invalid(format!(
                    "profiles.{name}.storageClass.default must not be empty"
                )));
            }
            out.profiles.insert(cloud, profile);
        }
        Ok(out)
    }

    /// Reads a `clouds.yaml`, or the built-in defaults when `path` does not
    /// exist.
    pub fn load(path: &Path) -> Result<Self, RenderError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_yaml(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(RenderError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Finds `gitops/clouds.yaml` by walking up from `start` to the first
    /// directory holding `gitops/`. `None` when there is none.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        let start = std::fs::canonicalize(start).ok()?;
        start
            .ancestors()
            .find(|dir| dir.join("gitops").is_dir())
            .map(|dir| dir.join("gitops").join("clouds.yaml"))
    }
}

fn api_group(obj: &Map<String, Value>) -> &str {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Maps one `storageClassName` slot.
fn map_class(spec: &mut Map<String, Value>, profile: &StorageClassProfile) {
    match spec.get("storageClassName") {
        None | Some(Value::Null) => {
            if let Some(default) = &profile.default {
                spec.insert("storageClassName".into(), Value::String(default.clone()));
            }
        }
        Some(Value::String(class)) if class.is_empty() => {}
        Some(Value::String(class)) => {
            if let Some(target) = profile.map.get(class) {
                spec.insert("storageClassName".into(), Value::String(target.clone()));
            }
        }
        Some(_) => {}
    }
}

/// Applies a cloud profile to objects: storage classes of
/// PersistentVolumeClaims, PersistentVolumes and StatefulSet
/// volumeClaimTemplates, and load-balancer annotations of Services of type
/// `LoadBalancer`. Works on any objects, rendered or read from a cluster.
pub fn apply(profile: &CloudProfile, objects: &mut [Value]) {
    for object in objects.iter_mut() {
        let Value::Object(obj) = object else {
            continue;
        };
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let group = api_group(obj).to_string();
        match (group.as_str(), kind.as_str()) {
            ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
                if let Some(Value::Object(spec)) = obj.get_mut("spec") {
                    map_class(spec, &profile.storage_class);
                }
            }
            ("apps", "StatefulSet") => {
                let templates = obj
                    .get_mut("spec")
                    .and_then(|s| s.get_mut("volumeClaimTemplates"));
                if let Some(Value::Array(templates)) = templates {
                    for t in templates.iter_mut() {
                        if let Value::Object(t) = t {
                            let spec = t.entry("spec").or_insert_with(|| Value::Object(Map::new()));
                            if let Value::Object(spec) = spec {
                                map_class(spec, &profile.storage_class);
                            }
                        }
                    }
                }
            }
            ("", "Service") => {
                let is_lb = obj
                    .get("spec")
                    .and_then(|s| s.get("type"))
                    .and_then(Value::as_str)
                    == Some("LoadBalancer");
                if !is_lb || profile.load_balancer.annotations.is_empty() {
                    continue;
                }
                let meta = obj
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(meta) = meta else { continue };
                let annotations = meta
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(Map::new()));
                if annotations.is_null() {
                    *annotations = Value::Object(Map::new());
                }
                if let Value::Object(annotations) = annotations {
                    for (k, v) in &profile.load_balancer.annotations {
                        annotations
                            .entry(k.clone())
                            .or_insert_with(|| Value::String(v.clone()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Moves `LoadBalancer` Services from one cloud to another, as restore and
/// migration do: the annotations of the source profile's load balancer are
/// removed (whatever their value: they mean nothing on the target), then the
/// target profile's are added as [`apply`] adds them. Other annotations stay.
/// Storage classes are left to the caller's storage-class map.
pub fn retarget_load_balancers(from: &CloudProfile, to: &CloudProfile, objects: &mut [Value]) {
    for object in objects.iter_mut() {
        let Value::Object(obj) = object else {
            continue;
        };
        let is_lb_service = api_group(obj).is_empty()
            && obj.get("kind").and_then(Value::as_str) == Some("Service")
            && obj
                .get("spec")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                == Some("LoadBalancer");
        if !is_lb_service {
            continue;
        }
        if let Some(Value::Object(annotations)) = obj
            .get_mut("metadata")
            .and_then(|meta| meta.get_mut("annotations"))
        {
            for key in from.load_balancer.annotations.keys() {
                if !to.load_balancer.annotations.contains_key(key) {
                    annotations.remove(key);
                }
            }
            // the target's own keys are set to the target's values
            for (key, value) in &to.load_balancer.annotations {
                if from.load_balancer.annotations.contains_key(key) {
                    annotations.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
    }
    let load_balancers_only = CloudProfile {
        storage_class: StorageClassProfile::default(),
        load_balancer: to.load_balancer.clone(),
    };
    apply(&load_balancers_only, objects);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cloud: Cloud, input: &str, expected: &str) {
        let mut objects = crate::yaml::parse_documents(input).expect("input");
        apply(CloudProfiles::default().get(cloud), &mut objects);
        let want = crate::yaml::parse_documents(expected).expect("expected");
        assert_eq!(objects, want, "{cloud}: {input}");
    }

    const PVCS: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: a}\nspec: {}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: b}\nspec: {storageClassName: standard}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {storageClassName: \"\"}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: d}\nspec: {storageClassName: fast-local}\n";

    #[test]
    fn storage_classes_per_cloud() {
        for (cloud, class) in [
            (Cloud::Aks, "managed-premium"),
            (Cloud::Gke, "standard-rwo"),
            (Cloud::Eks, "gp2"),
        ] {
            let expected = PVCS
                .replace("spec: {}", &format!("spec: {{storageClassName: {class}}}"))
                .replace(
                    "storageClassName: standard}",
                    &format!("storageClassName: {class}}}"),
                );
            check(cloud, PVCS, &expected);
        }
    }

    #[test]
    fn cross_cloud_classes_are_mapped() {
        check(
            Cloud::Gke,
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {storageClassName: gp2}\n  - metadata: {name: logs}\n",
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {storageClassName: standard-rwo}\n  - metadata: {name: logs}\n    spec: {storageClassName: standard-rwo}\n",
        );
        check(
            Cloud::Aks,
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\nspec: {storageClassName: standard-rwo}\n",
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\nspec: {storageClassName: managed-premium}\n",
        );
    }

    #[test]
    fn load_balancer_annotations_per_cloud() {
        let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  annotations: {networking.gke.io/load-balancer-type: External}\nspec: {type: LoadBalancer}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: ip}\nspec: {type: ClusterIP}\n";
        check(
            Cloud::Gke,
            svc,
            svc, // the service's own annotation wins
        );
        check(
            Cloud::Aks,
            svc,
            &svc.replace(
                "annotations: {networking.gke.io/load-balancer-type: External}",
                "annotations: {networking.gke.io/load-balancer-type: External, service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"}",
            ),
        );
        check(
            Cloud::Eks,
            svc,
            &svc.replace(
                "annotations: {networking.gke.io/load-balancer-type: External}",
                "annotations: {networking.gke.io/load-balancer-type: External, service.beta.kubernetes.io/aws-load-balancer-scheme: internal, service.beta.kubernetes.io/aws-load-balancer-type: external, service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip}",
            ),
        );
    }

    #[test]
    fn load_balancers_move_between_clouds() {
        let profiles = CloudProfiles::default();
        let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: grafana\n  annotations:\n    service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"\n    team: obs\nspec: {type: LoadBalancer}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ip\n  annotations: {service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"}\nspec: {type: ClusterIP}\n";
        let mut objects = crate::yaml::parse_documents(svc).expect("input");
        retarget_load_balancers(
            profiles.get(Cloud::Aks),
            profiles.get(Cloud::Eks),
            &mut objects,
        );
        let want = crate::yaml::parse_documents(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: grafana\n  annotations:\n    team: obs\n    service.beta.kubernetes.io/aws-load-balancer-scheme: internal\n    service.beta.kubernetes.io/aws-load-balancer-type: external\n    service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip\nspec: {type: LoadBalancer}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ip\n  annotations: {service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"}\nspec: {type: ClusterIP}\n",
        )
        .expect("expected");
        assert_eq!(objects, want);
        // and back: the AWS annotations go, the Azure one comes back
        retarget_load_balancers(
            profiles.get(Cloud::Eks),
            profiles.get(Cloud::Aks),
            &mut objects,
        );
        let back = crate::yaml::parse_documents(svc).expect("input");
        assert_eq!(
            objects[0]["metadata"]["annotations"],
            back[0]["metadata"]["annotations"]
        );
    }

    #[test]
    fn profiles_file_is_strict() {
        let ok = "profiles:\n  aks:\n    storageClass:\n      default: premium2\n      map: {standard: premium2}\n    loadBalancer:\n      annotations: {a: \"true\"}\n";
        let p = CloudProfiles::from_yaml(ok, Path::new("clouds.yaml")).expect("valid");
        assert_eq!(
            p.get(Cloud::Aks).storage_class.default.as_deref(),
            Some("premium2")
        );
        assert_eq!(p.get(Cloud::Gke), &CloudProfile::builtin(Cloud::Gke));
        for bad in [
            "profiles:\n  aks:\n    storageClas: {}\n",
            "profiles:\n  azure: {}\n",
            "profiles:\n  aks:\n    loadBalancer:\n      annotations: {a: true}\n",
            "profile: {}\n",
        ] {
            let err = CloudProfiles::from_yaml(bad, Path::new("clouds.yaml")).expect_err(bad);
            assert!(err.to_string().contains("clouds.yaml"), "{err}");
        }
    }
}
