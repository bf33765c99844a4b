"""Boot every node kind for real: the user-data as the cloud delivers it, under the real cloud-init and systemd.

A Debian bookworm root filesystem (debootstrap, cached under ~/.cache keyed by its package list) boots
with `systemd-nspawn -b` in a network namespace made here (loopback only; the split stack's two nodes
get a veth pair between their namespaces). Cloud-init reads a NoCloud seed; the node tool, systemd units,
nginx and cloud-init modules are the real ones. Stand-ins (tests/boot/) exist only for what a container
cannot have: GPUs (`nvidia-smi`), the NVIDIA and Docker packages (a local apt repository of dummy .debs,
and NVIDIA's toolkit repository served over TLS), the clouds' secret stores and metadata services (token
mode, as strict as the clouds'), the CloudWatch agent (a signed stand-in package whose agent checks its
configuration and scrapes the services), and `docker`, which checks every vLLM/TEI argument against the
pinned versions' options and runs a server speaking their API (and their /metrics).

Marker `boot`; needs root, debootstrap and systemd-container. Skips locally without them; fails under CI.
"""

from __future__ import annotations

import base64
import concurrent.futures
import ctypes
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest

from bootstrap import BootTarget, InlineSecrets, SecretStore, cloudwatch, encode_user_data, render_user_data
from bootstrap.services import CACHE_DIR, DRIVER_BRANCH, replica_services
from infra import clouds
from infra.data_files import DATA_DIR
from infra.models import checkpoint_disk_gb, find_model
from infra.node_storage import node_group
from infra.plan import NodeGroup
from infra.service_metrics import ASG_DIMENSION, ENGINES, NAMESPACE, metric
from tests.helpers import AWS_LOG_GROUP, FAKE_API_KEY, FAKE_HF_TOKEN, MODELS, USER_API_KEY, group, missing, offer, ollama_svc, svc

pytestmark = pytest.mark.boot

STUBS = Path(__file__).parent / "boot"
SUITE = "bookworm"
# What the image brings besides debootstrap's minimal base. cloud-init needs python3-cffi-backend, which debootstrap leaves out.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "cloud-init", "python3-cffi-backend", "nginx", "curl", "ca-certificates",
    "gnupg", "iproute2", "e2fsprogs", "procps", "kmod", "locales",
)  # fmt: skip
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm-deploy-boot"
GENERATED_KEY, USER_KEY, HF_TOKEN = FAKE_API_KEY, USER_API_KEY, FAKE_HF_TOKEN  # 40 characters as generated; 128 as a user's
HEALTHY_WITHIN = 240  # seconds from nspawn's start to /healthz 200
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)


def require(ok: bool, message: str) -> None:
    if not ok:
        missing(message)


# --- the plan of each node kind -------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    name: str
    group: NodeGroup
    target: BootTarget
    secrets: SecretStore | InlineSecrets
    api_key: str
    upstreams: dict[str, str] | None = None
    address: str | None = None  # on the split stack's private network
    volume: bool = False  # a cache volume bound at the cache directory
    nvme: str | None = None  # a stand-in for the instance-store NVMe the image mounts here
    notice: int = 0  # which of its cloud's notices (clouds.<cloud>.metadata.notices) the test sends at the end

    def user_data(self, agent_key: str) -> bytes:
        """The bytes the instance's metadata service hands cloud-init, from what the cloud API is given.

        AGENT_KEY: the fingerprint of the key the stand-in CloudWatch agent package is signed with, in place
        of AWS's (the one fact of the data the test must change: it cannot sign with AWS's key)."""
        agent = cloudwatch.metrics_agent
        with mock.patch.object(cloudwatch, "metrics_agent", lambda name: replace(agent(name), key_fingerprint=agent_key)):
            text = render_user_data(self.group, self.target, self.secrets, self.upstreams)
        if clouds.get(self.group.cloud).gzip_user_data:
            sent = encode_user_data(text)  # the launch template / scaling configuration field
            delivered = base64.b64decode(sent)  # the API takes base64; the metadata service serves the bytes
            assert gzip.decompress(delivered).decode() == text
            return delivered
        return text.encode()


def placed(name: str, node_offer, *services) -> NodeGroup:
    """A node group sized by the real placement code (disks, local NVMe) for its services' real checkpoints."""
    return node_group(name, node_offer, 1, services, [checkpoint_disk_gb(find_model(s.model)) for s in services])


AWS_SSM = SecretStore("aws-ssm", "us-east-1", "/llm-deploy/boot/api-key", "/llm-deploy/boot/hf-token")
OOS = SecretStore("alicloud-oos", "ap-southeast-1", "llm-deploy-boot-api-key")

