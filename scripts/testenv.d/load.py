#!/usr/bin/env python3
"""The test world's load fixture (`scripts/testenv load COUNT | off`).

Puts in one namespace what makes an informer's start-up LIST heavy in a busy cluster:
COUNT headless Services of about 1 KB each (an annotation pads them), one EndpointSlice
per Service, and a third as many Pods on a kwok node of their own (host network, so kwok
gives them the node's address instead of drawing from its small pod CIDR; tolerating every
taint, so a node that turns NotReady under CPU saturation never evicts them). The load node
has room for them and a NoSchedule taint, so the world's own node keeps its capacity and
the scheduler never places another test's pod beside them. external-dns's `service` source
informs on all of these, and on Nodes, at once.

Idempotent: it reads what is there (one paginated LIST per kind) and creates only what is
missing and deletes only what is beyond COUNT, many requests at a time over keep-alive
connections. COUNT 0 removes everything, namespace included. It waits until kwok reports
every Pod Running and fails when some stay Pending.

The Services select nothing, so kube-controller-manager's EndpointSlice controller leaves
them and their slices alone, and they carry no external-dns hostname annotation, so no
external-dns in the world publishes records for them.
"""

import argparse
import concurrent.futures
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse

LABEL = "testenv.catalyst.openova.io/load"
MANAGER = "testenv.catalyst.openova.io"
PADDING = "testenv.catalyst.openova.io/padding"


class Api:
    """A small client for the world's apiserver: client certificate, one keep-alive
    connection per thread."""

    def __init__(self, server, pki):
        url = urllib.parse.urlparse(server)
        self.host, self.port = url.hostname, url.port or 443
        self.ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
        self.ctx.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
        self.local = threading.local()

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
            self.local.conn = conn
        return conn

    def request(self, method, path, body=None, ok=(200, 201, 202)):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for attempt in range(8):
            try:
                conn = self._conn()
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self.local.conn = None
                if attempt == 7:
                    raise RuntimeError(f"{method} {path}: {e}") from e
                time.sleep(0.5 * (attempt + 1))
                continue
            if resp.status in ok:
                return json.loads(text) if text else {}
            if resp.status in (429, 500, 503, 504) and attempt < 7:
                time.sleep(float(resp.getheader("Retry-After") or 0.5 * (attempt + 1)))
                continue
            return {"_status": resp.status, "_body": text.decode(errors="replace")}
        raise RuntimeError(f"{method} {path}: gave up")

    def names(self, path):
        """Names of the objects at a collection path carrying the load label."""
        names, cont = set(), ""
        while True:
            query = {"labelSelector": LABEL, "limit": "500"}
            if cont:
                query["continue"] = cont
            page = self.request("GET", f"{path}?{urllib.parse.urlencode(query)}")
            if "_status" in page:
                if page["_status"] == 404:
                    return names
                raise RuntimeError(f"listing {path}: {page['_status']} {page['_body']}")
            names.update(item["metadata"]["name"] for item in page.get("items", []))
            cont = page.get("metadata", {}).get("continue", "")
            if not cont:
                return names


def padding(name):
    # About 800 characters that differ per object, so nothing compresses them away.
    seed = sum(map(ord, name))
    return "".join("abcdefghijklmnopqrstuvwxyz0123456789"[(seed * 31 + i * 7) % 36] for i in range(800))


def service(ns, name):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL: "true"},
                     "annotations": {PADDING: padding(name)}},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }


def endpoint_slice(ns, name, index, pod):
    endpoint = {
        "addresses": [f"10.{100 + index // 65536}.{index // 256 % 256}.{index % 256}"],
        "conditions": {"ready": True},
    }
    if pod:
        endpoint["targetRef"] = {"kind": "Pod", "namespace": ns, "name": pod}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {LABEL: "true", "kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": MANAGER}},
        "addressType": "IPv4",
        "endpoints": [endpoint],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }


def pod(ns, name, node):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL: "true", "app": name},
                     "annotations": {PADDING: padding(name)[:400]}},
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "main", "image": "registry.invalid/load:1"}],
        },
    }


def load_node(name):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {LABEL: "true", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok"},
        },
        "spec": {"taints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "100000"},
            "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "100000"},
        },
    }


