"""Bad stack config is refused: exit 2, one line per problem naming the file and the field."""

from __future__ import annotations

import pytest
import yaml

from infra.config import USER_KEYS
from infra.errors import Problem
from tests.helpers import fields, stack_problems

LLM = {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}
OLLAMA = {"name": "llm", "kind": "llm", "engine": "ollama", "accelerator": "cpu", "model": "deepseek-coder:6.7b"}

KNOWN_GPUS = "A10, A100, A100-80GB, A10G, B200, B300, H100, H200, L20, L4, L40S, MI300X, MI325X, RTX4000ADA, RTX6000ADA, RTXPRO6000, T4, V100"

# name → (the stack's keys, the field named, the message (or how it starts), the hint)
BAD_INPUTS = {
    "unknown cloud": ({"cloud": "gcp"}, "cloud", "must be one of 'aws', 'digitalocean', 'alicloud', 'onprem' or 'auto'", None),
    "unknown kind": ({"services": [{**LLM, "kind": "chat"}]}, "services[0].kind", "must be one of 'llm', 'embedding' or 'rerank'", None),
    "unknown key (typo)": ({"allowedCidr": ["10.0.0.0/8"]}, "allowedCidr", "unknown key (did you mean llm-deploy:allowedCidrs?)",
                           "known: " + ", ".join(USER_KEYS)),
    "unknown service key": ({"services": [{**LLM, "replica": 2}]}, "services[0].replica", "unknown key (did you mean replicas?)", None),
    "replicas < 1": ({"services": [{**LLM, "replicas": 0}]}, "services[0].replicas", "must be >= 1", None),
    "invalid CIDR": ({"allowedCidrs": ["10.0.0.300/8"]}, "allowedCidrs[0]", "'10.0.0.300/8' is not a valid CIDR (", None),
    "CIDR with host bits": ({"sshCidrs": ["10.0.0.1/8"]}, "sshCidrs[0]", "'10.0.0.1/8' is not a valid CIDR (10.0.0.1/8 has host bits set)",
                            None),
    "duplicate service names": (
        {"services": [LLM, {"name": "llm", "kind": "embedding", "model": "BAAI/bge-m3"}]},
        "services", "duplicate service name(s) llm", None,
    ),
    "cpu for an llm": ({"services": [{**LLM, "accelerator": "cpu"}]}, "services[0].accelerator",
                       "'cpu' is not supported for kind 'llm' with vLLM (it needs a CUDA GPU)",
                       "set engine: ollama with an Ollama model tag to serve the LLM on CPU"),
    "ollama with a vLLM dtype": ({"services": [{**OLLAMA, "dtype": "fp8"}]}, "services[0].dtype",
                                 ("not with engine 'ollama': the tag's quantisation sets the weights' format "
                                 "(e.g. llama3.1:8b-instruct-q8_0)"), None),
    "ollama autoscaled": ({"services": [{**OLLAMA, "maxReplicas": 3}]}, "services[0].maxReplicas",
                          "not with engine 'ollama': Ollama publishes no queue metric to autoscale on", None),
    "ollama with a latency target": ({"services": [{**OLLAMA, "latency": {"timePerOutputTokenMs": 50}}]}, "services[0].latency",
                                     ("not with engine 'ollama': the Ollama estimate covers decode throughput only, not time to "
                                     "first token"), None),
    "ollama for an encoder": ({"services": [{"name": "embedding", "kind": "embedding", "model": "BAAI/bge-m3", "engine": "ollama"}]},
                              "services[0].engine", "only for kind 'llm' (TEI serves the encoders)", None),
    "unknown ollama tag without paramsB": (
        {"services": [{**OLLAMA, "model": "qwen2.5:7b-instruct-q4_K_M"}]}, "services[0].paramsB",
        "Ollama tag 'qwen2.5:7b-instruct-q4_K_M' is not in the built-in list (infra/data/ollama_models.csv)",
        "set paramsB (size in billions) and use a tag that names its quantisation, e.g. qwen2.5:7b-instruct-q4_K_M",
    ),
    "unknown ollama tag without its quantisation": (
        {"services": [{**OLLAMA, "model": "qwen2.5:7b", "paramsB": 7.6}]}, "services[0].model",
        "'qwen2.5:7b' names no quantisation, so its size is unknown",
        "use the tag with its quantisation suffix (f16, q8_0, q6_K, q5_K_M, q5_0, q4_K_M, q4_1, q4_0, q3_K_M)",
    ),
    "ollama tag without its tag": ({"services": [{**OLLAMA, "model": "llama3.1"}]}, "services[0].model",
                                   "'llama3.1' is not an Ollama library tag", "name:tag, both explicit, e.g. llama3.1:8b"),
    "ollama context past the tag's": ({"services": [{**OLLAMA, "maxModelLen": 32768}]}, "services[0].maxModelLen",
                                      "deepseek-coder:6.7b has a context of 16384 tokens", None),
    "unknown model without paramsB": (
        {"services": [{**LLM, "model": "acme/secret-model"}]},
        "services[0].paramsB", "model 'acme/secret-model' is not in the built-in registry", "set paramsB (size in billions)",
    ),
    "pinned GPU too small": (
        {"services": [{**LLM, "model": "meta-llama/Llama-3.1-70B-Instruct", "gpu": "RTX4000ADA"}]},
        "services[0].gpu", "RTX4000ADA cannot hold meta-llama/Llama-3.1-70B-Instruct: it needs ", None,
    ),
    "pinned GPU count too small": (
        {"services": [{**LLM, "model": "meta-llama/Llama-3.1-70B-Instruct", "gpu": "L40S", "gpuCount": 1}]},
        # 4 (g6e.12xlarge) or 8 (g6e.48xlarge, one replica across all its GPUs: none idle)
        "services[0].gpuCount", "1x L40S cannot hold meta-llama/Llama-3.1-70B-Instruct: it needs ", "valid: 4, 8",
    ),
    "region without the needed GPU": (
        {"cloud": "digitalocean", "region": "tor1", "services": [{**LLM, "gpu": "H200"}]},
        "region", "tor1 has no offer that can serve services[0] (Qwen/Qwen2.5-7B-Instruct, ", None,
    ),
    "unknown region": ({"cloud": "aws", "region": "mars-1", "services": [LLM]}, "region", "'mars-1' is not a region of aws in the catalog (known: ",
                       None),
    "budget exceeded": ({"services": [LLM], "budgetUsdPerHour": 0.1}, "budgetUsdPerHour", "the cheapest placement costs ", None),
    "model too large for any instance": (
        {"services": [{**LLM, "model": "example/giant-3t", "paramsB": 3000}]},
        "services[0].model", "example/giant-3t needs ", None,
    ),
    "domain on a cloud without managed TLS": (
        {"cloud": "alicloud", "domain": "llm.acme-inference.io", "services": [LLM]},
        "domain", "TLS for llm.acme-inference.io needs a certificate that alicloud cannot issue by itself",
        "remove domain (plain HTTP endpoint) or deploy on aws or digitalocean",
    ),
    "domain reserved for examples": (
        {"cloud": "aws", "domain": "llm.example.com", "services": [LLM]},
        "domain", "llm.example.com is under example.com, a name reserved by RFC 2606/6761: no certificate can be issued for it",
        "set a domain you control, or remove domain to serve plain HTTP on the load balancer's address",
    ),
    "domain under a reserved top-level name": (
        {"cloud": "digitalocean", "domain": "api.staging.test", "services": [LLM]},
        "domain", "api.staging.test is under .test, a name reserved by RFC 2606/6761: no certificate can be issued for it",
        "set a domain you control, or remove domain to serve plain HTTP on the load balancer's address",
    ),
    "ssh open without a key": ({"sshCidrs": ["203.0.113.0/24"]}, "sshCidrs", "opens SSH, but nodes take keys only: set sshPublicKeys too",
                               None),
    "private key as ssh key": (
        {"sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]},
        "sshPublicKeys[0]", "must be an OpenSSH public key line ('ssh-ed25519 AAAA... comment'), not a private key or a file name", None,
    ),
    "plain-text api key": ({"apiKey": "sk-plain"}, "apiKey", "must be a secret: pulumi config set --secret llm-deploy:apiKey <value>", None),
    "unknown GPU pin": ({"services": [{**LLM, "gpu": "TPU-V5E"}]}, "services[0].gpu", "unknown GPU 'TPU-V5E'", f"known: {KNOWN_GPUS}"),
    "price override of unknown type": ({"priceOverrides": {"aws/p9.huge": 1.0}}, "priceOverrides", "aws/p9.huge not in the catalog", None),
    "bad service name": ({"services": [{**LLM, "name": "LLM_1"}]}, "services[0].name",
                         "must be lowercase letters, digits and '-', starting with a letter, at most 32 characters", None),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_problem_naming_the_field(stack_file, case):
    values, field, message, hint = BAD_INPUTS[case]
    path = stack_file(values)
    (problem,) = stack_problems(path)
    assert (problem.source, problem.field, problem.hint) == (str(path), field, hint)
    assert problem.message.startswith(message), problem.message
    assert problem.message == message or message.endswith((" ", "(")), "a prefix, or the whole message"


@pytest.mark.parametrize("command", ["validate", "cost"])
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_one_line_per_problem(cli, stack_file, case, command):
    path = stack_file(BAD_INPUTS[case][0])
    result = cli(command, "--config", str(path))
    assert result.code == 2, result.stderr
    assert result.stderr.splitlines() == [str(p) for p in stack_problems(path)]
    assert "Traceback" not in result.stderr + result.stdout


def test_every_problem_is_reported_not_just_the_first(cli, stack_file):
    path = stack_file({"cloud": "gcp", "sshCidrs": ["nope"], "services": [{**LLM, "replicas": 0}]})
    problems = stack_problems(path)
    assert fields(problems) == [(str(path), "cloud"), (str(path), "services[0].replicas"), (str(path), "sshCidrs[0]")]
    result = cli("validate", "--config", str(path))
    assert result.code == 2
    assert result.stderr.splitlines() == [str(p) for p in problems]


def test_a_problem_is_one_line_source_field_message_and_hint():
    problem = Problem("stacks/Pulumi.dev.yaml", "services[0].gpuCount", "no 3-GPU tensor-parallel size", "valid: 1, 2, 4, 8")
    assert str(problem) == "stacks/Pulumi.dev.yaml: services[0].gpuCount: no 3-GPU tensor-parallel size; valid: 1, 2, 4, 8"
    assert str(Problem("a.yaml", "'clo\nud'", "unknown key\n")) == "a.yaml: 'clo\\nud': unknown key\\n"
    assert str(Problem("", "--max-hourly-usd", "over the limit")) == "--max-hourly-usd: over the limit"


def test_missing_stack_file_is_bad_input(cli):
    result = cli("validate", "--stack", "no-such-stack")
    assert result.code == 2
    assert "stacks/Pulumi.no-such-stack.yaml: file: not found" in result.stderr


def test_secure_values_are_secrets_never_read(stack_file):
    from infra.config import SECRET_PLACEHOLDER, load_raw, parse_config

    path = stack_file({"apiKey": {"secure": "v1:abc"}, "hfToken": {"secure": "v1:def"}})
    config = parse_config(load_raw(config_file=str(path)))
    assert config.api_key is not None and config.api_key.get_secret_value() == SECRET_PLACEHOLDER
    assert "v1:abc" not in repr(config)


def test_runtime_config_goes_through_the_same_parser(monkeypatch):
    """Inside a Pulumi program, config arrives as strings (JSON for lists) and secret keys."""
    import pulumi

    from infra.config import parse_config, read_pulumi_config

    pulumi.runtime.set_all_config(
        {
            "llm-deploy:cloud": "aws",
            "llm-deploy:services": '[{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "replicas": 0}]',
            "llm-deploy:apiKey": "s3cret",
        },
        ["llm-deploy:apiKey"],
    )
    monkeypatch.setattr(pulumi, "get_stack", lambda: "dev")
    raw = read_pulumi_config()
    assert raw.secret_keys == {"apiKey"}
    from infra.config import ConfigError

    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert error.value.problems == [Problem("stacks/Pulumi.dev.yaml", "services[0].replicas", "must be >= 1")]
    pulumi.runtime.set_all_config({}, [])


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "alicloud-dev"])
def test_shipped_stacks_are_valid(cli, stack):
    result = cli("validate", "--stack", stack)
    assert result.code == 0, result.stderr
    assert f"stacks/Pulumi.{stack}.yaml: ok" in result.stdout


def test_pulumi_yaml_declares_only_keys_with_the_programs_own_defaults():
    """Pulumi requires a declared key that has no default: every declared key must have one, and the same as ours."""
    from infra.config import USER_KEYS, StackConfig
    from tests.helpers import ROOT

    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaults = StackConfig.model_validate({"stack": "s", "source": "s"}).model_dump(by_alias=True)
    assert declared, "Pulumi.yaml should declare the config keys it can"
    for key, declaration in declared.items():
        assert key in USER_KEYS
        assert "default" in declaration, f"{key}: a declared key without a default is required by Pulumi"
        assert declaration["default"] == defaults[key], key
        assert declaration["type"] in ("string", "integer", "boolean", "array")
