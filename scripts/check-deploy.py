#!/usr/bin/env python3
"""Checks deploy/kubernetes.yaml and deploy/policy-toml-configmap.yaml without a cluster.

1. Static: every document parses; the objects each variant applies (Postgres:
   kubernetes.yaml; TOML: its `common` and `secret` parts plus policy-toml-configmap.yaml;
   `envoi.example/part` labels) are complete and consistent: selectors match pod labels,
   ports and probes name real ports, the probes' ports are the config's admin listener,
   every mounted ConfigMap/Secret and every key an env var or a file path names exists,
   the pods are hardened (non-root, read-only root, no capabilities, seccomp).
2. Dynamic: runs the envoi binary as Kubernetes would run those containers, as the
   pods' uid/gid (when root), with each ConfigMap and Secret laid out as the kubelet
   lays out a volume (`..data` symlink to a timestamped folder, each key a symlink
   through it) under a temporary root; mount paths found in the config and env are
   rewritten under that root, and the listeners moved to free loopback ports (two
   replicas share this machine). Placeholders are replaced by real values (a fresh
   signing secret, a key from `envoi keygen`).
   - TOML variant: two replicas; GET / with a token; a ConfigMap update and a Secret
     update (swapped in through `..data`, as the kubelet does) are served within 3 s;
     a broken policy leaves the last good one serving; SIGTERM ends them with 0.
   - Postgres variant, only with --database-url (a scratch database, which must exist:
     `createdb envoi_scratch`; its envoi tables are replaced): the migration Job, the
     import Job (on the TOML variant's example policy ConfigMap and app Secret), again
     (nothing changes), two replicas, GET / on both, `envoi secret put` seen by both
     within 2 s, SIGTERM.

What it does not check: the Kubernetes API's own validation (no kubectl here), the image
(scripts/docker-steps.sh), the kubelet's timing, probes as the kubelet runs them, and the
network between the platform and the Service.

Usage: scripts/check-deploy.py [--envoi PATH] [--database-url URL]
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(REPO, "deploy", "kubernetes.yaml")
TOML_VARIANT = os.path.join(REPO, "deploy", "policy-toml-configmap.yaml")
PART = "envoi.example/part"

failures = []


def ok(message):
    print(f"    ok: {message}")


def check(condition, message):
    if condition:
        ok(message)
    else:
        print(f"    FAILED: {message}")
        failures.append(message)
    return condition


def step(message):
    print(f"\n==> {message}")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return found[0] if found else None


def secret_data(secret):
    return {**secret.get("stringData", {}), **{k: "(base64)" for k in secret.get("data", {})}}


def port_of(address):
    return int(address.rsplit(":", 1)[1])


# --------------------------------------------------------------------------------------
# Static checks


def static_checks(name, objects, allowed_parts):
    step(f"{name}: {', '.join(o['kind'] + '/' + o['metadata']['name'] for o in objects)}")
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    check(len(keys) == len(set(keys)), "no object twice")
    check(find(objects, "Namespace", "envoi") is not None, "the envoi Namespace is there")
    check(
        all(o["metadata"].get("namespace") == "envoi" for o in objects if o["kind"] != "Namespace"),
        "every namespaced object is in the envoi namespace",
    )
    check(
        all(o["metadata"].get("labels", {}).get(PART) in allowed_parts for o in objects),
        f"every object is labelled {PART} in {sorted(allowed_parts)}",
    )

    deployment = find(objects, "Deployment", "envoi")
    if not check(deployment is not None, "a Deployment named envoi"):
        return None
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    check(spec.get("replicas") == 2, "2 replicas")
    check(
        spec["selector"]["matchLabels"].items() <= pod_labels.items(), "the Deployment's selector matches its pod labels"
    )
    check(spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") == 0, "rolling updates keep every replica")
    hardening(pod, "Deployment")
    container = pod["containers"][0]
    check(container.get("args") == ["serve"], "the container runs `envoi serve` (ENTRYPOINT envoi, args [serve])")

    env = {e["name"]: e for e in container.get("env", [])}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    check(all(m["name"] in volumes for m in mounts.values()), "every volumeMount has its volume")
    check(all(m.get("readOnly") for m in mounts.values()), "every volume is mounted read-only")
    check(all("subPath" not in m for m in mounts.values()), "no subPath mount (they are not updated)")

    def source_of(path):
        """The (kind, object, key) that a file path inside a mount comes from."""
        for mount_path, mount in mounts.items():
            if path.startswith(mount_path.rstrip("/") + "/"):
                key = path[len(mount_path.rstrip("/")) + 1 :]
                volume = volumes[mount["name"]]
                if "configMap" in volume:
                    return "ConfigMap", find(objects, "ConfigMap", volume["configMap"]["name"]), key
                if "secret" in volume:
                    return "Secret", find(objects, "Secret", volume["secret"]["secretName"]), key
        return None, None, None

    for volume in volumes.values():
        if "configMap" in volume:
            check(find(objects, "ConfigMap", volume["configMap"]["name"]) is not None, f"ConfigMap {volume['configMap']['name']} exists")
        if "secret" in volume:
            name_ = volume["secret"]["secretName"]
            check(find(objects, "Secret", name_) is not None, f"Secret {name_} exists")
            check(volume["secret"].get("defaultMode") == 0o440, f"Secret {name_} is mounted 0440 (group-readable through fsGroup)")
    check(pod["securityContext"].get("fsGroup") == pod["securityContext"].get("runAsGroup"), "fsGroup is the pod's group")

    config_path = env.get("ENVOI_CONFIG", {}).get("value")
    kind, config_map, key = source_of(config_path or "")
    check(kind == "ConfigMap" and key in config_map.get("data", {}), f"ENVOI_CONFIG={config_path} is a key of a mounted ConfigMap")
    config = tomllib.loads(config_map["data"][key]) if kind == "ConfigMap" else {}
    for var in ("ENVOI__AUTH__SECRET_FILES", "ENVOI__SEAL__KEY_FILES"):
        for path in env.get(var, {}).get("value", "").split(","):
            kind, secret, key = source_of(path)
            check(
                kind == "Secret" and key in secret_data(secret),
                f"{var}: {path} is key `{key}` of a mounted Secret ({secret['metadata']['name'] if secret else '-'})",
            )
    for var, entry in env.items():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            secret = find(objects, "Secret", ref["name"])
            check(secret is not None and ref["key"] in secret_data(secret), f"{var} comes from Secret {ref['name']} key {ref['key']}")

    server = config.get("server", {})
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    check(ports.get("http") == port_of(server.get("listen", "127.0.0.1:8080")), f"container port http = server.listen ({server.get('listen')})")
    check(server.get("listen", "").startswith("0.0.0.0:"), "server.listen is on every interface of the pod")
    check(ports.get("admin") == port_of(server.get("admin_listen", ":0")), f"container port admin = server.admin_listen ({server.get('admin_listen')})")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "admin", f"{probe}: GET {path} on the admin port")
    check(container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [""])[0] == "sleep", "a preStop pause before SIGTERM")
    shutdown = server.get("shutdown_timeout_seconds", 30)
    check(pod.get("terminationGracePeriodSeconds", 30) > shutdown + 5, f"terminationGracePeriodSeconds > shutdown_timeout_seconds ({shutdown}) + preStop")
    resources = container.get("resources", {})
    check("requests" in resources and "memory" in resources.get("limits", {}), "resource requests and a memory limit")
    check(server.get("workers", 0) <= int(str(resources.get("limits", {}).get("cpu", "1000"))), "server.workers <= the CPU limit")

    service = find(objects, "Service", "envoi")
    if check(service is not None, "a Service named envoi"):
        check(service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects the pods")
        service_ports = service["spec"]["ports"]
        check(
            [(p["port"], ports.get(p["targetPort"], p["targetPort"])) for p in service_ports] == [(8080, 8080)],
            "the Service maps 8080 to the pods' 8080 (and does not expose the admin port)",
        )
    pdb = find(objects, "PodDisruptionBudget")
    if check(pdb is not None, "a PodDisruptionBudget"):
        check(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), "the PodDisruptionBudget selects the pods")
        check(pdb["spec"].get("minAvailable", 0) < spec["replicas"], "minAvailable leaves room for a voluntary disruption")
    return {"deployment": deployment, "config": config, "objects": objects}


def hardening(pod, what):
    context = pod.get("securityContext", {})
    check(context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, f"{what}: runAsNonRoot, runAsUser {context.get('runAsUser')}")
    check(context.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{what}: seccomp RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{what}: no service account token")
    for container in pod["containers"]:
        sc = container.get("securityContext", {})
        check(
            sc.get("allowPrivilegeEscalation") is False
            and sc.get("readOnlyRootFilesystem") is True
            and sc.get("capabilities", {}).get("drop") == ["ALL"],
            f"{what}: container {container['name']}: no privilege escalation, read-only root, capabilities dropped",
        )


# --------------------------------------------------------------------------------------
# Running the containers


class Pod:
    """One container of a manifest, run as a local process with its volumes laid out."""

    def __init__(self, envoi, root, objects, pod_spec, overrides, values):
        self.envoi, self.root, self.objects = envoi, root, objects
        self.pod = pod_spec
        self.container = pod_spec["containers"][0]
        self.values = values  # (kind, name, key) -> value for Secrets' placeholders
        self.mounts = {m["mountPath"]: m for m in self.container.get("volumeMounts", [])}
        self.volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        self.env = self._env(overrides)
        self.process = None

    def rebase(self, text):
        for mount_path in sorted(self.mounts, key=len, reverse=True):
            text = text.replace(mount_path, self.root + mount_path)
        return text

    def _env(self, overrides):
        env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
        for entry in self.container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = self.rebase(entry["value"])
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                env[entry["name"]] = self.values[("Secret", ref["name"], ref["key"])]
        env.update(overrides)
        return env

    def lay_out(self, generation=1, changes=None):
        """Writes every mounted ConfigMap and Secret as the kubelet does."""
        for mount_path, mount in self.mounts.items():
            volume = self.volumes[mount["name"]]
            if "configMap" in volume:
                source = find(self.objects, "ConfigMap", volume["configMap"]["name"])
                data = {k: self.rebase(v) for k, v in source.get("data", {}).items()}
                mode, name = volume["configMap"].get("defaultMode", 0o644), source["metadata"]["name"]
            else:
                source = find(self.objects, "Secret", volume["secret"]["secretName"])
                name = source["metadata"]["name"]
                data = {k: self.values.get(("Secret", name, k), v) for k, v in source.get("stringData", {}).items()}
                mode = volume["secret"].get("defaultMode", 0o644)
            data.update((changes or {}).get(name, {}))
            kubelet_volume(self.root + mount_path, data, mode, self.pod["securityContext"].get("fsGroup"), generation)

    def command(self, args):
        user = []
        context = self.pod.get("securityContext", {})
        if os.geteuid() == 0 and shutil.which("setpriv"):
            # As the kubelet runs it: runAsUser/runAsGroup, fsGroup as the one supplementary
            # group, no capabilities (drop ALL), no privilege escalation.
            groups = f"--groups={context['fsGroup']}" if context.get("fsGroup") is not None else "--clear-groups"
            user = ["setpriv", f"--reuid={context['runAsUser']}", f"--regid={context['runAsGroup']}", groups]
            user += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        # Arguments that name a mounted file point under the temporary root too.
        return user + [self.envoi] + [self.rebase(a) for a in args]

    def run(self, args, stdin=None):
        return subprocess.run(self.command(args), env=self.env, input=stdin, capture_output=True, text=True, cwd="/", timeout=60)

    def start(self, log):
        self.log = log
        self.process = subprocess.Popen(
            self.command(self.container["args"]), env=self.env, stdout=open(log + ".out", "w"), stderr=open(log, "w"), cwd="/"
        )
        return self

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return "timeout"


def kubelet_volume(path, data, mode, group, generation):
    """A ConfigMap/Secret volume: ..<timestamp>/KEY files, ..data -> ..<timestamp>, KEY -> ..data/KEY."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    stamp = f"..2026_01_01_00_00_{generation:02d}.{secrets.randbelow(10**9)}"
    folder = os.path.join(path, stamp)
    os.makedirs(folder)
    os.chmod(folder, 0o755)
    for key, value in data.items():
        file = os.path.join(folder, key)
        with open(file, "w") as f:
            f.write(value)
        os.chmod(file, mode)
        if group is not None and os.geteuid() == 0:
            os.chown(file, 0, group)
    old = os.path.join(path, "..data")
    previous = os.readlink(old) if os.path.islink(old) else None
    temp = os.path.join(path, "..data_tmp")
    os.symlink(stamp, temp)
    os.rename(temp, old)
    for key in data:
        link = os.path.join(path, key)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", key), link)
    if previous:
        shutil.rmtree(os.path.join(path, previous))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, token=None, timeout=2):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def answer(port, token):
    status, body = get(f"http://127.0.0.1:{port}/", token)
    if status != 200:
        return status, {}
    items = json.loads(body)["secrets"]
    return status, {(i["type"], i.get("key") or i.get("path")): i.get("value", i.get("data")) for i in items}