def run_all(pool, jobs):
    failures = [f.result() for f in [pool.submit(*job) for job in jobs]]
    failures = [f for f in failures if f]
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--pending-timeout", type=float, default=180)
    args = ap.parse_args()
    api, ns, count = Api(args.server, args.pki), args.namespace, args.count
    started = time.monotonic()

    paths = {
        "services": f"/api/v1/namespaces/{ns}/services",
        "endpointslices": f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
        "pods": f"/api/v1/namespaces/{ns}/pods",
    }
    names = [f"load-{i:05d}" for i in range(count)]
    pod_names = names[::3]
    want = {"services": set(names), "endpointslices": set(names), "pods": set(pod_names)}

    if count > 0:
        got = api.request("POST", "/api/v1/namespaces",
                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if "_status" in got and got["_status"] != 409:
            raise RuntimeError(f"creating namespace {ns}: {got['_status']} {got['_body']}")
        got = api.request("POST", "/api/v1/nodes", load_node(args.node))
        if "_status" in got and got["_status"] != 409:
            raise RuntimeError(f"creating node {args.node}: {got['_status']} {got['_body']}")
        phase = api.request("GET", f"/api/v1/namespaces/{ns}").get("status", {}).get("phase")
        if phase == "Terminating":
            raise RuntimeError(f"namespace {ns} is still being deleted; run the load again in a while")

    have = {kind: api.names(path) for kind, path in paths.items()}

    def create(kind, body):
        got = api.request("POST", paths[kind], body)
        if "_status" in got and got["_status"] != 409:
            return f"POST {kind}/{body['metadata']['name']}: {got['_status']} {got['_body'][:300]}"
        return None

    def delete(kind, name):
        got = api.request("DELETE", f"{paths[kind]}/{name}", {"gracePeriodSeconds": 0})
        if "_status" in got and got["_status"] != 404:
            return f"DELETE {kind}/{name}: {got['_status']} {got['_body'][:300]}"
        return None

    created = deleted = 0
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        extra = [(kind, n) for kind in ("pods", "endpointslices", "services") for n in have[kind] - want[kind]]
        run_all(pool, [(delete, kind, n) for kind, n in extra])
        deleted = len(extra)
        pods_by_index = {n: n for n in pod_names}
        jobs = [(create, "pods", pod(ns, n, args.node)) for n in pod_names if n not in have["pods"]]
        jobs += [(create, "services", service(ns, n)) for n in names if n not in have["services"]]
        jobs += [(create, "endpointslices", endpoint_slice(ns, n, i, pods_by_index.get(n)))
                 for i, n in enumerate(names) if n not in have["endpointslices"]]
        run_all(pool, jobs)
        created = len(jobs)

    if count == 0:
        got = api.request("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))
        deadline = time.monotonic() + 300
        while "_status" not in api.request("GET", f"/api/v1/namespaces/{ns}", ok=(200,)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"namespace {ns} still there after 300 s")
            time.sleep(1)
        api.request("DELETE", f"/api/v1/nodes/{args.node}", ok=(200, 202, 404))
        print(f"load off: deleted {deleted} objects, namespace {ns} and node {args.node} in "
              f"{time.monotonic() - started:.1f}s", file=sys.stderr)
        return

    # kwok marks the Pods Running; none may be left Pending.
    deadline = time.monotonic() + args.pending_timeout
    while True:
        pending, cont = 0, ""
        while True:
            query = {"labelSelector": LABEL, "limit": "500", "fieldSelector": "status.phase!=Running"}
            if cont:
                query["continue"] = cont
            page = api.request("GET", f"{paths['pods']}?{urllib.parse.urlencode(query)}")
            pending += len(page.get("items", []))
            cont = page.get("metadata", {}).get("continue", "")
            if not cont:
                break
        if pending == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending} of {len(pod_names)} load Pods are not Running after "
                               f"{args.pending_timeout:.0f} s (is kwok running?)")
        time.sleep(1)

    print(f"load {count}: {count} Services, {count} EndpointSlices, {len(pod_names)} Pods Running "
          f"in namespace {ns} ({created} created, {deleted} deleted) in "
          f"{time.monotonic() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"[testenv load] error: {e}", file=sys.stderr)
        sys.exit(1)