KINDS: dict[str, tuple[NodeSpec, ...]] = {
    # AWS GPU on the driver image (DLAMI: driver, Docker and the toolkit in the image, the instance's
    # 250 GB NVMe mounted at /opt/dlami/nvme); all three services share one GPU.
    "aws-gpu": (NodeSpec(
        "aws-gpu", placed("all", offer("aws", "g6e.xlarge", "L40S", 1, "89", 48), svc("llm", gpu_memory_utilization=0.7), svc("embedding"), svc("rerank")),
        BootTarget("aws", image_has_driver=True, metrics_log_group=AWS_LOG_GROUP), AWS_SSM, USER_KEY, nvme="/opt/dlami/nvme",
    ),),
    # AWS, four GPUs and an LLM that needs one: four vLLM replicas, each on its own GPU and port, behind
    # the node's nginx upstream (placement's layout for Llama-8B-class models on g6.12xlarge).
    "aws-gpu-replicas": (NodeSpec(
        "aws-gpu-replicas", placed("llm", offer("aws", "g6.12xlarge", "L4", 4, "89", 24), svc("llm", replicas_per_node=4)),
        BootTarget("aws", image_has_driver=True, metrics_log_group=AWS_LOG_GROUP), AWS_SSM, USER_KEY, nvme="/opt/dlami/nvme",
    ),),
    # Alibaba Cloud GPU on plain Ubuntu: installs the driver, reboots, resumes; Docker and the toolkit from their repositories.
    "alicloud-gpu": (NodeSpec(
        "alicloud-gpu", group("all", offer("alicloud", "ecs.gn7i-c8g1.2xlarge", "A10", 1, "86", 24), svc("llm", gpu_memory_utilization=0.7), svc("embedding"), svc("rerank")),
        BootTarget("alicloud", image_has_driver=False), OOS, GENERATED_KEY,
    ),),
    # A CPU node (plain Ubuntu 24.04 AMI), the whole stack on CPU: Ollama for the LLM (its model pulled at boot),
    # TEI's CPU image for the encoders, Docker from the archive.
    "aws-cpu": (NodeSpec(
        "aws-cpu", group("all", offer("aws", "m7i.2xlarge", None, 0, None), ollama_svc("cpu"), svc("embedding", accelerator="cpu"),
                         svc("rerank", accelerator="cpu")),
        BootTarget("aws", image_has_driver=False, os_release="ubuntu-24.04", metrics_log_group=AWS_LOG_GROUP), AWS_SSM, USER_KEY,
        notice=1,  # scaled in
    ),),
    # DigitalOcean split stack: the LLM droplet (GPU image, cache volume) proxies embeddings and rerank to a CPU droplet.
    "digitalocean-split": (
        NodeSpec(
            "do-llm", group("llm", offer("digitalocean", "gpu-l40sx1-48gb", "L40S", 1, "89", 48), svc("llm")),
            BootTarget("digitalocean", image_has_driver=True, data_device="/dev/disk/by-id/scsi-0DO_Volume_llm-boot"),
            InlineSecrets(GENERATED_KEY, HF_TOKEN), GENERATED_KEY,
            upstreams={"embedding": "http://10.77.0.2", "rerank": "http://10.77.0.2"}, address="10.77.0.1", volume=True,
        ),
        NodeSpec(
            "do-encoders", group("encoders", offer("digitalocean", "c-8", None, 0, None), svc("embedding", accelerator="cpu"), svc("rerank", accelerator="cpu")),
            BootTarget("digitalocean", image_has_driver=False), InlineSecrets(GENERATED_KEY), GENERATED_KEY, address="10.77.0.2",
        ),
    ),
}  # fmt: skip


# --- the root filesystem ----------------------------------------------------------------------------


def debian_mirror() -> str:
    """The machine's own Debian mirror (deb822 or one-line sources), for the suite's main archive."""
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        text = path.read_text() if path.exists() else ""
        for stanza in text.split("\n\n"):
            uri = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            if uri and "security" not in uri[1] and re.search(rf"^Suites:.*\b{SUITE}\b(?!-)", stanza, re.MULTILINE):
                return uri[1]
        if line := re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", text, re.MULTILINE):
            return line[1]
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def rootfs() -> Path:
    require(os.geteuid() == 0, "the boot test runs containers: it needs root")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "unshare", "ip", "dpkg-deb", "gpg", "openssl"):
        require(shutil.which(tool) is not None, f"{tool} is not installed (bash scripts/test.sh installs it)")
    mirror = debian_mirror()
    key = hashlib.sha256(f"{SUITE} {mirror} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    path = CACHE / f"rootfs-{SUITE}-{key}"
    if not (path / ".complete").exists():
        building = CACHE / f"building-{key}-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        started = time.monotonic()
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(building), mirror],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"debootstrap failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        # The cloud images' default locale, which cloud-init's locale module sets.
        locale_gen = building / "etc/locale.gen"
        locale_gen.write_text(locale_gen.read_text().replace("# en_US.UTF-8 UTF-8", "en_US.UTF-8 UTF-8"))
        subprocess.run(["chroot", str(building), "locale-gen"], check=True, capture_output=True)
        (building / ".complete").write_text(f"debootstrap {SUITE} from {mirror} in {time.monotonic() - started:.0f} s\n")
        shutil.rmtree(path, ignore_errors=True)
        building.rename(path)
    return path


# --- stand-in packages, keys and certificates -----------------------------------------------------------


def build_deb(where: Path, name: str, files: dict[str, tuple[bytes, int]], description: str) -> Path:
    tree = where / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0-boot\nArchitecture: all\nMaintainer: llm-deploy boot test <boot@localhost>\n"
        f"Description: boot-test stand-in: {description}\n"
    )
    for path, (content, mode) in files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    deb = where / f"{name}_1.0-boot_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return deb


