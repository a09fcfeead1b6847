#!/usr/bin/env python3
"""Silent and slow TLS clients against honest HTTPS requests (SPEC §6, issue 10 item 4).

Starts `envoi serve` with TLS (a self-signed ECDSA certificate made by openssl in a
temporary folder) and the default limits, then for each scenario opens N connections
from one address that stall in the handshake, and times honest HTTPS requests (each a
new connection: TCP, TLS handshake, an authenticated `GET /`, the answer read) from
127.0.0.1 while they are held. Prints p50, p99 and max per scenario, and p99 against the
same run without a flood.

Stalling modes:
  silent   connect and send nothing
  partial  send the first 10 bytes of a real ClientHello, then one more byte a second
  hello    send a whole ClientHello, then never answer the server's reply

Usage: python3 bench/tls_flood.py [--envoi target/release/envoi] [--seconds 4]
           [--clients 4] [--scenarios silent:600,silent:800,partial:600,hello:600,silent:800@127.0.0.1]
           [--env ENVOI__SERVER__KEY=VALUE ...]
A scenario is MODE:COUNT, optionally @ADDRESS for where the flood comes from (default
127.0.0.2; Linux routes all of 127/8 to loopback), or @ADDRESS+K for K addresses from
ADDRESS on, taken in turn (many clients rather than one). The flooder runs in its own process
and holds its connections (it does not reopen those the server closes). Needs python3,
openssl. Everything runs on loopback and stops by itself.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

KEY = "flood-bench-shared-secret"
HONEST_FROM = "127.0.0.1"


def jwt(key: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"projectId": "billing", "nfObjectType": "service", "nfObjectId": "api", "iat": now, "exp": now + 3600}
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def client_hello() -> bytes:
    """A real ClientHello, as Python's TLS client would send it first."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# ---------------------------------------------------------------------------- flooder


async def flood(port: int, mode: str, count: int, source: str) -> None:
    loop = asyncio.get_running_loop()
    # One ClientHello, made before connecting (making one takes milliseconds) and sent on
    # every connection: the server handles each as a handshake of its own.
    hello = client_hello() if mode != "silent" else b""
    # "127.0.0.2+20": twenty addresses from 127.0.0.2 on, taken in turn.
    first, _, many = source.partition("+")
    base = first.rsplit(".", 1)
    sources = [f"{base[0]}.{int(base[1]) + n}" for n in range(int(many or 1))]
    socks = []
    for n in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[n % len(sources)], 0))
        await loop.sock_connect(s, ("127.0.0.1", port))
        socks.append(s)
    for s in socks:
        try:
            if mode == "partial":
                s.send(hello[:10])
            elif mode == "hello":
                s.send(hello)
        except OSError:
            pass  # closed by the server already
    print("ready", flush=True)
    sent = 10
    while True:
        await asyncio.sleep(1)
        if mode == "partial":
            for s in socks:
                try:
                    s.send(hello[sent : sent + 1])
                except OSError:
                    pass
            sent += 1


# ---------------------------------------------------------------------------- honest side


def tls_context(ca: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def one_request(port: int, ctx: ssl.SSLContext, token: str, timeout: float) -> float:
    started = time.monotonic()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                                local_addr=(HONEST_FROM, 0)),
        timeout,
    )
    try:
        writer.write(
            f"GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answer: {answer[:40]!r}")
    return time.monotonic() - started


