//! Name references: once names have changed (prefix, suffix, hash), fields
//! that refer to a ConfigMap, Secret, Service … by name are updated to the
//! referred resource's new name, following kustomize's choice rules.

use std::collections::HashMap;

use serde_json::Value;

use crate::fieldspec::{FieldSpec, NameBackRef};
use crate::resource::{Gvk, ResId, Resource, visit_path};

/// What the referral search needs to know about each resource.
struct Candidate {
    cur: ResId,
    prev: Vec<ResId>,
    cluster_scoped: bool,
    effective_ns: String,
    org_effective_ns: String,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

impl Candidate {
    fn name(&self) -> &str {
        &self.cur.name
    }
    fn namespace(&self) -> &str {
        &self.cur.namespace
    }
}

/// All resources, indexed by the names they had before renames.
struct Candidates {
    all: Vec<Candidate>,
    by_old_name: HashMap<String, Vec<usize>>,
}

/// Updates every name reference in `resources`.
pub(crate) fn fix_name_references(
    resources: &mut [Resource],
    backrefs: &[NameBackRef],
) -> Result<(), String> {
    let all: Vec<Candidate> = resources
        .iter()
        .map(|r| {
            let cur = r.cur_id();
            Candidate {
                cluster_scoped: cur.gvk.is_cluster_scoped(),
                effective_ns: cur.effective_namespace().to_string(),
                org_effective_ns: r.org_id().effective_namespace().to_string(),
                cur,
                prev: r.prev_ids.clone(),
                prefixes: r.prefixes.clone(),
                suffixes: r.suffixes.clone(),
            }
        })
        .collect();
    let mut by_old_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, c) in all.iter().enumerate() {
        let mut names: Vec<&str> = c.prev.iter().map(|id| id.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            by_old_name.entry(name.to_string()).or_default().push(i);
        }
    }
    if by_old_name.is_empty() {
        // nothing was renamed: no reference can change
        return Ok(());
    }
    let candidates = Candidates { all, by_old_name };
    // the (back reference, field spec) pairs that apply, per referrer kind
    let mut filters_by_gvk: HashMap<Gvk, Vec<(&NameBackRef, &FieldSpec)>> = HashMap::new();
    for res in resources.iter_mut() {
        let org = res.org_id();
        let filters = filters_by_gvk.entry(org.gvk).or_insert_with_key(|gvk| {
            backrefs
                .iter()
                .flat_map(|b| b.referrers.iter().map(move |s| (b, s)))
                .filter(|(_, spec)| gvk.is_selected_by(&spec.gvk))
                .collect()
        });
        if filters.is_empty() {
            continue;
        }
        let scope = Scope::of(res);
        let referrer_cur = res.cur_id();
        let referrer_prefixes = res.prefixes.clone();
        let referrer_suffixes = res.suffixes.clone();
        for &(backref, spec) in filters.iter() {
            let context = Context {
                referrer_cur: &referrer_cur,
                referrer_prefixes: &referrer_prefixes,
                referrer_suffixes: &referrer_suffixes,
                role_ref_gvk: role_ref_gvk(res, spec),
                target: &backref.target,
                scope: &scope,
                candidates: &candidates,
            };
            let mut root = Value::Object(std::mem::take(&mut res.obj));
            let outcome = visit_path(
                &mut root,
                &spec.path,
                spec.create,
                &mut |node: &mut Value| context.set(node),
            );
            if let Value::Object(map) = root {
                res.obj = map;
            }
            outcome.map_err(|e| {
                format!(
                    "updating name reference in '{}' field of {referrer_cur}: {e}",
                    spec.path.join("/")
                )
            })?;
        }
    }
    Ok(())
}

/// Which resources a referrer may point at: same namespace, cluster-scoped,
/// or (for a RoleBinding) the namespaces of its service account subjects.
struct Scope {
    any: bool,
    effective_ns: String,
    subject_namespaces: Vec<String>,
}