def write_index(repo: Path) -> None:
    """A flat apt repository's Packages file for the .debs in REPO."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    (repo / "Packages").write_text("\n".join(stanzas))


def stub(name: str) -> tuple[bytes, int]:
    return (STUBS / name).read_bytes(), 0o755


DOCKER_UNIT = b"""[Unit]
Description=Docker stand-in daemon (boot test)

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    """The dummy .debs (Ubuntu's NVIDIA and Docker packages, NVIDIA's toolkit), a signing key and a TLS CA."""
    where = tmp_path_factory.mktemp("stand-ins")
    archive, toolkit = where / "archive", where / "toolkit"
    archive.mkdir()
    toolkit.mkdir()
    kernel = os.uname().release
    build_deb(archive, "docker.io", {"/usr/bin/docker": stub("docker"), "/lib/systemd/system/docker.service": (DOCKER_UNIT, 0o644)}, "Docker")
    build_deb(archive, f"nvidia-utils-{DRIVER_BRANCH}-server", {"/usr/bin/nvidia-smi": stub("nvidia-smi")}, "NVIDIA utilities")
    build_deb(archive, f"nvidia-headless-no-dkms-{DRIVER_BRANCH}-server", {}, "NVIDIA driver without DKMS")
    module = (b"", 0o644)
    build_deb(archive, f"linux-modules-nvidia-{DRIVER_BRANCH}-server-{kernel}", {f"/lib/modules/{kernel}/kernel/nvidia-{DRIVER_BRANCH}srv/nvidia.ko": module},
              "prebuilt NVIDIA module for the running kernel")  # fmt: skip
    write_index(archive)
    build_deb(toolkit, "nvidia-container-toolkit", {"/usr/bin/nvidia-ctk": stub("nvidia-ctk")}, "NVIDIA Container Toolkit")
    write_index(toolkit)
    gnupg = where / "gnupg"
    gnupg.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "llm-deploy boot test <boot@localhost>", "ed25519", "sign", "never"], check=True, capture_output=True)
    (toolkit / "gpgkey").write_bytes(subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True).stdout)
    packages = (toolkit / "Packages").read_bytes()
    (toolkit / "Release").write_text(
        f"Origin: boot-stub\nLabel: libnvidia-container\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
        f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    )
    subprocess.run([*gpg, "--clearsign", "-o", str(toolkit / "InRelease"), str(toolkit / "Release")], check=True, capture_output=True)
    tls = where / "tls"
    tls.mkdir()
    agent = cloudwatch.metrics_agent("cloudwatch")
    bucket = where / "cloudwatch"
    package = bucket / urlsplit(agent.package_url).path.lstrip("/")
    package.parent.mkdir(parents=True)
    unit = (b"[Unit]\nDescription=CloudWatch agent stand-in (boot test)\n\n[Service]\nExecStart=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent\n"
            b"Restart=always\n\n[Install]\nWantedBy=multi-user.target\n")
    build_deb(package.parent, "amazon-cloudwatch-agent", {
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl": stub("cloudwatch_agent.py"),
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent": stub("cloudwatch_agent.py"),
        "/opt/aws/amazon-cloudwatch-agent/bin/CWAGENT_VERSION": (agent.version.encode(), 0o644),
        "/etc/systemd/system/amazon-cloudwatch-agent.service": (unit, 0o644),
    }, "CloudWatch agent").rename(package)  # fmt: skip
    subprocess.run([*gpg, "--detach-sign", "-o", str(bucket / urlsplit(agent.signature_url).path.lstrip("/")), str(package)], check=True, capture_output=True)
    key = bucket / urlsplit(agent.key_url).path.lstrip("/")
    key.parent.mkdir(parents=True)
    key.write_bytes(subprocess.run([*gpg, "--export"], check=True, capture_output=True).stdout)
    listing = subprocess.run([*gpg, "--with-colons", "--fingerprint"], check=True, capture_output=True, text=True).stdout
    (where / "agent-key").write_text(next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")))
    names = f"DNS:nvidia.github.io,DNS:oos.ap-southeast-1.aliyuncs.com,DNS:{urlsplit(agent.package_url).hostname}"
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=llm-deploy boot test CA", "-days", "2"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=boot-stub"],
        ["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt", "-days", "2",
         "-extfile", "/dev/stdin"],
    ):  # fmt: skip
        subprocess.run(["openssl", *command], cwd=tls, check=True, capture_output=True, input=f"subjectAltName={names}\n".encode())
    return {"archive": archive, "toolkit": toolkit, "tls": tls, "cloudwatch": bucket, "agent-key": where / "agent-key"}


# --- containers ---------------------------------------------------------------------------------------


