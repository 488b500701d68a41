#!/usr/bin/env python3
"""Generates the render conformance corpus and records kubectl's output.

    scripts/render-corpus.py            # regenerate everything
    scripts/render-corpus.py --only kb  # only cases whose name starts so

Writes crates/render/tests/corpus/<case>/: an input tree shaped like what
real projects ship (operator scaffolds with `configurations` and `vars`,
deep overlay stacks, transformer and generator files, cluster-api
templates, install manifests, YAML and leniency edge cases), then runs
`kubectl kustomize` (the oracle) on it and stores its output in
`expected.yaml`, or its error in `kustomize-error.txt` when it fails. A case
rendered with `--load-restrictor LoadRestrictionsNone` holds a
`load-restrictor` file; one rendered from a subdirectory holds `render-dir`.
The trees are generated (combinations of features over realistic layouts,
from a fixed seed), so the corpus is reproducible and our own.

crates/render/tests/corpus.rs compares pilothouse's render with the stored
output document by document (and error with error) without needing kubectl.
"""

import os
import random
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "crates", "render", "tests", "corpus")
KEEP = {"known-differences.txt", "KUBECTL_VERSION"}

cases = []  # (name, files, render_dir, load_restrictor)


def case(name, files, render_dir=None, load_restrictor=None):
    cases.append((name, files, render_dir, load_restrictor))


def docs(*parts):
    return "---\n".join(p if p.endswith("\n") else p + "\n" for p in parts)


def indent(text, n):
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


# ---------------------------------------------------------------------------
# Resource shapes.


def deployment(name, image, labels=None, sa=None, env_cm=None, secret=None, pvc=None,
               args=None, ports=(8080,), replicas=1, extra_env=None, containers_extra=""):
    labels = labels or {"app": name}
    lab = "".join(f"\n      {k}: {v}" for k, v in labels.items())
    sel = "".join(f"\n      {k}: {v}" for k, v in labels.items())
    tlab = "".join(f"\n        {k}: {v}" for k, v in labels.items())
    spec_extra = ""
    if sa:
        spec_extra += f"      serviceAccountName: {sa}\n"
    env = ""
    if env_cm:
        env += f"""        envFrom:
        - configMapRef:
            name: {env_cm}
"""
    envs = []
    if secret:
        envs.append(f"""        - name: PASSWORD
          valueFrom:
            secretKeyRef:
              name: {secret}
              key: password
""")
    for k, v in (extra_env or {}).items():
        envs.append(f"        - name: {k}\n          value: {v}\n")
    if envs:
        env += "        env:\n" + "".join(envs)
    vols = ""
    mounts = ""
    if pvc:
        vols = f"""      volumes:
      - name: data
        persistentVolumeClaim:
          claimName: {pvc}
"""
        mounts = """        volumeMounts:
        - name: data
          mountPath: /data
"""
    a = ""
    if args:
        a = "        args:\n" + "".join(f"        - {x}\n" for x in args)
    p = "".join(f"        - containerPort: {x}\n" for x in ports)
    if p:
        p = "        ports:\n" + p
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:{lab.replace(chr(10) + '      ', chr(10) + '    ')}
spec:
  replicas: {replicas}
  selector:
    matchLabels:{sel}
  template:
    metadata:
      labels:{tlab}
    spec:
{spec_extra}      containers:
      - name: {name.split('-')[-1] or 'app'}
        image: {image}
{a}{p}{env}{mounts}{containers_extra}{vols}"""


def service(name, selector=None, port=80, target=8080, typ=None):
    selector = selector or {"app": name}
    sel = "".join(f"\n    {k}: {v}" for k, v in selector.items())
    t = f"\n  type: {typ}" if typ else ""
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:{t}
  selector:{sel}
  ports:
  - name: http
    port: {port}
    targetPort: {target}
"""


