"""bootstrap/files/: the scripts a node runs, run for real here: the node tool's secrets step and
Alibaba Cloud's signed OOS call (against stand-ins for the metadata service and OOS)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from bootstrap import InlineSecrets
from bootstrap.gateway import FILES
from tests.helpers import CASES, FAKE_API_KEY, FAKE_HF_TOKEN, make_node

# --- the node tool -----------------------------------------------------------------------------


def test_node_tool_writes_root_only_secret_files(tmp_path):
    node = make_node(tmp_path, CASES["digitalocean-inline-driver-image"])
    node.tool("secrets")
    for path in (node.etc / "hf.env", tmp_path / "nginx" / "auth.conf"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (node.etc / "hf.env").read_text() == f"HF_TOKEN={FAKE_HF_TOKEN}\n"
    assert f'"Bearer {FAKE_API_KEY}" 1;' in (tmp_path / "nginx" / "auth.conf").read_text()
    # A key that could break out of the nginx string is refused, and nothing is rewritten.
    (node.etc / "secrets.env").write_text("LLM_DEPLOY_API_KEY='abc\" 1; default 1; \"'\n")
    refused = node.tool("secrets", check=False)
    assert refused.returncode != 0
    assert f'"Bearer {FAKE_API_KEY}" 1;' in (tmp_path / "nginx" / "auth.conf").read_text()


def test_node_tool_refuses_a_key_longer_than_the_gateway_holds(tmp_path):
    node = make_node(tmp_path, replace(CASES["digitalocean-inline-driver-image"], secrets=InlineSecrets("k" * 241)))
    refused = node.tool("secrets", check=False)
    assert refused.returncode != 0 and not (tmp_path / "nginx" / "auth.conf").exists()


# --- Alibaba Cloud: the signed OOS call --------------------------------------------------------


def load_oos_module():
    spec = importlib.util.spec_from_file_location("alicloud_oos", FILES / "alicloud_oos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oos_signature_matches_alibabas_documented_example():
    params = {
        "AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26",
    }  # fmt: skip
    assert load_oos_module().sign("GET", params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_oos_fetch_uses_the_instance_role_and_decrypts():
    """The script against stand-ins for the metadata service and OOS: token, role, signed GetSecretParameter."""
    module = load_oos_module()
    seen: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def reply(self, code: int, body: str) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_PUT(self) -> None:
            seen["ttl"] = self.headers.get("X-aliyun-ecs-metadata-token-ttl-seconds")
            self.reply(200, "metadata-token")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/latest/meta-data/ram/security-credentials/"):
                seen.setdefault("tokens", []).append(self.headers.get("X-aliyun-ecs-metadata-token"))
                role = url.path.rsplit("/", 1)[1]
                if not role:
                    return self.reply(200, "llm-deploy-node-role\n")
                assert role == "llm-deploy-node-role"
                creds = {
                    "AccessKeyId": "STS.id",
                    "AccessKeySecret": "sts-secret",
                    "SecurityToken": "sts-token",
                    "Code": "Success",
                }
                return self.reply(200, json.dumps(creds))
            params = dict(parse_qsl(url.query))
            signature = params.pop("Signature")
            seen["params"], seen["valid"] = params, signature == module.sign("GET", params, "sts-secret")
            self.reply(200, json.dumps({"Parameter": {"Name": params["Name"], "Value": FAKE_API_KEY}}))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "ALICLOUD_METADATA_URL": base, "ALICLOUD_OOS_ENDPOINT": base}
    try:
        out = subprocess.run(["python3", str(FILES / "alicloud_oos.py"), "ap-southeast-1", "llm-deploy-test-api-key"],
                             check=False, env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    assert out.stdout == FAKE_API_KEY and FAKE_API_KEY not in out.stderr
    assert seen["tokens"] == ["metadata-token", "metadata-token"] and seen["valid"] is True
    params = seen["params"]
    assert params["Action"] == "GetSecretParameter" and params["WithDecryption"] == "true"
    assert (params["Name"], params["RegionId"], params["SecurityToken"]) == (
        "llm-deploy-test-api-key",
        "ap-southeast-1",
        "sts-token",
    )