def in_netns(netns: str, function, *args):
    """Run FUNCTION in a thread that joined the network namespace: its sockets are made there."""
    outcome: dict = {}

    def run() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if LIBC.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 (handed to the caller's thread)
            outcome["error"] = error
        finally:
            os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def http(method: str, url: str, key: str | None = None, body: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


@dataclass
class Container:
    spec: NodeSpec
    root: Path
    netns: str
    binds: list[str]
    boots: list[int] = field(default_factory=list)  # nspawn exit codes, 133 = reboot
    thread: threading.Thread | None = None
    started: float = 0.0
    nspawn: int = 0
    first_answer: int = 0
    healthy_after: float | None = None
    metadata: Path | None = None  # the items of its cloud's metadata service (files), where it has one

    @property
    def console_log(self) -> Path:
        return self.root.parent / f"{self.spec.name}-console.log"

    def boot(self) -> None:
        """Boot in the background; a reboot from inside (exit 133) boots again, as the VM would."""
        console = self.console_log

        def loop() -> None:
            while True:
                with console.open("a") as log:
                    process = subprocess.Popen(
                        ["unshare", "--mount", "--propagation", "private", "systemd-nspawn", "--quiet", "--boot", "--directory", str(self.root),
                         f"--machine={self.spec.name}", "--register=no", "--keep-unit", "--console=pipe",
                         f"--network-namespace-path=/run/netns/{self.netns}", *self.binds],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        # The container's systemd on cgroup v2 alone: on this host's hybrid layout it otherwise
                        # falls back to v1, where it cannot tell when a unit's processes are gone.
                        env=os.environ | {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
                    )  # fmt: skip
                    self.nspawn = process.pid  # unshare execs systemd-nspawn: the same process
                    process.wait()
                self.boots.append(process.returncode)
                if process.returncode != 133:
                    return

        self.started = time.monotonic()
        self.first_answer, self.healthy_after = 0, None
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        threading.Thread(target=self.watch_healthz, daemon=True).start()

    def watch_healthz(self) -> None:
        """From the boot on: the first /healthz answer, and when it is first 200."""
        while time.monotonic() - self.started < HEALTHY_WITHIN:
            status = self.get("/healthz")
            self.first_answer = self.first_answer or status
            if status == 200:
                self.healthy_after = time.monotonic() - self.started
                return
            time.sleep(0.25)

    def leader(self, timeout: float = 60) -> int:
        """PID (on the host) of the container's systemd: systemd-nspawn's child."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.nspawn}/task/{self.nspawn}/children")
            for pid in children.read_text().split() if children.exists() else ():
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
                except OSError:
                    continue
            time.sleep(0.2)
        raise AssertionError(f"{self.spec.name}: no systemd running in the container")

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(["nsenter", "-t", str(self.leader()), "-a", *command], capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.spec.name}: {' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def read(self, path: str) -> str:
        file = self.root / path.lstrip("/")
        return file.read_text() if file.exists() else ""

    def stop(self) -> None:
        """SIGTERM to systemd-nspawn halts the container (what is left running after a failure)."""
        if self.thread and self.thread.is_alive():
            os.kill(self.nspawn, 15)
            self.thread.join(timeout=60)

    def poweroff(self) -> None:
        self.run("systemctl", "poweroff", check=False)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), f"{self.spec.name}: did not power off"
        assert self.boots[-1] == 0, f"{self.spec.name}: nspawn exited {self.boots[-1]}"

    def get(self, path: str, key: str | None = None) -> int:
        return in_netns(self.netns, http, "GET", f"http://127.0.0.1{path}", key)[0]

    def wait_healthy(self) -> tuple[int, float]:
        """(the first /healthz answer, seconds from boot to 200)."""
        while self.healthy_after is None and time.monotonic() - self.started < HEALTHY_WITHIN + 5:
            time.sleep(0.25)
        if self.healthy_after is None:
            raise AssertionError(f"{self.spec.name}: /healthz not 200 within {HEALTHY_WITHIN} s (first answer {self.first_answer}, "
                                 f"nspawn exits {self.boots}); {self.where_it_stands()}")
        return self.first_answer, self.healthy_after

    def where_it_stands(self) -> str:
        """What a stuck boot shows: the bootstrap's progress, systemd's queued jobs, and the console's last lines."""
        progress = self.read("/var/log/llm-deploy/progress")
        jobs = self.run("systemctl", "list-jobs", "--no-pager", check=False, timeout=20).stdout if self.thread.is_alive() else "(not running)"
        console = self.console_log.read_text(errors="replace").splitlines()[-40:] if self.console_log.exists() else ["(none)"]
        return f"progress:\n{progress}\njobs:\n{jobs}\nconsole (last 40 lines):\n" + "\n".join(console)


def service_stand_in_files() -> dict[str, bytes]:
    """The service stand-in the docker stand-in runs, and the data it reads: in every node's image."""
    return {
        "/usr/local/lib/boot-stub/fake_service.py": (STUBS / "fake_service.py").read_bytes(),
        "/usr/local/lib/boot-stub/cli_options.csv": (STUBS / "cli_options.csv").read_bytes(),
        "/usr/local/lib/boot-stub/service_metrics.csv": (DATA_DIR / "service_metrics.csv").read_bytes(),
        "/usr/local/lib/boot-stub/ollama_models.csv": (DATA_DIR / "ollama_models.csv").read_bytes(),  # the stand-in registry's tags
    }


def prepare(spec: NodeSpec, rootfs: Path, stand_ins: dict[str, Path], where: Path, netns: str) -> Container:
    """A copy of the cached root filesystem made into this node's image, seeded with its user-data."""
    root = where / spec.name / "root"
    root.parent.mkdir(parents=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(root)], check=True)
    (root / ".complete").unlink()
    files: dict[str, str | bytes] = {
        "/var/lib/cloud/seed/nocloud/user-data": spec.user_data(stand_ins["agent-key"].read_text()),
        "/var/lib/cloud/seed/nocloud/meta-data": f"instance-id: {spec.name}-0001\nlocal-hostname: {spec.name}\n",
        "/etc/cloud/cloud.cfg.d/99-boot-test.cfg": "datasource_list: [NoCloud]\nnetwork: {config: disabled}\n",
        "/etc/apt/sources.list.d/archive.list": "deb [trusted=yes] file:/opt/boot-stub/archive ./\n",
        **service_stand_in_files(),
    }
    (root / "etc/apt/sources.list").unlink(missing_ok=True)  # no network: the archive is the local one
    # nginx is in the image but, as on a cloud image without it, nothing answers on port 80 before the gateway step.
    (root / "etc/systemd/system/multi-user.target.wants/nginx.service").unlink()
    shutil.copytree(stand_ins["archive"], root / "opt/boot-stub/archive")
    offer_ = spec.group.offer
    if offer_.gpu:
        files["/etc/boot-stub/gpu.json"] = json.dumps({
            "model": offer_.gpu, "count": offer_.gpu_count, "memory_mib": int(offer_.gpu_memory_gb * 1024), "driver": "580.95.05",
            "branch": DRIVER_BRANCH, "preinstalled": spec.target.image_has_driver,
        })  # fmt: skip
    if isinstance(spec.secrets, SecretStore) and spec.secrets.kind == "aws-ssm":
        files["/usr/local/sbin/aws"] = (STUBS / "aws").read_bytes()
        values = {spec.secrets.api_key_name: spec.api_key} | ({spec.secrets.hf_token_name: HF_TOKEN} if spec.secrets.hf_token_name else {})
        files["/etc/boot-stub/ssm.json"] = json.dumps({"region": spec.secrets.region, "parameters": values})
    tls_names = []  # the HTTPS endpoints this node reaches (cloud_endpoints.py tls, in the container)
    if isinstance(spec.secrets, SecretStore) and spec.secrets.kind == "alicloud-oos":
        # The Ubuntu image's identity (the driver step installs on Ubuntu only) and the cloud's endpoints.
        (root / "etc/os-release").unlink()
        files["/etc/os-release"] = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04 LTS"\n'
        files["/etc/boot-stub/oos.json"] = json.dumps({"region": spec.secrets.region, "parameters": {spec.secrets.api_key_name: spec.api_key}})
        tls_names += ["nvidia.github.io", f"oos.{spec.secrets.region}.aliyuncs.com"]
        shutil.copytree(stand_ins["toolkit"], root / "opt/boot-stub/nvidia.github.io/libnvidia-container/stable/deb/amd64")
        shutil.copy(stand_ins["toolkit"] / "gpgkey", root / "opt/boot-stub/nvidia.github.io/libnvidia-container/gpgkey")
    if clouds.get(spec.group.cloud).metrics_agent:
        tls_names.append(urlsplit(cloudwatch.metrics_agent("cloudwatch").package_url).hostname)
        shutil.copytree(stand_ins["cloudwatch"], root / "opt/boot-stub/amazoncloudwatch-agent")
    if tls_names:
        files["/usr/local/lib/boot-stub/cloud_endpoints.py"] = (STUBS / "cloud_endpoints.py").read_bytes()
        files["/etc/systemd/system/boot-stub-endpoints.service"] = (
            "[Unit]\nDescription=boot test: the cloud's HTTPS endpoints and package repositories\nBefore=cloud-final.service\n\n"
            "[Service]\nExecStart=/usr/bin/python3 /usr/local/lib/boot-stub/cloud_endpoints.py tls\n\n[Install]\nWantedBy=multi-user.target\n"
        )
        files["/etc/boot-stub/tls.crt"] = (stand_ins["tls"] / "tls.crt").read_bytes()
        files["/etc/boot-stub/tls.key"] = (stand_ins["tls"] / "tls.key").read_bytes()
        with open(root / "etc/hosts", "a") as hosts:
            hosts.write(f"127.0.0.1 {' '.join(tls_names)}\n")
        with open(root / "etc/ssl/certs/ca-certificates.crt", "ab") as bundle:
            bundle.write((stand_ins["tls"] / "ca.crt").read_bytes())
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "boot-stub-endpoints.service").symlink_to("/etc/systemd/system/boot-stub-endpoints.service")
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
        if path.startswith("/usr/local/sbin/") or path.endswith(".py"):
            target.chmod(0o755)
    if spec.target.image_has_driver:
        # The GPU image brings the driver, Docker and the toolkit (as DigitalOcean's and AWS's deep-learning images do).
        (root / "usr/local/sbin").mkdir(parents=True, exist_ok=True)
        shutil.copy(STUBS / "nvidia-smi", root / "usr/local/sbin/nvidia-smi")
        debs = [*stand_ins["archive"].glob("docker.io_*.deb"), *stand_ins["toolkit"].glob("*.deb")]
        subprocess.run(["dpkg", f"--root={root}", "-i", *map(str, debs)], check=True, capture_output=True)
        subprocess.run(["chroot", str(root), "nvidia-ctk", "runtime", "configure", "--runtime=docker"], check=True)
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "docker.service").symlink_to("/lib/systemd/system/docker.service")
    binds = []
    if spec.volume:
        volume = where / spec.name / "volume"
        volume.mkdir()
        binds.append(f"--bind={volume}:{CACHE_DIR}")
    if spec.nvme:
        assert spec.group.storage.local_cache_mount == spec.nvme, "the plan does not put the cache on the local NVMe"
        nvme = where / spec.name / "nvme"
        nvme.mkdir()
        binds.append(f"--bind={nvme}:{spec.nvme}")  # a mountpoint inside the container, as the image's is
    return Container(spec, root, netns, binds)