impl Scope {
    fn of(referrer: &Resource) -> Self {
        let cur = referrer.cur_id();
        let mut subject_namespaces = Vec::new();
        if referrer.kind() == "RoleBinding"
            && let Some(Value::Array(subjects)) = referrer.obj.get("subjects")
        {
            for s in subjects {
                if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    && let Some(ns) = s.get("namespace").and_then(Value::as_str)
                {
                    subject_namespaces.push(ns.to_string());
                }
            }
        }
        Scope {
            any: cur.gvk.is_cluster_scoped(),
            effective_ns: cur.effective_namespace().to_string(),
            subject_namespaces,
        }
    }

    fn admits(&self, c: &Candidate) -> bool {
        self.any
            || c.cluster_scoped
            || c.effective_ns == self.effective_ns
            || self
                .subject_namespaces
                .iter()
                .any(|ns| ns == &c.cur.namespace)
    }
}

fn role_ref_gvk(res: &Resource, spec: &FieldSpec) -> Option<Gvk> {
    if spec.path.last().map(String::as_str) != Some("name")
        || spec.path.len() < 2
        || spec.path[spec.path.len() - 2] != "roleRef"
    {
        return None;
    }
    let role_ref = res.obj.get("roleRef")?;
    let group = role_ref.get("apiGroup")?.as_str()?;
    let kind = role_ref.get("kind")?.as_str()?;
    Some(Gvk {
        group: group.into(),
        version: String::new(),
        kind: kind.into(),
    })
}

struct Context<'a> {
    referrer_cur: &'a ResId,
    referrer_prefixes: &'a [String],
    referrer_suffixes: &'a [String],
    role_ref_gvk: Option<Gvk>,
    target: &'a Gvk,
    scope: &'a Scope,
    candidates: &'a Candidates,
}

fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() > b.len() { (b, a) } else { (a, b) };
    let diff = long.len() - short.len();
    if short.is_empty() {
        return diff == 0;
    }
    short.iter().enumerate().all(|(i, s)| &long[i + diff] == s)
}

