#!/usr/bin/env bash
# Benchmark: `pilothouse render` against `kubectl kustomize`, as whole
# processes, on the same inputs, in the same run.
#
#   scripts/bench-render.sh            # default: 5 runs, 300 generated apps
#   RUNS=10 APPS=500 scripts/bench-render.sh
#
# (a) this repository's own desired state: overlays/<cloud> and
#     gitops/clusters/<name> (one process per directory);
# (b) a generated tree of APPS apps (a Deployment, Service, ConfigMap and
#     PVC each) under a cloud overlay with selector-targeted patches and a
#     prod overlay with a prefix, labels, images, replicas, generators,
#     strategic merge and JSON 6902 patches.
#
# For each it prints the median wall time and the peak resident memory of
# both tools, the speed-up and whether both printed the same YAML. This is a
# benchmark, not a test: it asserts nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${RUNS:-5}"
apps="${APPS:-300}"

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
PY