@pytest.fixture(scope="session")
def network():
    """Network namespaces made here, removed after: the containers' only network."""
    made: list[str] = []

    def make(name: str) -> str:
        netns = f"llmboot-{name}-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        made.append(netns)
        return netns

    yield make
    for netns in made:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


# The node's own address on the link to its metadata service (the service keeps the address clients use).
METADATA_LINKS = {"169.254.169.254": ("169.254.0.1/16", "169.254.169.254/16"), "100.100.100.200": ("100.100.100.1/24", "100.100.100.200/24")}
ASG_NAME = "llm-deploy-boot-asg-0a1b2c3d"


@pytest.fixture(scope="session")
def metadata_service(network):
    """The node's cloud's metadata service (cloud_endpoints.py metadata) at its real address, in a namespace of its
    own linked to the node's (nginx's port 80 on every address of the node's own namespace rules out serving it
    there): FUNCTION(node) sets node.metadata to the directory of its items."""
    servers: list[subprocess.Popen] = []

    def serve(node: Container) -> None:
        record = clouds.get(node.spec.group.cloud).metadata
        if record is None:
            return
        address = urlsplit(record.url).hostname
        node.metadata = node.root.parent / "metadata"
        items = node.metadata / "latest/meta-data"
        if record.group_name_path:  # EC2 Auto Scaling: the group's tag, and the node in service
            (items / "tags/instance").mkdir(parents=True)
            (node.metadata / record.group_name_path.lstrip("/")).write_text(ASG_NAME)
            (items / "autoscaling").mkdir()
            (items / "autoscaling/target-lifecycle-state").write_text("InService")
        cloud = network(f"md-{node.spec.name}")
        end = f"m{len(servers)}{os.getpid() % 10000}"
        subprocess.run(["ip", "link", "add", f"{end}n", "netns", node.netns, "type", "veth", "peer", "name", f"{end}m", "netns", cloud], check=True)
        for netns, name, cidr in ((node.netns, f"{end}n", METADATA_LINKS[address][0]), (cloud, f"{end}m", METADATA_LINKS[address][1])):
            subprocess.run(["ip", "-n", netns, "addr", "add", cidr, "dev", name], check=True)
            subprocess.run(["ip", "-n", netns, "link", "set", name, "up"], check=True)
        command = ["ip", "netns", "exec", cloud, "python3", str(STUBS / "cloud_endpoints.py"), "metadata", node.spec.group.cloud, address, "80", str(node.metadata)]
        servers.append(subprocess.Popen(command))

    yield serve
    for server in servers:
        server.terminate()
        server.wait(timeout=10)


def connect(a: Container, b: Container) -> None:
    """A veth pair between the two nodes' namespaces: their private network."""
    ends = (f"vb{os.getpid() % 100000}a", f"vb{os.getpid() % 100000}b")
    subprocess.run(["ip", "link", "add", ends[0], "netns", a.netns, "type", "veth", "peer", "name", ends[1], "netns", b.netns], check=True)
    for container, end in ((a, ends[0]), (b, ends[1])):
        subprocess.run(["ip", "-n", container.netns, "addr", "add", f"{container.spec.address}/24", "dev", end], check=True)
        subprocess.run(["ip", "-n", container.netns, "link", "set", end, "up"], check=True)


# --- what each node kind must do -------------------------------------------------------------------------


