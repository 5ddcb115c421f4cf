"""The trust boundary of distributed runs, on real Ray processes: the cluster that `spikeroll train
--workers K` starts listens on loopback only, and joining a cluster with `--ray-address` warns when
Ray's token authentication is off.

Sockets are read from /proc (no psutil): for each process of the run, the inodes of its open socket
descriptors, looked up in its network namespace's /proc/PID/net/{tcp,tcp6,udp,udp6}. Processes are
the driver this test started and every process below it, and are ended by those PIDs, never by name.
"""

import ipaddress
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

from spikeroll.training.distributed import token_auth_enabled  # noqa: E402

from test_distributed import cli, descendants, kill_tree  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")
LOOPBACK = {"127.0.0.1", "::1"}
TCP_LISTEN, UDP_UNCONNECTED = "0A", "07"  # socket states in /proc/net/tcp and /proc/net/udp
# a short digits run: Ray workers from its first generation to its last
RUN = ["--hidden", "16", "--population", "32", "--chunk-pairs", "4", "--batch-size", "32", "--eval-every", "1000",
       "--seed", "3", "--device", "cpu", "--threads-per-worker", "1", "--quiet"]


def address(hex_address: str) -> tuple[str, int]:
    """'0100007F:1F90' (as /proc/net/tcp writes it) -> ('127.0.0.1', 8080); an IPv4-mapped IPv6
    address (::ffff:127.0.0.1, a dual-stack socket bound to an IPv4 address) reads as the IPv4 one."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # the kernel prints each 32-bit word in host byte order (little-endian here)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def process_name(pid: int) -> str:
    """The process's title (Ray's workers and agents set one, e.g. ray::RuntimeEnvAgent) or program."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    name = os.path.basename(args[0].decode(errors="replace"))
    if name.startswith("python"):  # python -m spikeroll.cli, python .../dashboard/agent.py
        name = " ".join([name, *(os.path.basename(a.decode(errors="replace")) for a in args[1:3] if a)])
    return name


def open_ports(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of each socket of `pid` that accepts connections or datagrams from
    others: TCP in LISTEN, UDP bound and unconnected. Empty for a process that has gone."""
    try:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
        found = []
        for table, state in (("tcp", TCP_LISTEN), ("tcp6", TCP_LISTEN), ("udp", UDP_UNCONNECTED),
                             ("udp6", UDP_UNCONNECTED)):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == state and fields[9] in inodes:
                    found.append((table.rstrip("6"), *address(fields[1])))
        return found
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def test_address_decoding():
    """The /proc encoding, checked against sockets this test opens itself."""
    with socket.socket() as four, socket.socket(socket.AF_INET6) as six:
        four.bind(("127.0.0.1", 0))
        four.listen()
        six.bind(("::1", 0))
        six.listen()
        ports = open_ports(os.getpid())
        assert ("tcp", "127.0.0.1", four.getsockname()[1]) in ports
        assert ("tcp", "::1", six.getsockname()[1]) in ports
    assert address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert address("0000000000000000FFFF00000100007F:0050") == ("127.0.0.1", 80)  # ::ffff:127.0.0.1
    assert address("00000000000000000000000000000000:0050") == ("::", 80)


def test_workers_cluster_listens_on_loopback_only(tmp_path):
    """`spikeroll train --workers 2`: every socket that any process of the run (the driver, the GCS,
    the raylet, the agents, the two workers) opens for others is on 127.0.0.1 or ::1."""
    log = tmp_path / "driver.log"
    args = cli("train", *RUN, "--generations", "40", "--workers", "2", "--out", str(tmp_path / "run"))
    driver = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    sockets: set[tuple] = set()  # (pid, protocol, address, port)
    titles: dict[int, set[str]] = {}  # pid -> its titles (a Ray worker starts as ray::IDLE)
    try:
        deadline = time.monotonic() + 300
        while driver.poll() is None:  # sampled all through the run: agents and workers start late
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            for pid in [driver.pid, *descendants(driver.pid)]:
                ports = open_ports(pid)
                try:
                    title = process_name(pid)
                except OSError:  # ended meanwhile
                    continue
                if ports:
                    sockets.update((pid, *port) for port in ports)
                    titles.setdefault(pid, set()).update({title} - {""})  # "": between fork and exec
            time.sleep(0.1)
    finally:
        if driver.poll() is None:
            kill_tree(driver)
    assert driver.returncode == 0, log.read_text()[-3000:]
    lines = {key: f"{' / '.join(sorted(titles[key[0]]))} (pid {key[0]}): {key[1]} {key[2]} port {key[3]}"
             for key in sorted(sockets)}
    listing = "\n".join(lines.values())
    print(f"open sockets of the run's processes:\n{listing}")
    exposed = [line for (_, _, host, _), line in lines.items() if host not in LOOPBACK]
    assert not exposed, "sockets open beyond loopback:\n" + "\n".join(exposed)
    # the check saw the processes it is about (each has a server socket): not vacuous
    seen = set().union(*titles.values())
    for component in ("gcs_server", "raylet", "ray::RuntimeEnvAgent"):
        assert component in seen, f"{component} opened no socket that this test saw:\n{listing}"
    workers = {pid for pid, names in titles.items() if any(name.startswith("ray::Worker") for name in names)}
    assert len(workers) == 2, listing
    assert driver.pid in titles, listing  # the driver's own gRPC server


@pytest.mark.parametrize("mode,expected", [("token", True), ("TOKEN", True), ("disabled", False), (None, False)])
def test_token_auth_detection(monkeypatch, mode, expected):
    """RAY_AUTH_MODE decides, as it does for Ray's own processes; unset means no token."""
    if mode is None:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    else:
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
    assert token_auth_enabled() is expected


def free_port():
    """A TCP port that nothing listens on now (for the test cluster's GCS)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["disabled", "token"])
def test_joining_warns_when_token_auth_is_off(tmp_path, mode):
    """A head started with RAY_AUTH_MODE=`mode` (on loopback, its Ray folder its own; with a fresh
    token when "token"); the driver, with the same settings, joins it with --ray-address and
    finishes. Without a token it says so once on stderr; with one it says nothing."""
    port = free_port()
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps 127.0.0.1 as it is (see start_local_ray): the head's node
    # address in `ray start`, and the address the driver dials in ray.init (else both become eth0's)
    env = {**os.environ, "RAY_AUTH_MODE": mode, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_AUTH_TOKEN", None)
    if mode == "token":
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    temp_dir = tempfile.mkdtemp(prefix="srray", dir="/tmp")  # short: Unix socket paths must fit 107 bytes
    head_log = tmp_path / "head.log"
    head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--num-cpus", "1", "--include-dashboard=false", "--disable-usage-stats",
                             "--temp-dir", temp_dir, "--block"],
                            env=env, stdout=head_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in head_log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, head_log.read_text()[-3000:]
            time.sleep(0.2)
        result = subprocess.run(cli("train", *RUN, "--generations", "1", "--workers", "1", "--ray-address",
                                    f"127.0.0.1:{port}", "--out", str(tmp_path / "run")),
                                env=env, capture_output=True, text=True, timeout=240)
    finally:
        kill_tree(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "without token authentication" in line]
    expected = [f"spikeroll: joined the Ray cluster at 127.0.0.1:{port} without token authentication "
                "(RAY_AUTH_MODE is not 'token'): anyone who can reach its ports can run code on it; "
                "see docs/distributed.md"]
    assert warnings == (expected if mode == "disabled" else []), result.stderr[-3000:]
