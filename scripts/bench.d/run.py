"""Side-by-side runs of one job on one apiserver: apply the external-dns kit and wait
until it is ready, with catalyst-bootstrap, kubectl, Helm and kapp.

Every tool talks to the apiserver as its own user (a client certificate signed by the
world's CA, group bench-tools, bound to cluster-admin), so the apiserver's audit log
attributes each request to exactly one tool. Pod readiness is observed by a watcher of
our own (as the world's admin, so it is never counted or throttled).

Called by scripts/bench; writes one JSON object per run to --results.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import yaml

TOOLS = ["catalyst-bootstrap", "kubectl", "helm", "kapp"]
USERS = {t: f"bench-{t}" for t in TOOLS}
LOAD_USER = "bench-load"
GROUP = "bench-tools"
TIMEOUT = "10m"
# The storm's load: LISTs of this many 20 kB ConfigMaps (about 20 MB each).
LOAD_OBJECTS = 1000


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class World:
    """The running test world: paths, the apiserver and the admin's TLS identity."""

    def __init__(self, state, work, bins):
        self.state = Path(state)
        self.work = Path(work)
        self.bins = bins
        self.pki = self.state / "pki"
        kc = yaml.safe_load((self.state / "kubeconfig").read_text())
        server = kc["clusters"][0]["cluster"]["server"]
        self.host, self.port = server.removeprefix("https://").split(":")
        self.server = server
        self.env = dict(os.environ)
        for line in (self.state / "env").read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v
        self.audit_log = self.work / "audit.log"
        self.audit_offset = self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def tls(self, user="admin"):
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if user == "admin":
            ctx.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        else:
            ctx.load_cert_chain(self.work / f"{user}.crt", self.work / f"{user}.key")
        return ctx

    def conn(self, user="admin", timeout=30):
        return http.client.HTTPSConnection(self.host, int(self.port), context=self.tls(user), timeout=timeout)

    def pdns(self, method, path, body=None, timeout=10):
        """One request to the world's PowerDNS REST API (`path` from `/api/v1`): the status
        and the body read."""
        host, port = self.env["PDNS_API_URL"].removeprefix("http://").rstrip("/").split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        headers = {"X-API-Key": self.env["PDNS_API_KEY"]}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        c.request(method, f"/api/v1{path}", body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()

    def kubectl(self, *args, kubeconfig=None, check=True, input=None):
        cmd = [self.bins["kubectl"], f"--kubeconfig={kubeconfig or self.state / 'kubeconfig'}", *args]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[2:])}: {r.stderr.strip()}")
        return r

    def apiserver_pid(self):
        return int((self.state / "pids" / "kube-apiserver.pid").read_text())

    # ------------------------------------------------------------ identities

    def make_identities(self):
        """One client certificate and kubeconfig per tool (and one for the load)."""
        for user in [*USERS.values(), LOAD_USER]:
            key, crt = self.work / f"{user}.key", self.work / f"{user}.crt"
            # A certificate from an earlier world's CA is useless: mint one per run of the bench.
            if not crt.exists() or crt.stat().st_mtime < (self.pki / "ca.crt").stat().st_mtime:
                csr = self.work / f"{user}.csr"
                ext = self.work / "client.ext"
                ext.write_text("extendedKeyUsage=clientAuth\n")
                run_ok(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", f"/O={GROUP}/CN={user}"])
                run_ok(["openssl", "x509", "-req", "-in", csr, "-CA", self.pki / "ca.crt", "-CAkey",
                        self.pki / "ca.key", "-CAcreateserial", "-days", "7", "-extfile", ext, "-out", crt])
            kc = yaml.safe_load((self.state / "kubeconfig").read_text())
            kc["users"] = [{"name": user, "user": {"client-certificate": str(crt), "client-key": str(key)}}]
            kc["contexts"] = [{"name": "bench", "context": {"cluster": "testenv", "user": user}}]
            kc["current-context"] = "bench"
            path = self.kubeconfig(user)
            path.write_text(yaml.safe_dump(kc))
            path.chmod(0o600)
        self.kubectl("apply", "--server-side", "-f", "-", input=f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: bench-tools}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: {GROUP}}}]