def replicas(envoi, root, objects, pod_spec, values, count=2):
    pods = []
    for n in range(count):
        main, admin = free_port(), free_port()
        overrides = {"ENVOI__SERVER__LISTEN": f"127.0.0.1:{main}", "ENVOI__SERVER__ADMIN_LISTEN": f"127.0.0.1:{admin}"}
        pod = Pod(envoi, root, objects, pod_spec, overrides, values)
        pod.main, pod.admin = main, admin
        pods.append(pod)
    return pods


def token_for(pod, project, kind, id_):
    result = pod.run(["token", "--project", project, "--type", kind, "--id", id_, "--ttl", "10m"])
    if result.returncode != 0:
        print(result.stderr)
    return result.stdout.strip().splitlines()[-1] if result.returncode == 0 else ""


def start_and_wait(pods, work, name):
    for n, pod in enumerate(pods):
        pod.start(os.path.join(work, f"{name}-{n}.log"))
    ready = all(wait_for(lambda p=p: get(f"http://127.0.0.1:{p.admin}/readyz")[0] == 200, 20) for p in pods)
    if not ready:
        for pod in pods:
            print(open(pod.log).read()[-2000:])
    check(ready, f"{len(pods)} replicas ready on /readyz (admin port), as the readiness probe asks")
    check(all(get(f"http://127.0.0.1:{p.admin}/healthz")[0] == 200 for p in pods), "/healthz answers 200 on the admin port, as the liveness probe asks")
    check(all(get(f"http://127.0.0.1:{p.main}/metrics")[0] == 404 for p in pods), "/metrics is not on the main port the Service exposes")
    return ready


