"""SSH to the stack's own hosts (`cloud: onprem`), with every host key pinned: paramiko, imported lazily.

A host whose key is not in sshKnownHosts, or differs from it, is refused (paramiko's RejectPolicy and
BadHostKeyException): never trust on first use. The key is sshPrivateKey, or the SSH agent without it.
"""

from __future__ import annotations

import io
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.errors import LlmDeployError
from infra.plan import Host

if TYPE_CHECKING:
    from infra.config import HostConfig, StackConfig
    from infra.onprem import Detector

CONNECT_TIMEOUT_S = 15


class SshError(LlmDeployError, OSError):
    """A host that cannot be reached, whose key is not the pinned one, or a command that failed there (an OSError
    too: placement reads a failed GPU read as the host's problem)."""


@dataclass(frozen=True)
class Access:
    """How to reach the hosts: the pinned known_hosts lines and the private key (None: the SSH agent)."""

    known_hosts: tuple[str, ...]
    private_key: str | None = None


def _private_key(text: str) -> Any:
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise SshError("sshPrivateKey: not an unencrypted OpenSSH/PEM private key (ed25519, ecdsa or rsa)")


def connect(host: Host, access: Access, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A connected paramiko SSHClient; SshError when the host cannot be reached or its key is not the pinned one."""
    import paramiko

    client = paramiko.SSHClient()
    keys = client.get_host_keys()
    for number, line in enumerate(access.known_hosts):
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except paramiko.SSHException as error:
            raise SshError(f"sshKnownHosts[{number}]: {error}") from None
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = _private_key(access.private_key) if access.private_key else None
    try:
        client.connect(host.address, port=host.port, username=host.user, pkey=pkey, allow_agent=pkey is None,
                       look_for_keys=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    except paramiko.BadHostKeyException as error:
        client.close()
        raise SshError(f"{host.label}: host key {error.key.get_name()} {error.key.get_base64()[:16]}... is not the one "
                       "sshKnownHosts pins: refused") from None
    except paramiko.SSHException as error:
        client.close()
        raise SshError(f"{host.label}: {error}") from None
    except OSError as error:
        client.close()
        raise SshError(f"{host.label}: cannot connect: {error}") from None
    return client


def as_root(host: Host, command: str) -> str:
    """COMMAND run by root: as it is for root, through `sudo -n` (no password prompt) for another user."""
    return command if host.user == "root" else f"sudo -n sh -c {shlex.quote(command)}"


def run(client: Any, host: Host, command: str, stdin: bytes | None = None, check: bool = True, timeout: float = 600) -> tuple[int, str]:
    """Run COMMAND as root on the host: (exit status, stdout + stderr). SshError when `check` and it fails."""
    channel = client.get_transport().open_session(timeout=CONNECT_TIMEOUT_S)
    channel.settimeout(timeout)
    channel.set_combine_stderr(True)
    channel.exec_command(as_root(host, command))
    if stdin is not None:
        channel.sendall(stdin)
    channel.shutdown_write()
    output = b""
    while chunk := channel.recv(65536):
        output += chunk
    status = channel.recv_exit_status()
    channel.close()
    text = output.decode(errors="replace")
    if check and status != 0:
        raise SshError(f"{host.label}: `{command[:80]}` exited {status}: {text[-2000:]}")
    return status, text


def write_file(client: Any, host: Host, path: str, content: bytes, mode: str) -> None:
    """Write a file as root with MODE from the first byte on (umask 077, then chmod, then a rename): a secret
    is never readable by others, not even while it is written."""
    directory = path.rsplit("/", 1)[0] or "/"
    script = (f"umask 077 && mkdir -p {shlex.quote(directory)} && cat > {shlex.quote(path)}.llm-deploy-new && "
              f"chmod {mode} {shlex.quote(path)}.llm-deploy-new && mv -f {shlex.quote(path)}.llm-deploy-new {shlex.quote(path)}")
    run(client, host, script, stdin=content)


def wait_until(client: Any, host: Host, command: str, timeout: float, what: str) -> None:
    """Until COMMAND exits 0 on the host (every 2 s): SshError saying WHAT did not happen after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status, output = run(client, host, command, check=False, timeout=60)
        if status == 0:
            return
        if time.monotonic() > deadline:
            raise SshError(f"{host.label}: {what} within {timeout:.0f} s (last: exit {status} {output.strip()[-300:]})")
        time.sleep(2)


def access_of(config: StackConfig) -> Access:
    key = config.ssh_private_key.get_secret_value() if config.ssh_private_key else None
    return Access(tuple(config.ssh_known_hosts), key)


def read_gpus(host: HostConfig, access: Access) -> tuple[str | None, int]:
    """The host's GPUs as the catalog names them, from nvidia-smi (none: a CPU host)."""
    from infra.onprem import GPU_QUERY, gpu_from_smi

    target = Host(host.address, host.user, host.port)
    client = connect(target, access)
    try:
        status, output = run(client, target, f"command -v nvidia-smi >/dev/null || exit 127; {GPU_QUERY}", check=False, timeout=60)
    finally:
        client.close()
    if status == 127:
        return None, 0
    if status != 0:
        raise SshError(f"{target.label}: nvidia-smi exited {status}: {output.strip()[-300:]}")
    return gpu_from_smi(output)


def gpu_detector(config: StackConfig) -> Detector:
    access = access_of(config)
    return lambda host: read_gpus(host, access)