""")

    def kubeconfig(self, user):
        return self.work / f"kubeconfig-{user}"

    # ------------------------------------------------------------ audit log

    def audit_events(self):
        """Audit events written since the previous call."""
        events = []
        if not self.audit_log.exists():
            return events
        with open(self.audit_log, "rb") as f:
            f.seek(self.audit_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.audit_offset += end
        for line in data[:end].splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return events

    # ------------------------------------------------------------ kwok

    def pod_ready_delay(self, seconds):
        """Pods turn Ready `seconds` after they are scheduled (kwok's pod-ready Stage)."""
        patch = {"spec": {"delay": {"durationMilliseconds": int(seconds * 1000)}}} if seconds else \
            {"spec": {"delay": None}}
        self.kubectl("patch", "stage", "pod-ready", "--type=merge", "-p", json.dumps(patch))


def run_ok(cmd):
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Watch(threading.Thread):
    """A watch of one collection as the world's admin (so never counted or throttled),
    resumed from the last resource version it saw; `observe` gets every event with its
    receipt time (wall clock)."""

    def __init__(self, world, path):
        super().__init__(daemon=True)
        self.world, self.path = world, path
        self.stop = threading.Event()
        self.started = threading.Event()

    def run(self):
        rv = None
        while not self.stop.is_set():
            try:
                c = self.world.conn(timeout=5)
                q = "watch=1&allowWatchBookmarks=true" + (f"&resourceVersion={rv}" if rv else "")
                c.request("GET", f"{self.path}?{q}", headers={"User-Agent": "catalyst-bench-watcher"})
                r = c.getresponse()
                if r.status != 200:
                    # Not served (yet): a CRD still being installed, or the apiserver refusing.
                    r.read()
                    self.stop.wait(1)
                    continue
                self.started.set()
                while not self.stop.is_set():
                    try:
                        line = r.readline()
                    except TimeoutError:
                        continue
                    if not line:
                        break
                    now = time.time()
                    ev = json.loads(line)
                    obj = ev.get("object", {})
                    if ev.get("type") == "ERROR":
                        rv = None
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if ev.get("type") in ("BOOKMARK", None):
                        continue
                    self.observe(ev["type"], obj, now)
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                time.sleep(0.2)

    def observe(self, kind, obj, now):
        raise NotImplementedError


class PodWatcher(Watch):
    """Watches the pods of one namespace; remembers when they last all turned Ready
    (client receive time, wall clock)."""

    def __init__(self, world, ns):
        super().__init__(world, f"/api/v1/namespaces/{ns}/pods")
        self.ns = ns
        self.pods = {}
        self.all_ready_at = None
        self.first_pod_at = None

    def observe(self, kind, pod, now):
        name = pod["metadata"]["name"]
        was = self.all_ready()
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.pods.pop(name, None)
        else:
            if self.first_pod_at is None:
                self.first_pod_at = now
            conds = pod.get("status", {}).get("conditions") or []
            self.pods[name] = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
        if self.all_ready() and not was:
            self.all_ready_at = now

    def all_ready(self):
        return bool(self.pods) and all(self.pods.values())


class HelmReleaseWatcher(Watch):
    """Watches the run's HelmRelease, as a user watching it would (`kubectl get helmrelease
    -w`); remembers when it last turned Ready=True for its current generation, on receipt:
    the Ready condition True with its observedGeneration (or, without one, the status's)
    equal to metadata.generation, the judgement catalyst-bootstrap makes too."""

    def __init__(self, world, ns, release, api_version):
        super().__init__(world, f"/apis/{api_version}/namespaces/{ns}/helmreleases")
        self.release = release
        self.ready = False
        self.ready_at = None

    def observe(self, kind, hr, now):
        if hr.get("metadata", {}).get("name") != self.release:
            return
        ready = kind != "DELETED" and helm_release_ready(hr)
        if ready and not self.ready:
            self.ready_at = now
        self.ready = ready


def helm_release_ready(hr):
    status = hr.get("status") or {}
    generation = hr.get("metadata", {}).get("generation")
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            observed = c.get("observedGeneration", status.get("observedGeneration"))
            return c.get("status") == "True" and observed == generation
    return False


class FluxStandIn(threading.Thread):
    """For a world without Flux's controllers: does what source-controller and
    helm-controller would for the run's kit, as the world's admin (so never counted):
    marks the chart source Ready, installs the chart with Helm and waits for it, then
    writes the HelmRelease's status for its generation."""

    def __init__(self, world, ns, release, kit_dir, rundir):
        super().__init__(daemon=True)
        self.world, self.ns, self.release, self.kit_dir, self.rundir = world, ns, release, kit_dir, rundir
        self.stop = threading.Event()

    def status(self, kind, name, generation, reason):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch = {"status": {"observedGeneration": generation, "conditions": [
            {"type": "Ready", "status": "True", "reason": reason, "message": "stand-in",
             "observedGeneration": generation, "lastTransitionTime": now}]}}
        self.world.kubectl("patch", kind, name, "-n", self.ns, "--subresource=status", "--type=merge",
                           "-p", json.dumps(patch), check=False)

    def run(self):
        while not self.stop.is_set():
            r = self.world.kubectl("get", "helmrelease", self.release, "-n", self.ns, "-o", "json", check=False)
            if r.returncode == 0:
                break
            self.stop.wait(0.2)
        if self.stop.is_set():
            return
        src = yaml.safe_load((self.kit_dir / "11-chart-source.yaml").read_text())
        self.status(src["kind"].lower(), src["metadata"]["name"], 1, "Succeeded")
        chart = helm_chart(self.kit_dir)
        values = self.rundir / "stand-in-values.yaml"
        values.write_text(yaml.safe_dump(chart["values"]))
        cmd = [self.world.bins["helm"], "upgrade", "--install", self.release, chart["ref"], "--version",
               chart["version"], "--kubeconfig", str(self.world.state / "kubeconfig"), "-n", self.ns,
               "-f", str(values), "--wait", "--timeout", TIMEOUT]
        if chart.get("repo"):
            cmd += ["--repo", chart["repo"]]
        with open(self.rundir / "stand-in.log", "ab") as f:
            if subprocess.run(cmd, stdout=f, stderr=f, env=self.world.env).returncode != 0:
                return
        generation = json.loads(self.world.kubectl("get", "helmrelease", self.release, "-n", self.ns, "-o",
                                                   "json").stdout)["metadata"]["generation"]
        self.status("helmrelease", self.release, generation, "InstallSucceeded")


class StormLoad:
    """Keeps the bench-tools priority level saturated: heavy LISTs as the load user."""

    def __init__(self, world, threads=12):
        self.world, self.threads = world, threads
        self.stop = threading.Event()
        self.workers = []

    def start(self):
        for _ in range(self.threads):
            t = threading.Thread(target=self.loop, daemon=True)
            t.start()
            self.workers.append(t)

    def loop(self):
        c = None
        while not self.stop.is_set():
            try:
                if c is None:
                    c = self.world.conn(LOAD_USER, timeout=10)
                c.request("GET", "/api/v1/namespaces/bench-load/configmaps",
                          headers={"User-Agent": "catalyst-bench-load"})
                r = c.getresponse()
                r.read()
            except (OSError, http.client.HTTPException):
                c = None
                time.sleep(0.05)

    def finish(self):
        self.stop.set()
        for t in self.workers:
            t.join(timeout=15)


STORM_OBJECTS = f"""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: bench-storm}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: bench-storm}}
spec:
  priorityLevelConfiguration: {{name: bench-storm}}
  matchingPrecedence: 100
  distinguisherMethod: {{type: ByUser}}
  rules:
  - subjects: [{{kind: Group, group: {{name: {GROUP}}}}}]
    resourceRules: [{{verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}}]
    nonResourceRules: [{{verbs: ["*"], nonResourceURLs: ["*"]}}]
"""


def prepare_storm(world):
    """A namespace of large ConfigMaps to LIST, so each load request is heavy."""
    world.kubectl("create", "namespace", "bench-load", check=False)
    have = world.kubectl("get", "configmaps", "-n", "bench-load", "--no-headers", check=False).stdout.count("\n")
    if have < LOAD_OBJECTS:
        blob = "x" * 20000
        docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"load-{i:04d}", "namespace": "bench-load"},
                 "data": {"blob": blob}} for i in range(LOAD_OBJECTS)]
        world.kubectl("apply", "--server-side", "-f", "-",
                      input="\n---\n".join(yaml.safe_dump(d) for d in docs))


# ---------------------------------------------------------------- one run


class Arm:
    """One tool's way of doing the job on one rendered kit."""

    def __init__(self, world, tool, ns, release, spec_path, kit_dir):
        self.world, self.tool, self.ns, self.release = world, tool, ns, release
        self.spec_path, self.kit_dir = spec_path, kit_dir
        self.kc = str(world.kubeconfig(USERS[tool]))

    def commands(self):
        b, kc = self.world.bins, self.kc
        kubectl = [b["kubectl"], f"--kubeconfig={kc}"]
        rollout = [*kubectl, "rollout", "status", f"deployment/{self.release}", "-n", self.ns, f"--timeout={TIMEOUT}"]
        if self.tool == "catalyst-bootstrap":
            return [[b["catalyst-bootstrap"], "up", "--spec", str(self.spec_path), "--kubeconfig", kc,
                     "--timeout", TIMEOUT, "--output", "json"]]
        if self.tool == "kubectl":
            return [[*kubectl, "apply", "--server-side", "--field-manager=bench", "-f", str(self.kit_dir)],
                    [*kubectl, "wait", "--for=condition=Ready", f"helmrelease/{self.release}", "-n", self.ns,
                     f"--timeout={TIMEOUT}"],
                    rollout]
        if self.tool == "kapp":
            return [[b["kapp"], "deploy", "--kubeconfig", kc, "-a", self.release, "-n", "default", "-y",
                     "--wait-timeout", "10m", "-f", str(self.kit_dir), "-f", str(self.world.kapp_config)],
                    rollout]
        if self.tool == "helm":
            chart = helm_chart(self.kit_dir)
            values = self.kit_dir.parent / "values.yaml"
            values.write_text(yaml.safe_dump(chart["values"]))
            cmd = [b["helm"], "upgrade", "--install", self.release, chart["ref"], "--version", chart["version"],
                   "--kubeconfig", kc, "-n", self.ns, "--create-namespace", "-f", str(values), "--wait",
                   "--timeout", TIMEOUT]
            if chart.get("repo"):
                cmd += ["--repo", chart["repo"]]
            return [cmd]
        raise ValueError(self.tool)


