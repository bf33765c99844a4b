"""A local stand-in for Alibaba Cloud's RPC endpoints, shared by the tests of the calls llm-deploy signs itself
(the rollout gate's ESS and ALB calls, the image resolver's DescribeImages): each GET's signature is checked as
the endpoints check it, and the handler answers JSON as they do. `serve` points the client at it."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

from bootstrap.files.alicloud_oos import sign
from tests.helpers import JsonStub

# The parameters every signed RPC request carries besides its action's own.
COMMON = {"Action", "Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp",
          "SecurityToken"}


def signed_params(handler: JsonStub, query: str, key: str, secret: str) -> dict[str, str] | None:
    """A GET's parameters (its Signature taken off) when signed with this key and secret, as the endpoints check it;
    else the handler has answered IncompleteSignature (400) and this is None."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    signature = params.pop("Signature", "")
    if params.get("AccessKeyId") != key or signature != sign("GET", params, secret):
        handler._json(400, {"Code": "IncompleteSignature", "Message": "The request signature does not conform to Aliyun standards."})
        return None
    return params


class SignedRpc(JsonStub):
    """Answers `answer(params)` for a correctly signed GET, IncompleteSignature (400) for any other."""

    key = secret = ""

    def do_GET(self) -> None:
        params = signed_params(self, urllib.parse.urlsplit(self.path).query, self.key, self.secret)
        if params is None:
            return
        status, body = self.answer(params)
        self._json(status, {"RequestId": "7A1B", **body})

    def answer(self, params: dict[str, str]) -> tuple[int, dict]:
        raise NotImplementedError


@contextmanager
def serve(handler: type[SignedRpc], monkeypatch, key: str, secret: str) -> Iterator[None]:
    """Run the stand-in and point llm-deploy's Alibaba client at it with these credentials."""
    handler.key, handler.secret = key, secret
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in {"ALICLOUD_ACCESS_KEY": key, "ALICLOUD_SECRET_KEY": secret,
                        "LLM_DEPLOY_ALICLOUD_ECS_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALICLOUD_SECURITY_TOKEN", raising=False)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
