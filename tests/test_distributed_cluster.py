"""A two-node Ray cluster on this machine: a node removed mid-run, the run bit-identical anyway.

Best as two hosts: network namespaces joined by a veth pair (192.0.2.1 and 192.0.2.2, TEST-NET-1
addresses that exist only inside these namespaces), `ray start --head` in one and
`ray start --address` in the other, the driver (`spikeroll train --ray-address`) beside the head.
Where namespaces cannot be made (no root, no `ip`), the fallback is two `ray start` processes on
127.0.0.1; the test's output names the one it used. Processes are ended by the PIDs this test
started (and their descendants), never by name.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from test_distributed import assert_identical, cli, cli_args, digits, kill_tree, reference  # noqa: E402,F401

RAY = str(Path(sys.executable).parent / "ray")


def sh(*args):
    """Run a command, capturing its output; never raises on failure."""
    return subprocess.run(args, capture_output=True, text=True)


def make_namespaces(tag):
    """Two namespaces joined by a veth pair; returns (command prefix per host, address per host)."""
    a, b = f"sra{tag}", f"srb{tag}"
    steps = [("ip", "netns", "add", a), ("ip", "netns", "add", b),
             ("ip", "link", "add", f"sr{tag}a", "type", "veth", "peer", "name", f"sr{tag}b"),
             ("ip", "link", "set", f"sr{tag}a", "netns", a), ("ip", "link", "set", f"sr{tag}b", "netns", b),
             ("ip", "-n", a, "addr", "add", "192.0.2.1/24", "dev", f"sr{tag}a"),
             ("ip", "-n", b, "addr", "add", "192.0.2.2/24", "dev", f"sr{tag}b"),
             ("ip", "-n", a, "link", "set", f"sr{tag}a", "up"), ("ip", "-n", b, "link", "set", f"sr{tag}b", "up"),
             ("ip", "-n", a, "link", "set", "lo", "up"), ("ip", "-n", b, "link", "set", "lo", "up")]
    for step in steps:
        if sh(*step).returncode != 0:
            remove_namespaces(tag)
            return None
    return {"head": ["ip", "netns", "exec", a], "node": ["ip", "netns", "exec", b]}, \
        {"head": "192.0.2.1", "node": "192.0.2.2"}


def remove_namespaces(tag):
    """Delete the two namespaces of `tag` (and with them the veth pair); missing ones are fine."""
    for ns in (f"sra{tag}", f"srb{tag}"):
        sh("ip", "netns", "delete", ns)  # deleting a namespace removes its end of the veth pair


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, text, process, seconds=120):
    """Wait until `path` contains `text`, failing when `process` ends or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, path.read_text()[-3000:]
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path):
    """A head node and a worker node, 1 CPU each, with token authentication (a fresh token)."""
    tag = str(os.getpid() % 100000)
    made = make_namespaces(tag) if shutil.which("ip") and os.geteuid() == 0 else None
    if made:
        prefix, address, kind, port = *made, "network namespaces joined by a veth pair", 6379
    else:
        prefix, address = {"head": [], "node": []}, {"head": "127.0.0.1", "node": "127.0.0.1"}
        kind, port = "two ray start processes on 127.0.0.1 (no network namespaces here)", free_port()
    print(f"two-node cluster: {kind}")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = []
    # the cluster's own Ray folder (short: Unix socket paths must fit 107 bytes), so that its address
    # file never points a later `ray.init(address="auto")` at these namespaces' addresses
    temp_dir = tempfile.mkdtemp(prefix="srray", dir="/tmp")

    def start(host, *args):
        log = tmp_path / f"{host}.log"
        process = subprocess.Popen([*prefix[host], RAY, "start", "--node-ip-address", address[host], "--num-cpus", "1",
                                    "--disable-usage-stats", "--block", *args], env=env, stdout=log.open("w"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        wait_for(log, "Ray runtime started", process)
        return process

    try:
        head = start("head", "--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp_dir)
        node = start("node", "--address", f"{address['head']}:{port}")
        yield {"prefix": prefix, "address": f"{address['head']}:{port}", "env": env, "head": head, "node": node,
               "kind": kind}
    finally:
        for process in reversed(started):
            kill_tree(process)
        if made:
            remove_namespaces(tag)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_node_removed_mid_run(cluster, reference, tmp_path):  # noqa: F811 (the imported fixture)
    """Two workers, one per node; the worker node's processes are SIGKILLed after generation 1:
    its unit in flight is re-run on the head's worker and the run ends as the single-process one."""
    out = tmp_path / "run"
    args = cli_args({"workers": 2}, out) + ["--ray-address", cluster["address"], "--worker-timeout", "120"]
    log = tmp_path / "driver.log"
    driver = subprocess.Popen([*cluster["prefix"]["head"], *cli(*args)], env=cluster["env"], stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        metrics = out / "metrics.jsonl"
        while len(metrics.read_text().splitlines() if metrics.exists() else []) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        kill_tree(cluster["node"])  # the machine is gone: its raylet, object store and worker
        assert driver.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            kill_tree(driver)
    assert "Ray worker" in log.read_text() and "lost" in log.read_text()  # the node's worker had work
    seconds = [round(json.loads(line)["seconds"], 2) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"seconds per generation, the node removed after generation 1: {seconds}")
    assert_identical(out, reference)
