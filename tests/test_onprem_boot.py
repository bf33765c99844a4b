"""`cloud: onprem` against real SSH servers: two hosts booted with systemd-nspawn (the boot test's harness,
tests/test_boot.py), each running Debian's openssh-server with a host key of its own, on a private network.

The stack's program runs under the mock engine, which records each HostFiles resource's inputs exactly as
the engine hands them to its dynamic provider; the test then does what `pulumi up` would with them, in the
order of their dependencies: the provider's create over real SSH with the real host keys pinned, then update
(a rolling change), then delete. What the hosts run is checked as a cloud node is: /healthz, the `openai`
client through the front gateway, allowedCidrs at the front gateway, and after removal nothing of llm-deploy
left. GPUs and Docker are the boot test's stand-ins (tests/boot/).

Marker `boot`; root, debootstrap, systemd-container and the network to Debian's archive (openssh-server).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from pulumi.runtime import MockResourceArgs

from bootstrap import BootTarget, InlineSecrets
from components.onprem.delivery import HostFilesProvider
from infra import ssh
from infra.cli import offline
from infra.config import RawConfig
from tests.helpers import MODELS, USER_API_KEY
from tests.test_boot import (  # noqa: F401
    CACHE,
    STUBS,
    Container,
    NodeSpec,
    connect,
    http,
    in_netns,
    network,
    rootfs,
    service_stand_in_files,
    stand_ins,
)

pytestmark = pytest.mark.boot

HOST_FILES = "pulumi-python:dynamic/onprem:HostFiles"
ADDRESSES = ("10.77.0.1", "10.77.0.2")
FRONT = f"http://{ADDRESSES[0]}:8880"
# What must be as it was after removal: llm-deploy's own trees, and what its bootstrap changes on a host.
WATCHED = ("etc", "usr/local", "opt", "var/lib/llm-deploy", "var/log/llm-deploy", "lib/systemd/system", "usr/share/keyrings")
VOLATILE = ("etc/ld.so.cache", "etc/machine-id", "etc/.pwd.lock", "etc/ssh/ssh_host_", "etc/apt/apt.conf.d/01autoremove-kernels")


@pytest.fixture(scope="session")
def sshd_rootfs(rootfs):  # noqa: F811 (the boot test's fixture)
    """The boot test's root filesystem with Debian's openssh-server (without host keys: each host makes its own)."""
    path = CACHE / f"{rootfs.name}-sshd"
    if not (path / ".complete-sshd").exists():
        building = CACHE / f"building-sshd-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(building)], check=True)
        shutil.copy("/etc/resolv.conf", building / "etc/resolv.conf")
        policy = building / "usr/sbin/policy-rc.d"  # no service starts inside the chroot
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"]):
            done = subprocess.run(["chroot", str(building), *command], capture_output=True, text=True, check=False,
                                  env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"})
            assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        policy.unlink()
        for key in (building / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (building / ".complete-sshd").write_text("openssh-server\n")
        shutil.rmtree(path, ignore_errors=True)
        building.rename(path)
    return path


def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair made by OpenSSH's ssh-keygen at PATH; the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


def prepare_host(name: str, address: str, image: Path, stand_ins: dict, where: Path, netns: str, client_key: str) -> tuple[Container, str]:  # noqa: F811
    """A GPU server as a team has one: its OS with the NVIDIA driver and toolkit, nginx installed but off, no
    Docker (the bootstrap installs it from the local archive), sshd with its own host key and the test's key
    for root. Cloud-init is off: nothing boots from user-data here. Returns the container and its host key."""
    root = where / name / "root"
    root.parent.mkdir(parents=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(image), str(root)], check=True)
    for marker in root.glob(".complete*"):
        marker.unlink()
    (root / "etc/cloud/cloud-init.disabled").touch()
    # nginx installed but off, as `systemctl disable nginx` leaves it (its systemd and SysV links)
    subprocess.run(["chroot", str(root), "systemctl", "disable", "nginx"], check=True, capture_output=True)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/archive.list").write_text("deb [trusted=yes] file:/opt/boot-stub/archive ./\n")
    shutil.copytree(stand_ins["archive"], root / "opt/boot-stub/archive")
    for path, content in service_stand_in_files().items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_bytes(content)
    (root / "etc/boot-stub").mkdir()
    (root / "etc/boot-stub/gpu.json").write_text(json.dumps(
        {"model": "L40S", "count": 1, "memory_mib": 46068, "driver": "580.95.05", "branch": 580, "preinstalled": True}))
    shutil.copy(STUBS / "nvidia-smi", root / "usr/local/sbin/nvidia-smi")
    subprocess.run(["dpkg", f"--root={root}", "-i", *map(str, stand_ins["toolkit"].glob("*.deb"))], check=True, capture_output=True)
    host_key = keygen(root / "etc/ssh/ssh_host_ed25519_key", name)
    (root / "etc/ssh/sshd_config.d/llm-deploy-test.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n")
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (root / "root/.ssh/authorized_keys").write_text(client_key + "\n")
    (root / "root/.ssh/authorized_keys").chmod(0o600)
    spec = NodeSpec(name, None, BootTarget("onprem", image_has_driver=True), InlineSecrets(USER_API_KEY), USER_API_KEY, address=address)
    return Container(spec, root, netns, []), host_key


def snapshot(root: Path) -> dict[str, str]:
    """Path → kind, mode and (for a link) its target or (for a small file) its size, under WATCHED."""
    found = {}
    for top in WATCHED:
        for path in sorted((root / top).rglob("*")) if (root / top).exists() else ():
            relative = str(path.relative_to(root))
            if relative.startswith(VOLATILE) or "__pycache__" in relative:
                continue
            stat = path.lstat()
            found[relative] = f"{stat.st_mode:o} {os.readlink(path) if path.is_symlink() else stat.st_size if path.is_file() else ''}"
    return found


class RawInputs(offline.RecordingMocks):
    """The offline engine's mocks, also keeping each resource's inputs as its provider receives them (secrets in)."""

    raw: ClassVar[dict[str, dict]] = {}

    def new_resource(self, args: MockResourceArgs):
        RawInputs.raw[args.name] = {k: v for k, v in offline._unwrap(args.inputs).items() if k != "__provider"}
        return super().new_resource(args)


def host_files(values: dict, monkeypatch) -> tuple[list[str], dict[str, dict]]:
    """The HostFiles inputs of the stack's program (names in dependency order: the nodes host after host, the front
    gateway last)."""
    monkeypatch.setattr(offline, "RecordingMocks", RawInputs)
    RawInputs.raw = {}
    result = offline.run_offline(RawConfig("onprem-boot", "tests/Pulumi.onprem-boot.yaml", values, {"apiKey", "sshPrivateKey"}))
    names = sorted((r["name"] for r in result.resources if r["type"] == HOST_FILES), key=lambda n: (n.endswith("-front"), n))
    return names, {n: RawInputs.raw[n] for n in names}


def ssh_up(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as connection:
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(node: Container) -> None:
    deadline = time.monotonic() + 90
    while not in_netns(node.netns, ssh_up, node.spec.address):
        assert time.monotonic() < deadline, f"{node.spec.name}: sshd not up"
        time.sleep(0.5)


def openai_client(base: str):
    """The openai client as an application keeps one (its connections kept alive), without retries of its own."""
    from openai import OpenAI

    return OpenAI(base_url=f"{base}/v1", api_key=USER_API_KEY, max_retries=0, timeout=30)


def chat(base: str, stream: bool = False, through=None) -> str:
    """One chat completion, whole or streamed, by a new client or `through` the one given."""
    client = through or openai_client(base)
    messages = [{"role": "user", "content": "Hello there"}]
    if stream:
        chunks = client.chat.completions.create(model=MODELS["llm"], messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(model=MODELS["llm"], messages=messages).choices[0].message.content


def through_the_front(gateway: Container) -> None:
    """The openai client through the front gateway (chat, embeddings), rerank by POST; nothing without the key;
    a source outside allowedCidrs (127.0.0.1) refused by the front gateway itself."""

    def run() -> None:
        assert chat(FRONT) == "You said: Hello there"
        client = openai_client(FRONT)
        assert [m.id for m in client.models.list()] == [MODELS["llm"]]
        vectors = client.embeddings.create(model=MODELS["embedding"], input=["Paris", "Bananas"]).data
        assert len(vectors) == 2 and len(vectors[0].embedding) == 16
        query = {"query": "capital of France?", "texts": ["Bananas are yellow", "Paris is the capital of France"]}
        status, body = http("POST", f"{FRONT}/rerank", USER_API_KEY, json.dumps(query).encode())
        assert status == 200 and [r["index"] for r in json.loads(body)] == [1, 0], body
        assert http("POST", f"{FRONT}/v1/chat/completions", None, b"{}")[0] == 401
        assert http("GET", f"{FRONT}/healthz")[0] == 200
        assert http("GET", "http://127.0.0.1:8880/healthz")[0] == 403  # not in allowedCidrs

    in_netns(gateway.netns, run)


def healthz(node: Container, via: Container) -> int:
    return in_netns(via.netns, http, "GET", f"http://{node.spec.address}/healthz")[0]


def test_two_hosts_over_real_ssh_deploy_roll_refuse_a_wrong_key_and_are_left_as_they_were(
        sshd_rootfs, stand_ins, network, tmp_path_factory, monkeypatch, capsys):  # noqa: F811
    where = tmp_path_factory.mktemp("onprem")
    client_public = keygen(where / "deployer", "llm-deploy-boot-test")
    private_key = (where / "deployer").read_text()
    made = [prepare_host(f"onprem-{i}", a, sshd_rootfs, stand_ins, where, network(f"onprem-{i}"), client_public)
            for i, a in enumerate(ADDRESSES)]
    nodes = [node for node, _ in made]
    known_hosts = [f"{node.spec.address} {key}" for node, key in made]
    connect(*nodes)
    try:
        for node in nodes:
            node.boot()
        for node in nodes:
            wait_for_sshd(node)
        scenario(nodes, known_hosts, private_key, monkeypatch, capsys)
    finally:
        for node in nodes:
            node.stop()


def stack(known_hosts: list[str], private_key: str, max_model_len: int) -> dict:
    return {
        "cloud": "onprem",
        "hosts": [{"address": a} for a in ADDRESSES],  # GPUs read with nvidia-smi over SSH
        "sshKnownHosts": known_hosts,
        "sshPrivateKey": private_key,
        "apiKey": USER_API_KEY,
        "allowedCidrs": ["10.77.0.0/24"],
        "services": [
            {"name": "llm", "kind": "llm", "model": MODELS["llm"], "maxModelLen": max_model_len, "replicas": 2},
            {"name": "embedding", "kind": "embedding", "model": MODELS["embedding"]},
            {"name": "rerank", "kind": "rerank", "model": MODELS["rerank"]},
        ],
    }


def scenario(nodes: list[Container], known_hosts: list[str], private_key: str, monkeypatch, capsys) -> None:
    gateway, provider, report = nodes[0], HostFilesProvider(), {}
    before = {node.spec.name: snapshot(node.root) for node in nodes}

    def in_lan(function, *args):
        return in_netns(gateway.netns, function, *args)

    # GPUs detected over SSH at plan time, in the program's placement (the hosts name none)
    names, inputs = in_lan(host_files, stack(known_hosts, private_key, 8192), monkeypatch)
    assert names == ["onprem-boot-llm-embedding-rerank-0", "onprem-boot-llm-embedding-rerank-1", "onprem-boot-endpoint-front"]
    assert [inputs[n]["host"]["address"] for n in names] == [*ADDRESSES, ADDRESSES[0]]

    # a host key that is not the pinned one, and a host not pinned at all: refused before anything is sent
    swapped = dict(inputs[names[0]], known_hosts=[f"{ADDRESSES[0]} {known_hosts[1].split(' ', 1)[1]}"])
    with pytest.raises(ssh.SshError, match="is not the one sshKnownHosts pins: refused"):
        in_lan(provider.create, swapped)
    with pytest.raises(ssh.SshError, match="not found in known_hosts"):
        in_lan(provider.create, dict(inputs[names[0]], known_hosts=known_hosts[1:]))
    assert not (nodes[0].root / "etc/llm-deploy").exists()

    outs, started = {}, time.monotonic()
    for name in names:  # `pulumi up`: each after the resources it depends on
        created = in_lan(provider.create, inputs[name])
        outs[name] = created.outs
        if not name.endswith("-front"):
            assert healthz(nodes[names.index(name)], gateway) == 200  # create returned only once it was healthy
    report["deploy"] = time.monotonic() - started
    secret = nodes[0].run("stat", "-c", "%a %U", "/etc/llm-deploy/secrets.env").stdout.split()
    assert secret == ["600", "root"]
    assert USER_API_KEY not in json.dumps(outs[names[0]]["files"])
    through_the_front(gateway)

    # a rolling change: host after host drained, changed, serving again; the other one serving; no request
    # through the front gateway failing, whole or streamed
    names2, changed = in_lan(host_files, stack(known_hosts, private_key, 4096), monkeypatch)
    assert names2 == names
    failures, served, stop = [], [0], threading.Event()

    def keep_asking() -> None:
        kept = openai_client(FRONT)  # one client throughout, as an application has: the front gateway's reloads under it
        while not stop.is_set():
            try:
                assert chat(FRONT, stream=served[0] % 2 == 1, through=kept) == "You said: Hello there"
                served[0] += 1
            except Exception as error:  # noqa: BLE001 (counted, reported)
                failures.append(f"{time.monotonic() - started:.1f} s: {error!r}")
            time.sleep(0.2)

    started = time.monotonic()
    asker = threading.Thread(target=in_lan, args=(keep_asking,))
    asker.start()
    try:
        for index, name in enumerate(names[:2]):
            diff = provider.diff(name, outs[name], changed[name])
            assert diff.changes and not diff.replaces
            other = nodes[1 - index]
            assert healthz(other, gateway) == 200  # the previous host is healthy before this one changes
            outs[name] = in_lan(provider.update, name, outs[name], changed[name]).outs
            assert healthz(nodes[index], gateway) == 200
            assert "--max-model-len 4096" in nodes[index].read("/etc/llm-deploy/services/llm.conf").replace("'", "")
            progress = nodes[index].read("/var/log/llm-deploy/progress")
            assert "draining (rolling-change)" in progress and "drain      cancelled" in progress, progress[-1500:]
    finally:
        stop.set()
        asker.join()
    report["rolling change"] = time.monotonic() - started
    assert failures == [], f"{len(failures)} of {served[0] + len(failures)} requests failed during the rolling change: {failures[:3]}"
    assert not provider.diff(names[2], outs[names[2]], changed[names[2]]).changes  # the front gateway's files are the same

    with capsys.disabled():
        print(f"\n[onprem] two hosts over SSH: deployed in {report['deploy']:.0f} s, rolling change {report['rolling change']:.0f} s "
              f"({served[0]} requests through the front gateway, none failed)")

    # removal: the front gateway first, then each host; every host as it was before
    for name in reversed(names):
        in_lan(provider.delete, name, outs[name])
    for node in nodes:
        after = snapshot(node.root)
        added = sorted(set(after) - set(before[node.spec.name]))
        removed = sorted(set(before[node.spec.name]) - set(after))
        assert (added, removed) == ([], []), f"{node.spec.name}: left {added[:20]}, took {removed[:20]}"
        assert node.run("test", "-e", "/run/llm-deploy", check=False).returncode == 1  # the runtime state too (a tmpfs)
        assert node.run("systemctl", "list-unit-files", "--no-legend", "llm-deploy*", check=False).stdout.strip() == ""
        # None running, failed or in a job: each stopped. One whose file is gone may stay in systemd's memory as
        # `not-found inactive dead` until its garbage collection, which waits here on the containers' cgroups
        # (their kill answers EIO, see the unit's journal): neither installed nor running, gone at the next boot.
        loaded = node.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "llm-deploy*").stdout.splitlines()
        left = [line for line in loaded if line.split()[1:4] != ["not-found", "inactive", "dead"]]
        journals = [node.run("journalctl", "--no-pager", "-o", "short-monotonic", "-n", "40", "-u", line.split()[0], check=False).stdout
                    for line in left]  # fmt: skip
        assert left == [], f"{node.spec.name}: {left}; {journals}"
        assert node.run("systemctl", "is-enabled", "nginx", check=False).stdout.strip() == "disabled"