impl Context<'_> {
    fn set(&self, node: &mut Value) -> Result<(), String> {
        match node {
            Value::Null => Ok(()),
            Value::String(_) => self.set_scalar(node),
            Value::Object(_) => self.set_mapping(node),
            Value::Array(items) => {
                for item in items.iter_mut() {
                    match item {
                        Value::String(_) => self.set_scalar(item)?,
                        Value::Object(_) => self.set_mapping(item)?,
                        _ => {}
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn set_scalar(&self, node: &mut Value) -> Result<(), String> {
        let Some(old) = node.as_str().map(str::to_string) else {
            return Ok(());
        };
        let named: Vec<usize> = self
            .candidates
            .by_old_name
            .get(&old)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&i| self.scope.admits(&self.candidates.all[i]))
                    .collect()
            })
            .unwrap_or_default();
        let chosen = self.select(&old, named, false)?;
        if let Some(i) = chosen {
            let new = self.candidates.all[i].name();
            if new != old {
                *node = Value::String(new.to_string());
            }
        }
        Ok(())
    }

    fn set_mapping(&self, node: &mut Value) -> Result<(), String> {
        let Value::Object(map) = node else {
            return Ok(());
        };
        let Some(old) = map.get("name").and_then(Value::as_str).map(str::to_string) else {
            return Err("path config error; no 'name' field in node".into());
        };
        let all = &self.candidates.all;
        let subset = || (0..all.len()).filter(|&i| self.scope.admits(&all[i]));
        let candidates: Vec<usize> = match map.get("namespace").and_then(Value::as_str) {
            None => subset().collect(),
            Some(ns) => {
                let by_org: Vec<usize> = subset()
                    .filter(|&i| all[i].org_effective_ns == ns)
                    .collect();
                if !by_org.is_empty() {
                    by_org
                } else {
                    subset().filter(|&i| all[i].effective_ns == ns).collect()
                }
            }
        };
        let Some(i) = self.select(&old, candidates, true)? else {
            return Ok(());
        };
        let referral = &all[i];
        if referral.name() == old && referral.namespace().is_empty() {
            return Ok(());
        }
        map.insert("name".into(), Value::String(referral.name().to_string()));
        if !referral.namespace().is_empty() {
            map.insert(
                "namespace".into(),
                Value::String(referral.namespace().to_string()),
            );
        }
        Ok(())
    }

    fn select(
        &self,
        old: &str,
        candidates: Vec<usize>,
        with_ns: bool,
    ) -> Result<Option<usize>, String> {
        let all = &self.candidates.all;
        let mut c: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| all[i].prev.iter().any(|id| id.name == old))
            .filter(|&i| {
                all[i]
                    .prev
                    .iter()
                    .any(|id| id.gvk.is_selected_by(self.target))
            })
            .filter(|&i| match &self.role_ref_gvk {
                None => true,
                Some(g) => all[i].prev.iter().any(|id| id.gvk.is_selected_by(g)),
            })
            .filter(|&i| {
                if self.referrer_cur.gvk.is_cluster_scoped() {
                    return true;
                }
                let cand = &all[i];
                cand.cluster_scoped
                    || cand.cur.gvk.kind == "ServiceAccount"
                    || cand.effective_ns == self.referrer_cur.effective_namespace()
            })
            .collect();
        if c.len() == 1 {
            return Ok(Some(c[0]));
        }
        c.retain(|&i| {
            same_ending(&all[i].prefixes, self.referrer_prefixes)
                && same_ending(&all[i].suffixes, self.referrer_suffixes)
        });
        match c.len() {
            0 => Ok(None),
            1 => Ok(Some(c[0])),
            _ => {
                let first = &all[c[0]];
                let identical = c.iter().all(|&i| {
                    all[i].name() == first.name()
                        && (!with_ns || all[i].namespace() == first.namespace())
                });
                if identical {
                    Ok(Some(c[0]))
                } else {
                    let ids: Vec<String> = c.iter().map(|&i| all[i].cur.to_string()).collect();
                    Err(format!(
                        "found multiple possible referrals for {old:?}: {}",
                        ids.join(", ")
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::transform::add_name_affix;

    /// Renders `input`, prefixes every name with `p-`, fixes references and
    /// compares with `expected`.
    fn check(input: &str, expected: &str) {
        let docs = crate::yaml::parse_documents(input).expect("input");
        let mut resources: Vec<Resource> = docs
            .into_iter()
            .filter_map(|d| match d {
                Value::Object(m) => Some(Resource::new(m, Arc::new(PathBuf::from("test.yaml")))),
                _ => None,
            })
            .collect();
        let config = crate::config::TransformerConfig::defaults();
        add_name_affix(&mut resources, "p-", "", &config.name_prefix).expect("prefixed");
        fix_name_references(&mut resources, &config.name_reference).expect("references fixed");
        let got: Vec<Value> = resources
            .into_iter()
            .map(|r| Value::Object(r.obj))
            .collect();
        let want = crate::yaml::parse_documents(expected).expect("expected");
        assert_eq!(
            crate::yaml::write_documents(&got),
            crate::yaml::write_documents(&want),
            "input:\n{input}"
        );
    }

    #[test]
    fn name_references() {
        // A ConfigMap reference in a Deployment follows the rename.
        check(
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: cm}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {volumes: [{name: v, configMap: {name: cm}}]}}}\n",
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: p-cm}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: p-d}\nspec: {template: {spec: {volumes: [{name: v, configMap: {name: p-cm}}]}}}\n",
        );
        // Names of resources that are not in the build are kept.
        check(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {serviceAccountName: external}}}\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: p-d}\nspec: {template: {spec: {serviceAccountName: external}}}\n",
        );
        // A reference to another namespace's ConfigMap is not rewritten.
        check(
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: cm, namespace: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: b}\nspec: {template: {spec: {volumes: [{name: v, configMap: {name: cm}}]}}}\n",
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: p-cm, namespace: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: p-d, namespace: b}\nspec: {template: {spec: {volumes: [{name: v, configMap: {name: cm}}]}}}\n",
        );
        // RoleBinding roleRef follows the Role of the kind it names, and
        // service account subjects get the account's name.
        check(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{kind: ServiceAccount, name: sa}]\n",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: p-r}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: p-sa}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: p-rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: p-r}\nsubjects: [{kind: ServiceAccount, name: p-sa}]\n",
        );
        // A ClusterRole named like the Role is not taken for a Role roleRef.
        check(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: p-r}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: p-rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n",
        );
    }
}