async def honest(port: int, ca: str, seconds: float, clients: int) -> tuple[list[float], int]:
    ctx = tls_context(ca)
    token = jwt(KEY)
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        while time.monotonic() < stop:
            try:
                latencies.append(await one_request(port, ctx, token, 30))
            except (OSError, asyncio.TimeoutError, RuntimeError, ssl.SSLError):
                errors += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_envoi(envoi: str, work: str, extra_env: list[str]) -> tuple[subprocess.Popen, int, str]:
    cert, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )
    policy = os.path.join(work, "policy.toml")
    with open(policy, "w") as f:
        f.write('[[grants]]\nproject = "billing"\nenv = { REGION = { value = "eu-west" } }\n')
    port = free_port()
    config = os.path.join(work, "envoi.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{port}"\n\n[server.tls]\ncert = "{cert}"\nkey = "{key}"\n\n'
            f'[auth]\nsecrets = ["{KEY}"]\n\n[store]\npath = "{policy}"\n\n[log]\nlevel = "warn"\n'
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI")}
    for item in extra_env:
        name, _, value = item.partition("=")
        env[name] = value
    log = open(os.path.join(work, "envoi.log"), "w")
    proc = subprocess.Popen([envoi, "--config", config, "serve"], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    ctx = tls_context(cert)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"envoi did not start: see {work}/envoi.log")
            time.sleep(0.1)
    return proc, port, cert


def server_state(pid: int, port: int, ca: str) -> str:
    """envoi's resident memory, and its count of cut handshakes if it has one."""
    with open(f"/proc/{pid}/status") as f:
        rss = next((line.split()[1] for line in f if line.startswith("VmRSS:")), "?")
    cut = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with tls_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                text = b""
                while chunk := tls.recv(65536):
                    text += chunk
        for line in text.decode(errors="replace").splitlines():
            if line.startswith("envoi_tls_handshakes_cut_total{"):
                cut.append(line.split('"')[1] + "=" + line.split()[-1])
    except OSError:
        pass
    return f"rss {int(rss) // 1024 if rss.isdigit() else rss} MiB, cut {' '.join(cut) or 'n/a'}"


def measure(label: str, port: int, ca: str, args, flood_spec: str | None, pid: int) -> float:
    flooder = None
    if flood_spec:
        mode_count, _, source = flood_spec.partition("@")
        mode, _, count = mode_count.partition(":")
        flooder = subprocess.Popen(
            [sys.executable, __file__, "--role", "flood", "--port", str(port), "--mode", mode,
             "--count", count, "--source", source or "127.0.0.2"],
            stdout=subprocess.PIPE, text=True,
        )
        if flooder.stdout.readline().strip() != "ready":
            sys.exit(f"the flooder for {flood_spec} did not get ready")
    try:
        latencies, errors = asyncio.run(honest(port, ca, args.seconds, args.clients))
        state = server_state(pid, port, ca)
    finally:
        if flooder:
            flooder.send_signal(signal.SIGKILL)
            flooder.wait()
    ms = [v * 1000 for v in latencies]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    print(f"{label:<28} requests {len(ms):>5}  errors {errors:>3}  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms"
          f"  max {max(ms):8.1f} ms  ({state})", flush=True)
    # Give the server a moment to see the flood's connections close before the next run.
    time.sleep(1.5)
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="drive", choices=["drive", "flood"])
    parser.add_argument("--envoi", default="target/release/envoi")
    parser.add_argument("--seconds", type=float, default=4.0, help="honest requests are sent for this long per run")
    parser.add_argument("--clients", type=int, default=4, help="honest clients, each one request at a time")
    parser.add_argument("--scenarios", default="silent:600,silent:800,partial:600,hello:600,silent:800@127.0.0.1")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for envoi, such as a limit")
    parser.add_argument("--port", type=int)
    parser.add_argument("--mode")
    parser.add_argument("--count", type=int)
    parser.add_argument("--source")
    args = parser.parse_args()
    if args.role == "flood":
        asyncio.run(flood(args.port, args.mode, args.count, args.source))
        return

    with tempfile.TemporaryDirectory(prefix="envoi-tls-flood.") as work:
        proc, port, ca = start_envoi(args.envoi, work, args.env)
        try:
            print(f"envoi {args.envoi} on 127.0.0.1:{port}, honest requests from {HONEST_FROM}, "
                  f"{args.clients} clients for {args.seconds:g} s per run; env {args.env or 'defaults'}")
            base = measure("no flood", port, ca, args, None, proc.pid)
            results = []
            for spec in args.scenarios.split(","):
                results.append((spec, measure(spec, port, ca, args, spec, proc.pid)))
            base_after = measure("no flood (again)", port, ca, args, None, proc.pid)
            reference = max(base, base_after)
            print(f"p99 against the worse of the two runs without a flood ({reference:.1f} ms):")
            for spec, p99 in results:
                verdict = "ok" if p99 <= 2 * reference else "OVER 2x"
                print(f"  {spec:<26} {p99 / reference:6.2f}x  {verdict}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
