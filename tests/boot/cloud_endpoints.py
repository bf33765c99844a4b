#!/usr/bin/python3
"""The boot test's cloud endpoints for the Alibaba Cloud node: what cannot be reached from a container.

`cloud_endpoints.py metadata`: http://100.100.100.200, the ECS metadata service's RAM-role credentials
(hardened mode: a token first); the test runs it in a network namespace of its own, linked to the node's.
`cloud_endpoints.py tls` (in the container, 127.0.0.1:443, where /etc/hosts points these names):
- https://oos.<region>.aliyuncs.com: OOS GetSecretParameter, checking the call the node makes;
- https://nvidia.github.io: NVIDIA's container-toolkit apt repository (signed with the test's key).
The TLS certificate is signed by a CA the container trusts.
"""

import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

CONFIG = json.loads(Path("/etc/boot-stub/oos.json").read_text()) if sys.argv[1:] == ["tls"] else {}
REPO = Path("/opt/boot-stub/nvidia.github.io")
TOKEN, ROLE = "boot-stub-metadata-token", "llm-deploy-node"
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
        if self.path == "/latest/api/token" and self.headers.get("X-aliyun-ecs-metadata-token-ttl-seconds"):
            self.send(200, TOKEN.encode(), "text/plain")
        else:
            self.send(404, b"")

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        if host == "nvidia.github.io":
            path = (REPO / self.path.lstrip("/")).resolve()
            if path.is_file() and REPO in path.parents:
                self.send(200, path.read_bytes(), "application/octet-stream")
            else:
                self.send(404, b"")
        elif host.startswith("oos."):
            self.oos(host)
        elif self.path.startswith("/latest/meta-data/ram/security-credentials/"):
            if self.headers.get("X-aliyun-ecs-metadata-token") != TOKEN:
                self.send(403, b"")
            elif self.path.endswith("/"):
                self.send(200, ROLE.encode(), "text/plain")
            elif self.path.endswith("/" + ROLE):
                self.send(200, json.dumps(CREDENTIALS).encode())
            else:
                self.send(404, b"")
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
    if sys.argv[1:] == ["metadata"]:
        serve(("100.100.100.200", 80), False)
    else:
        serve(("127.0.0.1", 443), True)
