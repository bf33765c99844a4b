#!/usr/bin/python3
"""The boot test's CloudWatch agent (the stand-in package installs it as both programs below).

`amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:PATH`: the one call the node makes. Like the
real ctl it refuses other options, a config it cannot read, and a Prometheus config path that is missing or
not YAML; it also refuses an EMF declaration whose dimensions are not labels of every target it selects (the
real agent then publishes nothing) and an autoscaling group left as the template's placeholder. Then it
enables and (re)starts amazon-cloudwatch-agent.service (-s), as the real one does.
`amazon-cloudwatch-agent`: the service: every few seconds it scrapes each target and writes what it would
publish (namespace, dimensions, metric names found) to /var/lib/boot-stub/cloudwatch/published.json. Like the
real one (v1.300069.0 metrics_type_handler.go, metrics_filter.go) it types each series by its target's `# TYPE`
of the family (a histogram's or summary's _sum/_count/_bucket, a counter's _total) and keeps only gauges,
counters and summaries: a histogram (vLLM's time to first token) is dropped.
"""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ETC = Path("/opt/aws/amazon-cloudwatch-agent/etc")
STATE = Path("/var/lib/boot-stub/cloudwatch")


def fail(message: str) -> None:
    print(f"amazon-cloudwatch-agent-ctl: {message}", file=sys.stderr)
    sys.exit(1)


def load(path: Path) -> tuple[dict, dict]:
    config = json.loads(path.read_text())
    prometheus = config["logs"]["metrics_collected"]["prometheus"]
    scrape = yaml.safe_load(Path(prometheus["prometheus_config_path"]).read_text())
    return prometheus["emf_processor"], scrape


def selected(emf: dict, labels: dict[str, str]) -> list[dict]:
    """The declarations whose source labels match this target's."""
    return [d for d in emf["metric_declaration"]
            if re.search(d["label_matcher"], d.get("label_separator", ";").join(labels.get(k, "") for k in d["source_labels"]))]  # fmt: skip


def fetch_config(args: list[str]) -> None:
    if len(args) != 7 or args[:6] != ["-a", "fetch-config", "-m", "ec2", "-s", "-c"] or not args[6].startswith("file:"):
        fail(f"unsupported call {args}")
    source = Path(args[6].removeprefix("file:"))
    try:
        emf, scrape = load(source)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as error:
        fail(f"cannot use {source}: {error!r}")
    for job in scrape["scrape_configs"]:
        for static in job["static_configs"]:
            labels = static["labels"]
            if "@@" in json.dumps(labels):
                fail(f"job {job['job_name']}: a label still holds a placeholder: {labels}")
            for declaration in selected(emf, labels):
                missing = [d for dims in declaration["dimensions"] for d in dims if d not in labels]
                if missing:
                    fail(f"job {job['job_name']}: dimensions {missing} are not labels of its targets")
    ETC.mkdir(parents=True, exist_ok=True)
    (ETC / "amazon-cloudwatch-agent.json").write_text(source.read_text())
    for command in (["daemon-reload"], ["enable", "amazon-cloudwatch-agent.service"], ["restart", "amazon-cloudwatch-agent.service"]):
        subprocess.run(["systemctl", *command], check=True)  # what the real ctl's start does
    print("Successfully fetched the config and saved in /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json")


KEPT_TYPES = {"gauge", "counter", "summary"}


def kept(text: str) -> set[str]:
    """The sample names the real agent publishes of a scrape: those whose family's # TYPE it supports."""
    types = {parts[2]: parts[3] for parts in (line.split() for line in text.splitlines() if line.startswith("# TYPE "))}
    names = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[{ ]", line)[0]
        family = next((name.removesuffix(s) for s in ("_sum", "_count", "_bucket") if name.endswith(s) and name.removesuffix(s) in types),
                      name.removesuffix("_total") if name not in types else name)
        if types.get(family, types.get(name)) in KEPT_TYPES:
            names.add(name)
    return names


def agent() -> None:
    while True:
        emf, scrape = load(ETC / "amazon-cloudwatch-agent.json")
        published = []
        for job in scrape["scrape_configs"]:
            for static in job["static_configs"]:
                for target in static["targets"]:
                    try:
                        with urllib.request.urlopen(f"http://{target}{job['metrics_path']}", timeout=5) as response:
                            text = response.read().decode()
                    except OSError:
                        continue  # a target not up yet: scraped again next time
                    names = kept(text)
                    for declaration in selected(emf, static["labels"]):
                        metrics = sorted(n for n in names if any(re.search(p, n) for p in declaration["metric_selectors"]))
                        for dims in declaration["dimensions"]:
                            published.append({"namespace": emf["metric_namespace"], "job": job["job_name"],
                                              "dimensions": {d: static["labels"][d] for d in dims}, "metrics": metrics})  # fmt: skip
        STATE.mkdir(parents=True, exist_ok=True)
        (STATE / "published.json.tmp").write_text(json.dumps(published))
        (STATE / "published.json.tmp").rename(STATE / "published.json")
        time.sleep(3)


if __name__ == "__main__":
    if Path(sys.argv[0]).name == "amazon-cloudwatch-agent-ctl":
        fetch_config(sys.argv[1:])
    else:
        agent()
