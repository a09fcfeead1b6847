#!/usr/bin/env python3
"""Two replicas on one Postgres policy of gen_policy.py's shape: single writes timed (the
command's whole run), commit-to-visible latency on each replica over 50 changes, a
sustained run of changes while both replicas answer requests, and resident memory.

Usage: bench/pg_replicas.py ENVOI CONFIG   (run by bench/pg_scale.sh after its import;
       CHANGES=50 RATE=20 SECONDS=30 override the runs)
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ENVOI, CONFIG = sys.argv[1], sys.argv[2]
CHANGES = int(os.environ.get("CHANGES", "50"))
RATE = float(os.environ.get("RATE", "20"))
SECONDS = float(os.environ.get("SECONDS_SUSTAINED", os.environ.get("SECONDS", "30")))
PORTS = (18481, 18482)
LOAD_PAUSE = float(os.environ.get("LOAD_PAUSE_MS", "5")) / 1000


def envoi(*args, stdin=b""):
    return subprocess.run([ENVOI, "--config", CONFIG, *args], input=stdin, capture_output=True)


def must(*args, stdin=b""):
    ran = envoi(*args, stdin=stdin)
    if ran.returncode != 0:
        sys.exit("envoi %s failed: %s" % (" ".join(args), ran.stderr.decode(errors="replace")))
    return ran


def token(project, kind, oid):
    out = must("token", "--project", project, "--type", kind, "--id", oid, "--ttl", "2h").stdout
    return out.decode().strip().splitlines()[-1]


class Replica:
    def __init__(self, port):
        env = dict(os.environ, ENVOI__SERVER__LISTEN="127.0.0.1:%d" % port,
                   ENVOI__LOG__LEVEL=os.environ.get("REPLICA_LOG_LEVEL", "warn"))
        self.port = port
        log = os.environ.get("REPLICA_LOGS")
        self.log = open("%s/replica-%d.log" % (log, port), "w") if log else subprocess.DEVNULL
        self.process = subprocess.Popen([ENVOI, "--config", CONFIG, "serve"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        self.conn = None

    def get(self, path, bearer=None):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                headers = {"Authorization": "Bearer " + bearer} if bearer else {}
                self.conn.request("GET", path, headers=headers)
                answer = self.conn.getresponse()
                return answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                self.conn = None
        return 0, b""

    def env_value(self, bearer, key):
        status, body = self.get("/", bearer)
        if status != 200:
            return None
        for item in json.loads(body)["secrets"]:
            if item["type"] == "ENV" and item["key"] == key:
                return item["value"]
        return None

    def rss_mib(self):
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
        return -1


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def ms(seconds):
    return "%.0f ms" % (seconds * 1000)


def main():
    replicas = [Replica(port) for port in PORTS]
    started = time.monotonic()
    try:
        for replica in replicas:
            while replica.get("/readyz")[0] != 200:
                if time.monotonic() - started > 120:
                    sys.exit("a replica did not load the policy within 120 s")
                time.sleep(0.05)
        print("both replicas ready (whole load of the policy) after %.1f s" % (time.monotonic() - started))

        print("== single writes, the command's whole run (5 each; median, max)")
        def grant(verb, n, secret):
            return ["grant", verb, "bench-%d" % n, "--project", "proj-7", "--type", "service",
                    "--id", "bench-%d" % n, "--env", "X=%s" % secret]

        writes = [
            ("secret put (21 grants use it)", [(["secret", "put", "p7_api_key"], b"bench-value")] * 5),
            ("grant add (exact selector)", [(grant("add", n, "p7_api_key"), b"") for n in range(5)]),
            ("grant put (replacing one)", [(grant("put", n, "p8_api_key"), b"") for n in range(5)]),
            ("grant rm", [(["grant", "rm", "bench-%d" % n], b"") for n in range(5)]),
            ("secret put (5,000 grants use it)",
             [(["secret", "put", "shared_db_password"], ("bench-pw-%d-%d" % (os.getpid(), n)).encode())
              for n in range(5)]),
        ]
        for label, runs in writes:
            times = []
            for args, stdin in runs:
                began = time.monotonic()
                ran = envoi(*args, stdin=stdin)
                times.append(time.monotonic() - began)
                if ran.returncode != 0:
                    sys.exit("%s failed: %s" % (label, ran.stderr.decode(errors="replace")))
            print("  %-34s median %8s  max %8s" % (label, ms(statistics.median(times)), ms(max(times))))

        # The writes above are still being applied (five patches of 5,000 grants each):
        # the latency below is that of changes made to replicas that are current.
        bearer = token("proj-7", "service", "bench-visible")
        last_password = "bench-pw-%d-4" % os.getpid()
        while not all(last_password in (replica.env_value(bearer, "DATABASE_URL") or "") for replica in replicas):
            time.sleep(0.05)
        print("== commit to visible on both replicas, %d changes of one secret, one at a time" % CHANGES)
        after_exit = [[], []]
        after_start = [[], []]
        for i in range(CHANGES):
            value = "visible-%d-%d" % (os.getpid(), i)
            began = time.monotonic()
            must("secret", "put", "p7_api_key", stdin=value.encode())
            committed = time.monotonic()
            seen = [None, None]
            while None in seen:
                for n, replica in enumerate(replicas):
                    if seen[n] is None and replica.env_value(bearer, "API_KEY") == value:
                        seen[n] = time.monotonic()
                if time.monotonic() - committed > 10:
                    sys.exit("change %d not visible on both replicas within 10 s" % i)
            for n in range(2):
                after_exit[n].append(seen[n] - committed)
                after_start[n].append(seen[n] - began)
        for n in range(2):
            print("  replica %d: after the command ended p50 %s p99 %s max %s; after it started p50 %s p99 %s"
                  % (n + 1, ms(pct(after_exit[n], 50)), ms(pct(after_exit[n], 99)), ms(max(after_exit[n])),
                     ms(pct(after_start[n], 50)), ms(pct(after_start[n], 99))))

        print("== %.0f changes a second for %.0f s, both replicas answering meanwhile" % (RATE, SECONDS))
        stop = threading.Event()
        answered = [0, 0]
        failed = [0, 0]
        tokens = [token("proj-%d" % p, "service", "bench-load") for p in range(50)]

        def load(n):
            replica = Replica.__new__(Replica)
            replica.port, replica.conn = PORTS[n], None
            k = 0
            while not stop.is_set():
                # A steady stream (LOAD_PAUSE_MS between requests, 5 by default), not a
                # flood: the writers' processes need the machine's two cores too.
                time.sleep(LOAD_PAUSE)
                status, _ = replica.get("/", tokens[k % 50])
                k += 1
                if status == 200:
                    answered[n] += 1
                else:
                    failed[n] += 1

        loaders = [threading.Thread(target=load, args=(n,)) for n in range(2)]
        for thread in loaders:
            thread.start()
        last = {}
        running = []
        refused = 0
        total = int(RATE * SECONDS)
        began = time.monotonic()
        for k in range(total):
            due = began + k / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            p = k % 50
            # The previous write of this secret (2.5 s ago) commits first: the last value
            # written is the one that must serve.
            if k >= 50:
                running[k - 50].wait()
            value = "sustained-%d-%d" % (os.getpid(), k)
            last[p] = value
            running.append(subprocess.Popen([ENVOI, "--config", CONFIG, "secret", "put", "p%d_api_key" % p],
                                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE))
            running[-1].stdin.write(value.encode())
            running[-1].stdin.close()
        errors = {}
        for process in running:
            err = process.stderr.read().decode(errors="replace").strip()
            if process.wait() != 0:
                refused += 1
                errors[err] = errors.get(err, 0) + 1
        all_committed = time.monotonic()
        print("  %d changes written in %.1f s (%d failed)" % (total, all_committed - began, refused))
        for err, times in sorted(errors.items(), key=lambda e: -e[1])[:3]:
            print("    %d× %s" % (times, err[:300]))
        deadline = time.monotonic() + 10
        visible = [False, False]
        while not all(visible) and time.monotonic() < deadline:
            for n, replica in enumerate(replicas):
                visible[n] = all(
                    replica.env_value(tokens[p], "API_KEY") == last[p] for p in range(50))
            time.sleep(0.02)
        stop.set()
        for thread in loaders:
            thread.join()
        print("  every last value visible on both replicas: %s, %.0f ms after the last commit"
              % (all(visible), (time.monotonic() - all_committed) * 1000))
        for n in range(2):
            print("  replica %d: %d requests answered, %d failed" % (n + 1, answered[n], failed[n]))
        for n, replica in enumerate(replicas):
            print("  replica %d resident memory: %d MiB" % (n + 1, replica.rss_mib()))
    finally:
        for replica in replicas:
            replica.process.terminate()
            replica.process.wait()


if __name__ == "__main__":
    main()