def configmap(name, data):
    d = "".join(f"  {k}: {v}\n" for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{d}"


def service_account(name):
    return f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n"


def cluster_role(name, rules="- apiGroups: ['']\n  resources: [pods]\n  verbs: [get, list, watch]\n"):
    return f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules:\n{rules}"


def role(name, rules="- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get, update]\n"):
    return f"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\nrules:\n{rules}"


def binding(kind, name, role_kind, role_name, sa, sa_ns=None):
    ns = f"\n  namespace: {sa_ns}" if sa_ns else ""
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata:
  name: {name}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {role_kind}
  name: {role_name}
subjects:
- kind: ServiceAccount
  name: {sa}{ns}
"""


def crd(group, kind, plural, conversion=False):
    conv = ""
    if conversion:
        conv = """  conversion:
    strategy: Webhook
    webhook:
      clientConfig:
        service:
          namespace: system
          name: webhook-service
          path: /convert
      conversionReviewVersions: [v1]
"""
    return f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
  annotations:
    controller-gen.kubebuilder.io/version: v0.14.0
spec:
  group: {group}
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {kind.lower()}
  scope: Namespaced
{conv}  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: {kind} is the Schema for the {plural} API
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""


def kust(**fields):
    """A kustomization from keyword fields (in the given order); values are
    YAML text (already indented) or lists of strings."""
    out = []
    for key, value in fields.items():
        key = {"ns": "namespace"}.get(key, key)
        if value is None:
            continue
        if isinstance(value, list):
            out.append(f"{key}:\n" + "".join(f"- {v}\n" for v in value))
        elif isinstance(value, str) and "\n" in value:
            out.append(f"{key}:\n" + indent(value, 2 if not value.startswith("- ") else 0))
        else:
            out.append(f"{key}: {value}\n")
    return "".join(out)


# ---------------------------------------------------------------------------
# 1. kubebuilder / operator-sdk scaffolds.

KB_CRD_CONFIG = """# teaches kustomize the conversion webhook of CRDs
nameReference:
- kind: Service
  version: v1
  fieldSpecs:
  - kind: CustomResourceDefinition
    version: v1
    group: apiextensions.k8s.io
    path: spec/conversion/webhook/clientConfig/service/name

namespace:
- kind: CustomResourceDefinition
  version: v1
  group: apiextensions.k8s.io
  path: spec/conversion/webhook/clientConfig/service/namespace
  create: false

varReference:
- path: metadata/annotations
"""

KB_WEBHOOK_CONFIG = """nameReference:
- kind: Service
  version: v1
  fieldSpecs:
  - kind: MutatingWebhookConfiguration
    group: admissionregistration.k8s.io
    path: webhooks/clientConfig/service/name
  - kind: ValidatingWebhookConfiguration
    group: admissionregistration.k8s.io
    path: webhooks/clientConfig/service/name

namespace:
- kind: MutatingWebhookConfiguration
  group: admissionregistration.k8s.io
  path: webhooks/clientConfig/service/namespace
  create: true
- kind: ValidatingWebhookConfiguration
  group: admissionregistration.k8s.io
  path: webhooks/clientConfig/service/namespace
  create: true

varReference:
- path: metadata/annotations
"""

KB_CERT_CONFIG = """# name references and var substitution for cert-manager resources
nameReference:
- kind: Issuer
  group: cert-manager.io
  fieldSpecs:
  - kind: Certificate
    group: cert-manager.io
    path: spec/issuerRef/name

varReference:
- kind: Certificate
  group: cert-manager.io
  path: spec/commonName
- kind: Certificate
  group: cert-manager.io
  path: spec/dnsNames
"""


def kubebuilder(name, project, group, kinds, webhook, cert, prom, use_vars, bases_field,
                smp_field, extra_default=""):
    f = {}
    plurals = [k.lower() + "s" for k in kinds]
    crd_res = [f"bases/{group}_{p}.yaml" for p in plurals]
    for k, p in zip(kinds, plurals):
        f[f"config/crd/bases/{group}_{p}.yaml"] = crd(group, k, p, conversion=False)
        f[f"config/crd/patches/webhook_in_{p}.yaml"] = f"""# The following patch enables a conversion webhook for the CRD
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {p}.{group}
spec:
  conversion:
    strategy: Webhook
    webhook:
      clientConfig:
        service:
          namespace: system
          name: webhook-service
          path: /convert
      conversionReviewVersions:
      - v1
"""
        f[f"config/crd/patches/cainjection_in_{p}.yaml"] = f"""# The following patch adds a directive for certmanager to inject CA into the CRD
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    cert-manager.io/inject-ca-from: $(CERTIFICATE_NAMESPACE)/$(CERTIFICATE_NAME)
  name: {p}.{group}
"""
        f[f"config/samples/{group.split('.')[0]}_v1_{k.lower()}.yaml"] = f"""apiVersion: {group}/v1
kind: {k}
metadata:
  labels:
    app.kubernetes.io/name: {project}
    app.kubernetes.io/managed-by: kustomize
  name: {k.lower()}-sample
spec:
  size: 3
"""
    crd_patches = []
    if webhook:
        crd_patches += [f"patches/webhook_in_{p}.yaml" for p in plurals]
    if cert and use_vars:
        crd_patches += [f"patches/cainjection_in_{p}.yaml" for p in plurals]
    kc = kust(resources=crd_res)
    if crd_patches:
        if smp_field == "patchesStrategicMerge":
            kc += kust(patchesStrategicMerge=crd_patches)
        else:
            kc += "patches:\n" + "".join(f"- path: {p}\n" for p in crd_patches)
    kc += "\n# the following config is for teaching kustomize how to do kustomization for CRDs.\nconfigurations:\n- kustomizeconfig.yaml\n"
    f["config/crd/kustomization.yaml"] = kc
    f["config/crd/kustomizeconfig.yaml"] = KB_CRD_CONFIG
    f["config/samples/kustomization.yaml"] = "## Append samples of your project ##\n" + kust(
        resources=[f"{group.split('.')[0]}_v1_{k.lower()}.yaml" for k in kinds])

    f["config/rbac/service_account.yaml"] = service_account("controller-manager")
    f["config/rbac/role.yaml"] = cluster_role("manager-role", "".join(
        f"- apiGroups: [{group}]\n  resources: [{p}, {p}/status]\n  verbs: [get, list, watch, update, patch]\n"
        for p in plurals))
    f["config/rbac/role_binding.yaml"] = binding("ClusterRoleBinding", "manager-rolebinding", "ClusterRole", "manager-role", "controller-manager", "system")
    f["config/rbac/leader_election_role.yaml"] = role("leader-election-role", "- apiGroups: [coordination.k8s.io]\n  resources: [leases]\n  verbs: [get, list, watch, create, update, patch, delete]\n")
    f["config/rbac/leader_election_role_binding.yaml"] = binding("RoleBinding", "leader-election-rolebinding", "Role", "leader-election-role", "controller-manager", "system")
    f["config/rbac/auth_proxy_service.yaml"] = """apiVersion: v1
kind: Service
metadata:
  labels:
    control-plane: controller-manager
  name: controller-manager-metrics-service
  namespace: system
spec:
  ports:
  - name: https
    port: 8443
    protocol: TCP
    targetPort: https
  selector:
    control-plane: controller-manager
"""
    f["config/rbac/auth_proxy_role.yaml"] = cluster_role("proxy-role", "- apiGroups: [authentication.k8s.io]\n  resources: [tokenreviews]\n  verbs: [create]\n")
    f["config/rbac/auth_proxy_role_binding.yaml"] = binding("ClusterRoleBinding", "proxy-rolebinding", "ClusterRole", "proxy-role", "controller-manager", "system")
    editor = [f"{k.lower()}_editor_role.yaml" for k in kinds]
    for k, p in zip(kinds, plurals):
        f[f"config/rbac/{k.lower()}_editor_role.yaml"] = cluster_role(f"{k.lower()}-editor-role", f"- apiGroups: [{group}]\n  resources: [{p}]\n  verbs: ['*']\n")
    f["config/rbac/kustomization.yaml"] = kust(resources=[
        "service_account.yaml", "role.yaml", "role_binding.yaml", "leader_election_role.yaml",
        "leader_election_role_binding.yaml", "auth_proxy_service.yaml", "auth_proxy_role.yaml",
        "auth_proxy_role_binding.yaml"] + editor)

    f["config/manager/manager.yaml"] = """apiVersion: v1
kind: Namespace
metadata:
  labels:
    control-plane: controller-manager
  name: system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
  namespace: system
  labels:
    control-plane: controller-manager
spec:
  selector:
    matchLabels:
      control-plane: controller-manager
  replicas: 1
  template:
    metadata:
      annotations:
        kubectl.kubernetes.io/default-container: manager
      labels:
        control-plane: controller-manager
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
      - command:
        - /manager
        args:
        - --leader-elect
        image: controller:latest
        name: manager
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            drop:
            - "ALL"
        livenessProbe:
          httpGet:
            path: /healthz
            port: 8081
          initialDelaySeconds: 15
          periodSeconds: 20
        resources:
          limits:
            cpu: 500m
            memory: 128Mi
          requests:
            cpu: 10m
            memory: 64Mi
      serviceAccountName: controller-manager
      terminationGracePeriodSeconds: 10
"""
    f["config/manager/kustomization.yaml"] = kust(resources=["manager.yaml"]) + f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
- name: controller
  newName: example.com/{project}
  newTag: v0.0.1
"""
    default_res = ["../crd", "../rbac", "../manager"]
    if webhook:
        f["config/webhook/manifests.yaml"] = f"""---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- admissionReviewVersions:
  - v1
  clientConfig:
    service:
      name: webhook-service
      namespace: system
      path: /mutate-{group.replace('.', '-')}-v1-{kinds[0].lower()}
  failurePolicy: Fail
  name: m{kinds[0].lower()}.kb.io
  rules:
  - apiGroups:
    - {group}
    apiVersions:
    - v1
    operations:
    - CREATE
    - UPDATE
    resources:
    - {plurals[0]}
  sideEffects: None
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- admissionReviewVersions:
  - v1
  clientConfig:
    service:
      name: webhook-service
      namespace: system
      path: /validate-{group.replace('.', '-')}-v1-{kinds[0].lower()}
  failurePolicy: Fail
  name: v{kinds[0].lower()}.kb.io
  rules:
  - apiGroups:
    - {group}
    apiVersions:
    - v1
    operations:
    - CREATE
    - UPDATE
    resources:
    - {plurals[0]}
  sideEffects: None
"""
        f["config/webhook/service.yaml"] = """apiVersion: v1
kind: Service
metadata:
  name: webhook-service
  namespace: system
spec:
  ports:
  - port: 443
    protocol: TCP
    targetPort: 9443
  selector:
    control-plane: controller-manager
"""
        f["config/webhook/kustomization.yaml"] = kust(resources=["manifests.yaml", "service.yaml"]) + "\nconfigurations:\n- kustomizeconfig.yaml\n"
        f["config/webhook/kustomizeconfig.yaml"] = KB_WEBHOOK_CONFIG
        default_res.append("../webhook")
    if cert:
        f["config/certmanager/certificate.yaml"] = """# The following manifests contain a self-signed issuer CR and a certificate CR.
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: selfsigned-issuer
  namespace: system
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: serving-cert  # this name should match the one appeared in kustomizeconfig.yaml
  namespace: system
spec:
  # SERVICE_NAME and SERVICE_NAMESPACE will be substituted by kustomize
  dnsNames:
  - $(SERVICE_NAME).$(SERVICE_NAMESPACE).svc
  - $(SERVICE_NAME).$(SERVICE_NAMESPACE).svc.cluster.local
  issuerRef:
    kind: Issuer
    name: selfsigned-issuer
  secretName: webhook-server-cert # this secret will not be prefixed, since it's not managed by kustomize
"""
        f["config/certmanager/kustomization.yaml"] = kust(resources=["certificate.yaml"]) + "\nconfigurations:\n- kustomizeconfig.yaml\n"
        f["config/certmanager/kustomizeconfig.yaml"] = KB_CERT_CONFIG
        default_res.append("../certmanager")
    if prom:
        f["config/prometheus/monitor.yaml"] = f"""# Prometheus Monitor Service (Metrics)
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  labels:
    control-plane: controller-manager
    app.kubernetes.io/name: {project}
  name: controller-manager-metrics-monitor
  namespace: system
spec:
  endpoints:
    - path: /metrics
      port: https
      scheme: https
      bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
      tlsConfig:
        insecureSkipVerify: true
  selector:
    matchLabels:
      control-plane: controller-manager
"""
        f["config/prometheus/kustomization.yaml"] = kust(resources=["monitor.yaml"])
        default_res.append("../prometheus")
    f["config/default/manager_auth_proxy_patch.yaml"] = """# This patch inject a sidecar container which is a HTTP proxy for the
# controller manager, it performs RBAC authorization against the Kubernetes API using SubjectAccessReviews.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
  namespace: system
spec:
  template:
    spec:
      containers:
      - name: kube-rbac-proxy
        image: gcr.io/kubebuilder/kube-rbac-proxy:v0.15.0
        args:
        - "--secure-listen-address=0.0.0.0:8443"
        - "--upstream=http://127.0.0.1:8080/"
        - "--logtostderr=true"
        - "--v=0"
        ports:
        - containerPort: 8443
          protocol: TCP
          name: https
      - name: manager
        args:
        - "--health-probe-bind-address=:8081"
        - "--metrics-bind-address=127.0.0.1:8080"
        - "--leader-elect"
"""
    patches = ["manager_auth_proxy_patch.yaml"]
    if webhook:
        f["config/default/manager_webhook_patch.yaml"] = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
  namespace: system
spec:
  template:
    spec:
      containers:
      - name: manager
        ports:
        - containerPort: 9443
          name: webhook-server
          protocol: TCP
        volumeMounts:
        - mountPath: /tmp/k8s-webhook-server/serving-certs
          name: cert
          readOnly: true
      volumes:
      - name: cert
        secret:
          defaultMode: 420
          secretName: webhook-server-cert
"""
        patches.append("manager_webhook_patch.yaml")
    if webhook and cert:
        f["config/default/webhookcainjection_patch.yaml"] = """# This patch add annotation to admission webhook config and
# CERTIFICATE_NAMESPACE and CERTIFICATE_NAME will be substituted by kustomize
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
  annotations:
    cert-manager.io/inject-ca-from: $(CERTIFICATE_NAMESPACE)/$(CERTIFICATE_NAME)
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
  annotations:
    cert-manager.io/inject-ca-from: $(CERTIFICATE_NAMESPACE)/$(CERTIFICATE_NAME)
"""
        patches.append("webhookcainjection_patch.yaml")
    kd = f"# Adds namespace to all resources.\nnamespace: {project}-system\n\nnamePrefix: {project}-\n\n"
    kd += extra_default
    kd += f"{bases_field}:\n" + "".join(f"- {r}\n" for r in default_res)
    if smp_field == "patchesStrategicMerge":
        kd += kust(patchesStrategicMerge=patches)
    else:
        kd += "patches:\n" + "".join(f"- path: {p}\n" for p in patches)
    if cert and webhook and use_vars:
        kd += """
# the following config is for teaching kustomize how to do var substitution
vars:
- name: CERTIFICATE_NAMESPACE # namespace of the certificate CR
  objref:
    kind: Certificate
    group: cert-manager.io
    version: v1
    name: serving-cert # this name should match the one in certificate.yaml
  fieldref:
    fieldpath: metadata.namespace
- name: CERTIFICATE_NAME
  objref:
    kind: Certificate
    group: cert-manager.io
    version: v1
    name: serving-cert # this name should match the one in certificate.yaml
- name: SERVICE_NAMESPACE # namespace of the service
  objref:
    kind: Service
    version: v1
    name: webhook-service
  fieldref:
    fieldpath: metadata.namespace
- name: SERVICE_NAME
  objref:
    kind: Service
    version: v1
    name: webhook-service
"""
    elif cert and webhook:
        kd += """
replacements:
- source:
    kind: Service
    version: v1
    name: webhook-service
    fieldPath: .metadata.name
  targets:
  - select:
      kind: Certificate
      group: cert-manager.io
      version: v1
    fieldPaths:
    - .spec.dnsNames.0
    - .spec.dnsNames.1
    options:
      delimiter: '.'
      index: 0
      create: true
- source:
    kind: Service
    version: v1
    name: webhook-service
    fieldPath: .metadata.namespace
  targets:
  - select:
      kind: Certificate
      group: cert-manager.io
      version: v1
    fieldPaths:
    - .spec.dnsNames.0
    - .spec.dnsNames.1
    options:
      delimiter: '.'
      index: 1
      create: true
- source:
    kind: Certificate
    group: cert-manager.io
    version: v1
    name: serving-cert
    fieldPath: .metadata.namespace
  targets:
  - select:
      kind: ValidatingWebhookConfiguration
    fieldPaths:
    - .metadata.annotations.[cert-manager.io/inject-ca-from]
    options:
      delimiter: '/'
      index: 0
      create: true
  - select:
      kind: MutatingWebhookConfiguration
    fieldPaths:
    - .metadata.annotations.[cert-manager.io/inject-ca-from]
    options:
      delimiter: '/'
      index: 0
      create: true
- source:
    kind: Certificate
    group: cert-manager.io
    version: v1
    name: serving-cert
    fieldPath: .metadata.name
  targets:
  - select:
      kind: ValidatingWebhookConfiguration
    fieldPaths:
    - .metadata.annotations.[cert-manager.io/inject-ca-from]
    options:
      delimiter: '/'
      index: 1
      create: true
  - select:
      kind: MutatingWebhookConfiguration
    fieldPaths:
    - .metadata.annotations.[cert-manager.io/inject-ca-from]
    options:
      delimiter: '/'
      index: 1
      create: true
"""
    f["config/default/kustomization.yaml"] = kd
    case(name, f, render_dir="config/default")
    # the samples and the crd directory on their own, as `make install` renders them
    return f


def family_kubebuilder(rng):
    projects = ["memcached-operator", "guestbook", "cronjob", "app-operator", "db-controller", "fleet-agent"]
    groups = ["cache.example.com", "webapp.my.domain", "batch.tutorial.kubebuilder.io", "apps.example.org", "db.acme.io", "fleet.example.net"]
    kinds = [["Memcached"], ["Guestbook", "GuestbookRun"], ["CronJob"], ["App", "AppRevision", "AppPolicy"], ["Database"], ["Agent", "AgentPool"]]
    n = 0
    for webhook in (False, True):
        for cert in (False, True):
            for use_vars in (True, False):
                for variant in range(3):
                    i = (n + variant) % len(projects)
                    prom = (n + variant) % 2 == 0
                    extra = ""
                    if variant == 1:
                        extra = "# Labels to add to all resources and selectors.\ncommonLabels:\n  app.kubernetes.io/part-of: %s\n\n" % projects[i]
                    elif variant == 2:
                        extra = "labels:\n- includeSelectors: false\n  pairs:\n    app.kubernetes.io/name: %s\n    app.kubernetes.io/managed-by: kustomize\n\n" % projects[i]
                    f = kubebuilder(
                        f"kb-{n:02d}-{projects[i]}{'-webhook' if webhook else ''}{'-cert' if cert else ''}{'-vars' if use_vars else '-repl'}",
                        projects[i], groups[i], kinds[i], webhook, cert, prom, use_vars,
                        "bases" if variant == 0 else "resources",
                        "patchesStrategicMerge" if variant != 2 else "patches", extra)
                    n += 1
                    if variant == 0 and n % 4 == 1:
                        case(f"kb-{n:02d}-crd-only-{projects[i]}", f, render_dir="config/crd")
                        n += 1
    # operator-sdk style: an overlay over config/default for testing, and manifests
    for i in range(10):
        p = projects[i % len(projects)]
        f = kubebuilder(f"osdk-{i:02d}-{p}", p, groups[i % len(groups)], kinds[i % len(kinds)],
                        i % 2 == 0, i % 3 != 2, i % 2 == 1, i % 4 < 2, "resources",
                        "patchesStrategicMerge")
        cases.pop()
        f["config/testing/debug_logs_patch.yaml"] = """---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
  namespace: system
spec:
  template:
    spec:
      containers:
        - name: manager
          args:
            - "--zap-log-level=debug"
"""
        f["config/testing/pull_policy/Always.yaml"] = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
  namespace: system
spec:
  template:
    spec:
      containers:
        - name: manager
          imagePullPolicy: Always
"""
        f["config/testing/kustomization.yaml"] = f"""# Adds namespace to all resources.
namespace: osdk-test

namePrefix: osdk-

# Labels to add to all resources and selectors.
#commonLabels:
#  someName: someValue

patchesStrategicMerge:
- manager_image.yaml
- debug_logs_patch.yaml
- ../default/manager_auth_proxy_patch.yaml

apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../crd
- ../rbac
- ../manager
images:
- name: testing
  newName: testing-operator
patches:
- path: pull_policy/Always.yaml
"""
        f["config/testing/manager_image.yaml"] = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-manager
  namespace: system
spec:
  template:
    spec:
      containers:
        - name: manager
          image: testing
"""
        f["config/manifests/kustomization.yaml"] = f"""# These resources constitute the fully configured set of manifests
# used to generate the 'manifests/' directory in a bundle.
resources:
- bases/{p}.clusterserviceversion.yaml
- ../default
- ../samples
"""
        f[f"config/manifests/bases/{p}.clusterserviceversion.yaml"] = f"""apiVersion: operators.coreos.com/v1alpha1
kind: ClusterServiceVersion
metadata:
  annotations:
    alm-examples: '[]'
    capabilities: Basic Install
  name: {p}.v0.0.0
  namespace: placeholder
spec:
  apiservicedefinitions: {{}}
  description: {p} description. TODO.
  displayName: {p}
  install:
    spec:
      deployments: null
    strategy: ""
  installModes:
  - supported: false
    type: OwnNamespace
  - supported: true
    type: AllNamespaces
  keywords:
  - {p}
  maturity: alpha
  provider:
    name: example
  version: 0.0.0
"""
        if i % 2 == 0:
            case(f"osdk-{i:02d}-{p}-testing", f, render_dir="config/testing", load_restrictor="LoadRestrictionsNone")
        else:
            case(f"osdk-{i:02d}-{p}-manifests", f, render_dir="config/manifests")


# ---------------------------------------------------------------------------
# 2. Deep overlay stacks.


def family_overlays(rng):
    envs = ["dev", "staging", "prod"]
    regions = ["eu-west-1", "us-east-2", "ap-south-1"]
    for n in range(70):
        f = {}
        apps = rng.sample(["web", "api", "worker", "cache", "auth", "billing", "search"], rng.randint(1, 3))
        base_res = []
        for a in apps:
            cm = f"{a}-config"
            sec = f"{a}-secret" if rng.random() < 0.5 else None
            pvc = f"{a}-data" if rng.random() < 0.3 else None
            files = {
                "deployment.yaml": deployment(a, f"registry.example.com/shop/{a}:1.{n % 7}.0", labels={"app": a, "tier": "backend" if a != "web" else "frontend"},
                                              sa=a if rng.random() < 0.5 else None, env_cm=cm, secret=sec, pvc=pvc,
                                              args=["--port=8080", f"--name={a}"] if rng.random() < 0.5 else None),
                "service.yaml": service(a, {"app": a}),
            }
            res = ["deployment.yaml", "service.yaml"]
            if "serviceAccountName" in files["deployment.yaml"]:
                files["sa.yaml"] = service_account(a)
                res.append("sa.yaml")
            if pvc:
                files["pvc.yaml"] = f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {pvc}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: {n % 5 + 1}Gi\n"
                res.append("pvc.yaml")
            if rng.random() < 0.3:
                files["hpa.yaml"] = f"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {a}\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {a}\n  minReplicas: 1\n  maxReplicas: 5\n"
                res.append("hpa.yaml")
            if rng.random() < 0.3:
                files["pdb.yaml"] = f"apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {a}\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: {a}\n"
                res.append("pdb.yaml")
            k = kust(resources=res)
            k += f"configMapGenerator:\n- name: {cm}\n  literals:\n  - LOG_LEVEL=info\n  - APP={a}\n"
            if sec:
                k += f"secretGenerator:\n- name: {sec}\n  literals:\n  - password=s3cr3t-{a}\n"
            if rng.random() < 0.3:
                k += "labels:\n- pairs:\n    component: %s\n  includeSelectors: true\n" % a
            for fn, text in files.items():
                f[f"base/{a}/{fn}"] = text
            f[f"base/{a}/kustomization.yaml"] = k
            base_res.append(f"./{a}")
        bk = kust(resources=base_res)
        if rng.random() < 0.4:
            bk += "commonLabels:\n  app.kubernetes.io/part-of: shop\n"
        if rng.random() < 0.3:
            bk += "generatorOptions:\n  labels:\n    generated: \"true\"\n"
        f["base/kustomization.yaml"] = bk
        depth = rng.randint(1, 3)
        parent = "base"
        path = []
        for level in range(depth):
            if level == 0:
                dirname = f"overlays/{envs[n % 3]}"
            elif level == 1:
                dirname = f"regions/{envs[n % 3]}-{regions[n % 3]}"
            else:
                dirname = f"clusters/{envs[n % 3]}-{regions[n % 3]}-{n % 4}"
            rel = os.path.relpath(parent, dirname)
            k = kust(resources=[rel])
            features = rng.sample(["prefix", "suffix", "namespace", "labels", "annotations", "images", "replicas",
                                   "cm-merge", "cm-replace", "cm-new", "secret-new", "smp", "json", "target-smp",
                                   "psm-legacy", "pj-legacy", "replacement", "sort", "generator-options"], rng.randint(2, 6))
            a = apps[0]
            for feat in features:
                if feat == "prefix":
                    k += f"namePrefix: {envs[n % 3]}-\n" if level == 0 else f"namePrefix: l{level}-\n"
                elif feat == "suffix":
                    k += f"nameSuffix: -{regions[n % 3][:2]}{level}\n"
                elif feat == "namespace":
                    k += f"namespace: shop-{envs[n % 3]}\n"
                elif feat == "labels":
                    if rng.random() < 0.5:
                        k += f"commonLabels:\n  env: {envs[n % 3]}\n"
                    else:
                        k += f"labels:\n- pairs:\n    env: {envs[n % 3]}\n  includeTemplates: {str(rng.random() < 0.5).lower()}\n"
                elif feat == "annotations":
                    k += f"commonAnnotations:\n  owner: team-{n % 5}\n  level: \"{level}\"\n"
                elif feat == "images":
                    k += f"images:\n- name: registry.example.com/shop/{a}\n  newTag: 2.{level}.{n}\n"
                    if rng.random() < 0.5:
                        k += f"- name: registry.example.com/shop/{apps[-1]}\n  newName: mirror.example.com/{apps[-1]}\n  digest: sha256:{'ab' * 32}\n"
                elif feat == "replicas":
                    k += f"replicas:\n- name: {a}\n  count: {level + 2}\n"
                elif feat == "cm-merge":
                    k += f"configMapGenerator:\n- name: {a}-config\n  behavior: merge\n  literals:\n  - LOG_LEVEL=debug\n  - LEVEL={level}\n"
                elif feat == "cm-replace":
                    k += f"configMapGenerator:\n- name: {a}-config\n  behavior: replace\n  envs:\n  - app.env\n"
                    f[f"{dirname}/app.env"] = f"# env for {a}\nLOG_LEVEL=warn\nREGION={regions[n % 3]}\nEMPTY=\n"
                elif feat == "cm-new":
                    k += f"configMapGenerator:\n- name: shared-{level}\n  files:\n  - settings.json\n  - custom-key=notes.txt\n"
                    f[f"{dirname}/settings.json"] = '{"feature": true, "limit": %d}\n' % (n * 3)
                    f[f"{dirname}/notes.txt"] = f"release notes {n}\nline two\n"
                elif feat == "secret-new":
                    k += f"secretGenerator:\n- name: tls-{level}\n  type: kubernetes.io/tls\n  files:\n  - tls.crt\n  - tls.key\n"
                    f[f"{dirname}/tls.crt"] = "-----BEGIN CERTIFICATE-----\nMIIB%d\n-----END CERTIFICATE-----\n" % n
                    f[f"{dirname}/tls.key"] = "-----BEGIN PRIVATE KEY-----\nMIIE%d\n-----END PRIVATE KEY-----\n" % n
                elif feat == "smp":
                    k += f"patches:\n- path: resources-{a}.yaml\n"
                    f[f"{dirname}/resources-{a}.yaml"] = f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {a}\nspec:\n  template:\n    spec:\n      containers:\n      - name: {a}\n        resources:\n          limits:\n            memory: {256 * (level + 1)}Mi\n"
                elif feat == "json":
                    k += f"patches:\n- target:\n    kind: Deployment\n    name: {a}\n  patch: |-\n    - op: add\n      path: /spec/template/spec/containers/0/env/-\n      value:\n        name: LEVEL\n        value: \"{level}\"\n    - op: replace\n      path: /spec/revisionHistoryLimit\n      value: 3\n"
                    f[f"base/{a}/deployment.yaml"] = f[f"base/{a}/deployment.yaml"].replace("        envFrom:", "        env:\n        - name: SEED\n          value: x\n        envFrom:", 1) if "        env:\n" not in f[f"base/{a}/deployment.yaml"] else f[f"base/{a}/deployment.yaml"]
                elif feat == "target-smp":
                    k += "patches:\n- target:\n    kind: Service\n    labelSelector: \"\"\n  patch: |-\n    apiVersion: v1\n    kind: Service\n    metadata:\n      name: any\n      annotations:\n        level: \"%d\"\n" % level
                elif feat == "psm-legacy":
                    k += f"patchesStrategicMerge:\n- |-\n  apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: {a}\n  spec:\n    minReadySeconds: {level + 5}\n"
                elif feat == "pj-legacy":
                    k += f"patchesJson6902:\n- target:\n    group: apps\n    version: v1\n    kind: Deployment\n    name: {a}\n  path: pj.yaml\n"
                    f[f"{dirname}/pj.yaml"] = "- op: add\n  path: /metadata/annotations\n  value:\n    patched: json6902\n"
                elif feat == "replacement":
                    k += f"replacements:\n- source:\n    kind: Service\n    name: {a}\n    fieldPath: metadata.name\n  targets:\n  - select:\n      kind: Deployment\n      name: {a}\n    fieldPaths:\n    - spec.template.metadata.annotations.service\n    options:\n      create: true\n"
                elif feat == "sort":
                    k += "sortOptions:\n  order: %s\n" % ("fifo" if rng.random() < 0.5 else "legacy")
                elif feat == "generator-options":
                    k += "generatorOptions:\n  disableNameSuffixHash: true\n  annotations:\n    note: generated\n"
            f[f"{dirname}/kustomization.yaml"] = k
            parent = dirname
            path.append(dirname)
        case(f"ov-{n:02d}-{'-'.join(apps)}-d{depth}", f, render_dir=parent)


# ---------------------------------------------------------------------------
# 3. Transformer and generator files.

TF_KINDS = {
    "prefix": """apiVersion: builtin
kind: PrefixSuffixTransformer
metadata:
  name: prefixer
prefix: team-
suffix: -v2
fieldSpecs:
- path: metadata/name
""",
    "labels": """apiVersion: builtin
kind: LabelTransformer
metadata:
  name: labeler
labels:
  app.kubernetes.io/managed-by: platform
  cost-center: "1234"
fieldSpecs:
- path: metadata/labels
  create: true
- kind: Deployment
  path: spec/template/metadata/labels
  create: true
""",
    "annotations": """apiVersion: builtin
kind: AnnotationsTransformer
metadata:
  name: annotator
annotations:
  contact: platform@example.com
fieldSpecs:
- path: metadata/annotations
  create: true
""",
    "namespace": """apiVersion: builtin
kind: NamespaceTransformer
metadata:
  name: ns
  namespace: apps
fieldSpecs:
- path: metadata/namespace
  create: true
""",
    "namespace-unset": """apiVersion: builtin
kind: NamespaceTransformer
metadata:
  name: ns
  namespace: fallback
unsetOnly: true
setRoleBindingSubjects: allServiceAccounts
fieldSpecs:
- path: metadata/namespace
  create: true
""",
    "image": """apiVersion: builtin
kind: ImageTagTransformer
metadata:
  name: images
imageTag:
  name: nginx
  newName: mirror.example.com/nginx
  newTag: 1.27.1
""",
    "replicas": """apiVersion: builtin
kind: ReplicaCountTransformer
metadata:
  name: replicas
replica:
  name: web
  count: 5
fieldSpecs:
- path: spec/replicas
  create: true
  kind: Deployment
""",
    "patch": """apiVersion: builtin
kind: PatchTransformer
metadata:
  name: patch
target:
  kind: Deployment
patch: |-
  - op: add
    path: /spec/template/spec/priorityClassName
    value: high
""",
    "patch-smp": """apiVersion: builtin
kind: PatchTransformer
metadata:
  name: patch-smp
target:
  kind: Service
patch: |-
  apiVersion: v1
  kind: Service
  metadata:
    name: ignored
  spec:
    sessionAffinity: ClientIP
""",
    "psm": """apiVersion: builtin
kind: PatchStrategicMergeTransformer
metadata:
  name: psm
patches: |-
  apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
  spec:
    template:
      spec:
        containers:
        - name: web
          resources:
            limits:
              cpu: "2"
""",
    "pj": """apiVersion: builtin
kind: PatchJson6902Transformer
metadata:
  name: pj
target:
  group: apps
  version: v1
  kind: Deployment
  name: web
jsonOp: '[{"op": "add", "path": "/spec/paused", "value": true}]'
""",
    "replacement": """apiVersion: builtin
kind: ReplacementTransformer
metadata:
  name: repl
replacements:
- source:
    kind: ConfigMap
    name: settings
    fieldPath: data.host
  targets:
  - select:
      kind: Deployment
    fieldPaths:
    - spec.template.spec.containers.0.env.[name=HOST].value
""",
}

GEN_KINDS = {
    "cm": """apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: generated-settings
literals:
- MODE=plugin
- LEVEL=3
""",
    "cm-nohash": """apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: plain-settings
  namespace: tools
options:
  disableNameSuffixHash: true
  labels:
    from: generator
literals:
- A=1
""",
    "secret": """apiVersion: builtin
kind: SecretGenerator
metadata:
  name: generated-secret
type: Opaque
literals:
- token=abc123
""",
    "cm-merge": """apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: settings
behavior: merge
literals:
- extra=from-generator
""",
}


def tf_base():
    return {
        "base/deployment.yaml": deployment("web", "nginx:1.25", env_cm="settings", extra_env={"HOST": "placeholder"}, sa="web"),
        "base/service.yaml": service("web"),
        "base/sa.yaml": service_account("web"),
        "base/rb.yaml": binding("RoleBinding", "web", "ClusterRole", "view", "web"),
        "base/kustomization.yaml": kust(resources=["deployment.yaml", "service.yaml", "sa.yaml", "rb.yaml"])
        + "configMapGenerator:\n- name: settings\n  literals:\n  - host=db.internal\n",
    }


def family_plugins(rng):
    names = list(TF_KINDS)
    gens = list(GEN_KINDS)
    n = 0
    # each transformer alone, as a file and inline
    for kind in names:
        for how in ("file", "inline", "multi"):
            f = tf_base()
            if how == "file":
                f["overlay/t.yaml"] = TF_KINDS[kind]
                k = kust(resources=["../base"], transformers=["t.yaml"])
            elif how == "inline":
                k = kust(resources=["../base"]) + "transformers:\n- |-\n" + indent(TF_KINDS[kind], 2)
            else:
                other = names[(names.index(kind) + 3) % len(names)]
                f["overlay/t.yaml"] = TF_KINDS[kind] + "---\n" + TF_KINDS[other]
                k = kust(resources=["../base"], namePrefix="o-", transformers=["t.yaml"])
            f["overlay/kustomization.yaml"] = k
            case(f"tf-{n:02d}-{kind}-{how}", f, render_dir="overlay")
            n += 1
    # generators
    for g in gens:
        for how in ("file", "dir"):
            f = tf_base()
            if how == "file":
                f["overlay/g.yaml"] = GEN_KINDS[g]
                k = kust(resources=["../base"], generators=["g.yaml"])
            else:
                f["overlay/generators/cm.yaml"] = GEN_KINDS[g]
                f["overlay/generators/kustomization.yaml"] = kust(resources=["cm.yaml"])
                k = kust(resources=["../base"], generators=["generators"])
            f["overlay/kustomization.yaml"] = k
            case(f"tf-{n:02d}-gen-{g}-{how}", f, render_dir="overlay")
            n += 1
    # random combinations, transformers in a directory of their own
    for i in range(14):
        f = tf_base()
        chosen = rng.sample(names, rng.randint(2, 4))
        for j, kind in enumerate(chosen):
            f[f"overlay/transformers/{j}-{kind}.yaml"] = TF_KINDS[kind]
        f["overlay/transformers/kustomization.yaml"] = kust(resources=[f"{j}-{kind}.yaml" for j, kind in enumerate(chosen)])
        g = rng.choice(gens)
        f["overlay/g.yaml"] = GEN_KINDS[g]
        k = kust(resources=["../base"], generators=["g.yaml"], transformers=["transformers"])
        if i % 3 == 0:
            k += "namespace: mixed\ncommonLabels:\n  mixed: \"yes\"\n"
        f["overlay/kustomization.yaml"] = k
        case(f"tf-{n:02d}-combo-{'-'.join(chosen)}", f, render_dir="overlay")
        n += 1
    # external plugins: an error naming the plugin
    for i, (api, kind) in enumerate([("someteam.example.com/v1", "ChartInflator"), ("config.kubernetes.io/v1", "SopsDecrypt"), ("foo.io/v1", "LabelTransformer")]):
        f = tf_base()
        f["overlay/t.yaml"] = f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./plugin\n"
        f["overlay/kustomization.yaml"] = kust(resources=["../base"], transformers=["t.yaml"])
        case(f"tf-{n:02d}-external-{kind}", f, render_dir="overlay")
        n += 1


# ---------------------------------------------------------------------------
# 4. cluster-api templates.

CAPI_CONFIG = """nameReference:
- kind: KubeadmControlPlane
  group: controlplane.cluster.x-k8s.io
  fieldSpecs:
  - kind: Cluster
    group: cluster.x-k8s.io
    path: spec/controlPlaneRef/name
- kind: DockerCluster
  group: infrastructure.cluster.x-k8s.io
  fieldSpecs:
  - kind: Cluster
    group: cluster.x-k8s.io
    path: spec/infrastructureRef/name
- kind: DockerMachineTemplate
  group: infrastructure.cluster.x-k8s.io
  fieldSpecs:
  - kind: KubeadmControlPlane
    group: controlplane.cluster.x-k8s.io
    path: spec/machineTemplate/infrastructureRef/name
  - kind: MachineDeployment
    group: cluster.x-k8s.io
    path: spec/template/spec/infrastructureRef/name
- kind: KubeadmConfigTemplate
  group: bootstrap.cluster.x-k8s.io
  fieldSpecs:
  - kind: MachineDeployment
    group: cluster.x-k8s.io
    path: spec/template/spec/bootstrap/configRef/name
commonLabels:
- kind: MachineDeployment
  group: cluster.x-k8s.io
  path: spec/selector/matchLabels
  create: true
- kind: MachineDeployment
  group: cluster.x-k8s.io
  path: spec/template/metadata/labels
  create: true
"""


def capi_base(workers):
    md = []
    for w in range(workers):
        md.append(f"""apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: ${{CLUSTER_NAME}}-md-{w}
spec:
  clusterName: ${{CLUSTER_NAME}}
  replicas: ${{WORKER_MACHINE_COUNT}}
  selector:
    matchLabels: null
  template:
    spec:
      bootstrap:
        configRef:
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
          kind: KubeadmConfigTemplate
          name: ${{CLUSTER_NAME}}-md-{w}
      clusterName: ${{CLUSTER_NAME}}
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
        kind: DockerMachineTemplate
        name: ${{CLUSTER_NAME}}-md-{w}
      version: ${{KUBERNETES_VERSION}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: DockerMachineTemplate
metadata:
  name: ${{CLUSTER_NAME}}-md-{w}
spec:
  template:
    spec:
      extraMounts:
      - containerPath: /var/run/docker.sock
        hostPath: /var/run/docker.sock
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta1
kind: KubeadmConfigTemplate
metadata:
  name: ${{CLUSTER_NAME}}-md-{w}
spec:
  template:
    spec:
      joinConfiguration:
        nodeRegistration:
          kubeletExtraArgs:
            eviction-hard: nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%
""")
    return docs("""apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: ${CLUSTER_NAME}
  namespace: ${NAMESPACE}
spec:
  clusterNetwork:
    pods:
      cidrBlocks:
      - 192.168.0.0/16
    serviceDomain: cluster.local
    services:
      cidrBlocks:
      - 10.128.0.0/12
  controlPlaneRef:
    apiVersion: controlplane.cluster.x-k8s.io/v1beta1
    kind: KubeadmControlPlane
    name: ${CLUSTER_NAME}-control-plane
  infrastructureRef:
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
    kind: DockerCluster
    name: ${CLUSTER_NAME}
""", """apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: DockerCluster
metadata:
  name: ${CLUSTER_NAME}
""", """apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: DockerMachineTemplate
metadata:
  name: ${CLUSTER_NAME}-control-plane
spec:
  template:
    spec:
      extraMounts:
      - containerPath: /var/run/docker.sock
        hostPath: /var/run/docker.sock
""", """apiVersion: controlplane.cluster.x-k8s.io/v1beta1
kind: KubeadmControlPlane
metadata:
  name: ${CLUSTER_NAME}-control-plane
spec:
  kubeadmConfigSpec:
    clusterConfiguration:
      apiServer:
        certSANs:
        - localhost
        - 127.0.0.1
      controllerManager:
        extraArgs:
          enable-hostpath-provisioner: "true"
    initConfiguration:
      nodeRegistration:
        criSocket: unix:///var/run/containerd/containerd.sock
        kubeletExtraArgs:
          eviction-hard: nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%
  machineTemplate:
    infrastructureRef:
      apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
      kind: DockerMachineTemplate
      name: ${CLUSTER_NAME}-control-plane
  replicas: ${CONTROL_PLANE_MACHINE_COUNT}
  version: ${KUBERNETES_VERSION}
""", *md)


def family_capi(rng):
    for n in range(32):
        f = {}
        workers = 1 + n % 3
        f["templates/base/cluster-template.yaml"] = capi_base(workers)
        bk = kust(resources=["cluster-template.yaml"])
        if n % 2 == 0:
            bk += "configurations:\n- kustomizeconfig.yaml\n"
            f["templates/base/kustomizeconfig.yaml"] = CAPI_CONFIG
        f["templates/base/kustomization.yaml"] = bk
        flavor = ["ipv6", "mhc", "kcp-scale", "topology", "prefixed", "labels"][n % 6]
        k = kust(resources=["../base"])
        if flavor == "ipv6":
            f["templates/flavor/ipv6-patch.yaml"] = "- op: replace\n  path: /spec/clusterNetwork/pods/cidrBlocks\n  value:\n  - fd00:100:96::/48\n- op: replace\n  path: /spec/clusterNetwork/services/cidrBlocks\n  value:\n  - fd00:100:64::/108\n"
            k += "patchesJson6902:\n- target:\n    group: cluster.x-k8s.io\n    version: v1beta1\n    kind: Cluster\n    name: ${CLUSTER_NAME}\n  path: ipv6-patch.yaml\n"
        elif flavor == "mhc":
            f["templates/flavor/mhc.yaml"] = "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachineHealthCheck\nmetadata:\n  name: ${CLUSTER_NAME}-mhc-0\nspec:\n  clusterName: ${CLUSTER_NAME}\n  maxUnhealthy: 100%\n  selector:\n    matchLabels:\n      cluster.x-k8s.io/deployment-name: ${CLUSTER_NAME}-md-0\n  unhealthyConditions:\n  - type: Ready\n    status: \"False\"\n    timeout: 300s\n"
            k = kust(resources=["../base", "mhc.yaml"])
        elif flavor == "kcp-scale":
            f["templates/flavor/kcp.yaml"] = "apiVersion: controlplane.cluster.x-k8s.io/v1beta1\nkind: KubeadmControlPlane\nmetadata:\n  name: ${CLUSTER_NAME}-control-plane\nspec:\n  rolloutStrategy:\n    rollingUpdate:\n      maxSurge: 0\n"
            k += "patchesStrategicMerge:\n- kcp.yaml\n"
        elif flavor == "topology":
            k += "patches:\n- target:\n    group: cluster.x-k8s.io\n    kind: Cluster\n  patch: |-\n    - op: add\n      path: /spec/topology\n      value:\n        class: quick-start\n        version: ${KUBERNETES_VERSION}\n"
        elif flavor == "prefixed":
            k += "namePrefix: capd-\n"
        elif flavor == "labels":
            k += "commonLabels:\n  cluster.x-k8s.io/cluster-name: ${CLUSTER_NAME}\n"
        if n % 4 == 1:
            k += "namespace: capi-system\n"
        if n % 5 == 2:
            k += "commonAnnotations:\n  clusterctl.cluster.x-k8s.io/move: \"\"\n"
        f["templates/flavor/kustomization.yaml"] = k
        case(f"capi-{n:02d}-{flavor}-w{workers}{'-config' if n % 2 == 0 else ''}", f, render_dir="templates/flavor")


# ---------------------------------------------------------------------------
# 5. Install manifests of GitOps tools and controllers.


def install_manifest(tool, crds, comps, big):
    parts = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {tool}\n"]
    for c in crds:
        parts.append(crd(f"{tool}.io", c, c.lower() + "s"))
    for comp in comps:
        name = f"{tool}-{comp}"
        parts.append(service_account(name))
        parts.append(cluster_role(name, "- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n- nonResourceURLs: ['*']\n  verbs: ['*']\n"))
        parts.append(binding("ClusterRoleBinding", name, "ClusterRole", name, name, tool))
        parts.append(role(name, "- apiGroups: ['']\n  resources: [secrets, configmaps]\n  verbs: [get, list, watch]\n"))
        parts.append(binding("RoleBinding", name, "Role", name, name))
        parts.append(configmap(f"{name}-params", {"log.level": "info", "server.insecure": '"false"', "timeout": '"180"'}))
        extra = ""
        for i in range(big):
            extra += f"        - name: EXTRA_{i}\n          value: \"{i}\"\n"
        d = deployment(name, f"quay.io/{tool}/{tool}:v2.{len(comp)}.0", labels={"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": tool},
                       sa=name, args=[f"/usr/local/bin/{name}", "--loglevel", "$(LOG_LEVEL)"], ports=(8080, 8083))
        d = d.replace("        ports:", "        env:\n        - name: LOG_LEVEL\n          valueFrom:\n            configMapKeyRef:\n              name: %s-params\n              key: log.level\n              optional: true\n%s        ports:" % (name, extra), 1)
        parts.append(d)
        parts.append(service(name, {"app.kubernetes.io/name": name}, port=80, target=8080))
        parts.append(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}-network-policy\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n          app.kubernetes.io/part-of: {tool}\n  policyTypes:\n  - Ingress\n")
    parts.append(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {tool}-secret\n  labels:\n    app.kubernetes.io/part-of: {tool}\ntype: Opaque\n")
    parts.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {tool}-cm\n  labels:\n    app.kubernetes.io/part-of: {tool}\ndata:\n  url: https://{tool}.example.com\n  config.yaml: |\n    repositories:\n    - url: https://github.com/example/{tool}\n      name: main\n    resource.exclusions: |\n      - apiGroups:\n        - cilium.io\n")
    return docs(*parts)


def family_install(rng):
    tools = [("argo-cd", ["Application", "AppProject", "ApplicationSet"], ["server", "repo-server", "application-controller", "dex-server", "redis"]),
             ("flux", ["GitRepository", "Kustomization", "HelmRelease"], ["source-controller", "kustomize-controller", "helm-controller", "notification-controller"]),
             ("cert-manager", ["Certificate", "Issuer", "ClusterIssuer"], ["controller", "cainjector", "webhook"]),
             ("ingress-nginx", [], ["controller", "admission"]),
             ("external-secrets", ["ExternalSecret", "SecretStore"], ["controller", "webhook", "cert-controller"])]
    for n in range(32):
        tool, crds, comps = tools[n % len(tools)]
        f = {f"upstream/install.yaml": install_manifest(tool, crds, comps, 3 if n % 4 else 40),
             "upstream/kustomization.yaml": kust(resources=["install.yaml"])}
        k = kust(resources=["../upstream"])
        feats = [
            f"namespace: {tool}-{n % 3}\n",
            f"images:\n- name: quay.io/{tool}/{tool}\n  newTag: v2.{n}.1\n",
            f"patches:\n- target:\n    kind: Deployment\n    name: {tool}-{comps[0]}\n  patch: |-\n    - op: add\n      path: /spec/template/spec/containers/0/args/-\n      value: --insecure\n",
            f"configMapGenerator:\n- name: {tool}-cm\n  behavior: merge\n  literals:\n  - timeout.reconciliation=180s\n  - admin.enabled=\"false\"\n",
            f"replicas:\n- name: {tool}-{comps[-1]}\n  count: 3\n",
            f"patches:\n- path: ha.yaml\n",
            "labels:\n- pairs:\n    env: prod\n  includeSelectors: false\n  includeTemplates: true\n",
            f"commonAnnotations:\n  argocd.argoproj.io/sync-wave: \"-1\"\n",
        ]
        f["overlay/ha.yaml"] = f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {tool}-{comps[0]}\nspec:\n  template:\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector:\n              matchLabels:\n                app.kubernetes.io/name: {tool}-{comps[0]}\n            topologyKey: kubernetes.io/hostname\n"
        chosen = rng.sample(range(len(feats)), rng.randint(1, 5))
        patch_seen = False
        for c in sorted(chosen):
            text = feats[c]
            if text.startswith("patches:"):
                if patch_seen:
                    text = text[len("patches:\n"):]
                    k = k.replace("patches:\n", "patches:\n" + text, 1)
                    continue
                patch_seen = True
            k += text
        f["overlay/kustomization.yaml"] = k
        case(f"inst-{n:02d}-{tool}", f, render_dir="overlay")


# ---------------------------------------------------------------------------
# 6. Edge cases: YAML fidelity, leniency, strictness, name references.


def simple_cm(name="c", extra=""):
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{extra}"


def family_edges(rng):
    e = []
    # YAML fidelity
    e.append(("yaml-literal-at-eof", {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  script: |\n    #!/bin/sh\n    echo hi"}))
    e.append(("yaml-literal-keep-at-eof", {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  script: |+\n    a\n    b"}))
    e.append(("yaml-folded-at-eof", {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  text: >\n    one\n    two"}))
    for i, body in enumerate(["a\n  b\nc\n", "a\n\n  b\nc\n", "a\n  b\n  c\nd\n", "a\nb\n\n  c\n\nd\n", "a\n\tb\nc\n", "x y\n  z\n\n  w\nv\n"]):
        text = "".join("    " + line + "\n" if line else "\n" for line in body.rstrip("\n").split("\n"))
        e.append((f"yaml-folded-more-indented-{i}", {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  text: >\n" + text}))
    e.append(("yaml-literal-in-patch-at-eof", {"kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: p.yaml\n", "cm.yaml": simple_cm(), "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  conf: |\n    key=value"}))
    # null handling
    e.append(("null-annotation-values", {"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    a: null\n    b: 1\n    c: true\n  labels:\n    l: null\n"}))
    e.append(("smp-null-fields", {"kustomization.yaml": "resources: [d.yaml]\npatches:\n- path: p.yaml\n", "d.yaml": deployment("web", "nginx").replace("  replicas: 1\n", "  replicas: 1\n  strategy: null\n  paused: null\n"),
                                  "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  minReadySeconds: null\n  progressDeadlineSeconds: 30\n  template:\n    spec:\n      nodeSelector: {a: null, b: c}\n      containers:\n      - name: web\n        resources: {limits: null}\n      - name: side\n        image: busybox\n        env: null\n"}))
    # JSON 6902
    e.append(("json-replace-missing-key", {"kustomization.yaml": "resources: [d.yaml]\npatches:\n- target: {kind: Deployment}\n  patch: |-\n    - op: replace\n      path: /spec/template/spec/priorityClassName\n      value: high\n    - op: replace\n      path: /metadata/labels/new\n      value: x\n", "d.yaml": deployment("web", "nginx")}))
    e.append(("json-replace-missing-parent", {"kustomization.yaml": "resources: [d.yaml]\npatches:\n- target: {kind: Deployment}\n  patch: |-\n    - op: replace\n      path: /spec/nothere/x\n      value: 1\n", "d.yaml": deployment("web", "nginx")}))
    e.append(("json-replace-missing-index", {"kustomization.yaml": "resources: [d.yaml]\npatches:\n- target: {kind: Deployment}\n  patch: |-\n    - op: replace\n      path: /spec/template/spec/containers/3\n      value: {name: x}\n", "d.yaml": deployment("web", "nginx")}))
    # List kinds
    e.append(("list-kind-without-items", {"kustomization.yaml": "resources: [r.yaml]\nnamePrefix: p-\n", "r.yaml": "apiVersion: example.com/v1\nkind: AllowList\nmetadata:\n  name: allowed\nspec:\n  entries: [a, b]\n---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: from-list\n"}))
    e.append(("list-kind-empty-items", {"kustomization.yaml": "resources: [r.yaml, cm.yaml]\n", "cm.yaml": simple_cm(), "r.yaml": "apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: example.com/v1\nkind: DenyList\nmetadata:\n  name: d\nitems: null\n"}))
    # leniency: case-insensitive fields, repeated keys, behaviours
    e.append(("lenient-field-case", {"kustomization.yaml": "Resources:\n- cm.yaml\nnameprefix: p-\ncommonlabels:\n  a: b\nconfigMapGenerator:\n- Name: gen\n  Literals: [X=1]\n", "cm.yaml": simple_cm()}))
    e.append(("lenient-repeated-key", {"kustomization.yaml": "namePrefix: a-\nresources: [cm.yaml]\nnamePrefix: b-\n", "cm.yaml": simple_cm()}))
    e.append(("lenient-vars-fieldpath-case", {"kustomization.yaml": "resources: [r.yaml]\nvars:\n- name: CM\n  objref: {kind: ConfigMap, version: v1, name: c}\n  fieldref: {fieldpath: data.k}\n", "r.yaml": simple_cm("c", "data:\n  k: value\n") + "---\n" + simple_cm("u", "data:\n  ref: $(CM)\n").replace("kind: ConfigMap\nmetadata:\n  name: u", "kind: ConfigMap\nmetadata:\n  name: u\n  annotations:\n    ref: $(CM)")}))
    for behavior in ["create", "merge", "replace", "", "Create", "MERGE"]:
        shown = behavior or '""'
        e.append((f"generator-behavior-{behavior or 'unset'}", {
            "base/kustomization.yaml": "configMapGenerator:\n- name: g\n  literals: [A=1, B=2]\n",
            "overlay/kustomization.yaml": f"resources: [../base]\nconfigMapGenerator:\n- name: g\n  behavior: {shown}\n  literals: [B=3, C=4]\n",
        }, "overlay"))
    e.append(("generator-behavior-unknown", {"kustomization.yaml": "configMapGenerator:\n- name: g\n  behavior: upsert\n  literals: [A=1]\n"}))
    # replacement paths with escaped dots
    e.append(("replacement-escaped-dots", {"kustomization.yaml": "resources: [r.yaml]\nreplacements:\n- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.app\\.kubernetes\\.io/version\n  targets:\n  - select:\n      kind: ConfigMap\n      name: dst\n    fieldPaths:\n    - metadata.labels.app\\.kubernetes\\.io/version\n    - data.[key.with.dots]\n    options:\n      create: true\n",
                                           "r.yaml": simple_cm("src", "data:\n  app.kubernetes.io/version: 1.2.3\n") + "---\n" + simple_cm("dst", "data:\n  key.with.dots: old\n")}))
    # strictness
    e.append(("strict-empty-kustomization", {"kustomization.yaml": ""}))
    e.append(("strict-comment-only-kustomization", {"kustomization.yaml": "# nothing here yet\n"}))
    e.append(("strict-typemeta-only-kustomization", {"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"}))
    e.append(("strict-blank-namespace", {"kustomization.yaml": "resources: [cm.yaml]\nnamespace: \"\"\n", "cm.yaml": simple_cm()}))
    e.append(("strict-legacy-sort-without-order", {"kustomization.yaml": "resources: [cm.yaml]\nsortOptions:\n  legacySortOptions:\n    orderFirst: [ConfigMap]\n", "cm.yaml": simple_cm()}))
    e.append(("strict-sort-options-empty", {"kustomization.yaml": "resources: [cm.yaml]\nsortOptions: {}\n", "cm.yaml": simple_cm()}))
    for i, content in enumerate(["", "# just a comment\n", "---\n"]):
        for field in ("patches", "patchesStrategicMerge", "patchesJson6902"):
            k = "resources: [cm.yaml]\n"
            if field == "patches":
                k += "patches:\n- path: p.yaml\n"
            elif field == "patchesStrategicMerge":
                k += "patchesStrategicMerge:\n- p.yaml\n"
            else:
                k += "patchesJson6902:\n- path: p.yaml\n  target: {version: v1, kind: ConfigMap, name: c}\n"
            e.append((f"strict-empty-patch-{field}-{i}", {"kustomization.yaml": k, "cm.yaml": simple_cm(), "p.yaml": content}))
    e.append(("strict-empty-patch-with-target", {"kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: p.yaml\n  target: {kind: ConfigMap}\n", "cm.yaml": simple_cm(), "p.yaml": ""}))
    # name references
    e.append(("nameref-validating-admission-policy", {"kustomization.yaml": "namePrefix: p-\nresources: [r.yaml]\n", "r.yaml": "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: require-labels\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - apiGroups: [apps]\n      apiVersions: [v1]\n      operations: [CREATE]\n      resources: [deployments]\n  validations:\n  - expression: has(object.metadata.labels)\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: require-labels-binding\nspec:\n  policyName: require-labels\n  validationActions: [Deny]\n"}))
    e.append(("nameref-two-overlays-one-base", {
        "base/kustomization.yaml": "configMapGenerator:\n- name: shared\n  literals: [A=1]\n",
        "app/deploy.yaml": deployment("app", "nginx", env_cm="shared"),
        "app/kustomization.yaml": "resources: [deploy.yaml]\nnameSuffix: -svc\n",
        "team-a/kustomization.yaml": "resources: [../base, ../app]\nnamePrefix: a-\n",
        "team-b/kustomization.yaml": "resources: [../base]\nnamePrefix: b-\n",
        "top/kustomization.yaml": "resources: [../team-a, ../team-b]\n",
    }, "top"))
    e.append(("nameref-ingress-class-and-priority", {"kustomization.yaml": "namePrefix: x-\nresources: [r.yaml]\n", "r.yaml": "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  ingressClassName: nginx\n  defaultBackend:\n    service:\n      name: web\n      port: {number: 80}\n---\n" + service("web") + "---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n---\n" + deployment("web", "nginx").replace("    spec:\n      containers", "    spec:\n      priorityClassName: high\n      containers")}))
    # the whole name-reference table at once (and some fields kustomize does not know)
    pod_spec = """      serviceAccountName: sa
      priorityClassName: pc
      imagePullSecrets:
      - name: sec
      volumes:
      - name: a
        configMap: {name: cm}
      - name: b
        secret: {secretName: sec}
      - name: c
        persistentVolumeClaim: {claimName: pvc}
      - name: d
        projected:
          sources:
          - configMap: {name: cm}
          - secret: {name: sec}
      - name: e
        csi:
          driver: x
          nodePublishSecretRef: {name: sec}
      containers:
      - name: c
        image: busybox
        env:
        - name: A
          valueFrom:
            configMapKeyRef: {name: cm, key: k}
        - name: B
          valueFrom:
            secretKeyRef: {name: sec, key: k}
        envFrom:
        - configMapRef: {name: cm}
        - secretRef: {name: sec}
      initContainers:
      - name: i
        image: busybox
        envFrom:
        - configMapRef: {name: cm}
        - secretRef: {name: sec}
"""
    refs = [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: sec}\n",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: pvc}\nspec:\n  volumeName: pv\n  storageClassName: sc\n",
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\nspec:\n  storageClassName: sc\n  azureFile: {secretName: sec, shareName: s}\n",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: sc}\nprovisioner: x\nparameters: {secretName: sec, adminSecretName: sec, userSecretName: sec, secretRef: sec}\n",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: pc}\nvalue: 1\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n  ports: [{port: 80}]\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pod}\nspec:\n" + pod_spec.replace("\n      ", "\n  ").replace("      serviceAccountName", "  serviceAccountName", 1),
        "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: pt}\ntemplate:\n  spec:\n" + indent(pod_spec.replace("\n      ", "\n").replace("      serviceAccountName", "serviceAccountName", 1), 4),
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc}\nspec:\n  template:\n    spec:\n" + pod_spec,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: ds}\nspec:\n  template:\n    spec:\n" + pod_spec,
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: sts}\nspec:\n  serviceName: svc\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {storageClassName: sc}\n  template:\n    spec:\n" + pod_spec,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: job}\nspec:\n  template:\n    spec:\n" + pod_spec,
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n" + indent(pod_spec, 4),
        "apiVersion: v1\nkind: Node\nmetadata: {name: node}\nspec:\n  configSource:\n    configMap: {name: cm, namespace: default, kubeletConfigKey: k}\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: role}\nrules:\n- apiGroups: ['']\n  resources: [configmaps, secrets]\n  resourceNames: [cm, sec, other]\n  verbs: [get]\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: crole}\nrules:\n- apiGroups: ['']\n  resources: [persistentvolumes]\n  resourceNames: [pv, cm, sec]\n  verbs: [get]\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: role}\nsubjects:\n- {kind: ServiceAccount, name: sa}\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: crb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: crole}\nsubjects:\n- {kind: ServiceAccount, name: sa, namespace: default}\n",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing\n  annotations:\n    nginx.ingress.kubernetes.io/auth-secret: sec\n    nginx.ingress.kubernetes.io/auth-tls-secret: sec\n    ingress.kubernetes.io/auth-secret: sec\n    nginx.ingress.kubernetes.io/fastcgi-params-configmap: cm\nspec:\n  tls: [{secretName: sec}]\n  defaultBackend: {service: {name: svc, port: {number: 80}}}\n  rules:\n  - http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {service: {name: svc, port: {number: 80}}}\n",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: hpa}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: sts}\n  maxReplicas: 3\n",
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.example.com}\nspec:\n  group: example.com\n  version: v1\n  service: {name: svc, namespace: default}\n",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: route}\nspec:\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 80\n",
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: ksvc}\nspec:\n  template:\n    spec:\n      containers:\n      - image: x\n        env:\n        - name: S\n          valueFrom:\n            secretKeyRef: {name: sec, key: k}\n",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: pdb}\nspec:\n  minAvailable: 1\n",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ic}\nspec:\n  parameters: {kind: ConfigMap, name: cm}\n",
    ]
    e.append(("nameref-whole-table", {"kustomization.yaml": "namePrefix: p-\nnameSuffix: -s\nresources: [r.yaml]\n", "r.yaml": "---\n".join(refs)}))
    e.append(("nameref-whole-table-namespaced", {"kustomization.yaml": "namePrefix: p-\nnamespace: team\nresources: [r.yaml]\n", "r.yaml": "---\n".join(refs)}))
    # buildMetadata and crds
    e.append(("build-metadata-managed-by", {"kustomization.yaml": "resources: [cm.yaml]\nbuildMetadata: [managedByLabel]\n", "cm.yaml": simple_cm()}))
    e.append(("build-metadata-origin", {"base/kustomization.yaml": "resources: [cm.yaml]\n", "base/cm.yaml": simple_cm(), "overlay/kustomization.yaml": "resources: [../base]\nbuildMetadata: [originAnnotations]\nconfigMapGenerator:\n- name: g\n  literals: [A=1]\n"}, "overlay"))
    ta_base = {"base/kustomization.yaml": "resources: [cm.yaml, d.yaml]\nnamePrefix: b-\n", "base/cm.yaml": simple_cm(), "base/d.yaml": deployment("d", "nginx")}
    e.append(("build-metadata-transformers-every-kind", dict(ta_base, **{
        "overlay/kustomization.yaml": "resources: [../base]\nbuildMetadata: [transformerAnnotations, originAnnotations]\nnamePrefix: o-\nnameSuffix: -s\nnamespace: ns\ncommonLabels: {a: b}\ncommonAnnotations: {x: \"z\"}\nimages:\n- name: nginx\n  newTag: \"2\"\n- name: other\n  newTag: \"3\"\nreplicas:\n- name: d\n  count: 2\npatches:\n- target: {kind: ConfigMap}\n  patch: |-\n    - {op: add, path: /data, value: {k: v}}\npatchesStrategicMerge:\n- |-\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n  data: {b: y}\npatchesJson6902:\n- target: {version: v1, kind: ConfigMap, name: c}\n  patch: '[{\"op\": \"add\", \"path\": \"/data/f\", \"value\": \"1\"}]'\nlabels:\n- pairs: {l1: v}\nreplacements:\n- source: {kind: ConfigMap, name: c, fieldPath: data.k}\n  targets: [{select: {kind: Deployment}, fieldPaths: [metadata.annotations.k], options: {create: true}}]\nconfigMapGenerator:\n- name: g\n  literals: [A=1]\ntransformers: [t.yaml]\n",
        "overlay/t.yaml": TF_KINDS["labels"],
    }), "overlay"))
    e.append(("build-metadata-transformers-component", dict(ta_base, **{
        "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations: {from: component}\n",
        "overlay/kustomization.yaml": "resources: [../base]\ncomponents: [../comp]\nbuildMetadata: [transformerAnnotations]\nnamespace: ns\n",
    }), "overlay"))
    e.append(("build-metadata-transformer", {"kustomization.yaml": "resources: [cm.yaml]\nnamePrefix: p-\nbuildMetadata: [transformerAnnotations]\n", "cm.yaml": simple_cm()}))
    crd_defs = """{
  "github.com/example/pkg/apis/jingfang/v1beta1.Bee": {
    "Schema": {
      "description": "Bee",
      "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"$ref": "k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta"},
        "spec": {"$ref": "github.com/example/pkg/apis/jingfang/v1beta1.BeeSpec"}
      }
    },
    "Dependencies": []
  },
  "github.com/example/pkg/apis/jingfang/v1beta1.BeeSpec": {"Schema": {"description": "BeeSpec"}, "Dependencies": []},
  "github.com/example/pkg/apis/jingfang/v1beta1.MyKind": {
    "Schema": {
      "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"$ref": "k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta"},
        "spec": {"$ref": "github.com/example/pkg/apis/jingfang/v1beta1.MyKindSpec"}
      }
    },
    "Dependencies": []
  },
  "github.com/example/pkg/apis/jingfang/v1beta1.MyKindSpec": {
    "Schema": {
      "properties": {
        "beeRef": {"x-kubernetes-object-ref-api-version": "v1beta1", "x-kubernetes-object-ref-kind": "Bee", "$ref": "github.com/example/pkg/apis/jingfang/v1beta1.Bee"},
        "secretRef": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "Secret", "$ref": "k8s.io/api/core/v1.LocalObjectReference"},
        "configName": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "ConfigMap", "x-kubernetes-object-ref-name-key": "cm"},
        "selectors": {"x-kubernetes-label-selector": "", "type": "object"},
        "notes": {"x-kubernetes-annotation": "", "type": "object"}
      }
    },
    "Dependencies": []
  }
}
"""
    crd_res = """apiVersion: v1