def client_checks(gateway: Container, models: dict[str, str]) -> None:
    """Through the gateway on port 80: the real `openai` client and a plain rerank POST, with the node's key
    (MODELS: kind → the model the stack serves for it; an Ollama LLM is named by its tag)."""
    from openai import OpenAI

    key = gateway.spec.api_key

    def run() -> None:
        base = "http://127.0.0.1"
        for path in ("/v1/models", "/v1/chat/completions", "/v1/embeddings", "/rerank", "/embed"):
            assert http("POST" if path != "/v1/models" else "GET", base + path, None, b"{}")[0] == 401, path
            assert http("POST" if path != "/v1/models" else "GET", base + path, "wrong-" + key, b"{}")[0] == 401, path
        client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
        if "llm" in models:
            model = models["llm"]
            assert [m.id for m in client.models.list()] == [model]
            question = "What is the capital of France?"
            answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
            assert answer.choices[0].message.content == f"You said: {question}"
            chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], stream=True))
            assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == "stop"
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == f"You said: {question}"
            completion = client.completions.create(model=model, prompt="Say hello")
            assert completion.choices[0].text == "You said: Say hello"
        if "embedding" in models:
            texts = ["Paris is the capital of France", "Bananas are yellow"]
            vectors = [d.embedding for d in client.embeddings.create(model=MODELS["embedding"], input=texts).data]
            again = client.embeddings.create(model=MODELS["embedding"], input=texts[0]).data[0].embedding
            assert len(vectors) == 2 and len(vectors[0]) == 16 and vectors[0] == pytest.approx(again) and vectors[0] != vectors[1]
            assert sum(v * v for v in vectors[0]) == pytest.approx(1.0, rel=1e-4)
            # A batch over TEI's default 2 MB payload limit and under the gateway's 32 MB: TEI takes it.
            big = json.dumps({"inputs": ["lorem ipsum dolor sit amet " * 40] * 3000}).encode()
            assert len(big) > 3_000_000
            status, body = http("POST", f"{base}/embed", key, big, timeout=60)
            assert status == 200 and len(json.loads(body)) == 3000, status
        if "rerank" in models:
            query = {"query": "What is the capital of France?", "texts": ["Bananas are yellow", "Paris is the capital of France"]}
            status, body = http("POST", f"{base}/rerank", key, json.dumps(query).encode())
            assert status == 200, body
            ranked = json.loads(body)
            assert [r["index"] for r in ranked] == [1, 0] and ranked[0]["score"] > ranked[1]["score"]

    in_netns(gateway.netns, run)


def cloud_init_ok(node: Container) -> str:
    status = node.run("cloud-init", "status", "--wait", "--long", check=False, timeout=120)
    assert status.returncode == 0 and "status: done" in status.stdout, f"{node.spec.name}: cloud-init\n{status.stdout}{status.stderr}"
    result = json.loads(node.run("cat", "/run/cloud-init/result.json").stdout)["v1"]
    assert result["errors"] == [], f"{node.spec.name}: cloud-init errors {result['errors']}"
    return status.stdout


def services_of(node: Container) -> list[str]:
    """Every server the node runs: a service, or each replica of an LLM with several per node."""
    return [s.name for s in replica_services(node.spec.group)]


def check_replicas(gateway: Container, node: Container) -> None:
    """Each LLM replica has GPUs of its own, together every GPU of the node, and the gateway sends requests
    to all of them."""
    replicas = [s.name for s in replica_services(node.spec.group) if s.kind == "llm"]
    given = {name: node.read(f"/var/lib/boot-stub/docker/gpus/llm-deploy-{name}").split() for name in replicas}
    devices = [d for gpus in given.values() for d in gpus]
    assert sorted(devices, key=int) == [str(i) for i in range(node.spec.group.offer.gpu_count)], given

    def served() -> dict[str, int]:
        events = [line.split() for line in node.read("/var/log/boot-stub-services.log").splitlines()]
        return {name: sum(e[1:] == [f"llm-deploy-{name}", "served"] for e in events) for name in replicas}

    before = served()
    for _ in range(4 * len(replicas)):
        status, _body = http("POST", "http://127.0.0.1/v1/chat/completions", gateway.spec.api_key,
                             json.dumps({"model": MODELS["llm"], "messages": [{"role": "user", "content": "hi"}]}).encode())
        assert status == 200
    after = served()
    assert all(after[name] > before[name] for name in replicas), f"requests per replica: {before} -> {after}"


def kill_and_recover(gateway: Container, node: Container) -> None:
    """A service killed: /healthz and its /healthz/<service> go 503, the others stay 200, systemd brings it back."""
    victim, others = services_of(node)[0], services_of(node)[1:]
    assert node.get(f"/healthz/{victim}") == 200
    node.run("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", f"llm-deploy@{victim}")  # the server process dies
    deadline = time.monotonic() + 30
    while node.get("/healthz") != 503:
        assert time.monotonic() < deadline, f"{node.spec.name}: /healthz still 200 after killing {victim}"
        time.sleep(0.5)
    assert node.get(f"/healthz/{victim}") == 503
    for other in others:
        assert node.get(f"/healthz/{other}") == 200, other
    deadline = time.monotonic() + 90
    while node.get("/healthz") != 200:
        assert time.monotonic() < deadline, f"{node.spec.name}: {victim} not back within 90 s"
        time.sleep(0.5)
    assert node.get(f"/healthz/{victim}") == 200
    assert gateway.get("/healthz") == 200


# What each notice's metadata item holds once it is given (the clouds' documented forms).
NOTICE_BODIES = {
    "/latest/meta-data/spot/instance-action": '{"action": "terminate", "time": "2026-12-01T15:04:05Z"}',
    "/latest/meta-data/autoscaling/target-lifecycle-state": "Terminated",
    "/latest/meta-data/instance/spot/termination-time": "2026-12-01T15:09:05Z",
}


def local_servers(node: Container) -> dict[str, str]:
    """Each server on the node (every LLM replica by its own name) → the service it belongs to."""
    return {name: s.name for s in node.spec.group.services for name, _ in s.instances}


def metric_servers(node: Container) -> dict[str, str]:
    """The servers with Prometheus metrics (vLLM, TEI; not Ollama) → their service."""
    return {name: s.name for s in node.spec.group.services if s.publishes_metrics for name, _ in s.instances}


