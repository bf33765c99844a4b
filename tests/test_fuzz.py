"""Fuzzing the real CLI entry point with stack files, catalog files and price overrides.

For every input, `validate`, `cost --format json` and `catalog --format json`:
- exit 0 or 2, never 1 and never a traceback;
- print problems one per line, each `<stack file>: <field>: <what>`;
- print JSON that strict `json.loads` reads (no NaN, no Infinity).

Hypothesis runs derandomized (the same examples on every run) with a fixed example budget, so the
test is repeatable in CI and takes well under a minute.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from infra.catalog import CATALOG_COLUMNS, DATA_DIR
from infra.models import registry
from tests.helpers import SSH_KEY, stack_problems


def fuzz(examples: int) -> settings:
    """Derandomized (the same examples every run), no example database, a fixed budget."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=[Phase.explicit, Phase.generate],  # no shrinking: it can take minutes; the failing input is printed as found
    )
COMMANDS = (("validate",), ("cost", "--format", "json"), ("catalog", "--format", "json"))
BUILTIN_ROWS = list(csv.DictReader(io.StringIO((DATA_DIR / "catalog.csv").read_text())))
MODELS = sorted(registry())
# A field path: names, indexes, and quoted keys (a key with spaces, ':' or control characters is shown as its repr)
FIELD = r"(?:[A-Za-z0-9_./\[\]-]|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")+"


def run_cli(*args: str) -> tuple[int, str, str]:
    """`llm-deploy ARGS` through the console entry point, in-process, with its output captured."""
    from infra.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["llm-deploy", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as done:
        code = done.code
    finally:
        sys.argv = saved
    return (code or 0) if isinstance(code, int | None) else 1, stdout.getvalue(), stderr.getvalue()


def strict_json(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


OUTCOMES: collections.Counter[tuple[str, int]] = collections.Counter()  # (command, exit status) → examples


def check_every_command(stack_file: Path) -> dict[str, tuple[int, str]]:
    """Run each command on the stack file and check its exit status and output; returns (status, stdout) per command.

    The problems each command prints are the stack's problems, one line each, every one naming the file and a field.
    """
    line = re.compile(rf"{re.escape(str(stack_file))}: {FIELD}: \S.*")
    problems = stack_problems(stack_file)
    for problem in problems:
        assert problem.source == str(stack_file) and re.fullmatch(FIELD, problem.field) and problem.message, problem
    rendered = [str(p) for p in problems]
    results = {}
    for command in COMMANDS:
        code, stdout, stderr = run_cli(*command, "--config", str(stack_file))
        OUTCOMES[command[0], code] += 1
        assert code in (0, 2), (command, code, stderr, stack_file.read_bytes()[:2000])
        assert "Traceback" not in stdout + stderr
        printed = stderr.splitlines()
        if command[0] == "catalog":  # the catalog needs only the config and the prices to be right
            assert set(printed) <= set(rendered), (command, printed, rendered)
        elif problems:
            assert printed == rendered, (command, printed, rendered)
        else:  # validate also renders the user-data, which may be over the cloud's limit
            assert all(line.fullmatch(problem) for problem in printed), (command, printed)
        if code == 2:
            assert stderr.strip(), (command, "exit 2 without saying why")
        if command[-1] == "json" and stdout:
            strict_json(stdout)
        results[command[0]] = code, stdout
    return results


# --- strategies ---------------------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-5, max_value=200),
    st.integers(),
    st.integers(min_value=2**53 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.001, max_value=50),
)
texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="abcdefgh-\n\t :/\x00\u2028é", max_size=12),
    st.sampled_from(["llm", "llm\n", "LLM", "aws", "auto", "tor1", "us-east-1", "0.0.0.0/0", "::/0", "10.0.0.1/8", ""]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, st.dates(), st.binary(max_size=8))