kind: Secret
metadata:
  name: crdsecret
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
---
apiVersion: jingfang.example.com/v1beta1
kind: Bee
metadata:
  name: bee
spec:
  action: fly
---
apiVersion: jingfang.example.com/v1beta1
kind: MyKind
metadata:
  name: mykind
spec:
  secretRef:
    name: crdsecret
  beeRef:
    name: bee
  configName:
    cm: settings
  selectors:
    app: x
  notes:
    a: b
"""
    e.append(("crds-openapi-definitions", {"kustomization.yaml": "crds: [mycrd_schema.json]\nresources: [r.yaml]\nnamePrefix: test-\ncommonLabels:\n  foo: bar\ncommonAnnotations:\n  note: x\n", "mycrd_schema.json": crd_defs, "r.yaml": crd_res}))
    e.append(("crds-yaml-definitions-overlay", {"base/kustomization.yaml": "crds: [defs.yaml]\nresources: [r.yaml]\n", "base/defs.yaml": crd_defs, "base/r.yaml": crd_res,
                                                "overlay/kustomization.yaml": "resources: [../base]\nnameSuffix: -v2\nnamespace: bees\n"}, "overlay"))
    # load restrictions
    e.append(("load-restrictor-none", {"shared/patch.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  shared: \"yes\"\n", "app/cm.yaml": simple_cm(), "app/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: ../shared/patch.yaml\n"}, "app", "LoadRestrictionsNone"))
    e.append(("load-restrictor-root-only", {"shared/patch.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n", "app/cm.yaml": simple_cm(), "app/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: ../shared/patch.yaml\n"}, "app"))
    # vars edge cases
    e.append(("vars-typed-values", {"kustomization.yaml": "resources: [r.yaml]\nvars:\n- name: REPLICAS\n  objref: {apiVersion: apps/v1, kind: Deployment, name: web}\n  fieldref: {fieldPath: spec.replicas}\n- name: PORT\n  objref: {kind: Service, version: v1, name: web}\n  fieldref: {fieldPath: \"spec.ports[0].port\"}\n",
                                    "r.yaml": deployment("web", "nginx", args=["--replicas=$(REPLICAS)", "$(PORT)", "$$(PORT)", "$(UNKNOWN)"]) + "---\n" + service("web")}))
    e.append(("vars-missing-target", {"kustomization.yaml": "resources: [r.yaml]\nvars:\n- name: X\n  objref: {kind: Service, version: v1, name: nope}\n", "r.yaml": service("web")}))
    e.append(("vars-duplicate-name", {"base/kustomization.yaml": "resources: [s.yaml]\nvars:\n- name: X\n  objref: {kind: Service, version: v1, name: web}\n", "base/s.yaml": service("web"), "overlay/kustomization.yaml": "resources: [../base]\nvars:\n- name: X\n  objref: {kind: Service, version: v1, name: web}\n"}, "overlay"))
    e.append(("vars-nested-field-path", {"kustomization.yaml": "resources: [r.yaml]\nvars:\n- name: IMG\n  objref: {apiVersion: apps/v1, kind: Deployment, name: web}\n  fieldref: {fieldPath: \"spec.template.spec.containers.[name=web].image\"}\n- name: FIRST\n  objref: {apiVersion: apps/v1, kind: Deployment, name: web}\n  fieldref: {fieldPath: spec.template.spec.containers.0.name}\n",
                                       "r.yaml": deployment("web", "nginx:1.2", args=["$(IMG)", "$(FIRST)"])}))
    e.append(("vars-overlay-prefix", {"base/kustomization.yaml": "resources: [r.yaml]\nvars:\n- name: SVC\n  objref: {kind: Service, version: v1, name: web}\n", "base/r.yaml": service("web") + "---\n" + deployment("web", "nginx", args=["--upstream=$(SVC):80"]),
                                      "overlay/kustomization.yaml": "resources: [../base]\nnamePrefix: prod-\nnamespace: prod\n"}, "overlay"))
    e.append(("configurations-custom-kind-labels-images", {"kustomization.yaml": "resources: [r.yaml]\nconfigurations: [conf.yaml]\ncommonLabels:\n  team: a\nimages:\n- name: busybox\n  newTag: \"1.36\"\nnamePrefix: t-\nreplicas:\n- name: w\n  count: 4\n",
                                                   "conf.yaml": "commonLabels:\n- kind: Widget\n  path: spec/selector/matchLabels\n  create: true\nimages:\n- kind: Widget\n  path: spec/runner/image\nreplicas:\n- kind: Widget\n  path: spec/size\n  create: true\nnameReference:\n- kind: ConfigMap\n  version: v1\n  fieldSpecs:\n  - kind: Widget\n    path: spec/configRef\n",
                                                   "r.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  configRef: settings\n  runner:\n    image: busybox:1.35\n---\n" + simple_cm("settings")}))
    e.append(("configurations-conflicting-create", {"kustomization.yaml": "resources: [cm.yaml]\nconfigurations: [conf.yaml]\ncommonLabels: {a: b}\n", "cm.yaml": simple_cm(), "conf.yaml": "commonLabels:\n- path: metadata/labels\n  create: false\n"}))
    e.append(("yaml11-boolean-label-value", {"kustomization.yaml": "resources: [cm.yaml]\ncommonLabels:\n  feature: on\n", "cm.yaml": simple_cm()}))
    e.append(("remote-resource", {"kustomization.yaml": "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1\n"}))
    e.append(("helm-charts", {"kustomization.yaml": "helmCharts:\n- name: minecraft\n  repo: https://itzg.github.io/minecraft-server-charts\n  version: 3.1.3\n  releaseName: moria\n"}))
    for item in e:
        name, files = item[0], item[1]
        render_dir = item[2] if len(item) > 2 else None
        lr = item[3] if len(item) > 3 else None
        case(f"edge-{name}", files, render_dir=render_dir, load_restrictor=lr)


# ---------------------------------------------------------------------------
# 7. Components.


def family_components(rng):
    comps = {
        "monitoring": ("resources: [monitor.yaml]\npatches:\n- target: {kind: Deployment}\n  patch: |-\n    - op: add\n      path: /spec/template/metadata/annotations\n      value:\n        prometheus.io/scrape: \"true\"\n",
                       {"monitor.yaml": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  endpoints:\n  - port: http\n"}),
        "tls": ("secretGenerator:\n- name: web-tls\n  literals: [tls.crt=CERT, tls.key=KEY]\npatches:\n- path: tls-patch.yaml\n",
                {"tls-patch.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      volumes:\n      - name: tls\n        secret:\n          secretName: web-tls\n"}),
        "ha": ("replicas:\n- name: web\n  count: 3\n", {}),
        "labels": ("labels:\n- pairs: {feature: \"on\"}\n  includeSelectors: false\n", {}),
        "config": ("configMapGenerator:\n- name: web-config\n  behavior: merge\n  literals: [FEATURE=1]\n", {}),
        "transformer": ("transformers:\n- t.yaml\n", {"t.yaml": TF_KINDS["annotations"]}),
    }
    names = list(comps)
    for n in range(24):
        chosen = rng.sample(names, rng.randint(1, 3))
        f = {"base/deployment.yaml": deployment("web", "nginx:1.25", env_cm="web-config", labels={"app": "web"}),
             "base/service.yaml": service("web"),
             "base/kustomization.yaml": kust(resources=["deployment.yaml", "service.yaml"]) + "configMapGenerator:\n- name: web-config\n  literals: [MODE=base]\n"}
        for c in chosen:
            text, files = comps[c]
            f[f"components/{c}/kustomization.yaml"] = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n" + text
            for fn, t in files.items():
                f[f"components/{c}/{fn}"] = t
        k = kust(resources=["../base"], components=[f"../components/{c}" for c in chosen])
        if n % 3 == 0:
            k += "namePrefix: c-\n"
        if n % 4 == 1:
            k += "namespace: comp\n"
        f["overlay/kustomization.yaml"] = k
        case(f"comp-{n:02d}-{'-'.join(chosen)}", f, render_dir="overlay")


# ---------------------------------------------------------------------------
# 8. Random mixtures of everything over a three-level layout.


def family_mix(rng):
    feats = {
        "prefix": lambda l: f"namePrefix: m{l}-\n",
        "suffix": lambda l: f"nameSuffix: -x{l}\n",
        "namespace": lambda l: f"namespace: mix-{l}\n",
        "labels": lambda l: f"labels:\n- pairs:\n    level{l}: \"yes\"\n  includeSelectors: {str(l % 2 == 0).lower()}\n  includeTemplates: true\n",
        "common-labels": lambda l: f"commonLabels:\n  tier{l}: t\n",
        "annotations": lambda l: f"commonAnnotations:\n  note{l}: \"n{l}\"\n",
        "images": lambda l: f"images:\n- name: nginx\n  newTag: 1.2{l}.0\n- name: busybox\n  newName: mirror.example.com/busybox\n",
        "replicas": lambda l: f"replicas:\n- name: web\n  count: {l + 2}\n",
        "cm-merge": lambda l: f"configMapGenerator:\n- name: web-config\n  behavior: merge\n  literals:\n  - L{l}=v\n",
        "secret": lambda l: f"secretGenerator:\n- name: creds-{l}\n  literals:\n  - user=u{l}\n",
        "vars": lambda l: f"vars:\n- name: SVC{l}\n  objref: {{kind: Service, version: v1, name: web}}\n",
        "json": lambda l: f"patches:\n- target: {{kind: Deployment, name: web}}\n  patch: |-\n    - op: add\n      path: /metadata/annotations/json{l}\n      value: \"$(SVC0)\"\n",
        "smp": lambda l: f"patchesStrategicMerge:\n- |-\n  apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: web\n  spec:\n    template:\n      spec:\n        containers:\n        - name: web\n          env:\n          - name: LEVEL{l}\n            value: \"{l}\"\n",
        "replacement": lambda l: f"replacements:\n- source: {{kind: ConfigMap, name: web-config, fieldPath: metadata.name}}\n  targets:\n  - select: {{kind: Deployment}}\n    fieldPaths: [spec.template.metadata.annotations.config{l}]\n    options: {{create: true}}\n",
        "transformer": lambda l: f"transformers:\n- |-\n  apiVersion: builtin\n  kind: AnnotationsTransformer\n  metadata:\n    name: t{l}\n  annotations:\n    plugin{l}: \"on\"\n  fieldSpecs:\n  - path: metadata/annotations\n    create: true\n",
        "config": lambda l: f"configurations:\n- conf.yaml\n",
        "sort": lambda l: "sortOptions:\n  order: fifo\n",
    }
    names = list(feats)
    for n in range(40):
        f = {"base/deployment.yaml": deployment("web", "nginx:1.25", env_cm="web-config", sa="web", args=["--svc=$(SVC0)", "--ns=$(SVC0_NS)"],
                                                containers_extra="        volumeMounts:\n        - name: cache\n          mountPath: /cache\n"),
             "base/service.yaml": service("web"),
             "base/sa.yaml": service_account("web"),
             "base/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  service: web\n  config: web-config\n  image: busybox:1.36\n",
             "base/kustomization.yaml": kust(resources=["deployment.yaml", "service.yaml", "sa.yaml", "widget.yaml"])
             + "namespace: apps\nconfigMapGenerator:\n- name: web-config\n  literals: [MODE=base]\nvars:\n- name: SVC0\n  objref: {kind: Service, version: v1, name: web}\n- name: SVC0_NS\n  objref: {kind: Service, version: v1, name: web}\n  fieldref: {fieldpath: metadata.namespace}\n"}
        f["base/deployment.yaml"] = f["base/deployment.yaml"].replace("      containers:", "      volumes:\n      - name: cache\n        emptyDir: {}\n      containers:", 1)
        parent = "base"
        for level in range(1, rng.randint(2, 3) + 1):
            d = f"l{level}"
            k = kust(resources=[f"../{parent}"])
            chosen = rng.sample(names, rng.randint(2, 6))
            if "json" in chosen and "smp" in chosen:
                chosen.remove("smp")
            for c in chosen:
                k += feats[c](level)
            if "config" in chosen:
                f[f"{d}/conf.yaml"] = "nameReference:\n- kind: Service\n  version: v1\n  fieldSpecs:\n  - kind: Widget\n    path: spec/service\n- kind: ConfigMap\n  version: v1\n  fieldSpecs:\n  - kind: Widget\n    path: spec/config\nimages:\n- kind: Widget\n  path: spec/image\nvarReference:\n- kind: Widget\n  path: spec/note\n"
            f[f"{d}/kustomization.yaml"] = k
            parent = d
        case(f"mix-{n:02d}", f, render_dir=parent)


def family_mix_bases(rng):
    """Two bases (one shared by two overlays), a component, plugins and
    custom kinds, combined at random."""
    top_feats = [
        "namePrefix: top-\n",
        "nameSuffix: -t\n",
        "namespace: top\n",
        "commonLabels:\n  top: \"1\"\n",
        "labels:\n- pairs:\n    sel: s\n  includeSelectors: true\n",
        "commonAnnotations:\n  top: \"1\"\n",
        "images:\n- name: redis\n  newTag: \"7.2\"\n- name: example.com/api\n  digest: sha256:" + "cd" * 32 + "\n",
        "replicas:\n- name: api\n  count: 5\n- name: cache\n  count: 2\n",
        "patches:\n- target:\n    kind: Deployment\n    labelSelector: app in (api,cache)\n  patch: |-\n    - op: add\n      path: /spec/template/spec/tolerations\n      value: [{key: dedicated, operator: Exists}]\n",
        "patches:\n- target:\n    kind: Service\n    annotationSelector: expose=true\n  patch: |-\n    apiVersion: v1\n    kind: Service\n    metadata:\n      name: x\n    spec:\n      type: LoadBalancer\n",
        "patches:\n- path: rename.yaml\n  options:\n    allowNameChange: true\n",
        "configMapGenerator:\n- name: shared\n  behavior: replace\n  literals: [ONLY=top]\n",
        "secretGenerator:\n- name: api-secret\n  behavior: merge\n  literals: [extra=1]\n",
        "generatorOptions:\n  disableNameSuffixHash: true\n",
        "replacements:\n- source: {kind: Service, name: api, fieldPath: metadata.name}\n  targets:\n  - select: {kind: Deployment, name: cache}\n    fieldPaths: [spec.template.spec.containers.0.args.0]\n    options: {delimiter: '=', index: 1}\n",
        "transformers:\n- |-\n  apiVersion: builtin\n  kind: NamespaceTransformer\n  metadata:\n    name: ns\n    namespace: plugin-ns\n  fieldSpecs:\n  - path: metadata/namespace\n    create: true\n",
        "generators:\n- |-\n  apiVersion: builtin\n  kind: SecretGenerator\n  metadata:\n    name: generated\n  literals: [k=v]\n",
        "components:\n- ../components/observability\n",
        "buildMetadata: [originAnnotations]\n",
        "sortOptions:\n  order: legacy\n  legacySortOptions:\n    orderFirst: [Namespace, Service]\n    orderLast: [Deployment]\n",
    ]
    for n in range(40):
        f = {
            "bases/api/kustomization.yaml": "resources: [deployment.yaml, service.yaml]\nsecretGenerator:\n- name: api-secret\n  literals: [password=p]\nconfigurations: [conf.yaml]\n",
            "bases/api/conf.yaml": "nameReference:\n- kind: Secret\n  version: v1\n  fieldSpecs:\n  - kind: Database\n    path: spec/credentials/secretName\n",
            "bases/api/deployment.yaml": deployment("api", "example.com/api:1.0", secret="api-secret", env_cm="shared"),
            "bases/api/service.yaml": service("api").replace("metadata:\n  name: api", "metadata:\n  name: api\n  annotations:\n    expose: \"true\""),
            "bases/cache/kustomization.yaml": "resources: [cache.yaml]\n",
            "bases/cache/cache.yaml": deployment("cache", "redis:7.0", args=["--upstream=api", "--port=6379"], env_cm="shared") + "---\n" + service("cache", port=6379, target=6379)
            + "---\napiVersion: db.example.com/v1\nkind: Database\nmetadata:\n  name: db\nspec:\n  credentials:\n    secretName: api-secret\n",
            "bases/shared/kustomization.yaml": "configMapGenerator:\n- name: shared\n  literals: [A=1, B=2]\n",
            "components/observability/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nlabels:\n- pairs:\n    observed: \"true\"\npatches:\n- target: {kind: Deployment}\n  patch: |-\n    - op: add\n      path: /spec/template/metadata/annotations\n      value: {prometheus.io/scrape: \"true\"}\n",
            "mid/kustomization.yaml": "resources: [../bases/api, ../bases/cache, ../bases/shared]\nnamePrefix: mid-\n",
            "top/rename.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cache\nspec:\n  template:\n    spec:\n      containers:\n      - name: cache\n        env:\n        - {name: RENAMED, value: \"no\"}\n",
        }
        chosen = sorted(rng.sample(range(len(top_feats)), rng.randint(2, 7)))
        k = "resources: [../mid]\n"
        patches = []
        for c in chosen:
            text = top_feats[c]
            if text.startswith("patches:"):
                patches.append(text[len("patches:\n"):])
                continue
            k += text
        if patches:
            k += "patches:\n" + "".join(patches)
        f["top/kustomization.yaml"] = k
        case(f"mixb-{n:02d}", f, render_dir="top")


def family_plugin_variants(rng):
    """Built-in plugin configurations with their less common fields."""
    variants = {
        "prefix-kind-only": "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata:\n  name: p\nprefix: only-\nfieldSpecs:\n- kind: Deployment\n  path: metadata/name\n",
        "prefix-custom-field": "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata:\n  name: p\nsuffix: -sfx\nfieldSpecs:\n- path: metadata/name\n- kind: Widget\n  path: spec/service\n",
        "labels-custom-kind": "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\nlabels:\n  team: x\nfieldSpecs:\n- kind: Widget\n  path: spec/selector\n  create: true\n- path: metadata/labels\n  create: true\n",
        "labels-no-create": "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\nlabels:\n  team: x\nfieldSpecs:\n- path: spec/selector/matchLabels\n  kind: Deployment\n",
        "image-fieldspec": "apiVersion: builtin\nkind: ImageTagTransformer\nmetadata:\n  name: i\nimageTag:\n  name: busybox\n  newTag: \"1.37\"\nfieldSpecs:\n- kind: Widget\n  path: spec/image\n",
        "image-digest": "apiVersion: builtin\nkind: ImageTagTransformer\nmetadata:\n  name: i\nimageTag:\n  name: nginx\n  digest: sha256:" + "ef" * 32 + "\n",
        "replicas-custom": "apiVersion: builtin\nkind: ReplicaCountTransformer\nmetadata:\n  name: r\nreplica:\n  name: w\n  count: 7\nfieldSpecs:\n- kind: Widget\n  path: spec/size\n  create: true\n",
        "replicas-missing": "apiVersion: builtin\nkind: ReplicaCountTransformer\nmetadata:\n  name: r\nreplica:\n  name: nothing\n  count: 7\nfieldSpecs:\n- kind: Deployment\n  path: spec/replicas\n",
        "patch-options": "apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: p\npatch: |-\n  apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: web-renamed\ntarget:\n  kind: Deployment\n  name: web\noptions:\n  allowNameChange: true\n",
        "patch-file": "apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: p\npath: patch.yaml\ntarget:\n  kind: Service\n",
        "psm-paths": "apiVersion: builtin\nkind: PatchStrategicMergeTransformer\nmetadata:\n  name: p\npaths:\n- smp.yaml\n",
        "pj-path": "apiVersion: builtin\nkind: PatchJson6902Transformer\nmetadata:\n  name: p\ntarget:\n  version: v1\n  kind: Service\n  name: web\npath: json.yaml\n",
        "pj-yaml-op": "apiVersion: builtin\nkind: PatchJson6902Transformer\nmetadata:\n  name: p\ntarget:\n  version: v1\n  kind: Service\n  name: web\njsonOp: |-\n  - op: replace\n    path: /spec/ports/0/port\n    value: 8081\n",
        "replacement-file": "apiVersion: builtin\nkind: ReplacementTransformer\nmetadata:\n  name: r\nreplacements:\n- path: repl.yaml\n",
        "namespace-none-subjects": "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata:\n  name: n\n  namespace: target\nsetRoleBindingSubjects: none\nfieldSpecs:\n- path: metadata/namespace\n  create: true\n",
        "annotations-unknown-field": "apiVersion: builtin\nkind: AnnotationsTransformer\nmetadata:\n  name: a\nannotations:\n  a: b\nsomethingElse: true\nfieldSpecs:\n- path: metadata/annotations\n  create: true\n",
        "unnamed-config": "apiVersion: builtin\nkind: AnnotationsTransformer\nannotations:\n  a: b\nfieldSpecs:\n- path: metadata/annotations\n  create: true\n",
        "hash-transformer": "apiVersion: builtin\nkind: HashTransformer\nmetadata:\n  name: h\n",
    }
    gens = {
        "gen-files": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: from-files\nfiles:\n- app.properties\n- renamed.txt=notes.txt\nenvs:\n- extra.env\n",
        "gen-merge": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: web-config\nbehavior: merge\nliterals:\n- FROM=plugin\n",
        "gen-tls": "apiVersion: builtin\nkind: SecretGenerator\nmetadata:\n  name: tls\n  namespace: certs\ntype: kubernetes.io/tls\nliterals:\n- tls.crt=CERT\n- tls.key=KEY\noptions:\n  annotations:\n    source: plugin\n",
        "gen-top-level-name": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: meta-name\nname: field-name\nliterals:\n- A=1\n",
    }
    base = {
        "base/deployment.yaml": deployment("web", "nginx:1.25", env_cm="web-config", sa="web"),
        "base/service.yaml": service("web"),
        "base/sa.yaml": service_account("web"),
        "base/rb.yaml": binding("RoleBinding", "web", "ClusterRole", "view", "web", "default"),
        "base/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  service: web\n  image: busybox:1.36\n  selector: {}\n",
        "base/kustomization.yaml": kust(resources=["deployment.yaml", "service.yaml", "sa.yaml", "rb.yaml", "widget.yaml"]) + "configMapGenerator:\n- name: web-config\n  literals: [MODE=base]\n",
    }
    extra = {
        "overlay/patch.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: any\nspec:\n  externalTrafficPolicy: Local\n",
        "overlay/smp.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - name: metrics\n    port: 9090\n",
        "overlay/json.yaml": "- op: add\n  path: /spec/ports/-\n  value: {name: admin, port: 9000}\n",
        "overlay/repl.yaml": "- source: {kind: Service, name: web, fieldPath: metadata.name}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [spec.upstream]\n    options: {create: true}\n",
        "overlay/app.properties": "a=b\nc=d\n",
        "overlay/notes.txt": "notes\n",
        "overlay/extra.env": "X=1\n# comment\nY=two words\n",
    }
    n = 0
    for name, text in variants.items():
        f = dict(base, **extra)
        f["overlay/t.yaml"] = text
        f["overlay/kustomization.yaml"] = kust(resources=["../base"], transformers=["t.yaml"])
        case(f"tfx-{n:02d}-{name}", f, render_dir="overlay")
        n += 1
    for name, text in gens.items():
        f = dict(base, **extra)
        f["overlay/g.yaml"] = text
        f["overlay/kustomization.yaml"] = kust(resources=["../base"], generators=["g.yaml"], namePrefix="o-")
        case(f"tfx-{n:02d}-{name}", f, render_dir="overlay")
        n += 1
    # a transformer directory that is itself a kustomization with a prefix
    f = dict(base, **extra)
    f["overlay/tdir/a.yaml"] = variants["labels-custom-kind"]
    f["overlay/tdir/kustomization.yaml"] = "resources: [a.yaml]\nnamePrefix: ignored-\n"
    f["overlay/kustomization.yaml"] = kust(resources=["../base"], transformers=["tdir"])
    case(f"tfx-{n:02d}-transformer-dir-with-prefix", f, render_dir="overlay")


def family_ml_platform(rng):
    """Kubeflow-style application trees: params.env generators, vars read
    from generated ConfigMaps, varReference for Istio kinds, namespaces and
    overlays per deployment option."""
    apps = ["centraldashboard", "jupyter-web-app", "notebook-controller", "katib-ui", "pipelines-ui", "profiles", "volumes-web-app", "tensorboards"]
    for n in range(24):
        app = apps[n % len(apps)]
        f = {}
        f["base/params.env"] = f"CLUSTER_DOMAIN=cluster.local\nUSERID_HEADER=kubeflow-userid\nUSERID_PREFIX=\nAPP_PREFIX=/{app}\n"
        f["base/params.yaml"] = """varReference:
- path: spec/http/route/destination/host
  kind: VirtualService
- path: spec/http/match/uri/prefix
  kind: VirtualService
- path: spec/rules/from/source/principals
  kind: AuthorizationPolicy
- path: spec/template/spec/containers/env/value
  kind: Deployment
"""
        f["base/deployment.yaml"] = deployment(app, f"docker.io/kubeflownotebookswg/{app}:v1.8.0", labels={"app": app, "kustomize.component": app}, sa=f"{app}-service-account",
                                                 extra_env={"USERID_HEADER": "$(USERID_HEADER)", "APP_PREFIX": "$(APP_PREFIX)", "POD_NS": "$(NAMESPACE)"})
        f["base/service.yaml"] = service(app, {"app": app, "kustomize.component": app}, port=80, target=8082)
        f["base/sa.yaml"] = service_account(f"{app}-service-account")
        f["base/role.yaml"] = cluster_role(f"{app}-cluster-role")
        f["base/binding.yaml"] = binding("ClusterRoleBinding", f"{app}-binding", "ClusterRole", f"{app}-cluster-role", f"{app}-service-account", "kubeflow")
        f["base/virtual-service.yaml"] = f"""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: {app}
spec:
  gateways:
  - kubeflow-gateway
  hosts:
  - '*'
  http:
  - match:
    - uri:
        prefix: $(APP_PREFIX)/
    rewrite:
      uri: /
    route:
    - destination:
        host: {app}.$(NAMESPACE).svc.$(CLUSTER_DOMAIN)
        port:
          number: 80
