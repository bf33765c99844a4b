"""Regression tests for hostile and broken input: each case crashed (exit 1, a traceback) or was accepted.

Every case must give exit 2 and one line per problem, `<file>: <field>: <what>`, naming the field.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from infra.catalog import CATALOG_COLUMNS, DATA_DIR
from infra.errors import Problem
from tests.helpers import SSH_KEY, stack_problems

BUILTIN_ROWS = (DATA_DIR / "catalog.csv").read_text().splitlines()
HEADER = BUILTIN_ROWS[0]
G5_XLARGE = next(row for row in BUILTIN_ROWS if row.startswith("aws,g5.xlarge,us-east-1,A10G,1,24,4,16,1.006,"))


def alias_bomb(levels: int = 10, width: int = 10) -> str:
    """A "billion laughs" stack file: `width ** levels` (10**10) values from ~1.3 KB of YAML."""
    lines = ["config:", f"  lol0: &lol0 [{', '.join(['lol' * 12] * width)}]"]
    for level in range(1, levels):
        lines.append(f"  lol{level}: &lol{level} [{', '.join([f'*lol{level - 1}'] * width)}]")
    lines.append(f"  llm-deploy:services: [{', '.join([f'*lol{levels - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


OVERSIZED = "config:\n  llm-deploy:cloud: aws\n" + "#" * (256 * 1024) + "\n"


# name → (stack file text or bytes, the expected problem: "<field>: <message, or how it starts>")
STACK_FILES: dict[str, tuple[str | bytes, str]] = {
    "non-UTF-8 file": (b"config:\n  llm-deploy:cloud: \xff\xfe\n", "file: not UTF-8 text (byte 28 is 0xff)"),
    "nesting 500 levels deep": ("config:\n  llm-deploy:services: " + "[" * 500 + "]" * 500 + "\n", "file: nested deeper than 16 levels"),
    "integer of 5,000 digits": ("config:\n  llm-deploy:budgetUsdPerHour: " + "9" * 5000 + "\n", "budgetUsdPerHour: integer out of range"),
    "integer over 2**53": (("config:\n  llm-deploy:services: [{name: llm, kind: llm, model: Qwen/Qwen2.5-7B-Instruct, "
                           "replicas: 18446744073709551617}]\n"), "services[0].replicas: integer out of range"),
    ".inf budget": ("config:\n  llm-deploy:budgetUsdPerHour: .inf\n", "budgetUsdPerHour: inf is not a finite number"),
    ".nan price override": ("config:\n  llm-deploy:budgetUsdPerHour: 0.5\n  llm-deploy:priceOverrides: {aws/g6.xlarge: .nan}\n",
                            "priceOverrides.aws/g6.xlarge: nan is not a finite number"),
    "service name with a final newline": (
        'config:\n  llm-deploy:services: [{name: "llm\\n", kind: llm, model: Qwen/Qwen2.5-7B-Instruct}]\n',
        "services[0].name: must be lowercase letters"),
    "secure on a key that is not a secret": ("config:\n  llm-deploy:budgetUsdPerHour: {secure: v1:AAAA}\n",
                                             "budgetUsdPerHour: is not a secret (apiKey, hfToken, sshPrivateKey, tlsCertificate, tlsPrivateKey are)"),
    "duplicate key": ("config:\n  llm-deploy:cloud: aws\n  llm-deploy:cloud: digitalocean\n", "cloud: duplicate key"),
    "duplicate key in a service": (("config:\n  llm-deploy:services:\n    - {name: llm, kind: llm, model: Qwen/Qwen2.5-7B-Instruct, "
                                   "replicas: 1, replicas: 3}\n"), "services[0].replicas: duplicate key"),
    "a date": ("config:\n  llm-deploy:region: 2026-12-01\n", "region: a date or time is not a JSON value; quote it"),
    "a date in a service": ("config:\n  llm-deploy:services: [{name: llm, kind: llm, model: 2026-12-01}]\n",
                            "services[0].model: a date or time is not a JSON value"),
    "binary": ("config:\n  llm-deploy:region: !!binary aGVsbG8=\n", "region: binary data is not a JSON value"),
    "recursive alias": ("config:\n  llm-deploy:services: &loop [*loop]\n", "services[0]: an alias that contains itself"),
    "recursive alias in a service": ("config:\n  llm-deploy:services:\n    - &s {name: llm, kind: llm, model: x, load: *s}\n",
                                     "services[0].load: an alias that contains itself"),
    "1.3 KB alias bomb": (alias_bomb(), "lol4: more than 20000 values once its aliases are expanded"),
    "replicas: 100000": ("config:\n  llm-deploy:services: [{name: llm, kind: llm, model: Qwen/Qwen2.5-7B-Instruct, replicas: 100000}]\n",
                         "services[0].replicas: must be <= 100"),
    "newline in a key": ('config:\n  "llm-deploy:clo\\nud": aws\n', "'clo\\nud': unknown key (did you mean llm-deploy:cloud?)"),
    "newline in a service key": (('config:\n  llm-deploy:services: [{name: llm, kind: llm, model: Qwen/Qwen2.5-7B-Instruct, '
                                 '"rep\\nlicas": 2}]\n'), "services[0].'rep\\nlicas': unknown key"),
    "NUL byte in catalogFile": ('config:\n  llm-deploy:catalogFile: "a\\0b.csv"\n', "catalogFile: 'a\\x00b.csv': a file name without control"),
    "SSH from the world": (f"config:\n  llm-deploy:sshCidrs: ['0.0.0.0/0']\n  llm-deploy:sshPublicKeys: ['{SSH_KEY}']\n",
                           "sshCidrs[0]: 0.0.0.0/0 opens SSH to the whole internet"),
    "SSH from the world, IPv6": (f"config:\n  llm-deploy:sshCidrs: ['::/0']\n  llm-deploy:sshPublicKeys: ['{SSH_KEY}']\n",
                                 "sshCidrs[0]: ::/0 opens SSH to the whole internet"),
    "SSH from the world, as a netmask": (f"config:\n  llm-deploy:sshCidrs: ['0.0.0.0/0.0.0.0']\n  llm-deploy:sshPublicKeys: ['{SSH_KEY}']\n",
                                         "sshCidrs[0]: 0.0.0.0/0 opens SSH to the whole internet"),
    "price override key with a final newline": ('config:\n  llm-deploy:priceOverrides: {"aws/g6.xlarge\\n": 1.0}\n',
                                                "priceOverrides: key 'aws/g6.xlarge\\n' must be '<cloud>/<instance_type>'"),
    "a file over 256 KiB": (OVERSIZED, f"file: {len(OVERSIZED)} bytes; a stack file may have at most 262144"),
}


def _run_each(cli, path: Path) -> dict[str, object]:
    results = {}
    for args in (["validate"], ["cost", "--format", "json"], ["catalog", "--format", "json"]):
        results[args[0]] = cli(*args, "--config", str(path))
    return results


@pytest.mark.parametrize("case", list(STACK_FILES), ids=list(STACK_FILES))
def test_hostile_stack_file_is_refused_naming_the_field(cli, tmp_path, case):
    content, expected = STACK_FILES[case]
    path = tmp_path / "Pulumi.hostile.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    field, _, message = expected.partition(": ")
    problems = stack_problems(path)
    assert all(p.source == str(path) for p in problems), problems
    assert any(p.field == field and p.message.startswith(message) for p in problems), problems
    for command, result in _run_each(cli, path).items():
        assert result.code == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        assert result.stderr.splitlines() == [str(p) for p in problems], command


def test_the_alias_bomb_is_refused_before_it_is_built(tmp_path):
    """The bomb used to take 53 s and 5.6 GB; it is refused while composing, before any value exists."""
    from infra.config import ConfigError, read_stack_file

    path = tmp_path / "Pulumi.bomb.yaml"
    path.write_text(alias_bomb())
    assert 1200 < path.stat().st_size < 1400, path.stat().st_size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        read_stack_file(path)
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 0.5 and grown_mb < 50, (elapsed, grown_mb)


def test_other_namespaces_may_hold_what_yaml_allows(cli, tmp_path):
    """Only `llm-deploy:` values must be JSON: other keys belong to their providers (Pulumi reads a bare date as text)."""
    path = tmp_path / "Pulumi.other.yaml"
    path.write_text("config:\n  aws:region: us-east-1\n  acme:since: 2026-12-01\n  llm-deploy:cloud: aws\n")
    result = cli("validate", "--config", str(path))
    assert result.code == 0, result.stderr


def test_ssh_from_the_world_when_the_stack_says_so(cli, stack_file):
    path = stack_file({"sshCidrs": ["0.0.0.0/0", "::/0"], "sshPublicKeys": [SSH_KEY], "allowPublicSsh": True})
    result = cli("validate", "--config", str(path))
    assert result.code == 0, result.stderr


def test_allow_public_ssh_must_be_a_bool(cli, stack_file):
    result = cli("validate", "--config", str(stack_file({"allowPublicSsh": "maybe"})))
    assert result.code == 2 and "allowPublicSsh: " in result.stderr


def test_one_network_written_twice_counts_once(stack_file):
    from infra.config import load_stack

    config = load_stack(config_file=str(stack_file({"allowedCidrs": ["10.0.0.0/8", "10.0.0.0/255.0.0.0", "192.0.2.0/24"]})))
    assert config.allowed_cidrs == ["10.0.0.0/8", "192.0.2.0/24"]


def test_runtime_config_gets_the_same_limits(monkeypatch):
    """Under `pulumi up` values arrive as JSON text: json.loads takes NaN and any integer, so the same checks apply."""
    import pulumi

    from infra.config import ConfigError, parse_config, read_pulumi_config

    monkeypatch.setattr(pulumi, "get_stack", lambda: "dev")
    cases = {
        "priceOverrides": ('{"aws/g6.xlarge": NaN}', "priceOverrides.aws/g6.xlarge: nan is not a finite number"),
        "budgetUsdPerHour": ("1e999", "budgetUsdPerHour: must be a finite number"),
        "services": ("[" * 100_000 + "]" * 100_000, "services: longer than 16384 characters"),
        "allowedCidrs": ("[" * 5_000 + "]" * 5_000, "allowedCidrs: Input should be a valid list"),
        "sshCidrs": ("[" + "1" * 5000 + "]", "sshCidrs: Input should be a valid list"),
    }
    for key, (text, expected) in cases.items():
        pulumi.runtime.set_all_config({f"llm-deploy:{key}": text}, [])
        try:
            with pytest.raises(ConfigError) as error:
                parse_config(read_pulumi_config())
        finally:
            pulumi.runtime.set_all_config({}, [])
        field, _, message = expected.partition(": ")
        assert error.value.problems == [Problem("stacks/Pulumi.dev.yaml", field, message)], key


# --- catalog files ------------------------------------------------------------------------------------------

CATALOG_ROWS: dict[str, tuple[str, str]] = {
    "0 GPU memory": (G5_XLARGE.replace("A10G,1,24,", "A10G,1,0,"), "line 2: gpu_memory_gb: must be > 0 on a GPU instance"),
    "NaN GPU memory": (G5_XLARGE.replace("A10G,1,24,", "A10G,1,nan,"), "line 2: gpu_memory_gb: 'nan' is not a finite number"),
    "inf price": (G5_XLARGE.replace(",1.006,", ",inf,"), "line 2: hourly_usd: 'inf' is not a finite number"),
    "negative price": (G5_XLARGE.replace(",1.006,", ",-1.006,"), "line 2: hourly_usd: '-1.006' is out of range"),
    "negative memory": (G5_XLARGE.replace(",4,16,", ",4,-16,"), "line 2: memory_gb: '-16' is out of range"),
    "negative GPU count": (G5_XLARGE.replace("A10G,1,24,", "A10G,-1,24,"), "line 2: gpu_count: '-1' is out of range"),
    "0 vCPUs": (G5_XLARGE.replace(",24,4,16,", ",24,0,16,"), "line 2: vcpus: '0' is out of range"),
    "GPU count without a GPU": (G5_XLARGE.replace("A10G,1,24,", ",1,24,"), "line 2: gpu_count: must be 0 without a gpu"),
    "short row": ("aws,g5.xlarge,us-east-1,A10G,1", "line 2: gpu_memory_gb: missing (the row has fewer fields than the header)"),
    "long row": (G5_XLARGE + ",extra", f"line 2: {len(CATALOG_COLUMNS) + 1} fields, the header has {len(CATALOG_COLUMNS)}"),
    "128 KiB field": (G5_XLARGE.replace("SkyPilot", "x" * (128 * 1024 + 1)), "line 2: not valid CSV (field larger than field limit"),
    "2 KiB field": (G5_XLARGE.replace("SkyPilot", "x" * 2048), "line 2: source: longer than 1024 characters"),
    "huge count": (G5_XLARGE.replace("A10G,1,24,", "A10G," + "9" * 400 + ",24,"), "line 2: gpu_count: '999"),
    "NUL byte": (G5_XLARGE.replace("SkyPilot", "FACTS\0md"), "line 2: a NUL byte"),
}


@pytest.mark.parametrize("case", list(CATALOG_ROWS), ids=list(CATALOG_ROWS))
def test_broken_catalog_file_is_refused_naming_line_and_column(cli, tmp_path, stack_file, case):
    row, expected = CATALOG_ROWS[case]
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(f"{HEADER}\n{row}\n")
    path = stack_file({"catalogFile": str(catalog)})
    (problem,) = stack_problems(path)
    assert (problem.source, problem.field) == (str(path), "catalogFile")
    assert problem.message.startswith(f"{catalog}: {expected}"), problem.message
    for command, result in _run_each(cli, path).items():
        assert result.code == 2, (command, result.stderr)
        assert result.stderr.splitlines() == [str(problem)], command


def test_catalog_file_that_is_not_utf8(cli, tmp_path, stack_file):
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(f"{HEADER}\n".encode() + G5_XLARGE.replace("SkyPilot", "FACTS\xe9").encode("latin-1") + b"\n")
    result = cli("validate", "--config", str(stack_file({"catalogFile": str(catalog)})))
    assert result.code == 2 and f"catalogFile: {catalog}: not UTF-8 text" in result.stderr


def test_catalog_columns_beyond_the_known_ones_are_kept_apart(cli, tmp_path, stack_file):
    """Checks go column by column: a catalog with a column this version does not know still loads."""
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(f"{HEADER},reserved_hourly_usd\n{G5_XLARGE},0.4\n")
    offers = cli("catalog", "--config", str(stack_file({"catalogFile": str(catalog)})), "--format", "json").json()
    assert {o["instance_type"] for o in offers} == {"g5.xlarge"} and "reserved_hourly_usd" not in CATALOG_COLUMNS


def test_nan_override_no_longer_slips_under_the_budget(cli, stack_file):
    path = stack_file({"budgetUsdPerHour": 0.5, "priceOverrides": {"aws/g6.xlarge": float("nan")}})
    result = cli("cost", "--config", str(path), "--format", "json")
    assert result.code == 2 and "priceOverrides.aws/g6.xlarge: nan is not a finite number" in result.stderr


def test_json_output_is_strict_json(cli):
    result = cli("cost", "--stack", "dev", "--format", "json")
    json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