def stop_all(pods):
    statuses = [pod.stop() for pod in pods]
    check(statuses == [0] * len(pods), f"SIGTERM ends every replica with status 0 ({statuses})")


def toml_variant(envoi, variant, values, work):
    step("TOML variant: two replicas, ConfigMap and Secret updates through ..data")
    root = os.path.join(work, "toml")
    objects = variant["objects"]
    pod_spec = variant["deployment"]["spec"]["template"]["spec"]
    pods = replicas(envoi, root, objects, pod_spec, values)
    pods[0].lay_out(1)
    result = pods[0].run(["check"])
    check(result.returncode == 0, f"`envoi check` with the Deployment's env: {(result.stdout or result.stderr).strip()}")
    if not start_and_wait(pods, work, "toml"):
        stop_all(pods)
        return
    token = token_for(pods[0], "billing", "service", "api")
    answers = [answer(p.main, token) for p in pods]
    db_password = values[("Secret", "envoi-app-secrets", "db_password")]
    want = {
        ("ENV", "LOG_LEVEL"): "warn",
        ("ENV", "STRIPE_KEY"): values[("Secret", "envoi-app-secrets", "stripe_key")],
        ("ENV", "DATABASE_URL"): f"postgres://app:{db_password}@db.example.internal:5432/billing",
        ("FILE", "/etc/billing/db_password"): db_password,
    }
    check(all(a == (200, want) for a in answers), "GET / through the main port: billing/service/api gets the policy's 4 items on both replicas")

    grants = find(objects, "ConfigMap", "envoi-policy")["data"]["10-grants.toml"]
    changed = grants.replace('LOG_LEVEL = { value = "warn" }', 'LOG_LEVEL = { value = "error" }')
    pods[0].lay_out(2, {"envoi-policy": {"10-grants.toml": pods[0].rebase(changed)}})
    seen = all(wait_for(lambda p=p: answer(p.main, token)[1].get(("ENV", "LOG_LEVEL")) == "error", 3) for p in pods)
    check(seen, "a ConfigMap update swapped in through ..data is served by both replicas within 3 s")

    new_key = "sk_rotated_" + secrets.token_hex(8)
    pods[0].lay_out(3, {"envoi-policy": {"10-grants.toml": pods[0].rebase(changed)}, "envoi-app-secrets": {"stripe_key": new_key}})
    seen = all(wait_for(lambda p=p: answer(p.main, token)[1].get(("ENV", "STRIPE_KEY")) == new_key, 3) for p in pods)
    check(seen, "a Secret update (a `file =` value) swapped in through ..data is served within 3 s")

    pods[0].lay_out(4, {"envoi-policy": {"10-grants.toml": "[[grants]]\nname = \"broken\"\nenv = { X = \"no_such_secret\" }\n"}, "envoi-app-secrets": {"stripe_key": new_key}})
    time.sleep(2.5)
    metrics = get(f"http://127.0.0.1:{pods[0].admin}/metrics")[1]
    failures_seen = re.search(r"^envoi_policy_load_failures_total (\d+)$", metrics, re.M)
    check(
        answer(pods[0].main, token)[1].get(("ENV", "STRIPE_KEY")) == new_key and failures_seen and int(failures_seen.group(1)) >= 1,
        "a broken ConfigMap leaves the last good policy serving, and envoi_policy_load_failures_total counts it",
    )
    stop_all(pods)