"""
        f["base/authorization-policy.yaml"] = f"""apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: {app}
spec:
  action: ALLOW
  selector:
    matchLabels:
      app: {app}
  rules:
  - from:
    - source:
        principals:
        - cluster.$(CLUSTER_DOMAIN)/ns/istio-system/sa/istio-ingressgateway-service-account
"""
        f["base/kustomization.yaml"] = f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: kubeflow
resources:
- deployment.yaml
- service.yaml
- sa.yaml
- role.yaml
- binding.yaml
- virtual-service.yaml
- authorization-policy.yaml
commonLabels:
  kustomize.component: {app}
  app: {app}
images:
- name: docker.io/kubeflownotebookswg/{app}
  newName: docker.io/kubeflownotebookswg/{app}
  newTag: v1.8.{n}
configMapGenerator:
- name: {app}-parameters
  envs:
  - params.env
generatorOptions:
  disableNameSuffixHash: {str(n % 3 == 0).lower()}
vars:
- name: CLUSTER_DOMAIN
  objref:
    kind: ConfigMap
    name: {app}-parameters
    apiVersion: v1
  fieldref:
    fieldpath: data.CLUSTER_DOMAIN
- name: USERID_HEADER
  objref:
    kind: ConfigMap
    name: {app}-parameters
    apiVersion: v1
  fieldref:
    fieldpath: data.USERID_HEADER
- name: APP_PREFIX
  objref:
    kind: ConfigMap
    name: {app}-parameters
    apiVersion: v1
  fieldref:
    fieldpath: data.APP_PREFIX
- name: NAMESPACE
  objref:
    kind: Service
    name: {app}
    apiVersion: v1
  fieldref:
    fieldpath: metadata.namespace
configurations:
- params.yaml
"""
        option = ["istio", "kubeflow", "dex", "multi-user"][n % 4]
        k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\n"
        if option == "kubeflow":
            k += "namespace: kubeflow-user\n"
        elif option == "dex":
            k += "configMapGenerator:\n- name: %s-parameters\n  behavior: merge\n  literals:\n  - USERID_HEADER=x-dex-user\n" % app
        elif option == "multi-user":
            k += "patches:\n- path: multi-user.yaml\n"
            f[f"overlays/{option}/multi-user.yaml"] = f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  template:\n    spec:\n      containers:\n      - name: {app.split('-')[-1]}\n        env:\n        - name: APP_DISABLE_AUTH\n          value: \"False\"\n"
        else:
            k += "patchesJson6902:\n- target:\n    group: networking.istio.io\n    version: v1alpha3\n    kind: VirtualService\n    name: %s\n  patch: |-\n    - op: add\n      path: /spec/gateways/-\n      value: mesh\n" % app
        f[f"overlays/{option}/kustomization.yaml"] = k
        case(f"ml-{n:02d}-{app}-{option}", f, render_dir=f"overlays/{option}")


