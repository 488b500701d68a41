#!/usr/bin/env python3
"""Runs the workspace's test binaries in parallel: builds every test once
(`cargo test --no-run`), then runs each binary from its package's directory
(as `cargo test` does), JOBS at a time, the slowest known first; prints each
binary's output when it fails and a timing table at the end. Doctests run
after, through cargo.

    PILOTHOUSE_TEST_JOBS   binaries at once (default: 3)
    extra arguments        passed to cargo (e.g. --locked)
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

cargo_args = sys.argv[1:]
jobs = int(os.environ.get("PILOTHOUSE_TEST_JOBS", "3"))

build = subprocess.run(
    ["cargo", "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics", *cargo_args],
    stdout=subprocess.PIPE,
    text=True,
)
if build.returncode != 0:
    sys.exit(build.returncode)

binaries = []
for line in build.stdout.splitlines():
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        continue
    if message.get("reason") != "compiler-artifact" or not message.get("executable"):
        continue
    if not message.get("profile", {}).get("test"):
        continue
    target = message["target"]
    package_dir = os.path.dirname(message["manifest_path"])
    name = f"{message['package_id'].split('#')[0].rsplit('/', 1)[-1]} {target['kind'][0]} {target['name']}"
    binaries.append((name, message["executable"], package_dir))

# the binaries that start many control planes go first, so the long ones
# do not end up last on their own
timings_file = os.path.join(
    os.environ.get("CARGO_TARGET_DIR", "target"), "pilothouse-test-timings.json"
)
try:
    with open(timings_file) as f:
        known = json.load(f)
except (OSError, ValueError):
    known = {}
binaries.sort(key=lambda b: -known.get(b[0], 0.0))


def run(binary):
    name, executable, cwd = binary
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as log:
        code = subprocess.run([executable], cwd=cwd, stdout=log, stderr=subprocess.STDOUT).returncode
        log.seek(0)
        output = log.read()
    return name, code, time.monotonic() - started, output


started = time.monotonic()
failed = []
timings = {}
with ThreadPoolExecutor(max_workers=jobs) as pool:
    for name, code, seconds, output in pool.map(run, binaries):
        timings[name] = seconds
        summary = [l for l in output.splitlines() if l.startswith("test result:")]
        print(f"{'ok  ' if code == 0 else 'FAIL'} {seconds:7.1f}s  {name}  {summary[-1] if summary else ''}", flush=True)
        if code != 0:
            failed.append(name)
            print(output, flush=True)

try:
    with open(timings_file, "w") as f:
        json.dump(timings, f, indent=1, sort_keys=True)
except OSError:
    pass
print(f"\n{len(binaries)} test binaries in {time.monotonic() - started:.0f}s with {jobs} at once", flush=True)
for name, seconds in sorted(timings.items(), key=lambda t: -t[1])[:8]:
    print(f"  {seconds:7.1f}s  {name}", flush=True)

doc = subprocess.run(["cargo", "test", "--workspace", "--doc", *cargo_args])
if failed:
    print("failed: " + ", ".join(failed), file=sys.stderr)
    sys.exit(1)
sys.exit(doc.returncode)