def postgres_variant(envoi, variant, toml_variant_objects, values, work, database_url):
    step("Postgres variant: the migration Job, `envoi db import`, two replicas")
    root = os.path.join(work, "postgres")
    objects = variant["objects"]
    values = {**values, ("Secret", "envoi-database", "url"): database_url}
    job = find(objects, "Job", "envoi-db-migrate")["spec"]["template"]["spec"]
    hardening(job, "Job")
    migrate = Pod(envoi, root, objects, job, {}, values)
    migrate.lay_out(1)
    check(migrate.container["image"] == variant["deployment"]["spec"]["template"]["spec"]["containers"][0]["image"], "the Job runs the Deployment's image")
    result = migrate.run(migrate.container["args"])
    check(result.returncode == 0, f"the Job's `envoi {' '.join(migrate.container['args'])}`: {(result.stdout or result.stderr).strip()}")

    # The import Job, on the TOML variant's example policy and app Secret, as deploy/README.md says.
    with_policy = objects + [o for o in toml_variant_objects if o["metadata"]["name"] in ("envoi-policy", "envoi-app-secrets")]
    job = find(objects, "Job", "envoi-db-import")["spec"]["template"]["spec"]
    hardening(job, "import Job")
    importer = Pod(envoi, root, with_policy, job, {}, values)
    importer.lay_out(1)
    result = importer.run(importer.container["args"])
    check(result.returncode == 0, f"the import Job's `envoi {' '.join(importer.container['args'])}`: {(result.stdout or result.stderr).strip()}")
    again = importer.run(importer.container["args"])
    check("0 secret(s) written, 0 removed; 0 grant(s) written, 0 removed" in again.stdout, f"running it again changes nothing: {again.stdout.strip()}")

    pod_spec = variant["deployment"]["spec"]["template"]["spec"]
    pods = replicas(envoi, root, objects, pod_spec, values)
    pods[0].lay_out(1)
    if not start_and_wait(pods, work, "pg"):
        stop_all(pods)
        return
    token = token_for(pods[0], "billing", "service", "api")
    answers = [answer(p.main, token) for p in pods]
    check(answers[0][0] == 200 and answers[0] == answers[1] and len(answers[0][1]) == 4, "GET / on both replicas: the same 4 items")
    new_key = "sk_put_" + secrets.token_hex(8)
    result = pods[0].run(["secret", "put", "stripe_key"], stdin=new_key)
    check(result.returncode == 0, f"`envoi secret put stripe_key`: {(result.stdout or result.stderr).strip()}")
    seen = all(wait_for(lambda p=p: answer(p.main, token)[1].get(("ENV", "STRIPE_KEY")) == new_key, 2) for p in pods)
    check(seen, "both replicas serve the new value within 2 s (LISTEN/NOTIFY)")
    stop_all(pods)


