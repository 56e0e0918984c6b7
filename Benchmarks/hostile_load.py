"""A hostile load on a real `tributary-engine serve` over loopback, measured: what 1,000 unauthenticated
connections and 10,000 queued inferences cost the engine (resident memory), how many it refuses, and how long a
fresh client waits for an answer meanwhile (issue 15: "a fresh client's request is still answered within a
second"). Every loop is bounded in count and time; the engine is stopped at the end.

    swift build -c release --product tributary-engine
    python3 Benchmarks/hostile_load.py [--engine .build/release/tributary-engine] [--connections 1000] [--requests 10000]

Prints one JSON object; docs/PERFORMANCE.md ("Hostile load") records the figures.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "protocol", "client"))
from tributary_client import HEADER, HELLO_MAGIC, Catalogue, Client, Codec, ServerError  # noqa: E402


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_health(port, token=""):
    """Seconds from connecting to the Health reply, for a fresh client."""
    start = time.monotonic()
    client = Client.connect("127.0.0.1", port, token=token, timeout=10)
    client.call("Health", {})
    client.close()
    return time.monotonic() - start


def closed_within(sockets, seconds):
    """How many of `sockets` the server closed (EOF or reset) within `seconds`."""
    deadline = time.monotonic() + seconds
    closed = set()
    while time.monotonic() < deadline and len(closed) < len(sockets):
        for i, sock in enumerate(sockets):
            if i in closed:
                continue
            try:
                sock.setblocking(False)
                data = sock.recv(1 << 16)
                if not data:
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.05)
    return len(closed)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default=os.path.join(ROOT, ".build", "release", "tributary-engine"))
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "tributary-base"))
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10000)
    args = parser.parse_args()
    codec = Codec(Catalogue.load())
    data = tempfile.mkdtemp(prefix="tributary-hostile-")
    engine = subprocess.Popen(
        [args.engine, "serve", "--port", "0", "--json", "--data", data, "--model", args.model],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    report = {}
    try:
        port = json.loads(engine.stdout.readline())["port"]
        time.sleep(0.5)
        report["rss_idle_mib"] = round(rss_mib(engine.pid), 1)
        report["health_idle_s"] = round(timed_health(port), 4)

        # 1. Headers announcing a 16 MiB HELLO: each refused from its length bytes and closed.
        oversized = []
        for _ in range(args.connections):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(HEADER.pack(1 << 24, 1, 0x01, 0, 0))
            oversized.append(sock)
        report["oversized_hellos_closed"] = closed_within(oversized, 10)
        report["rss_after_oversized_mib"] = round(rss_mib(engine.pid), 1)
        for sock in oversized:
            sock.close()

        # 2. Silent connections that never say HELLO: the oldest make room for new ones, the rest time out.
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.connections)]
        time.sleep(0.5)
        report["rss_with_silent_mib"] = round(rss_mib(engine.pid), 1)
        report["health_beside_silent_s"] = round(timed_health(port), 4)
        report["silent_closed_within_1s"] = closed_within(silent, 1)
        for sock in silent:
            sock.close()

        # 3. Requests queued without reading a reply: anonymous inferences on 64 requests per connection.
        per_connection = 64
        flood = []
        sent = 0
        infer = {
            "adapter": None, "prompt": "Leek soup", "max_tokens": 64, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
            "seed": 0, "stop": [], "method": "off", "top_records": 0, "fee": 0, "idempotency_key": "",
        }
        start = time.monotonic()
        while sent < args.requests:
            client = Client.connect("127.0.0.1", port, timeout=10)
            count = min(per_connection, args.requests - sent)
            client.sock.sendall(b"".join(codec.encode_frame("Infer", infer, request_id=i + 1) for i in range(count)))
            client.pending = {i + 1: [] for i in range(count)}
            sent += count
            flood.append(client)
        report["flood_sent_s"] = round(time.monotonic() - start, 3)
        report["rss_with_flood_mib"] = round(rss_mib(engine.pid), 1)
        # A fresh contributor's inference meanwhile: sign up, then a short generation to its InferEnd.
        start = time.monotonic()
        fresh = Client.connect("127.0.0.1", port, timeout=10)
        token = fresh.call("SignUp", {"display_name": "fresh"})[1]["token"]
        fresh.close()
        fresh = Client.connect("127.0.0.1", port, token=token, timeout=10)
        frames = list(fresh.stream("Infer", dict(infer, max_tokens=8)))
        report["fresh_inference_s"] = round(time.monotonic() - start, 4)
        report["fresh_inference_tokens"] = sum(1 for name, _ in frames if name == "Token")
        report["health_beside_flood_s"] = round(timed_health(port), 4)
        # What the flood got back: served to their end, or refused overloaded.
        served = refused = other = 0
        for client in flood:
            client.sock.settimeout(60)
            for request_id in list(client.pending):
                try:
                    for _ in client.frames(request_id):
                        pass
                    served += 1
                except ServerError as error:
                    refused += error.code == 400
                    other += error.code != 400
                except (OSError, ConnectionError):
                    other += 1
                    break
            client.close()
        report.update(flood_served=served, flood_overloaded=refused, flood_other=other)
        report["rss_after_flood_mib"] = round(rss_mib(engine.pid), 1)
    finally:
        engine.terminate()
        engine.wait(timeout=30)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