any_value = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.one_of(texts, st.integers()), children, max_size=4)),
    max_leaves=12,
)
ssh_keys = st.one_of(
    st.just(SSH_KEY),
    st.just("-----BEGIN OPENSSH PRIVATE KEY-----"),
    texts,
)
cidrs = st.one_of(
    st.sampled_from(["0.0.0.0/0", "::/0", "0.0.0.0/0.0.0.0", "10.0.0.0/8", "10.0.0.0/255.0.0.0", "10.0.0.1/8", "1::2/128",
                     "1:2::/128", "203.0.113.0/24", "300.1.1.1/8"]),
    texts,
)


def either(plausible: st.SearchStrategy, garbage: bool, rate: int = 4) -> st.SearchStrategy:
    """The plausible value; with `garbage`, sometimes anything at all instead."""
    return st.one_of(*([plausible] * rate), any_value) if garbage else plausible


def services(garbage: bool) -> st.SearchStrategy:
    names = st.sampled_from(["llm", "embedding", "rerank", "nodes", "ab", "ab-cd", "llm\n", "x" * 40])
    service = st.fixed_dictionaries(
        {
            "name": either(names, garbage),
            "kind": either(st.sampled_from(["llm", "embedding", "rerank"]), garbage),
            "model": either(st.sampled_from(MODELS), garbage),
        },
        optional={
            "replicas": either(st.integers(min_value=0, max_value=3), garbage),
            "dtype": either(st.sampled_from(["bf16", "fp8", "int4"]), garbage),
            "gpu": either(st.sampled_from(["H100", "L4", "A10G", "B300"]), garbage),
            "gpuCount": either(st.integers(min_value=0, max_value=9), garbage),
            "accelerator": either(st.sampled_from(["gpu", "cpu"]), garbage),
            "maxModelLen": either(st.integers(min_value=100, max_value=40_000), garbage),
            "paramsB": either(st.floats(min_value=0.1, max_value=100), garbage),
        },
    )
    if garbage:  # and keys of its own
        keys = st.one_of(st.sampled_from(["name", "kind", "model", "replicas", "gpu", "maxModelLen"]), texts)
        service = st.tuples(st.dictionaries(keys, any_value, max_size=3), service).map(lambda pair: {**pair[0], **pair[1]})
    return st.lists(service, min_size=1, max_size=4)


OVERRIDE_KEYS = sorted({k for r in BUILTIN_ROWS for k in (f"{r['cloud']}/{r['instance_type']}", f"{r['cloud']}/{r['instance_type']}/{r['region']}")})
price_overrides = st.dictionaries(
    st.one_of(st.sampled_from(OVERRIDE_KEYS), texts),
    st.one_of(numbers, any_value),
    max_size=3,
)
plausible_prices = st.dictionaries(st.sampled_from(OVERRIDE_KEYS),
                                   st.floats(min_value=0.01, max_value=40), max_size=3)
secret = st.just({"secure": "v1:AAAA"})


def stack_values(garbage: bool) -> st.SearchStrategy:
    """A stack's llm-deploy keys: each plausible, or (with `garbage`) sometimes anything."""
    return st.fixed_dictionaries(
        {},
        optional={
            "cloud": either(st.sampled_from(["aws", "digitalocean", "alicloud", "auto", "gcp"]), garbage),
            "region": either(st.sampled_from(["us-east-1", "tor1", "atl1", "ap-southeast-1", "mars-1"]), garbage),
            "services": either(services(garbage), garbage, rate=8),
            "allowedCidrs": either(st.lists(cidrs, max_size=3), garbage),
            "sshCidrs": either(st.lists(cidrs, max_size=3), garbage),
            "allowPublicSsh": either(st.booleans(), garbage),
            "sshPublicKeys": either(st.lists(ssh_keys, max_size=3), garbage),
            "domain": either(st.sampled_from(["llm.example.com", "llm.example.com\n", "-bad-.com"]), garbage),
            "budgetUsdPerHour": either(st.one_of(numbers, st.floats(min_value=1, max_value=100)), garbage),
            "priceOverrides": price_overrides if garbage else plausible_prices,
            "apiKey": st.one_of(secret, any_value) if garbage else secret,
            "hfToken": st.one_of(secret, any_value) if garbage else secret,
            "catalogFile": (st.one_of(texts, st.just(str(DATA_DIR / "catalog.csv")), st.just("a\x00b.csv"), any_value)
                            if garbage else st.just(str(DATA_DIR / "catalog.csv"))),
        },
    )