def default_envoi():
    for candidate in ("target/release/envoi", "target/debug/envoi"):
        path = os.path.join(REPO, candidate)
        if os.access(path, os.X_OK):
            return path
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envoi", default=default_envoi(), help="the envoi binary (default: the newest build under target/)")
    parser.add_argument("--database-url", help="a scratch Postgres database for the Postgres variant, which must exist (createdb); its envoi tables are replaced")
    parser.add_argument("--static-only", action="store_true")
    args = parser.parse_args()
    # The pods run with "/" as their working directory: a relative --envoi (as in
    # `--envoi target/release/envoi`) is taken from where the script was started, and a
    # bare name from PATH.
    if args.envoi:
        args.envoi = shutil.which(args.envoi) if os.sep not in args.envoi else os.path.abspath(args.envoi)
        if not args.envoi:
            sys.exit("--envoi: no such program on PATH")

    k8s, toml_file = load(K8S), load(TOML_VARIANT)
    step("parsing")
    ok(f"{os.path.relpath(K8S, REPO)}: {len(k8s)} documents")
    ok(f"{os.path.relpath(TOML_VARIANT, REPO)}: {len(toml_file)} documents")
    postgres = static_checks("Postgres variant (kubernetes.yaml)", k8s, {"common", "secret", "postgres", "import"})
    common = [o for o in k8s if o["metadata"].get("labels", {}).get(PART) in ("common", "secret")]
    toml_objects = common + toml_file
    toml = static_checks(
        "TOML variant (kubernetes.yaml's common and secret parts + policy-toml-configmap.yaml)",
        toml_objects,
        {"common", "secret", "toml", "policy"},
    )
    step("labels: what each documented `kubectl apply -l` applies")
    parts = lambda objects: {(o["kind"], o["metadata"]["name"]): o["metadata"]["labels"][PART] for o in objects}
    k8s_parts, toml_parts = parts(k8s), parts(toml_file)
    check(all(p == "secret" for (kind, _), p in {**k8s_parts, **toml_parts}.items() if kind == "Secret"), "every Secret (a placeholder) is in part `secret`, applied by no step")
    check({n for (k, n), p in k8s_parts.items() if p == "postgres"} == {"envoi-config", "envoi-db-migrate", "envoi"}, "part postgres: the config, the migration Job, the Deployment")
    check({n for (k, n), p in k8s_parts.items() if p == "import"} == {"envoi-db-import"}, "part import: the import Job alone")
    check({n for (k, n), p in toml_parts.items() if p == "policy"} == {"envoi-policy"}, "part policy: the example policy alone")
    if postgres:
        job = find(k8s, "Job", "envoi-db-import")
        importer = job["spec"]["template"]["spec"] if job else None
        check(importer is not None and importer["containers"][0]["args"][:2] == ["db", "import"], "an import Job runs `envoi db import`")
        if importer:
            hardening(importer, "import Job")
            volumes = {v["name"]: v for v in importer["volumes"]}
            policy_volume = next((v for v in volumes.values() if v.get("configMap", {}).get("name") == "envoi-policy"), None)
            mount = next((m for m in importer["containers"][0]["volumeMounts"] if policy_volume and m["name"] == policy_volume["name"]), None)
            check(mount is not None and importer["containers"][0]["args"][2] == mount["mountPath"], "the import Job imports the mounted ConfigMap envoi-policy")
            toml_mounts = {m["mountPath"] for m in find(toml_file, "Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
            check(all(m["mountPath"] in toml_mounts for m in importer["containers"][0]["volumeMounts"]), "the import Job mounts what it reads where the TOML Deployment does (one policy for both)")
    if postgres:
        check(postgres["config"].get("store", {}).get("kind") == "postgres", "Postgres variant: store.kind = postgres, url from DATABASE_URL")
        check(postgres["config"].get("log", {}).get("format") == "json", "Postgres variant: JSON logs")
        job = find(k8s, "Job")
        check(job is not None and job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"], "a Job runs `envoi db migrate`")
    if toml:
        check(toml["config"].get("store", {}).get("kind") == "toml", "TOML variant: store.kind = toml, a policy folder")

    if not args.static_only and not failures:
        if not args.envoi:
            sys.exit("no envoi binary: build one (cargo build) or give --envoi")
        version = subprocess.run([args.envoi, "--version"], capture_output=True, text=True).stdout.strip()
        if not version.startswith("envoi "):
            sys.exit(f"{args.envoi} is not an envoi binary (--version: {version!r})")
        step(f"running {args.envoi} ({version})")
        work = tempfile.mkdtemp(prefix="envoi-check-deploy.")
        os.chmod(work, 0o755)
        try:
            keygen = subprocess.run([args.envoi, "keygen"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            values = {
                ("Secret", "envoi-platform-secret", "current"): secrets.token_urlsafe(48),
                ("Secret", "envoi-master-key", "master.key"): keygen,
                ("Secret", "envoi-app-secrets", "db_password"): "db-" + secrets.token_hex(8),
                ("Secret", "envoi-app-secrets", "stripe_key"): "sk_test_" + secrets.token_hex(8),
            }
            if os.geteuid() != 0:
                print("    note: not root, so the containers run as the current user, not the pods' uid")
            if toml:
                toml_variant(args.envoi, toml, values, work)
            if postgres and args.database_url:
                postgres_variant(args.envoi, postgres, toml_objects, values, work, args.database_url)
            elif postgres:
                print("\n    skipped: the Postgres variant's run needs --database-url (a scratch database)")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    step("summary")
    if failures:
        print(f"{len(failures)} check(s) failed:")
        for failure in failures:
            print(f"  - {failure}")
        sys.exit(1)
    print("all checks passed")
    print("Not checked here: the Kubernetes API's own validation (no kubectl), the image itself")
    print("(scripts/docker-steps.sh), the kubelet's timing and probes, the network to the platform.")


if __name__ == "__main__":
    main()