def check_node_side(node: Container) -> None:
    """The drain watcher runs where the cloud has a metadata service; /metrics/<server> is each server's own,
    behind the key; on AWS the CloudWatch agent publishes queue depth per autoscaling group and service."""
    record = clouds.get(node.spec.group.cloud)
    if record.metadata:
        for query, expected in (("is-enabled", "enabled"), ("is-active", "active")):
            answer = node.run("systemctl", query, "llm-deploy-watch.service", check=False).stdout.strip()
            assert answer == expected, f"{node.spec.name}: llm-deploy-watch.service is {answer}"
    kinds = {s.name: s.kind for s in node.spec.group.services}
    queue = {name: metric(ENGINES[kinds[service]], "queue_depth").metric for name, service in metric_servers(node).items()}
    for name in set(local_servers(node)) - set(queue):  # Ollama: no /metrics of its own, so none behind the gateway
        assert in_netns(node.netns, http, "GET", f"http://127.0.0.1/metrics/{name}", node.spec.api_key)[0] == 404, name
    for name, queue_metric in queue.items():
        url = f"http://127.0.0.1/metrics/{name}"
        assert in_netns(node.netns, http, "GET", url, None)[0] == 401
        status, body = in_netns(node.netns, http, "GET", url, node.spec.api_key)
        assert status == 200 and f"\n{queue_metric}" in body.decode(), (name, status)
    if not record.metrics_agent:
        return
    deadline, seen = time.monotonic() + 60, {}
    while set(seen) != set(queue):
        assert time.monotonic() < deadline, f"{node.spec.name}: the CloudWatch agent published {seen} (expected {queue})"
        time.sleep(1)
        published = json.loads(node.read("/var/lib/boot-stub/cloudwatch/published.json") or "[]")
        seen = {p["job"]: p for p in published if queue.get(p["job"]) in p["metrics"]}
    for job, published in seen.items():
        assert published["namespace"] == NAMESPACE
        assert published["dimensions"] == {ASG_DIMENSION: ASG_NAME, "service": local_servers(node)[job]}, published
    # vLLM's time to first token: its histogram is dropped, its republished _sum and _count reach CloudWatch
    ttft = metric("vllm", "time_to_first_token").metric
    vllm = [name for name, service in metric_servers(node).items() if kinds[service] == "llm"]
    deadline, republished = time.monotonic() + 60, {}
    while set(republished) != set(vllm):
        assert time.monotonic() < deadline, f"{node.spec.name}: llm-deploy-ttft published {republished} (expected {vllm})"
        time.sleep(1)
        published = json.loads(node.read("/var/lib/boot-stub/cloudwatch/published.json") or "[]")
        assert not any(m.startswith(ttft) for p in published if not p["job"].endswith("-republished") for m in p["metrics"])
        republished = {p["job"].removesuffix("-republished"): p for p in published if p["job"].endswith("-republished")
                       and {f"{ttft}_sum", f"{ttft}_count"} <= set(p["metrics"])}
    for name, published in republished.items():
        assert published["dimensions"] == {ASG_DIMENSION: ASG_NAME, "service": local_servers(node)[name]}, published


def drain_on_notice(node: Container) -> float:
    """The cloud says the node goes away: every /healthz is 503 within the watcher's poll; requests are still answered."""
    path = clouds.get(node.spec.group.cloud).metadata.notices[node.spec.notice].path
    item = node.metadata / path.lstrip("/")
    item.parent.mkdir(parents=True, exist_ok=True)
    item.write_text(NOTICE_BODIES[path])
    started = time.monotonic()
    while node.get("/healthz") != 503:
        assert time.monotonic() - started < 15, f"{node.spec.name}: /healthz still 200 15 s after the notice at {path}"
        time.sleep(0.2)
    drained = time.monotonic() - started
    for name in services_of(node):
        assert node.get(f"/healthz/{name}") == 503, name
    server = next(iter(metric_servers(node)))
    assert in_netns(node.netns, http, "GET", f"http://127.0.0.1/metrics/{server}", node.spec.api_key)[0] == 200
    return drained


def install_traces(node: Container) -> dict[str, str]:
    """What an install step leaves: its progress lines, dpkg's log, the images pulled."""
    progress = [line for line in node.read("/var/log/llm-deploy/progress").splitlines() if " health " not in line]
    return {"progress": "\n".join(progress), "dpkg": node.read("/var/log/dpkg.log"), "pulls": node.read("/var/lib/boot-stub/docker/pulls.log")}


def check_gpu_sharing(node: Container) -> None:
    """Encoders on vLLM's GPU start (load) only after vLLM listens."""
    events = [line.split() for line in node.read("/var/log/boot-stub-services.log").splitlines()]
    first = {(name, event): float(t) for t, name, event in reversed(events)}
    llm_up = first[("llm-deploy-llm", "listening")]
    for name in [s.name for s in replica_services(node.spec.group) if s.kind != "llm"]:
        assert first[(f"llm-deploy-{name}", "loading")] >= llm_up, f"{node.spec.name}: {name} started before vLLM was up"


def check_ollama_model(node: Container) -> None:
    """The node tool pulled the tag into the cache disk (where Ollama keeps manifests) and loaded it; Ollama's own
    routes answer as Ollama's do, its /v1/models names the tag."""
    (llm,) = [s for s in node.spec.group.services if s.engine == "ollama"]
    name, _, tag = llm.model.partition(":")
    manifest = node.root / CACHE_DIR.lstrip("/") / "ollama/models/manifests/registry.ollama.ai/library" / name / tag
    assert manifest.is_file(), f"{node.spec.name}: {llm.model} is not in the cache disk's Ollama models"
    events = node.read("/var/log/boot-stub-services.log")
    assert f"llm-deploy-{llm.name} pulled {llm.model}" in events and f"llm-deploy-{llm.name} loaded {llm.model}" in events
    status, body = in_netns(node.netns, http, "GET", f"http://127.0.0.1:{llm.port}/")
    assert (status, body) == (200, b"Ollama is running")
    assert in_netns(node.netns, http, "GET", f"http://127.0.0.1:{llm.port}/health")[0] == 404  # so the probe asks /v1/models/<tag>