def kit_helm_release(kit_dir):
    """The rendered HelmRelease."""
    return yaml.safe_load((kit_dir / "12-external-dns.yaml").read_text())


def helm_chart(kit_dir):
    """The chart, version, source and values the rendered HelmRelease carries."""
    hr = kit_helm_release(kit_dir)
    src = yaml.safe_load((kit_dir / "11-chart-source.yaml").read_text())
    values = hr["spec"].get("values", {})
    if src["kind"] == "OCIRepository":
        return {"ref": src["spec"]["url"], "version": src["spec"]["ref"]["tag"], "values": values}
    chart = hr["spec"]["chart"]["spec"]
    url = src["spec"]["url"]
    if url.startswith("http://127.") or url.startswith("http://localhost"):
        return {"ref": chart["chart"], "repo": url, "version": chart["version"], "values": values}
    # The world serves no copy of that repository: the chart from external-dns's module.
    return {"ref": os.environ["EXTERNAL_DNS_CHART_DIR"], "version": chart["version"], "values": values}


def run_command(cmd, env, deadline, out):
    """Runs one command; returns (exit code, peak RSS in KiB).

    The peak comes from GNU time, not from our own wait4: Linux carries a process's RSS
    high-water mark across exec, so a child forked from this (larger) Python process
    would report Python's peak."""
    rss_file = Path(str(out) + ".rss")
    with open(out, "ab") as f:
        f.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        f.flush()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *map(str, cmd)],
                             stdout=f, stderr=f, env=env)
        try:
            p.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    try:
        rss = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        rss = 0
    rss_file.unlink(missing_ok=True)
    return p.returncode, rss


def prepare_run(world, args, n, tool, scenario, source):
    """A run's names (unique across invocations: an earlier run's namespace may still be
    terminating), its directory, and the kit rendered from the world's Sovereign in env var
    `source` with those names."""
    tag = f"{args.tag}-{n:03d}"
    ns, release = f"bench-{tag}", f"external-dns-{tag}"
    rundir = world.work / "runs" / f"{n:03d}-{tool}-{scenario['name']}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    spec = yaml.safe_load(Path(world.env[source]).read_text())
    spec["spec"].setdefault("externalDns", {}).update({"namespace": ns, "releaseName": release})
    spec_path = rundir / "sovereign.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    kit = rundir / "kit"
    subprocess.run([world.bins["catalyst-bootstrap"], "render", "--spec", str(spec_path), "--out", str(kit)],
                   check=True, capture_output=True, env=world.env)
    return ns, release, rundir, spec_path, kit


def run_once(world, args, n, tool, scenario):
    # With real Flux, the world's Sovereign for its Flux shard (chart from the loopback repository).
    source = "CATALYST_LOCAL_SPEC" if args.flux_stand_in else "CATALYST_FLUX_SPEC"
    ns, release, rundir, spec_path, kit = prepare_run(world, args, n, tool, scenario, source)
    proof = scenario.get("record_after") is not None
    # The DNS proof scenario: the Secret and the Service to publish, as an operator provides them.
    prepare_namespace(world, ns, release, api_key=proof)
    records = None
    if proof:
        records = ProofRecords.for_run(world, spec_path, kit, ns)
        lb_service(world, ns, records.hostname, records.ip, records.annotation_prefix)

    world.pod_ready_delay(scenario.get("ready_delay", 0))
    world.audit_events()  # skip what came before this run
    watcher = PodWatcher(world, ns)
    watcher.start()
    # The user's view of the HelmRelease; Helm has none.
    hr_watcher = None
    if tool != "helm":
        hr_watcher = HelmReleaseWatcher(world, ns, release, kit_helm_release(kit)["apiVersion"])
        hr_watcher.start()
    watcher.started.wait(10)
    if hr_watcher:
        hr_watcher.started.wait(10)

    arm = Arm(world, tool, ns, release, spec_path, kit)
    commands = arm.commands()
    env = dict(world.env)
    env["KUBECONFIG"] = arm.kc
    env["HOME"] = str(world.work / "home" / tool)  # tool caches (discovery, Helm repos) start cold
    shutil.rmtree(env["HOME"], ignore_errors=True)
    Path(env["HOME"]).mkdir(parents=True)
    log(f"run {n}: {tool} / {scenario['name']} in {ns}"
        + (f" ({scenario['services']} Services, record {records.hostname})" if proof else ""))

    stand_in = None
    if args.flux_stand_in and tool != "helm":
        stand_in = FluxStandIn(world, ns, release, kit, rundir)
        stand_in.start()
    fault = Fault(world, scenario)
    out = rundir / "output.log"
    t0 = time.time()
    deadline = t0 + args.run_limit
    fault.start(t0)
    if records:
        records.start_after_proof(out, scenario["record_after"])
    codes, rss = [], 0
    try:
        for cmd in commands:
            code, peak = run_command(cmd, env, deadline, out)
            codes.append(code)
            rss = max(rss, peak)
            if code != 0:
                break
    finally:
        t_exit = time.time()
        fault.finish()
        if records:
            records.finish()
    time.sleep(2)  # let the audit backend write the last events
    watcher.stop.set()
    if hr_watcher:
        hr_watcher.stop.set()
    if stand_in:
        stand_in.stop.set()
    events = world.audit_events()

    user = USERS[tool]
    mine = [e for e in events if e.get("user", {}).get("username") == user
            and e.get("stage") in ("ResponseComplete", "ResponseStarted")]
    by_id = {}
    for e in mine:
        by_id.setdefault(e["auditID"], e)
    reqs = list(by_id.values())
    throttled = len({e["auditID"] for e in mine if e.get("responseStatus", {}).get("code") == 429})
    in_window = None
    if watcher.first_pod_at and watcher.all_ready_at and watcher.all_ready_at > watcher.first_pod_at:
        in_window = len(received_between(reqs, watcher.first_pod_at, watcher.all_ready_at))
    ok = bool(codes) and all(c == 0 for c in codes) and len(codes) == len(commands)
    hr_ready_at = hr_watcher.ready_at if hr_watcher else None
    result = {
        "run": n, "tool": tool, "scenario": scenario["name"], "ok": ok, "exit_codes": codes,
        "wall_s": round(t_exit - t0, 3),
        "ready_at_s": round(watcher.all_ready_at - t0, 3) if watcher.all_ready_at else None,
        "detection_s": round(t_exit - watcher.all_ready_at, 3) if watcher.all_ready_at and ok else None,
        "hr_ready_at_s": round(hr_ready_at - t0, 3) if hr_ready_at else None,
        "hr_ready_to_exit_s": round(t_exit - hr_ready_at, 3) if hr_ready_at and ok else None,
        "requests": len(reqs), "throttled": throttled,
        "wait_window_s": round(watcher.all_ready_at - watcher.first_pod_at, 3) if in_window is not None else None,
        "requests_in_wait": in_window,
        "verbs": count_verbs(reqs),
        "peak_rss_kib": rss,
        "fault": fault.describe(),
    }
    if scenario.get("fault") == "freeze":
        result.update(unreachable_after_freeze(out if tool == "catalyst-bootstrap" else None, fault.frozen_at))
    if records:
        result.update(records.result(reqs, t0, t_exit))
        result["services"] = scenario["services"]
        result["services_in_cluster"] = count_services(world)
    log(f"  -> ok={ok} codes={codes} wall={result['wall_s']}s detect={result['detection_s']} "
        f"hr->exit={result['hr_ready_to_exit_s']} reqs={len(reqs)} (wait {in_window}) 429s={throttled} "
        f"rss={rss // 1024}MiB"
        + (f" freeze->unreachable={result.get('frozen_to_unreachable_s')}" if "frozen_to_unreachable_s" in result
           else "")
        + (f" proof: {result['requests_in_proof']} requests in {result['proof_window_s']}s, "
           f"record->exit={result['record_to_exit_s']}" if records else ""))
    if records:
        records.remove()
    cleanup(world, tool, ns, release)
    return result