def family_yaml_styles(rng):
    """Resource files written the many ways real repositories write YAML."""
    snippets = [
        "  # a comment\n  plain: value # trailing comment\n",
        "  anchors:\n    base: &b {x: 1, y: two}\n    copy: *b\n    merged:\n      <<: *b\n      y: 3\n",
        "  flow: {a: [1, 2, {b: c}], 'd': \"e\"}\n",
        "  seq:\n  - a\n  -   b\n  - - nested\n    - list\n",
        "  multi: this is a plain\n    scalar over\n\n    two lines\n",
        "  lit: |2\n      indented by indicator\n    base\n",
        "  keep: |+\n    kept\n\n  strip: >-\n    folded\n    text\n",
        "  quoted: 'it''s \"quoted\"'\n  dq: \"tab\\there \\u00e9 \\x41\"\n",
        "  numbers: [0o17, 0x1F, 017, 1_000, 1e3, -0.0, .5, +12, 12.50, 1e-7, 6.02e23]\n",
        "  strings: [yes, no, on, off, y, n, True, FALSE, ~, null, Null, '', \"\"]\n",
        "  times: [2001-12-14, 2001-12-14t21:59:43.10-05:00, 2001-12-14 21:59:43.10 -5, 12:30:00]\n",
        "  \"quoted key\": 1\n  ? complex\n  : value\n  80: http\n  \"null\": x\n",
        "  unicode: \"日本語 – emoji 🚀\"\n  escapes: \"line1\\nline2\\r\\n\"\n",
        "  empty_map: {}\n  empty_list: []\n  empty_value:\n  tilde: ~\n",
        "  specials: ['@at', '`tick', '%pct', '!bang', '&amp', '*star', '|pipe', '>gt', '- dash', '-', '?', ':', '#hash', 'a: b', 'a #b', ' lead', 'trail ']\n",
        "  long: \"" + " ".join(["word"] * 40) + "\"\n  longnospace: " + "x" * 120 + "\n",
        "  json_like: {\"a\": 1, \"b\": [true, false, null], \"c\": {\"d\": \"e\"}}\n",
        "  bools_as_keys:\n    true: 1\n    no: 2\n",
        "  script: |\n    #!/bin/sh\n    set -e\n    echo \"$HOME\"  # not a comment\n\n    exit 0\n",
        "  crlf_like: \"a\\r\\nb\"\n  trailing_spaces: \"a \\nb\"\n",
        "  nested:\n    deep:\n      deeper:\n        - {k: v}\n        - k2: v2\n          k3: [x]\n",
        "  big: 12345678901234567890\n  neg: -9223372036854775808\n  float: 3.14159265358979323846\n",
    ]
    for n in range(30):
        chosen = rng.sample(snippets, rng.randint(2, 5))
        body = "".join(chosen)
        text = "# leading comment\n---\napiVersion: example.com/v1\nkind: Config\nmetadata:\n  name: c%d\nspec:\n%s" % (n, body)
        if n % 5 == 0:
            text = text.replace("\n", "\r\n")
        if n % 7 == 0:
            text = "\ufeff" + text
        if n % 3 == 0:
            text += "...\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\ndata: {k: v}\n"
        if n % 4 == 1:
            text = text.rstrip("\n")
        k = "resources: [r.yaml]\n"
        if n % 2 == 0:
            k += "namePrefix: y-\ncommonLabels:\n  style: s%d\n" % n
        case(f"yaml-{n:02d}", {"kustomization.yaml": k, "r.yaml": text})
    more = [
        "  a: \"x: " + "long words " * 12 + "\"\n",
        "  b: '" + "it''s long " * 12 + "'\n",
        "  c: \"" + "tab\\tsep " * 12 + "\"\n",
        "  d: \"ends with newline " + "w " * 40 + "\\n\"\n",
        "  e: |\n    line with trailing space \n    next\n",
        "  f: \"\\nstarts with newline\\nx\"\n",
        "  g: \"double  spaces  " + "x  " * 30 + "\"\n",
        "  h: \"#not a comment\"\n  i: \"- not a list\"\n  j: \"[not, flow]\"\n  k: \"{not: map}\"\n",
        "  l: \"0755\"\n  m: \"1e3\"\n  n: \"0x1F\"\n  o: \".5\"\n  p: \"+1\"\n  q: \"1_000\"\n  r: \"12:30\"\n",
        "  s: \"a\\u0000b\"\n  t: \"\\u00a0nbsp\"\n  u: \"\\u2028sep\"\n  v: \"\\x7f\"\n",
        "  w: |-\n    \n    blank first line\n",
        "  x: >\n    folded with\n\n    blank and\n      more indented\n    end\n",
        "  y: \"trailing\\n\\n\\n\"\n  z: \"\\n\\n\"\n",
        "  key with spaces: 1\n  \"key: colon\": 2\n  'single key': 3\n  -dash: 4\n  \"@at\": 5\n",
        "  url: https://example.com/path?query=1#frag\n  path: C:\\\\Windows\n  glob: '*.yaml'\n",
        "  version: 1.10\n  version_str: \"1.10\"\n  octal_str: \"0o17\"\n  inf_str: \".inf\"\n",
    ]
    for n in range(20):
        chosen = rng.sample(more, rng.randint(2, 5))
        text = "apiVersion: example.com/v1\nkind: Config\nmetadata:\n  name: m%d\nspec:\n%s" % (n, "".join(chosen))
        case(f"yaml-more-{n:02d}", {"kustomization.yaml": "resources: [r.yaml]\n", "r.yaml": text})


