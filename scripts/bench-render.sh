#!/usr/bin/env bash
# Benchmark: `pilothouse render` against `kubectl kustomize`, as whole
# processes, on the same inputs, in the same run.
#
#   scripts/bench-render.sh            # default: 5 runs, 300 generated apps
#   RUNS=10 APPS=500 MB=20 scripts/bench-render.sh
#
# (a) this repository's own desired state: overlays/<cloud> and
#     gitops/clusters/<name> (one process per directory);
# (b) a generated tree of APPS apps (a Deployment, Service, ConfigMap and
#     PVC each) under a cloud overlay with selector-targeted patches and a
#     prod overlay with a prefix, labels, images, replicas, generators,
#     strategic merge and JSON 6902 patches (300 apps: 1,202 objects);
# (c) an install manifest set of about MB megabytes (default 10; CRDs with
#     large schemas and long descriptions, RBAC, controllers, config maps,
#     the shape of a GitOps tool's or an operator's install.yaml) under an
#     overlay with a namespace, a prefix, labels, images and patches.
#
# For each it prints the median wall time and the peak resident memory of
# both tools, the speed-up and whether both printed the same YAML. This is a
# benchmark, not a test: it asserts nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${RUNS:-5}"
apps="${APPS:-300}"
megabytes="${MB:-10}"

for tool in kubectl python3 cargo; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench-render: $tool is required" >&2
    exit 1
  fi
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
echo "building pilothouse (release)…" >&2
(cd "$repo" && cargo build --release --quiet -p pilothouse)
bin="$CARGO_TARGET_DIR/release/pilothouse"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------------
# The generated tree.
python3 - "$work/tree" "$apps" <<'PY'
import os, sys
root, apps = sys.argv[1], int(sys.argv[2])

def write(path, text):
    path = os.path.join(root, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

names = [f"app-{i:03d}" for i in range(apps)]
for i, name in enumerate(names):
    tier = "frontend" if i % 3 == 0 else "backend"
    write(f"base/{name}/kustomization.yaml",
          "resources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n- pvc.yaml\n")
    write(f"base/{name}/deployment.yaml", f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}, tier: {tier}}}
  annotations: {{team: team-{i % 7}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, tier: {tier}}}
    spec:
      containers:
      - name: app
        image: registry.example.com/shop/{name}:1.0.0
        ports:
        - containerPort: 8080
          name: http
        env:
        - name: LOG_LEVEL
          value: info
        - name: SETTINGS
          valueFrom:
            configMapKeyRef: {{name: {name}-settings, key: mode}}
        envFrom:
        - configMapRef: {{name: shared-config}}
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
        volumeMounts:
        - {{name: data, mountPath: /data}}
      - name: sidecar
        image: registry.example.com/tools/proxy:2.3
      volumes:
      - name: data
        persistentVolumeClaim: {{claimName: {name}-data}}
""")
    write(f"base/{name}/service.yaml", f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{app: {name}, tier: {tier}}}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 80
    targetPort: http
    name: http
""")
    write(f"base/{name}/configmap.yaml", f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-settings
data:
  mode: standard
  index: "{i}"
""")
    write(f"base/{name}/pvc.yaml", f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}-data
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  resources:
    requests: {{storage: {1 + i % 10}Gi}}
""")
write("base/kustomization.yaml", "resources:\n" + "".join(f"- {n}\n" for n in names))

write("cloud/kustomization.yaml", """resources:
- ../base
patches:
- target:
    kind: PersistentVolumeClaim
  patch: |-
    apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: any
    spec:
      storageClassName: managed-premium
- target:
    kind: Service
    labelSelector: tier=frontend
  patch: |-
    apiVersion: v1
    kind: Service
    metadata:
      name: any
      annotations:
        service.beta.kubernetes.io/azure-load-balancer-internal: "true"
    spec:
      type: LoadBalancer
- target:
    kind: Deployment
    annotationSelector: team in (team-1,team-3)
  patch: |-
    - op: add
      path: /spec/template/spec/nodeSelector
      value:
        kubernetes.azure.com/mode: user
""")

