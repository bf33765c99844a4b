"""The node tool's GPU driver step and its shutdown handling, run for real against stand-in system commands.

The tool puts the system directories first on PATH, so each run happens in a private mount namespace
(`unshare -m`) where /usr/local/sbin holds the stand-ins (apt, dpkg-query, uname, systemctl, ...) and
/etc/os-release says Ubuntu. Needs root and unshare: skipped without them locally, failed under CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bootstrap.gateway import FILES
from bootstrap.services import DRIVER_BRANCH
from tests.helpers import CASES, TOOL, make_node, missing

KERNEL = "5.15.0-1051-aws"  # an Ubuntu AWS kernel: flavour "aws"
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="22.04"\n'


def require_namespaces() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        missing("needs root and unshare (private mount namespaces)")


def stand_ins(where: Path, log: Path, available: list[str]) -> Path:
    """Stand-in commands that record their arguments in LOG; apt-cache knows the AVAILABLE packages."""
    bin_dir = where / "sbin"
    bin_dir.mkdir()
    scripts = {
        "apt-get": f'echo "apt-get $*" >>{log}',
        "apt-mark": f'echo "apt-mark $*" >>{log}',
        "apt-cache": f'[[ $1 == show ]] && grep -qx -- "${{@: -1}}" {where}/available',
        "dpkg-query": f'printf "ii  linux-image-{KERNEL}\\nii  linux-modules-{KERNEL}\\nii  linux-aws\\nrc  linux-image-5.15.0-1040-aws\\n"',
        "uname": f'[[ $1 == -r ]] && echo {KERNEL}',
        "nvidia-smi": "exit 9",
        "modprobe": "exit 1",
        "systemctl": f'echo "systemctl $*" >>{log}; [[ $1 == is-system-running ]] && echo stopping; exit 0',
        "sleep": '[[ $1 == 600 ]] || exec /bin/sleep "$@"',  # the wait for the reboot returns at once
        "logger": "exit 0",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (where / "available").write_text("".join(f"{p}\n" for p in available))
    (where / "os-release").write_text(UBUNTU)
    return bin_dir


def in_namespace(bin_dir: Path, command: list[str], env: dict[str, str], **popen) -> subprocess.Popen:
    script = 'mount --bind "$1" /usr/local/sbin && mount --bind "$2" /etc/os-release && shift 2 && exec "$@"'
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", script, "_", str(bin_dir), str(bin_dir.parent / "os-release"), *command],
        env=env, **popen,
    )  # fmt: skip


@pytest.mark.parametrize("prebuilt", [True, False], ids=["prebuilt-modules", "dkms-fallback"])
def test_driver_installs_prebuilt_modules_for_the_running_kernel_and_holds_it(tmp_path, prebuilt):
    require_namespaces()
    node = make_node(tmp_path, CASES["alicloud-oos-no-driver"])
    log = tmp_path / "calls.log"
    modules = f"linux-modules-nvidia-{DRIVER_BRANCH}-server-{KERNEL}"
    bin_dir = stand_ins(tmp_path, log, [modules] if prebuilt else [])
    (tmp_path / "state").mkdir()
    env = node.env | {"LLM_DEPLOY_TOOL": str(TOOL)}
    gpu = str(FILES / "llm-deploy-gpu")
    # The reboot does not happen here: the step waits for it, then gives up (exit 1) after the stand-in sleep.
    assert in_namespace(bin_dir, ["bash", gpu, "driver"], env).wait(timeout=60) == 1
    calls = log.read_text().splitlines()
    install = next(c for c in calls if c.startswith("apt-get") and " install " in c)
    held = next(c for c in calls if c.startswith("apt-mark hold"))
    assert held.split()[2:] == [f"linux-image-{KERNEL}", f"linux-modules-{KERNEL}", "linux-aws"]  # installed ones only
    assert calls.index(held) < calls.index(install), "the kernel must be held before anything is installed"
    if prebuilt:
        assert install.endswith(f"{modules} nvidia-headless-no-dkms-{DRIVER_BRANCH}-server nvidia-utils-{DRIVER_BRANCH}-server")
        assert "linux-headers" not in install
    else:
        assert install.endswith(f"nvidia-headless-{DRIVER_BRANCH}-server nvidia-utils-{DRIVER_BRANCH}-server linux-headers-{KERNEL}")
    assert "systemctl reboot" in calls
    assert (tmp_path / "state" / "kernel-held").read_text().split() == held.split()[2:]
    released = in_namespace(bin_dir, ["bash", gpu, "release-kernel"], env)
    assert released.wait(timeout=30) == 0
    assert log.read_text().splitlines()[-1] == "apt-mark unhold " + " ".join(held.split()[2:])
    assert not (tmp_path / "state" / "kernel-held").exists()


def test_bootstrap_stopped_by_shutdown_says_so(tmp_path):
    """systemd stops the unit with SIGTERM to every process in it; the progress log says where it stopped."""
    require_namespaces()
    node = make_node(tmp_path, CASES["alicloud-oos-no-driver"])
    log = tmp_path / "calls.log"
    bin_dir = stand_ins(tmp_path, log, [])
    (bin_dir / "llm-deploy-gpu").write_text("#!/bin/bash\nexec /bin/sleep 30\n")  # a driver install in progress
    (bin_dir / "llm-deploy-gpu").chmod(0o755)
    steps = tmp_path / "state" / "steps"
    steps.mkdir(parents=True)
    for done in ("disk", "secrets", "gateway"):
        (steps / f"{done}.done").touch()
    process = in_namespace(bin_dir, ["bash", str(TOOL), "bootstrap"], node.env, start_new_session=True)
    progress = tmp_path / "log" / "progress"
    deadline = time.monotonic() + 20
    while "driver     started" not in (progress.read_text() if progress.exists() else ""):
        assert time.monotonic() < deadline, "the driver step did not start"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)  # the main process only (where systemd cannot signal the whole cgroup)
    assert process.wait(timeout=10) == 143
    assert "driver     interrupted by shutdown; resumes at the next boot" in progress.read_text()
    left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True, check=False).stdout
    assert left == "", f"the step's processes outlived the bootstrap: {left}"
    assert not (steps / "driver.done").exists()


def test_disk_keeps_the_cache_on_the_root_disk_when_the_local_nvme_is_not_mounted(tmp_path):
    """The plan names the NVMe's mountpoint; an image that did not mount it gets a WARNING, no fstab entry, no mount."""
    cache, nvme = tmp_path / "cache", tmp_path / "nvme"
    nvme.mkdir()
    script = '. "$1"; log() { echo "$*"; }; LLM_DEPLOY_CACHE_DIR=$2 LLM_DEPLOY_LOCAL_CACHE=$3 LLM_DEPLOY_DATA_DEVICE= step_disk'
    done = subprocess.run(["bash", "-c", script, "bash", str(TOOL), str(cache), str(nvme)], capture_output=True, text=True, check=True)
    assert done.stdout == f"WARNING: local NVMe {nvme} is not mounted: model cache on the root disk\n"
    assert cache.is_dir() and not os.path.ismount(cache)