def received_between(reqs, lo, hi):
    """The audited requests the apiserver received between `lo` and `hi` (wall clock)."""
    return [e for e in reqs if lo <= parse_ts(e["requestReceivedTimestamp"]) <= hi]


def unreachable_after_freeze(output_log, frozen_at):
    """From catalyst-bootstrap's NDJSON events: the time from the SIGSTOP to its first
    `apiserver-unreachable` event, and how many it wrote. None for the other tools, which
    write no events."""
    if output_log is None:
        return {"frozen_to_unreachable_s": None, "unreachable_events": None}
    events = [e for e in up_events(output_log) if e.get("state") == "apiserver-unreachable"]
    first = None
    if frozen_at is not None:
        after = [parse_ts(e["ts"]) for e in events if "ts" in e and parse_ts(e["ts"]) >= frozen_at]
        first = min(after, default=None)
    return {"frozen_to_unreachable_s": round(first - frozen_at, 3) if first is not None else None,
            "unreachable_events": len(events)}


def count_services(world):
    r = world.kubectl("get", "services", "--all-namespaces", "--no-headers", check=False)
    return r.stdout.count("\n") if r.returncode == 0 else None


def count_verbs(reqs):
    out = {}
    for e in reqs:
        out[e.get("verb", "?")] = out.get(e.get("verb", "?"), 0) + 1
    return out


def prepare_namespace(world, ns, release, api_key=False):
    """Nothing to prepare for kwok's pods: every arm creates the namespace itself. With
    `api_key` (pods that really run external-dns), the namespace with the Secret
    `powerdns-api` (key `api-key`) the kit's external-dns reads, as an operator provides it
    before the bring-up; the key goes through stdin, never argv."""
    if api_key:
        world.kubectl("create", "namespace", ns)
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": "powerdns-api", "namespace": ns},
                  "stringData": {"api-key": world.env["PDNS_API_KEY"]}}
        world.kubectl("apply", "--server-side", "--field-manager=bench-setup", "-f", "-",
                      input=yaml.safe_dump(secret))
    hook = world.work / "prepare-namespace"
    if hook.exists():
        subprocess.run([str(hook), ns, release], check=True, env=world.env)


def cleanup(world, tool, ns, release):
    """Deletes the run's objects without waiting: each run has its own names."""
    world.kubectl("delete", "helmrelease", "--all", "-n", ns, "--wait=false", check=False)
    if tool == "helm":
        subprocess.run([world.bins["helm"], "uninstall", release, "-n", ns, "--kubeconfig",
                        str(world.state / "kubeconfig"), "--wait=false"], capture_output=True)
    if tool == "kapp":
        world.kubectl("delete", "configmap", "-n", "default", release, "--wait=false", "--ignore-not-found",
                      check=False)
    world.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    world.kubectl("delete", "clusterrole,clusterrolebinding", release, "--wait=false", "--ignore-not-found",
                  check=False)


class Fault:
    """The scenario's fault: the apiserver frozen (SIGSTOP) for a while mid-wait, or a
    429 storm against the tools' priority level."""

    def __init__(self, world, scenario):
        self.world, self.scenario = world, scenario
        self.thread = None
        self.stop = threading.Event()
        self.frozen = None
        # When the apiserver got SIGSTOP (wall clock).
        self.frozen_at = None
        self.load = None
        self.log = []

    def start(self, t0):
        kind = self.scenario.get("fault")
        if kind == "freeze":
            self.thread = threading.Thread(target=self.freeze, args=(t0,), daemon=True)
            self.thread.start()
        elif kind == "storm":
            self.load = StormLoad(self.world)
            self.load.start()
            self.log.append(("storm-start", 0.0))
            self.thread = threading.Thread(target=self.end_storm, args=(t0,), daemon=True)
            self.thread.start()

    def freeze(self, t0):
        if self.stop.wait(self.scenario["freeze_at"]):
            return
        pid = self.world.apiserver_pid()
        os.kill(pid, signal.SIGSTOP)
        self.frozen = pid
        self.frozen_at = time.time()
        self.log.append(("frozen", round(time.time() - t0, 2)))
        self.stop.wait(self.scenario["freeze_for"])
        self.thaw(t0)

    def thaw(self, t0):
        if self.frozen:
            os.kill(self.frozen, signal.SIGCONT)
            self.frozen = None
            self.log.append(("thawed", round(time.time() - t0, 2)))

    def end_storm(self, t0):
        self.stop.wait(self.scenario["storm_for"])
        if self.load:
            self.load.finish()
            self.load = None
            self.log.append(("storm-end", round(time.time() - t0, 2)))

    def finish(self):
        # The fault runs its full course even when the tool gave up early, so every tool
        # meets the same fault; the apiserver is always thawed.
        try:
            if self.thread:
                self.thread.join()
        finally:
            self.thaw(0)
            if self.load:
                self.load.finish()

    def describe(self):
        return self.log


# ---------------------------------------------------------------- the DNS proof