def family_patches(rng):
    """Strategic merge directives and list merge keys, JSON patch operations."""
    target = deployment("web", "nginx:1.25", env_cm="cfg", secret="sec", pvc="data", args=["--a", "--b"], ports=(8080, 9090),
                        extra_env={"A": "1", "B": "2"})
    target = target.replace("    spec:\n      containers:", "    spec:\n      tolerations:\n      - key: k1\n        operator: Exists\n      imagePullSecrets:\n      - name: reg1\n      nodeSelector:\n        disk: ssd\n        zone: a\n      containers:", 1)
    target = target.replace("      volumes:", "      - name: sidecar\n        image: busybox\n        ports:\n        - containerPort: 53\n          protocol: UDP\n        - containerPort: 53\n          protocol: TCP\n      volumes:", 1)
    smps = [
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.26\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: new\n        image: alpine\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        $patch: delete\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - $patch: replace\n      - name: only\n        image: alpine\n",
        "spec:\n  template:\n    spec:\n      nodeSelector:\n        $patch: replace\n        gpu: \"true\"\n",
        "spec:\n  template:\n    spec:\n      nodeSelector:\n        zone: null\n",
        "spec:\n  template:\n    spec:\n      tolerations:\n      - key: k2\n        operator: Exists\n",
        "spec:\n  template:\n    spec:\n      imagePullSecrets:\n      - name: reg2\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        env:\n        - name: A\n          value: \"10\"\n        - name: C\n          value: \"3\"\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        ports:\n        - containerPort: 8080\n          name: http\n        - containerPort: 7070\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        ports:\n        - containerPort: 53\n          protocol: UDP\n          name: dns\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        args:\n        - --c\n",
        "spec:\n  template:\n    spec:\n      volumes:\n      - name: data\n        $patch: delete\n      - name: extra\n        emptyDir: {}\n",
        "spec:\n  template:\n    spec:\n      $setElementOrder/containers:\n      - name: sidecar\n      - name: web\n      containers:\n      - name: web\n        image: nginx:2\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        $setElementOrder/env:\n        - name: B\n        - name: A\n",
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        $deleteFromPrimitiveList/args:\n        - --a\n",
        "spec:\n  template:\n    spec:\n      $retainKeys:\n      - containers\n      - volumes\n",
        "spec:\n  strategy:\n    type: Recreate\n    rollingUpdate: null\n",
        "metadata:\n  labels:\n    $patch: delete\n",
        "$patch: delete\n",
    ]
    jsons = [
        "- {op: remove, path: /spec/template/spec/containers/1}\n",
        "- {op: add, path: /spec/template/spec/containers/0/args/1, value: --mid}\n",
        "- {op: move, from: /spec/template/spec/containers/0/args/0, path: /spec/template/spec/containers/0/args/-}\n",
        "- {op: copy, from: /spec/template/spec/containers/0/image, path: /metadata/annotations/image}\n",
        "- {op: test, path: /spec/replicas, value: 1}\n- {op: replace, path: /spec/replicas, value: 3}\n",
        "- {op: test, path: /spec/replicas, value: 9}\n",
        "- {op: add, path: /metadata/labels/app.kubernetes.io~1name, value: web}\n",
        "- {op: replace, path: /spec/template/spec/containers/0/env/0/value, value: \"x\"}\n",
        "- {op: remove, path: /spec/template/spec/nodeSelector/zone}\n- {op: remove, path: /spec/template/spec/nodeSelector/nothere}\n",
        "- {op: add, path: /spec/template/spec/containers/9, value: {name: x}}\n",
        "- op: add\n  path: /spec/template/spec/volumes/-\n  value:\n    name: cfg\n    configMap:\n      name: cfg\n",
    ]
    n = 0
    for i, p in enumerate(smps):
        head = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        body = p if not p.startswith("metadata:") else p
        patch = head + body if not p.startswith("metadata:") else "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n" + p[len("metadata:\n"):]
        if p.startswith("$patch"):
            patch = head + p
        how = ["patches", "patchesStrategicMerge", "inline"][i % 3]
        f = {"base/d.yaml": target, "base/cfg.yaml": configmap("cfg", {"a": "b"}), "base/kustomization.yaml": kust(resources=["d.yaml", "cfg.yaml"])}
        if how == "patches":
            f["overlay/p.yaml"] = patch
            f["overlay/kustomization.yaml"] = kust(resources=["../base"]) + "patches:\n- path: p.yaml\n"
        elif how == "patchesStrategicMerge":
            f["overlay/p.yaml"] = patch
            f["overlay/kustomization.yaml"] = kust(resources=["../base"], patchesStrategicMerge=["p.yaml"])
        else:
            f["overlay/kustomization.yaml"] = kust(resources=["../base"]) + "patches:\n- target:\n    kind: Deployment\n  patch: |-\n" + indent(patch, 4)
        case(f"patch-{n:02d}-smp-{how}", f, render_dir="overlay")
        n += 1
    for i, p in enumerate(jsons):
        f = {"base/d.yaml": target, "base/cfg.yaml": configmap("cfg", {"a": "b"}), "base/kustomization.yaml": kust(resources=["d.yaml", "cfg.yaml"])}
        f["overlay/p.yaml"] = p
        if i % 2:
            f["overlay/kustomization.yaml"] = kust(resources=["../base"]) + "patchesJson6902:\n- target: {group: apps, version: v1, kind: Deployment, name: web}\n  path: p.yaml\n"
        else:
            f["overlay/kustomization.yaml"] = kust(resources=["../base"]) + "patches:\n- target: {kind: Deployment}\n  path: p.yaml\n"
        case(f"patch-{n:02d}-json", f, render_dir="overlay")
        n += 1