def scenario(kind: str, nodes: list[Container]) -> dict:
    try:
        return boot_and_check(kind, nodes)
    finally:
        for node in nodes:
            node.stop()


def check_local_cache(node: Container) -> None:
    """The cache directory is the local NVMe (same file system object), and the services wait for that bind."""
    cache, nvme = node.run("stat", "-c", "%d:%i", CACHE_DIR, node.spec.nvme).stdout.split()
    assert cache == nvme, f"{node.spec.name}: {CACHE_DIR} is not bound onto {node.spec.nvme}"
    check_ordered_after_cache_mount(node)


def check_ordered_after_cache_mount(node: Container) -> None:
    after = node.run("systemctl", "show", "-p", "After", "llm-deploy@llm").stdout
    assert re.search(r"opt-llm\\+x2ddeploy-cache\.mount", after), f"the service is not ordered after the cache mount: {after}"


def boot_and_check(kind: str, nodes: list[Container]) -> dict:
    gateway, report = nodes[0], {}
    for node in reversed(nodes):  # the routed-to node first: the gateway's upstream is then up
        node.boot()
    for node in reversed(nodes):
        first, seconds = node.wait_healthy()
        assert first == 503, f"{node.spec.name}: /healthz answered {first} before the services were up"
        report[node.spec.name] = {"first boot": seconds, "reboots": node.boots.count(133)}
    for node in nodes:
        cloud_init_ok(node)
        for name in services_of(node):
            assert node.get(f"/healthz/{name}") == 200
        assert node.read("/var/lib/llm-deploy/bootstrap.done") == "" and (node.root / "var/lib/llm-deploy/bootstrap.done").exists()
        if node.spec.group.accelerator == "gpu" and any(s.kind == "llm" for s in node.spec.group.services) and len(node.spec.group.services) > 1:
            check_gpu_sharing(node)
        if any(s.engine == "ollama" for s in node.spec.group.services):
            check_ollama_model(node)
        if node.spec.volume:
            volume = Path(node.binds[0].split("=", 1)[1].split(":")[0])
            assert (volume / "huggingface").is_dir() and (volume / "vllm").is_dir(), "caches are not on the cache volume"
            check_ordered_after_cache_mount(node)
        if node.spec.nvme:
            check_local_cache(node)
            nvme = Path(node.binds[-1].split("=", 1)[1].split(":")[0])
            assert (nvme / "huggingface").is_dir() and (nvme / "vllm").is_dir(), "caches are not on the local NVMe"
    client_checks(gateway, {s.kind: s.model for n in nodes for s in n.spec.group.services})
    for node in nodes:
        check_node_side(node)
        if any(s.replicas_per_node > 1 for s in node.spec.group.services):
            in_netns(gateway.netns, check_replicas, gateway, node)
    if kind == "alicloud-gpu":
        node = nodes[0]
        assert node.boots.count(133) == 1, f"expected one driver reboot, nspawn exits: {node.boots}"
        progress = node.read("/var/log/llm-deploy/progress")
        assert "interrupted by shutdown; resumes at the next boot" in progress, progress
        target = node.run("systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", "multi-user.target").stdout
        ended = node.run("systemctl", "show", "-p", "ExecMainExitTimestampMonotonic", "--value", "llm-deploy-bootstrap").stdout
        assert 0 < int(target) < int(ended), "multi-user.target waited for the bootstrap after the driver reboot"
        held = node.run("apt-mark", "showhold").stdout
        assert held.strip() == "", f"kernel still held after the bootstrap: {held}"
        installed = node.read("/var/log/dpkg.log")
        assert f"linux-modules-nvidia-{DRIVER_BRANCH}-server-{os.uname().release}" in installed
    for node in nodes:
        kill_and_recover(gateway, node)
    before = {node.spec.name: install_traces(node) for node in nodes}
    for node in nodes:
        node.poweroff()
    for node in reversed(nodes):
        node.boot()
    for node in reversed(nodes):
        _, seconds = node.wait_healthy()
        report[node.spec.name]["second boot"] = seconds
    for node in nodes:
        assert install_traces(node) == before[node.spec.name], f"{node.spec.name}: the second boot repeated an install step"
        skipped = node.run("systemctl", "show", "-p", "ConditionResult", "--value", "llm-deploy-bootstrap").stdout.strip()
        assert skipped == "no", "the bootstrap ran again"
        if node.spec.nvme:
            check_local_cache(node)  # bound again at boot, from fstab, before the services
    client_checks(gateway, {s.kind: s.model for n in nodes for s in n.spec.group.services})
    for node in nodes:
        if node.metadata:
            report[node.spec.name]["drained"] = drain_on_notice(node)
    for node in nodes:
        node.poweroff()
    return report


@pytest.fixture(scope="session")
def boots(rootfs, stand_ins, network, metadata_service, tmp_path_factory):
    """Every node kind boots at once (the scenario of each in its own thread); tests collect the outcomes."""
    where = tmp_path_factory.mktemp("boot")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(KINDS))
    futures, everyone = {}, []
    for kind, specs in KINDS.items():
        nodes = [prepare(spec, rootfs, stand_ins, where, network(spec.name)) for spec in specs]
        if len(nodes) == 2:
            connect(*nodes)
        for node in nodes:
            metadata_service(node)
        everyone += nodes
        futures[kind] = pool.submit(scenario, kind, nodes)
    yield futures
    pool.shutdown(wait=True)
    for node in everyone:
        node.stop()


@pytest.mark.parametrize("kind", list(KINDS))
def test_node_kind_boots_to_healthy(kind, boots, capsys):
    report = boots[kind].result(timeout=900)
    with capsys.disabled():
        for name, times in report.items():
            reboots = f", {times['reboots']} reboot(s)" if times["reboots"] else ""
            drained = f"; /healthz 503 {times['drained']:.1f} s after the notice" if "drained" in times else ""
            print(f"\n[boot] {kind}/{name}: healthy {times['first boot']:.0f} s after boot{reboots}; second boot {times['second boot']:.0f} s{drained}")