# The cluster's Services in the DNS proof scenario: `scripts/testenv load N` at each size
# (headless Services that select nothing and carry no hostname annotation, so no record is
# expected for them; the proof lists and watches them all the same).
PROOF_SIZES = (200, 2000)
# The record appears in PowerDNS this long after the proof started.
PROOF_RECORD_AFTER = 60
# The address in the published Service's load balancer status: the A record's target.
PROOF_IP = "192.0.2.80"
# external-dns's default TTL for the records it writes.
PROOF_TTL = 300
# The annotation prefix external-dns reads when nothing pins one (releases before v0.20.0).
LEGACY_ANNOTATION_PREFIX = "external-dns.alpha.kubernetes.io/"


class ProofRecords:
    """The record catalyst-bootstrap's DNS proof must find for the run's LoadBalancer
    Service, and the write that makes it appear, as external-dns's pdns provider makes it:
    one PATCH of the zone through PowerDNS's REST API replacing the A rrset and its ownership
    TXT, the TXT in the registry's new format (`<prefix><type>-<name>`, the only one
    external-dns v0.18+ writes) for the owner id and prefix the rendered kit gives
    external-dns. The write comes `after` seconds after the proof's start: the tool's first
    NDJSON event of the `dns` phase (its own timestamp), read from its output as it runs."""

    def __init__(self, world, hostname, server_id, owner, prefix, annotation_prefix, resource):
        self.world, self.hostname, self.server_id = world, hostname, server_id
        self.owner, self.prefix, self.annotation_prefix = owner, prefix, annotation_prefix
        self.resource = resource
        self.ip = PROOF_IP
        self.zone = world.env["PDNS_ZONE"].rstrip(".") + "."
        self.stop = threading.Event()
        self.thread = None
        self.proof_started_at = None
        self.written_at = None
        self.error = None

    @classmethod
    def for_run(cls, world, spec_path, kit, ns):
        values = kit_helm_release(kit)["spec"].get("values") or {}
        args = [str(a) for a in values.get("extraArgs") or []]

        def flag(name, default):
            return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), default)

        # The chart's values, else the flags the kit passes instead (older charts), else
        # external-dns's own defaults.
        owner = values.get("txtOwnerId") or flag("txt-owner-id", "default")
        prefix = values["txtPrefix"] if "txtPrefix" in values else flag("txt-prefix", "")
        annotation_prefix = values.get("annotationPrefix") or flag("annotation-prefix", LEGACY_ANNOTATION_PREFIX)
        spec = yaml.safe_load(Path(spec_path).read_text())
        server_id = (spec["spec"].get("verify") or {}).get("serverId") or "localhost"
        hostname = f"{ns}.{world.env['PDNS_ZONE'].rstrip('.')}"
        return cls(world, hostname, server_id, owner, prefix, annotation_prefix, f"service/{ns}/web")

    def txt_name(self, rtype):
        """The TXT registry's new-format name: the type before the first label, or in the
        prefix where it holds `%{record_type}`."""
        rtype = rtype.lower()
        first, _, rest = self.hostname.partition(".")
        if "%{record_type}" not in self.prefix:
            first = f"{rtype}-{first}"
        name = self.prefix.replace("%{record_type}", rtype) + first
        return f"{name}.{rest}" if rest else name

    def rrsets(self, changetype):
        owner = f'"heritage=external-dns,external-dns/owner={self.owner},external-dns/resource={self.resource}"'
        sets = [(self.hostname, "A", self.ip), (self.txt_name("A"), "TXT", owner)]
        out = []
        for name, rtype, content in sets:
            rrset = {"name": name.rstrip(".") + ".", "type": rtype, "changetype": changetype}
            if changetype == "REPLACE":
                rrset.update({"ttl": PROOF_TTL, "records": [{"content": content, "disabled": False}]})
            out.append(rrset)
        return out

    def patch(self, changetype):
        status, body = self.world.pdns("PATCH", f"/servers/{self.server_id}/zones/{self.zone}",
                                       {"rrsets": self.rrsets(changetype)})
        if status not in (200, 204):
            raise RuntimeError(f"PowerDNS PATCH {changetype}: {status} {body[:200]!r}")

    def start_after_proof(self, output_log, after):
        self.thread = threading.Thread(target=self._run, args=(Path(output_log), after), daemon=True)
        self.thread.start()

    def _run(self, output_log, after):
        offset, partial = 0, b""
        while self.proof_started_at is None:
            if self.stop.is_set():
                return
            try:
                with open(output_log, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                data = b""
            offset += len(data)
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            for line in lines:
                e = ndjson(line)
                if e and e.get("phase") == "dns" and e.get("ts"):
                    self.proof_started_at = parse_ts(e["ts"])
                    break
            else:
                self.stop.wait(0.05)
        if self.stop.wait(max(0.0, self.proof_started_at + after - time.time())):
            return
        try:
            self.patch("REPLACE")
            self.written_at = time.time()
        except (OSError, http.client.HTTPException, RuntimeError) as e:
            self.error = str(e)
            log(f"  writing the record failed: {e}")

    def finish(self):
        self.stop.set()
        if self.thread:
            self.thread.join(15)

    def remove(self):
        try:
            self.patch("DELETE")
        except (OSError, http.client.HTTPException, RuntimeError):
            pass

    def result(self, reqs, t0, t_exit):
        """The proof's window (its start to the tool's exit) and the tool's requests in it."""
        out = {"record": self.hostname, "record_error": self.error,
               "proof_started_at_s": None, "record_written_at_s": None, "record_to_exit_s": None,
               "proof_window_s": None, "requests_in_proof": None, "proof_requests": {}}
        if self.proof_started_at is None:
            return out
        during = received_between(reqs, self.proof_started_at, t_exit)
        out.update({
            "proof_started_at_s": round(self.proof_started_at - t0, 3),
            "proof_window_s": round(t_exit - self.proof_started_at, 3),
            "requests_in_proof": len(during),
            "proof_requests": count_requests(during),
        })
        if self.written_at:
            out["record_written_at_s"] = round(self.written_at - t0, 3)
            out["record_to_exit_s"] = round(t_exit - self.written_at, 3)
        return out


def count_requests(reqs):
    """Requests by verb and resource (`watch services`, `get helmreleases/status`, ...)."""
    out = {}
    for e in reqs:
        ref = e.get("objectRef") or {}
        what = ref.get("resource") or e.get("requestURI", "?").split("?")[0]
        if ref.get("subresource"):
            what += "/" + ref["subresource"]
        key = f"{e.get('verb', '?')} {what}"
        out[key] = out.get(key, 0) + 1
    return out


def ndjson(line):
    """One NDJSON event, or None for any other line."""
    line = line.strip()
    if not line.startswith(b"{" if isinstance(line, bytes) else "{"):
        return None
    try:
        e = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return e if isinstance(e, dict) and "state" in e else None


# ---------------------------------------------------------------- the saturated bring-up

# The calibrated saturated world of docs/reliability.md: this many load Services (with an
# EndpointSlice each and a third as many Pods) and this CPU cap on kube-apiserver make every
# start-up cache sync of the real external-dns fail.
SATURATION_LOAD = 3000
SATURATION_CAP_PERCENT = 1
# Until external-dns first starts the cap is this share instead: slow, but Flux (or Helm)
# installs the chart in a minute or two, where at 1 % it takes ten (tests/world/ride_out.rs).
SATURATION_BUSY_PERCENT = 10
# The cap is lifted once external-dns has failed its cache sync this many times (the
# kubelet then backs off 40 s)...
SATURATION_FAILED_SYNCS = 4
# ...or this long after the tool started, whichever comes first.
SATURATION_LIFT_AT_LATEST = 8 * 60
# A safety net: testenv's own timer lifts the cap after this long whatever happens here.
SATURATION_TIMER = 20 * 60
# A tool chain still running this long after it started is killed (TIMEOUT is 10 min).
SATURATION_RUN_LIMIT = 11 * 60
# How long the record is looked for in PowerDNS after a tool exited without it.
RECORD_GRACE = 60
# The cap starts on a settled apiserver: one using less than this share of a core over 10 s
# (right after the load is created it works through the backlog for minutes; capped then,
# it stalls completely: TLS handshakes time out, as the first run of this scenario showed)...
CALM_CPU_SHARE = 0.08
# ...waited for at most this long.
SETTLE_BOUND = 3 * 60


def testenv(world, *args, check=True):
    """scripts/testenv against the bench's own world (never another one)."""
    env = dict(world.env)
    env["CATALYST_TESTENV_DIR"] = str(world.state)
    r = subprocess.run([world.testenv, *map(str, args)], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"scripts/testenv {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r


class KubeletLogs:
    """The container logs the world's kubelet writes under its work dir, one CRI file per
    container run (`<ns>_<pod>_<uid>/<container>/<restart>.log`)."""

    def __init__(self, work_dir):
        self.work_dir = Path(work_dir)

    def runs(self):
        return sorted(self.work_dir.glob("*/*/*.log"))

    def started(self, container="external-dns"):
        """Whether the kubelet has started `container` of any pod (its log directory exists
        from just before the process starts)."""
        return any(self.work_dir.glob(f"*/{container}"))

    def counts(self):
        runs = self.runs()
        failed = 0
        for f in runs:
            try:
                if b"failed to sync" in f.read_bytes():
                    failed += 1
            except OSError:
                pass
        pods = {f.parent.parent.name for f in runs}
        return {"container_runs": len(runs), "pods": len(pods), "failed_syncs": failed,
                "restarts": len(runs) - len(pods)}


class RecordWatcher(threading.Thread):
    """Reads the world's zone from PowerDNS's API every second until `hostname`'s A record
    is there; remembers when it first was (wall clock)."""

    def __init__(self, world, hostname):
        super().__init__(daemon=True)
        self.world, self.hostname = world, hostname.rstrip(".") + "."
        self.seen_at = None
        self.stop = threading.Event()

    def run(self):
        zone = self.world.env["PDNS_ZONE"].rstrip(".") + "."
        while not self.stop.is_set() and self.seen_at is None:
            try:
                status, body = self.world.pdns("GET", f"/servers/localhost/zones/{zone}", timeout=5)
                if status == 200:
                    rrsets = json.loads(body).get("rrsets", [])
                    if any(x["name"] == self.hostname and x["type"] == "A" and x.get("records")
                           for x in rrsets):
                        self.seen_at = time.time()
                        return
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                pass
            self.stop.wait(1)


def apiserver_cpu_s(world):
    """CPU seconds kube-apiserver has used so far (utime + stime from /proc)."""
    fields = Path(f"/proc/{world.apiserver_pid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_settled(world, what, window=10, below=CALM_CPU_SHARE, at_least=0, bound=SETTLE_BOUND):
    """Waits until kube-apiserver has used less than `below` of a core over the last `window`
    seconds: the work a change of the world left (watch events of thousands of new objects
    to fan out, their garbage to collect) is done, so the cap starts on a settled apiserver,
    as in the calibration. Returns the seconds waited and the last share measured."""
    t0 = time.time()
    share = None
    while True:
        a, ta = apiserver_cpu_s(world), time.time()
        time.sleep(window)
        share = (apiserver_cpu_s(world) - a) / (time.time() - ta)
        waited = time.time() - t0
        if (share < below and waited >= at_least) or waited >= bound:
            log(f"  {what}: apiserver at {share * 100:.1f} % of a core after {waited:.0f}s"
                + ("" if share < below else f" (not below {below * 100:.0f} %: going on anyway)"))
            return round(waited, 1), round(share, 4)


def lb_service(world, ns, hostname, ip, annotation_prefix=LEGACY_ANNOTATION_PREFIX):
    """A LoadBalancer Service with external-dns's hostname annotation (under
    `annotation_prefix`) and its address in the status (what a cloud controller would write):
    the record external-dns must publish and `up` must prove."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "web", "namespace": ns,
        "annotations": {f"{annotation_prefix}hostname": hostname}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}}
    world.kubectl("apply", "--server-side", "--field-manager=bench-setup", "-f", "-",
                  input=yaml.safe_dump(svc))
    world.kubectl("patch", "service", "web", "-n", ns, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}))


def up_events(output_log):
    """The NDJSON events catalyst-bootstrap wrote to stdout (the log mixes in stderr)."""
    events = []
    try:
        text = Path(output_log).read_text(errors="replace")
    except OSError:
        return events
    for line in text.splitlines():
        e = ndjson(line)
        if e is not None:
            events.append(e)
    return events


def start_kubelet(world, ns, work_dir, log_path):
    env = dict(world.env)
    env["KUBECONFIG"] = str(world.state / "kubeconfig")
    log_file = open(log_path, "ab")
    try:
        return subprocess.Popen([world.bins["kubelet"], ns, str(work_dir)], stdout=log_file,
                                stderr=log_file, env=env, start_new_session=True)
    finally:
        log_file.close()


def stop_kubelet(world, ns, kubelet):
    """Lets the kubelet finish the deletion of the namespace's pods (a deleted pod stays
    Terminating on a node without one), then stops it (it kills its processes)."""
    deadline = time.time() + 60
    while time.time() < deadline and kubelet.poll() is None:
        r = world.kubectl("get", "pods", "-n", ns, "-l", "testenv.catalyst.openova.io/kubelet",
                          "--no-headers", "--ignore-not-found", check=False)
        if r.returncode == 0 and not r.stdout.strip():
            break
        time.sleep(1)
    if kubelet.poll() is None:
        kubelet.terminate()
        try:
            kubelet.wait(20)
        except subprocess.TimeoutExpired:
            kubelet.kill()
            kubelet.wait()
    # Whatever is left has no kubelet any more: finish its deletion by force.
    world.kubectl("delete", "pods", "--all", "-n", ns, "--force", "--grace-period=0", "--wait=false",
                  check=False)


def run_saturated(world, args, n, tool, scenario):
    """One tool's bring-up on the saturated apiserver: the load is in place (for the whole
    scenario), the apiserver is capped from before the tool starts, the world's kubelet runs
    the real external-dns, and the cap is lifted once external-dns has failed its start-up
    cache sync SATURATION_FAILED_SYNCS times."""
    # The world's Sovereign for its Flux shard whose pods the emulated kubelet runs.
    ns, release, rundir, spec_path, kit = prepare_run(world, args, n, tool, scenario, "CATALYST_KUBELET_SPEC")
    hostname = f"{ns}.{world.env['PDNS_ZONE'].rstrip('.')}"
    # Everything an operator provides, while the apiserver is still free.
    prepare_namespace(world, ns, release, api_key=True)
    lb_service(world, ns, hostname, "192.0.2.80")

    arm = Arm(world, tool, ns, release, spec_path, kit)
    commands = arm.commands()
    env = dict(world.env)
    env["KUBECONFIG"] = arm.kc
    env["HOME"] = str(world.work / "home" / tool)
    shutil.rmtree(env["HOME"], ignore_errors=True)
    Path(env["HOME"]).mkdir(parents=True)
    logs = KubeletLogs(rundir / "kubelet")
    out = rundir / "output.log"

    world.audit_events()
    watcher = PodWatcher(world, ns)
    watcher.start()
    watcher.started.wait(10)
    record = RecordWatcher(world, hostname)
    record.start()
    timeline = []
    kubelet = None
    lifted_at = None
    state = {"codes": [], "rss": 0, "exit": None}

    def chain(t0):
        deadline = t0 + SATURATION_RUN_LIMIT
        try:
            for cmd in commands:
                code, peak = run_command(cmd, env, deadline, out)
                state["codes"].append(code)
                state["rss"] = max(state["rss"], peak)
                if code != 0:
                    break
        finally:
            state["exit"] = time.time()

    log(f"run {n}: {tool} / {scenario['name']} in {ns} (record {hostname})")
    settled = wait_settled(world, "before the cap")
    try:
        testenv(world, "saturate", SATURATION_BUSY_PERCENT, SATURATION_TIMER)
        t0 = time.time()
        timeline.append((f"capped at {SATURATION_BUSY_PERCENT} %", 0.0))
        kubelet = start_kubelet(world, ns, rundir / "kubelet", rundir / "kubelet.log")
        runner = threading.Thread(target=chain, args=(t0,), daemon=True)
        runner.start()
        why = None
        saturated = False
        while why is None:
            if not saturated and logs.started():
                testenv(world, "saturate", SATURATION_CAP_PERCENT, SATURATION_TIMER)
                saturated = True
                timeline.append((f"capped at {SATURATION_CAP_PERCENT} % as external-dns started",
                                 round(time.time() - t0, 1)))
            failed = logs.counts()["failed_syncs"]
            if failed >= SATURATION_FAILED_SYNCS:
                why = f"after {failed} failed cache syncs"
            elif not runner.is_alive():
                why = "the tool had exited"
            elif time.time() - t0 >= SATURATION_LIFT_AT_LATEST:
                why = f"time box ({failed} failed cache syncs)"
            else:
                time.sleep(0.05 if not saturated else 1)
        before = logs.counts()
        testenv(world, "saturate", "off")
        lifted_at = time.time()
        timeline.append((f"lifted, {why}", round(lifted_at - t0, 1)))
        log(f"  cap lifted {lifted_at - t0:.0f}s after the start, {why}")
        runner.join(max(1, t0 + SATURATION_RUN_LIMIT + 30 - time.time()))
        t_exit = state["exit"] or time.time()
        at_exit = logs.counts()
        if record.seen_at is None:
            record.join(RECORD_GRACE)
    finally:
        if lifted_at is None:
            testenv(world, "saturate", "off", check=False)
        record.stop.set()
        watcher.stop.set()
        time.sleep(2)  # let the audit backend write the last events
        events = world.audit_events()
        cleanup(world, tool, ns, release)
        if kubelet is not None:
            stop_kubelet(world, ns, kubelet)

    codes = state["codes"]
    ok = bool(codes) and all(c == 0 for c in codes) and len(codes) == len(commands)
    user = USERS[tool]
    reqs = {e["auditID"] for e in events if e.get("user", {}).get("username") == user
            and e.get("stage") in ("ResponseComplete", "ResponseStarted")}
    up = up_events(out) if tool == "catalyst-bootstrap" else []
    result = {
        "run": n, "tool": tool, "scenario": scenario["name"], "ok": ok, "exit_codes": codes,
        "wall_s": round(t_exit - t0, 3),
        "lifted_at_s": round(lifted_at - t0, 3),
        "lift_reason": why,
        "lift_to_exit_s": round(t_exit - lifted_at, 3),
        "lift_to_success_s": round(t_exit - lifted_at, 3) if ok and t_exit >= lifted_at else None,
        "lift_to_record_s": round(record.seen_at - lifted_at, 3) if record.seen_at else None,
        "ready_at_s": round(watcher.all_ready_at - t0, 3) if watcher.all_ready_at else None,
        "first_pod_at_s": round(watcher.first_pod_at - t0, 3) if watcher.first_pod_at else None,
        "failed_syncs_before_lift": before["failed_syncs"],
        "failed_syncs": at_exit["failed_syncs"],
        "restarts": at_exit["restarts"],
        "pods": at_exit["pods"],
        "container_runs": at_exit["container_runs"],
        "riding_out": sum(e.get("state") == "riding-out" for e in up),
        "backoff_cut": sum(e.get("state") == "backoff-cut" for e in up),
        "reset_failures": sum(e.get("state") == "reset-failures" for e in up),
        "requests": len(reqs),
        "peak_rss_kib": state["rss"],
        "fault": timeline,
        "settled": {"waited_s": settled[0], "apiserver_cpu_share": settled[1]},
        "rundir": str(rundir),
        "setup": {"load": SATURATION_LOAD, "cap_percent": SATURATION_CAP_PERCENT,
                  "busy_cap_percent": SATURATION_BUSY_PERCENT,
                  "lift_after_failed_syncs": SATURATION_FAILED_SYNCS,
                  "lift_at_latest_s": SATURATION_LIFT_AT_LATEST, "timeout": TIMEOUT},
    }
    log(f"  -> ok={ok} codes={codes} wall={result['wall_s']}s lift->exit={result['lift_to_exit_s']}s "
        f"lift->record={result['lift_to_record_s']} failed syncs={result['failed_syncs']} "
        f"restarts={result['restarts']} pods={result['pods']} riding-out={result['riding_out']} "
        f"backoff-cut={result['backoff_cut']}")
    return result


# ---------------------------------------------------------------- plan


def scenarios(quick):
    s = [
        {"name": "ready", "reps": 2 if quick else 5, "ready_delay": 0},
        {"name": "wait60", "reps": 1 if quick else 2, "ready_delay": 60},
        {"name": "freeze", "reps": 1, "ready_delay": 20, "fault": "freeze", "freeze_at": 8,
         "freeze_for": 60},
        {"name": "storm", "reps": 1, "ready_delay": 0, "fault": "storm", "storm_for": 30 if quick else 45},
        # catalyst-bootstrap only (no other tool proves DNS), at each size of the cluster.
        {"name": "dnsproof", "reps": 1 if quick else 2, "ready_delay": 0, "record_after": PROOF_RECORD_AFTER,
         "sizes": PROOF_SIZES},
        # One run per tool: each takes several minutes (three failed cache syncs under the cap).
        {"name": "saturated", "reps": 1, "fault": "saturate"},
    ]
    return s


def previous_results(path, plan):
    """The runs of an earlier results file for the scenarios this invocation does not run
    (so `--only X` replaces X's runs and keeps the others), with when each was started."""
    try:
        old = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return [], {}
    names = {s["name"] for s in plan}
    keep = [r for r in old.get("runs", []) if r["scenario"] not in names]
    groups = {}
    for r in keep:
        groups.setdefault(r["scenario"], old.get("scenarios", {}).get(r["scenario"]) or {
            "started": old.get("started"), "quick": old.get("quick", False),
            "flux_stand_in": old.get("flux_stand_in", False)})
    return keep, groups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--bin", action="append", default=[], help="tool=path")
    ap.add_argument("--kapp-config", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--run-limit", type=float, default=420)
    ap.add_argument("--flux-stand-in", action="store_true",
                    help="the world runs no Flux controllers: play them (see FluxStandIn)")
    ap.add_argument("--testenv", default="", help="scripts/testenv (for the saturated scenario)")
    args = ap.parse_args()
    args.tag = f"{int(time.time()) % 46656:x}"
    # A TERM (scripts/bench interrupted) unwinds like an error: the cap is lifted, the
    # kubelet stopped, the load removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    bins = dict(b.split("=", 1) for b in args.bin)
    world = World(args.state, args.work, bins)
    world.kapp_config = Path(args.kapp_config)
    world.testenv = args.testenv
    world.make_identities()
    tools = args.tools.split(",")
    plan = [s for s in scenarios(args.quick) if not args.only or s["name"] in args.only.split(",")]
    if any(s.get("fault") == "saturate" for s in plan):
        missing = [what for what, have in (("real Flux controllers (the world has none)", not args.flux_stand_in),
                                           ("--bin kubelet=PATH", "kubelet" in bins),
                                           ("--testenv PATH", args.testenv)) if not have]
        if missing:
            log(f"skipping the saturated scenario: it needs {', '.join(missing)}")
            plan = [s for s in plan if s.get("fault") != "saturate"]
    if any(s.get("sizes") for s in plan):
        missing = [what for what, have in (("catalyst-bootstrap in --tools", "catalyst-bootstrap" in tools),
                                           ("--testenv PATH", args.testenv)) if not have]
        if missing:
            log(f"skipping the dnsproof scenario: it needs {', '.join(missing)}")
            plan = [s for s in plan if not s.get("sizes")]
    if any(s.get("fault") == "storm" for s in plan):
        prepare_storm(world)

    kept, groups = previous_results(args.results, plan)
    results = []
    n = 0
    start = time.time()
    for scenario in plan:
        groups[scenario["name"]] = {"started": time.time(), "quick": args.quick,
                                    "flux_stand_in": args.flux_stand_in}
        if scenario.get("fault") == "saturate":
            n = run_saturated_scenario(world, args, tools, scenario, n, results,
                                       lambda: write_results(args, start, kept + results, groups))
            continue
        if scenario.get("sizes"):
            n = run_dnsproof_scenario(world, args, scenario, n, results,
                                      lambda: write_results(args, start, kept + results, groups))
            continue
        for rep in range(scenario["reps"]):
            # Alternate the order, so no tool always runs first (cold caches) or last.
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]
            for tool in order:
                n += 1
                if scenario.get("fault") == "storm":
                    world.kubectl("apply", "--server-side", "-f", "-", input=STORM_OBJECTS)
                try:
                    results.append(run_once(world, args, n, tool, scenario))
                finally:
                    if scenario.get("fault") == "storm":
                        world.kubectl("delete", "flowschema,prioritylevelconfiguration", "bench-storm",
                                      "--ignore-not-found", check=False)
                    world.pod_ready_delay(0)
                write_results(args, start, kept + results, groups)
    log(f"{n} runs in {time.time() - start:.0f}s; results in {args.results}")


def write_results(args, start, runs, groups):
    with open(args.results, "w") as f:
        json.dump({"started": start, "quick": args.quick, "flux_stand_in": args.flux_stand_in,
                   "scenarios": groups, "runs": runs}, f, indent=1)


def run_dnsproof_scenario(world, args, scenario, n, results, save):
    """catalyst-bootstrap's DNS proof at each size of the cluster: `scripts/testenv load N`
    (it adds or removes Services to reach N), a settled apiserver, then the runs, each with
    the record written into PowerDNS PROOF_RECORD_AFTER s after its proof started. The load
    is removed at the end, however the scenario ends."""
    try:
        for size in scenario["sizes"]:
            log(f"dnsproof scenario: {size} Services (scripts/testenv load {size})")
            t = time.time()
            testenv(world, "load", size)
            log(f"  load in place after {time.time() - t:.0f}s")
            wait_settled(world, f"after the load of {size}", at_least=30)
            for _ in range(scenario["reps"]):
                n += 1
                try:
                    results.append(run_once(world, args, n, "catalyst-bootstrap", dict(scenario, services=size)))
                finally:
                    world.pod_ready_delay(0)
                save()
    finally:
        log("dnsproof scenario: removing the load")
        testenv(world, "load", "off", check=False)
    return n


def run_saturated_scenario(world, args, tools, scenario, n, results, save):
    """The load for the whole scenario (created once, removed at the end), then one
    saturated bring-up per tool; the cap is always lifted (run_saturated sees to it)."""
    log(f"saturated scenario: load {SATURATION_LOAD} (scripts/testenv load)")
    t = time.time()
    testenv(world, "load", SATURATION_LOAD)
    log(f"  load in place after {time.time() - t:.0f}s")
    wait_settled(world, "after the load", at_least=30)
    try:
        for rep in range(scenario["reps"]):
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]
            for tool in order:
                n += 1
                try:
                    results.append(run_saturated(world, args, n, tool, scenario))
                except Exception as e:  # noqa: BLE001 - one broken run must not leave the world saturated
                    log(f"  run {n} ({tool}) broke: {e}")
                    testenv(world, "saturate", "off", check=False)
                    results.append({"run": n, "tool": tool, "scenario": scenario["name"], "ok": False,
                                    "exit_codes": [], "broken": str(e)})
                save()
    finally:
        testenv(world, "saturate", "off", check=False)
        log("saturated scenario: removing the load")
        testenv(world, "load", "off", check=False)
    return n


if __name__ == "__main__":
    main()