replicas = "".join(f"- name: {n}\n  count: 3\n" for n in names[: max(1, apps // 5)])
smp = "".join(f"""- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: {n}
    spec:
      template:
        spec:
          containers:
          - name: app
            resources:
              limits: {{cpu: "1", memory: 512Mi}}
""" for n in names[: max(1, apps // 10)])
write("prod/kustomization.yaml", f"""resources:
- ../cloud
namePrefix: prod-
labels:
- pairs:
    env: prod
  includeSelectors: false
commonAnnotations:
  owner: platform
images:
- name: registry.example.com/tools/proxy
  newTag: "2.4"
replicas:
{replicas}configMapGenerator:
- name: shared-config
  literals:
  - REGION=westeurope
  - TRACING=on
secretGenerator:
- name: registry-credentials
  literals:
  - token=not-a-secret
patches:
{smp}- target:
    kind: Deployment
    labelSelector: tier=backend
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/env/-
      value:
        name: BACKEND
        value: "true"
- target:
    kind: ConfigMap
    name: .*-settings
  patch: |-
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: any
    data:
      mode: production
""")
PY

# ---------------------------------------------------------------------------
# The install manifest set.
python3 - "$work/install" "$megabytes" <<'PY'
import os, random, sys
root, megabytes = sys.argv[1], float(sys.argv[2])
target = int(megabytes * 1_000_000)
rng = random.Random(7)
os.makedirs(f"{root}/upstream", exist_ok=True)
os.makedirs(f"{root}/overlay", exist_ok=True)
words = ("the of resource field value name spec status list map type string integer "
         "boolean object array selector label annotation condition reason message").split()

def desc(n):
    return " ".join(rng.choice(words) for _ in range(n))

def props(depth, width, ind):
    out, pad = [], " " * ind
    for i in range(width):
        name = f"{rng.choice(words)}{i}{rng.choice(['Ref', 'Spec', 'Count', 'Name', 'Policy', ''])}"
        out.append(f"{pad}{name}:\n{pad}  description: {desc(rng.randint(5, 30))}\n")
        if depth > 0 and rng.random() < 0.5:
            out.append(f"{pad}  type: object\n{pad}  properties:\n" + props(depth - 1, rng.randint(2, 6), ind + 4))
        elif rng.random() < 0.3:
            out.append(f"{pad}  type: array\n{pad}  items:\n{pad}    type: string\n")
        else:
            out.append(f"{pad}  type: {rng.choice(['string', 'integer', 'boolean'])}\n")
            if rng.random() < 0.3:
                out.append(f"{pad}  enum:\n" + "".join(f"{pad}  - {w}\n" for w in rng.sample(words, 3)))
    return "".join(out)

docs, size, i = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: platform\n"], 0, 0
while size < target * 0.97:
    kind = f"Thing{i}"
    d = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: thing{i}s.platform.example.com
  labels:
    app.kubernetes.io/part-of: platform
spec:
  group: platform.example.com
  names:
    kind: {kind}
    listKind: {kind}List
    plural: thing{i}s
    singular: thing{i}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
    schema:
      openAPIV3Schema:
        description: {desc(20)}
        type: object
        properties:
          spec:
            type: object
            properties:
{props(3, 8, 14)}"""
    docs.append(d)
    size += len(d)
    i += 1
for c in range(40):
    n = f"platform-{c}"
    docs.append(f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {n}\n  namespace: platform\n")
    docs.append(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {n}\nrules:\n- apiGroups: ['*']\n  resources: ['*']\n  verbs: [get, list, watch]\n")
    docs.append(f"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {n}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {n}\nsubjects:\n- kind: ServiceAccount\n  name: {n}\n  namespace: platform\n")
    docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}-config\n  namespace: platform\ndata:\n  config.yaml: |\n" + "".join(f"    key{j}: {desc(6)}\n" for j in range(40)))
    docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {n}
  namespace: platform
  labels:
    app.kubernetes.io/name: {n}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {n}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {n}
    spec:
      serviceAccountName: {n}
      containers:
      - name: controller
        image: ghcr.io/example/platform-{c}:v1.2.3
        args: [--leader-elect, --metrics-bind-address=:8080]
        volumeMounts:
        - name: config
          mountPath: /etc/config
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
      volumes:
      - name: config
        configMap:
          name: {n}-config
""")
    docs.append(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {n}\n  namespace: platform\nspec:\n  selector:\n    app.kubernetes.io/name: {n}\n  ports:\n  - port: 8080\n")
with open(f"{root}/upstream/install.yaml", "w") as f:
    f.write("---\n".join(docs))
with open(f"{root}/upstream/kustomization.yaml", "w") as f:
    f.write("resources:\n- install.yaml\n")
with open(f"{root}/overlay/kustomization.yaml", "w") as f:
    f.write("""resources:
- ../upstream
namespace: platform-prod
namePrefix: prod-
labels:
- pairs:
    env: prod
  includeSelectors: false
images:
- name: ghcr.io/example/platform-0
  newTag: v1.2.4
patches:
- target:
    kind: Deployment
  patch: |-
    - op: replace
      path: /spec/replicas
      value: 2
- target:
    kind: CustomResourceDefinition
  patch: |-
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: any
      annotations:
        cert-manager.io/inject-ca-from: platform-prod/prod-serving-cert
""")
PY

# ---------------------------------------------------------------------------
# Measuring: wall time and peak RSS of each process, through wait4.
python3 - "$bin" "$runs" "$work" "$repo" <<'PY'
import os, statistics, subprocess, sys, time

bin_, runs, work, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def run_once(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss, out

def measure(dirs, make_cmd):
    times, peak, outputs = [], 0, None
    for _ in range(runs):
        total, outs = 0.0, []
        for d in dirs:
            t, rss, out = run_once(make_cmd(d))
            total += t
            peak = max(peak, rss)
            outs.append(out)
        times.append(total)
        outputs = outs
    return statistics.median(times), peak, outputs

def bench(title, dirs):
    kt, km, kout = measure(dirs, lambda d: ["kubectl", "kustomize", d])
    pt, pm, pout = measure(dirs, lambda d: [bin_, "render", d])
    objects = sum(o.count(b"\n---\n") + 1 for o in pout if o.strip())
    print(f"\n{title}: {len(dirs)} director{'y' if len(dirs) == 1 else 'ies'}, {objects} objects, median of {runs} runs")
    print(f"  {'':22}{'wall time':>12}{'peak RSS':>14}")
    print(f"  {'kubectl kustomize':22}{kt * 1000:>10.1f}ms{km / 1024:>11.1f} MiB")
    print(f"  {'pilothouse render':22}{pt * 1000:>10.1f}ms{pm / 1024:>11.1f} MiB")
    print(f"  speed-up: {kt / pt:.1f}x   memory: {km / max(pm, 1):.1f}x less   identical output: {'yes' if kout == pout else 'NO'}")

own = [os.path.join(repo, p) for p in ("overlays/aks", "overlays/gke", "overlays/eks")]
clusters = os.path.join(repo, "gitops", "clusters")
if os.path.isdir(clusters):
    own += sorted(os.path.join(clusters, c) for c in os.listdir(clusters)
                  if os.path.isdir(os.path.join(clusters, c)))
own = [d for d in own if os.path.isdir(d)]
print(f"kubectl: {subprocess.run(['kubectl', 'version', '--client'], capture_output=True, text=True).stdout.strip().splitlines()}")
if own:
    bench("(a) this repository's overlays", own)
bench("(b) generated tree (prod overlay)", [os.path.join(work, "tree", "prod")])
size = os.path.getsize(os.path.join(work, "install", "upstream", "install.yaml"))
bench(f"(c) install manifest set ({size / 1e6:.1f} MB)", [os.path.join(work, "install", "overlay")])
PY