def family_namespaces(rng):
    """Several namespaces in one build: name references across and within
    namespaces, cluster-scoped kinds, bindings to service accounts elsewhere."""
    for n in range(24):
        f = {}
        teams = ["alpha", "beta"]
        for t in teams:
            res = [
                f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {t}\n",
                service_account("runner").replace("name: runner", f"name: runner\n  namespace: {t}"),
                configmap("settings", {"team": t}).replace("name: settings", f"name: settings\n  namespace: {t}"),
                deployment("app", "nginx", env_cm="settings", sa="runner").replace("  name: app\n", f"  name: app\n  namespace: {t}\n", 1),
                binding("RoleBinding", "runner", "ClusterRole", "shared-reader", "runner", t).replace("name: runner\nroleRef", f"name: runner\n  namespace: {t}\nroleRef"),
            ]
            f[f"teams/{t}/r.yaml"] = docs(*res)
            k = kust(resources=["r.yaml"])
            if n % 3 == 0:
                k += f"configMapGenerator:\n- name: generated\n  namespace: {t}\n  literals: [TEAM={t}]\n"
            if n % 4 == 1:
                k += f"nameSuffix: -{t}\n"
            f[f"teams/{t}/kustomization.yaml"] = k
        f["cluster/r.yaml"] = docs(cluster_role("shared-reader"),
                                   binding("ClusterRoleBinding", "readers", "ClusterRole", "shared-reader", "runner", "alpha").replace("- kind: ServiceAccount\n  name: runner\n  namespace: alpha\n", "- kind: ServiceAccount\n  name: runner\n  namespace: alpha\n- kind: ServiceAccount\n  name: runner\n  namespace: beta\n"),
                                   "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\nprovisioner: example.com/fast\n",
                                   "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: critical\nvalue: 100\n")
        f["cluster/kustomization.yaml"] = kust(resources=["r.yaml"])
        k = kust(resources=["../teams/alpha", "../teams/beta", "../cluster"])
        feats = [f"namePrefix: org{n}-\n", "commonLabels:\n  org: o\n", "namespace: forced\n",
                 "replacements:\n- source: {kind: ConfigMap, name: settings, namespace: beta, fieldPath: data.team}\n  targets:\n  - select: {kind: Deployment, namespace: alpha}\n    fieldPaths: [metadata.annotations.peer]\n    options: {create: true}\n",
                 "patches:\n- target: {kind: Deployment, namespace: beta}\n  patch: |-\n    - op: add\n      path: /spec/template/spec/priorityClassName\n      value: critical\n",
                 "patches:\n- target: {kind: RoleBinding}\n  patch: |-\n    - op: add\n      path: /subjects/-\n      value: {kind: ServiceAccount, name: runner, namespace: alpha}\n"]
        chosen = sorted(rng.sample(range(len(feats)), rng.randint(1, 3)))
        patches = []
        for c in chosen:
            if feats[c].startswith("patches:"):
                patches.append(feats[c][len("patches:\n"):])
            else:
                k += feats[c]
        if patches:
            k += "patches:\n" + "".join(patches)
        f["org/kustomization.yaml"] = k
        case(f"ns-{n:02d}", f, render_dir="org")


def family_generators(rng):
    """ConfigMap and Secret generators in depth: file keys, env files, binary
    data, options per generator and kustomization-wide, merges over levels."""
    envs = ["A=1\nB=two words\n", "# c\n\nKEY=value=with=equals\nEMPTY=\n", "QUOTED=\"q\"\nSINGLE='s'\n  LEADING=space\n", "export X=1\n", "UTF8=héllo\nTAB=a\tb\n"]
    for n in range(24):
        f = {}
        gen = []
        opts = []
        if n % 2 == 0:
            f["base/app.env"] = envs[n % len(envs)]
            gen.append("  envs:\n  - app.env\n")
        if n % 3 == 0:
            f["base/config.json"] = '{"a": 1}\n'
            f["base/script.sh"] = "#!/bin/sh\necho hi\n"
            gen.append("  files:\n  - config.json\n  - run=script.sh\n")
        if n % 4 == 1:
            f["base/blob.bin"] = "\x00\x01binary\xff"
            gen.append("  files:\n  - blob.bin\n")
        if not gen or n % 5 == 0:
            gen.append("  literals:\n  - LIT=1\n  - 'SPACE=a b'\n  - MULTI=line1\\nline2\n")
        if n % 3 == 1:
            opts.append("  options:\n    labels:\n      gen: \"yes\"\n    annotations:\n      note: from-options\n")
        if n % 6 == 2:
            opts.append("  options:\n    disableNameSuffixHash: true\n    immutable: true\n")
        body = "".join(g for g in gen if not g.startswith("  files:")) + "".join(g for g in gen if g.startswith("  files:"))[:0]
        files_entries = [g for g in gen if g.startswith("  files:")]
        files_merged = ""
        if files_entries:
            items = "".join(line + "\n" for g in files_entries for line in g.splitlines()[1:])
            files_merged = "  files:\n" + items
        k = "configMapGenerator:\n- name: app\n" + body + files_merged + "".join(opts[:1])
        k += "secretGenerator:\n- name: creds\n  literals:\n  - user=admin\n  - password=p@ss\n"
        if n % 4 == 3:
            f["base/tls.crt"] = "CERT\n"
            k += "- name: tls\n  type: kubernetes.io/tls\n  files:\n  - tls.crt\n  - tls.key=tls.crt\n"
        if n % 5 == 1:
            k += "generatorOptions:\n  labels:\n    global: g\n  disableNameSuffixHash: %s\n" % str(n % 2 == 0).lower()
        f["base/kustomization.yaml"] = k
        f["base/d.yaml"] = deployment("web", "nginx", env_cm="app", secret="creds")
        f["base/kustomization.yaml"] = kust(resources=["d.yaml"]) + f["base/kustomization.yaml"]
        ok = kust(resources=["../base"])
        if n % 2 == 1:
            ok += "configMapGenerator:\n- name: app\n  behavior: merge\n  literals:\n  - OVERLAY=1\n  options:\n    labels:\n      overlay: o\n"
        if n % 3 == 2:
            ok += "secretGenerator:\n- name: creds\n  behavior: replace\n  literals:\n  - token=t\n"
        if n % 4 == 0:
            ok += "namePrefix: g-\nnamespace: gen\n"
        f["overlay/kustomization.yaml"] = ok
        case(f"gen-{n:02d}", f, render_dir="overlay")


def family_replacements(rng):
    """Replacements: selections, rejections, delimiters, creation, wildcards."""
    src = docs(configmap("env", {"host": "db.prod.svc", "port": '"5432"', "list": "a,b,c", "dotted.key": "v"}),
               service("web"), deployment("web", "nginx:1.25", extra_env={"HOST": "x", "PORT": "0"}, args=["--host=old", "--port=1"]),
               deployment("worker", "busybox", extra_env={"HOST": "x"}).replace("app: worker", "app: worker\n    role: batch", 1),
               "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  endpoints:\n  - name: a\n    url: http://old\n  - name: b\n    url: http://old\n")
    reps = [
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [\"spec.template.spec.containers.*.env.[name=HOST].value\"]\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.port}\n  targets:\n  - select: {kind: Deployment, name: web}\n    fieldPaths: [spec.template.spec.containers.0.env.[name=PORT].value]\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Deployment}\n    reject: [{name: worker}]\n    fieldPaths: [spec.template.spec.containers.0.args.0]\n    options: {delimiter: '=', index: 1}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.list, options: {delimiter: ',', index: 1}}\n  targets:\n  - select: {kind: Service}\n    fieldPaths: [metadata.annotations.second]\n    options: {create: true}\n",
        "- source: {kind: Service, name: web, fieldPath: spec.ports.0.port}\n  targets:\n  - select: {kind: Deployment, name: web}\n    fieldPaths: [spec.template.spec.containers.0.ports.0.containerPort]\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [\"spec.endpoints.*.url\"]\n    options: {delimiter: '/', index: 2}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [spec.endpoints.[name=b].url]\n    options: {delimiter: '/', index: 5}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [spec.new.deep.field]\n    options: {create: true}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [spec.missing.field]\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.nothere}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [spec.x]\n    options: {create: true}\n",
        "- source: {kind: ConfigMap, name: env}\n  targets:\n  - select: {kind: Deployment, labelSelector: role=batch}\n    fieldPaths: [metadata.annotations.config]\n    options: {create: true}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: metadata.name}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [spec.template.spec.containers.0.envFrom.0.configMapRef.name]\n    options: {create: true}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.dotted\\.key}\n  targets:\n  - select: {kind: Service}\n    fieldPaths: [metadata.labels.from]\n    options: {create: true}\n",
        "- source: {kind: Deployment, name: web, fieldPath: spec.template.spec.containers.0.image, options: {delimiter: ':', index: 1}}\n  targets:\n  - select: {kind: Deployment, name: worker}\n    fieldPaths: [spec.template.spec.containers.0.image]\n    options: {delimiter: ':', index: 1}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data.host}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [spec.template.spec.containers.0.args.1]\n    options: {delimiter: '=', index: -1}\n",
        "- source: {kind: ConfigMap, name: env, fieldPath: data}\n  targets:\n  - select: {kind: Widget}\n    fieldPaths: [spec.copied]\n    options: {create: true}\n",
    ]
    n = 0
    for i, r in enumerate(reps):
        for how in ("inline", "file"):
            f = {"base/r.yaml": src, "base/kustomization.yaml": kust(resources=["r.yaml"])}
            if how == "inline":
                k = kust(resources=["../base"]) + "replacements:\n" + r
            else:
                f["overlay/repl.yaml"] = r
                k = kust(resources=["../base"]) + "replacements:\n- path: repl.yaml\n"
            if i % 3 == 0:
                k += "namePrefix: r-\n"
            f["overlay/kustomization.yaml"] = k
            case(f"repl-{n:02d}-{how}", f, render_dir="overlay")
            n += 1


def family_components_deep(rng):
    """Components that include components, carry resources, generators,
    replacements and configurations, used from bases and overlays."""
    comp_texts = {
        "with-resources": ("resources: [extra.yaml]\n", {"extra.yaml": configmap("extra", {"k": "v"})}),
        "nested": ("components: [../leaf]\ncommonAnnotations:\n  nested: \"yes\"\n", {}),
        "gen-merge": ("configMapGenerator:\n- name: settings\n  behavior: merge\n  literals: [FROM_COMPONENT=1]\n", {}),
        "gen-new": ("secretGenerator:\n- name: comp-secret\n  literals: [s=1]\n", {}),
        "replace": ("replacements:\n- source: {kind: ConfigMap, name: settings, fieldPath: metadata.name}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [metadata.annotations.settings]\n    options: {create: true}\n", {}),
        "config": ("configurations: [conf.yaml]\n", {"conf.yaml": "nameReference:\n- kind: ConfigMap\n  version: v1\n  fieldSpecs:\n  - kind: Widget\n    path: spec/configName\n"}),
        "prefix": ("namePrefix: c-\n", {}),
        "delete": ("patches:\n- patch: |-\n    $patch: delete\n    apiVersion: example.com/v1\n    kind: Widget\n    metadata:\n      name: w\n", {}),
        "images": ("images:\n- name: nginx\n  newTag: \"1.27\"\n", {}),
    }
    leaf = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nlabels:\n- pairs: {leaf: \"true\"}\n"
    names = list(comp_texts)
    for n in range(24):
        f = {"base/d.yaml": deployment("web", "nginx:1.25", env_cm="settings"),
             "base/w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  configName: settings\n",
             "base/kustomization.yaml": kust(resources=["d.yaml", "w.yaml"]) + "configMapGenerator:\n- name: settings\n  literals: [A=1]\n",
             "components/leaf/kustomization.yaml": leaf}
        chosen = rng.sample(names, rng.randint(1, 4))
        for c in names:
            text, files = comp_texts[c]
            f[f"components/{c}/kustomization.yaml"] = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n" + text
            for fn, t in files.items():
                f[f"components/{c}/{fn}"] = t
        where = n % 3
        comps = [f"../components/{c}" for c in chosen]
        if where == 0:
            f["base/kustomization.yaml"] += "components:\n" + "".join(f"- {c}\n" for c in comps)
            f["overlay/kustomization.yaml"] = kust(resources=["../base"], namePrefix="o-")
        elif where == 1:
            f["overlay/kustomization.yaml"] = kust(resources=["../base"], components=comps)
        else:
            half = len(comps) // 2
            f["base/kustomization.yaml"] += "components:\n" + "".join(f"- {c}\n" for c in comps[:half]) if half else ""
            f["overlay/kustomization.yaml"] = kust(resources=["../base"], components=comps[half:], namespace="comp")
        case(f"compd-{n:02d}-{'-'.join(chosen)}", f, render_dir="overlay")


# ---------------------------------------------------------------------------


def write_case(name, files, render_dir, load_restrictor):
    root = os.path.join(CORPUS, name)
    os.makedirs(root, exist_ok=True)
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
    if render_dir:
        with open(os.path.join(root, "render-dir"), "w") as fh:
            fh.write(render_dir + "\n")
    if load_restrictor:
        with open(os.path.join(root, "load-restrictor"), "w") as fh:
            fh.write(load_restrictor + "\n")
    target = os.path.join(root, render_dir) if render_dir else root
    cmd = ["kubectl", "kustomize", target]
    if load_restrictor:
        cmd += ["--load-restrictor", load_restrictor]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        with open(os.path.join(root, "expected.yaml"), "w") as fh:
            fh.write(proc.stdout)
        return "ok"
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("# Warning")]
    text = "\n".join(lines).replace(CORPUS + "/", "")
    import re
    text = re.sub(r"^E[0-9]+ [0-9:.]+ +[0-9]+ run\.go:[0-9]+\] ", "", text, flags=re.M)
    # pointers kustomize prints change from run to run
    text = re.sub(r"0x[0-9a-f]{6,}", "0x...", text)
    with open(os.path.join(root, "kustomize-error.txt"), "w") as fh:
        fh.write(text + "\n")
    return "error"


def main():
    only = None
    if len(sys.argv) > 2 and sys.argv[1] == "--only":
        only = sys.argv[2]
    if shutil.which("kubectl") is None:
        sys.exit("render-corpus: kubectl is required (it provides `kubectl kustomize`, the oracle)")
    rng = random.Random(18)
    family_kubebuilder(rng)
    family_overlays(rng)
    family_plugins(rng)
    family_capi(rng)
    family_install(rng)
    family_edges(rng)
    family_components(rng)
    family_mix(rng)
    family_mix_bases(rng)
    family_plugin_variants(rng)
    family_ml_platform(rng)
    family_yaml_styles(rng)
    family_patches(rng)
    family_namespaces(rng)
    family_generators(rng)
    family_replacements(rng)
    family_components_deep(rng)
    os.makedirs(CORPUS, exist_ok=True)
    for entry in os.listdir(CORPUS):
        if entry in KEEP or (only and not entry.startswith(only)):
            continue
        shutil.rmtree(os.path.join(CORPUS, entry))
    counts = {"ok": 0, "error": 0}
    for name, files, render_dir, lr in cases:
        if only and not name.startswith(only):
            continue
        counts[write_case(name, files, render_dir, lr)] += 1
    version = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True).stdout.strip().replace("\n", ", ")
    with open(os.path.join(CORPUS, "KUBECTL_VERSION"), "w") as fh:
        fh.write(version + "\n")
    print(f"{len(cases)} cases: {counts['ok']} rendered, {counts['error']} errors ({version})")


if __name__ == "__main__":
    main()