extra_keys = st.dictionaries(st.one_of(texts.map(lambda t: f"llm-deploy:{t}"), texts), any_value, max_size=2)


def stack_text(values: dict, extra: dict) -> str:
    config = {**{f"llm-deploy:{k}": v for k, v in values.items()}, **extra}
    return yaml.safe_dump({"config": config}, allow_unicode=True, sort_keys=False)


def mutate(text: str, how: str, where: int) -> bytes:
    """What a hand-edited or hostile file adds: cuts, stray bytes, repeated keys, deep nesting, aliases."""
    data = text.encode()
    cut = where % (len(data) + 1)
    if how == "truncate":
        return data[:cut]
    if how == "stray bytes":
        return data[:cut] + b"\xff\xfe\x00" + data[cut:]
    if how == "duplicate key":
        return data + b"  llm-deploy:cloud: aws\n  llm-deploy:cloud: aws\n"
    if how == "deep":
        return data + b"  llm-deploy:services: " + b"[" * (where % 600) + b"]" * (where % 600) + b"\n"
    if how == "aliases":
        return (b"config:\n  a: &a [x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                b"  c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n  llm-deploy:services: [*c, *c, *c, *c, *c, *c, *c, *c]\n")
    if how == "recursive":
        return b"config:\n  llm-deploy:services: &s [{name: llm, kind: llm, model: x, more: *s}]\n"
    return data


mutations = st.sampled_from(["none"] * 6 + ["truncate", "stray bytes", "duplicate key", "deep", "aliases", "recursive"])
counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Where the examples' files go; at the end, the fuzzer must have reached both accepted and refused inputs
    for every command (a fuzzer that only ever sees garbage proves little)."""
    yield tmp_path_factory.mktemp("fuzz")
    if OUTCOMES:
        missing = [(c[0], code) for c in COMMANDS for code in (0, 2) if not OUTCOMES[c[0], code]]
        assert not missing, f"no example gave {missing}: {dict(OUTCOMES)}"


def new_path(workdir: Path, suffix: str) -> Path:
    """A fresh name per example: catalogs are cached by path within one process."""
    return workdir / f"Pulumi.f{next(counter)}{suffix}"


@fuzz(120)
@given(values=st.one_of(stack_values(garbage=False), stack_values(garbage=True), stack_values(garbage=True)),
       extra=extra_keys, how=mutations, where=st.integers(min_value=0, max_value=10_000))
def test_fuzzed_stack_files(workdir, values, extra, how, where):
    path = new_path(workdir, ".yaml")
    try:
        text = stack_text(values, extra)
    except (yaml.YAMLError, ValueError):  # PyYAML cannot write some keys; then the mutation alone is the input
        text = "config: {}\n"
    path.write_bytes(mutate(text, how, where))
    code, stdout = check_every_command(path)["validate"]
    cloud = stdout.split(": ok: ")[-1].split()[0] if code == 0 else None
    if cloud and cloud not in PLANNED:  # the first fuzzed config validate accepts on each cloud must go through plan
        assert run_cli("plan", "--config", str(path))[0] == 0, path.read_text()
        PLANNED.add(cloud)


PLANNED: set[str] = set()  # clouds for which a fuzzed config that validate accepted was also planned


# --- catalog files ------------------------------------------------------------------------------------------

cells = {
    "cloud": st.sampled_from(["aws", "digitalocean", "alicloud", "gcp", ""]),
    "instance_type": st.sampled_from([r["instance_type"] for r in BUILTIN_ROWS] + ["gpu-h100x2-160gb", "x" * 2000]),
    "gpu": st.sampled_from(["H100", "A10G", "L4", "MI300X", "", "B300"]),
    "gpu_count": st.sampled_from(["0", "1", "2", "8", "-1", "1.5", "99999999999999999999999", ""]),
    "gpu_memory_gb": st.sampled_from(["0", "24", "80", "nan", "inf", "-24", "1e400", ""]),
    "vcpus": st.sampled_from(["4", "0", "-4", "1e9", "four"]),
    "memory_gb": st.sampled_from(["16", "0", "-16", "nan", "1e308"]),
    "hourly_usd": st.sampled_from(["1.006", "0", "-1", "nan", "inf", "1e308", "0.00001", "$1"]),
    "region": st.sampled_from(["us-east-1", "tor1", "", "ap-southeast-1", "tor1 atl1"]),
    "regions": st.sampled_from(["us-east-1", "tor1 atl1", "", "ap-southeast-1 us-east-1"]),
    "spot_hourly_usd": st.sampled_from(["", "0.4", "-1", "nan", "inf"]),
    "list_hourly_usd": st.sampled_from(["", "1.2", "0", "nan"]),
    "price_basis": st.sampled_from(["", "list", "specified", "lowest-across-regions", "override", "cheap"]),
    "source": st.sampled_from(["fuzz", "x" * (128 * 1024 + 1), 'a "quoted", field', "line\nbreak"]),
    "as_of": st.sampled_from(["2026-12-01", ""]),
}
catalog_rows = st.lists(
    st.one_of(
        st.sampled_from(BUILTIN_ROWS).map(lambda r: [r[c] for c in CATALOG_COLUMNS]),
        st.tuples(*(st.one_of(cells[c], texts) for c in CATALOG_COLUMNS)).map(list),
    ).flatmap(lambda row: st.one_of(st.just(row), st.integers(min_value=1, max_value=len(row) + 1).map(
        lambda n: row[:n] if n <= len(row) else [*row, "extra"]))),  # short and long rows too
    min_size=0,
    max_size=6,
)
OLDER_COLUMNS = [c if c != "region" else "regions" for c in CATALOG_COLUMNS]  # the older form: regions per row
headers = st.one_of(
    st.just(list(CATALOG_COLUMNS)),
    st.just(OLDER_COLUMNS),
    st.just([*CATALOG_COLUMNS, "reserved_hourly_usd"]),
    st.permutations(list(CATALOG_COLUMNS)),
    st.lists(st.sampled_from(list(CATALOG_COLUMNS)), max_size=11),
)


def catalog_text(header: list[str], rows: list[list[str]], raw: bool) -> str:
    if raw:  # hand-written: no quoting at all
        return "\n".join(",".join(row) for row in [header, *rows]) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@fuzz(80)
@given(header=headers, rows=catalog_rows, raw=st.booleans(), overrides=price_overrides, cloud=st.sampled_from(["auto", "aws", "digitalocean"]),
       how=st.sampled_from(["none"] * 8 + ["stray bytes", "truncate"]), where=st.integers(min_value=0, max_value=10_000))
def test_fuzzed_catalog_files(workdir, header, rows, raw, overrides, cloud, how, where):
    catalog = new_path(workdir, ".csv")
    catalog.write_bytes(mutate(catalog_text(header, rows, raw), how, where))
    path = new_path(workdir, ".yaml")
    path.write_text(stack_text({"cloud": cloud, "catalogFile": str(catalog), "priceOverrides": overrides}, {}))
    check_every_command(path)


# --- price overrides ----------------------------------------------------------------------------------------


@fuzz(50)
@given(overrides=price_overrides, budget=st.one_of(st.none(), numbers))
def test_fuzzed_price_overrides_and_budgets(workdir, overrides, budget):
    values = {"priceOverrides": overrides, **({"budgetUsdPerHour": budget} if budget is not None else {})}
    path = new_path(workdir, ".yaml")
    path.write_text(stack_text(values, {}))
    check_every_command(path)
    code, stdout, _ = run_cli("cost", "--config", str(path), "--format", "json")
    if code == 0 and budget is not None:  # within the budget, with every price a real number
        assert strict_json(stdout)["total_hourly_usd"] <= budget
