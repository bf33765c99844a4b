#!/usr/bin/python3
"""The boot test's cloud endpoints: what cannot be reached from a container.

`cloud_endpoints.py metadata aws|alicloud ADDRESS PORT STATE_DIR`: an instance metadata service as strict
as the cloud's in token mode (the tests run it at the real address inside the node's network namespace):
- a PUT to /latest/api/token with the cloud's TTL header (1-21600 s) gives a token that lasts that long;
  a GET without a valid token is refused (AWS IMDSv2: 401; Alibaba Cloud's hardened mode: 403);
- /latest/meta-data/<item> answers 200 with the content of STATE_DIR/latest/meta-data/<item> while that
  file exists, else 404: a test schedules a spot interruption by writing the file;
- Alibaba Cloud: the RAM role's credentials under ram/security-credentials/.
`cloud_endpoints.py tls` (in the container, 127.0.0.1:443, where /etc/hosts points these names):
- https://oos.<region>.aliyuncs.com: OOS GetSecretParameter, checking the call the node makes;
- https://nvidia.github.io: NVIDIA's container-toolkit apt repository (signed with the test's key);
- https://amazoncloudwatch-agent.s3.amazonaws.com: the CloudWatch agent package, its signature and key.
The TLS certificate is signed by a CA the container trusts.
"""

import json
import secrets
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

OOS_CONFIG = Path("/etc/boot-stub/oos.json")
CONFIG = json.loads(OOS_CONFIG.read_text()) if sys.argv[1:] == ["tls"] and OOS_CONFIG.exists() else {}
REPO = Path("/opt/boot-stub/nvidia.github.io")
BUCKET = Path("/opt/boot-stub/amazoncloudwatch-agent")
ROLE = "llm-deploy-node"
HEADERS = {  # cloud → (TTL header of the token PUT, token header of a GET, status without a valid token)
    "aws": ("X-aws-ec2-metadata-token-ttl-seconds", "X-aws-ec2-metadata-token", 401),
    "alicloud": ("X-aliyun-ecs-metadata-token-ttl-seconds", "X-aliyun-ecs-metadata-token", 403),
}
CLOUD, STATE = (sys.argv[2], Path(sys.argv[5])) if sys.argv[1:2] == ["metadata"] else ("", Path("/nonexistent"))
TOKENS: dict[str, float] = {}  # token → when it expires
CREDENTIALS = {"Code": "Success", "AccessKeyId": "STS.bootstub", "AccessKeySecret": "boot-stub-secret",
               "SecurityToken": "boot-stub-security-token", "Expiration": "2099-01-01T00:00:00Z"}  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        ttl_header = HEADERS[CLOUD][0] if CLOUD else ""
        ttl = self.headers.get(ttl_header, "") if ttl_header else ""
        if self.path != "/latest/api/token" or not CLOUD:
            self.send(404, b"")
        elif self.headers.get("X-Forwarded-For"):  # IMDS refuses token requests that came through a proxy
            self.send(403, b"")
        elif not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            self.send(400, b"")
        else:
            token = secrets.token_urlsafe(32)
            TOKENS[token] = time.monotonic() + int(ttl)
            self.send(200, token.encode(), "text/plain")

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        if host == "nvidia.github.io":
            self.file(REPO)
        elif host == "amazoncloudwatch-agent.s3.amazonaws.com":
            self.file(BUCKET)
        elif host.startswith("oos."):
            self.oos(host)
        elif CLOUD:
            self.metadata()
        else:
            self.send(404, b"")

    def file(self, root: Path) -> None:
        path = (root / self.path.lstrip("/")).resolve()
        if path.is_file() and root in path.parents:
            self.send(200, path.read_bytes(), "application/octet-stream")
        else:
            self.send(404, b"")

    def metadata(self) -> None:
        _, token_header, refused = HEADERS[CLOUD]
        if TOKENS.get(self.headers.get(token_header, ""), 0) < time.monotonic():
            self.send(refused, b"")
        elif CLOUD == "alicloud" and self.path.startswith("/latest/meta-data/ram/security-credentials/"):
            if self.path.endswith("/"):
                self.send(200, ROLE.encode(), "text/plain")
            elif self.path.endswith("/" + ROLE):
                self.send(200, json.dumps(CREDENTIALS).encode())
            else:
                self.send(404, b"")
        elif self.path.startswith("/latest/meta-data/") and (STATE / self.path.lstrip("/")).is_file():
            self.send(200, (STATE / self.path.lstrip("/")).read_bytes(), "text/plain")
        else:
            self.send(404, b"")

    def oos(self, host: str) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query))
        expected = {"Action": "GetSecretParameter", "WithDecryption": "true", "RegionId": CONFIG["region"], "Version": "2019-06-01",
                    "AccessKeyId": CREDENTIALS["AccessKeyId"], "SecurityToken": CREDENTIALS["SecurityToken"],
                    "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0"}  # fmt: skip
        wrong = [k for k, v in expected.items() if params.get(k) != v]
        if host != f"oos.{CONFIG['region']}.aliyuncs.com" or wrong or not params.get("Signature"):
            self.send(400, json.dumps({"Code": "InvalidParameter", "Message": f"wrong or missing: {wrong}"}).encode())
        elif params.get("Name") not in CONFIG["parameters"]:
            self.send(404, json.dumps({"Code": "EntityNotExists.Parameter", "Message": "no such parameter"}).encode())
        else:
            value = CONFIG["parameters"][params["Name"]]
            self.send(200, json.dumps({"RequestId": "boot-stub", "Parameter": {"Name": params["Name"], "Value": value}}).encode())


def serve(address: tuple[str, int], tls: bool) -> None:
    server = ThreadingHTTPServer(address, Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain("/etc/boot-stub/tls.crt", "/etc/boot-stub/tls.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    if CLOUD:
        serve((sys.argv[3], int(sys.argv[4])), False)
    else:
        serve(("127.0.0.1", 443), True)
