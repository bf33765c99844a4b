#!/usr/bin/env python3
"""Print one OOS encrypted parameter, read with the ECS instance's RAM role: alicloud_oos.py REGION NAME.

Alibaba Cloud images carry no CLI for this, so the node makes the one signed call itself, with the
standard library only: STS credentials from the instance metadata service (hardened mode when it is
on), then OOS `GetSecretParameter` with `WithDecryption=true`, signed with the documented RPC
signature (HMAC-SHA1). The value goes to stdout only; errors name the parameter, never a value.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

METADATA = os.environ.get("ALICLOUD_METADATA_URL", "http://100.100.100.200")
OOS_ENDPOINT = os.environ.get("ALICLOUD_OOS_ENDPOINT", "https://oos.{region}.aliyuncs.com")
OOS_VERSION = "2019-06-01"
TIMEOUT = 10


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the RPC signature wants it: only A-Z a-z 0-9 - _ . ~ stay literal."""
    return urllib.parse.quote(value, safe="-_.~")


def string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(method: str, params: dict[str, str], secret: str) -> str:
    """Base64(HMAC-SHA1(secret + "&", StringToSign)), the RPC signature version 1.0."""
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> str:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read().decode()


def role_credentials() -> dict[str, str]:
    """The instance RAM role's temporary credentials from the metadata service."""
    headers = {}
    try:
        token = _get(f"{METADATA}/latest/api/token", {"X-aliyun-ecs-metadata-token-ttl-seconds": "300"}, "PUT")
        headers = {"X-aliyun-ecs-metadata-token": token}
    except (urllib.error.URLError, OSError):
        pass  # normal mode: the metadata service answers without a token
    base = f"{METADATA}/latest/meta-data/ram/security-credentials/"
    roles = _get(base, headers).split()
    if not roles:
        raise RuntimeError("the instance has no RAM role attached")
    credentials = json.loads(_get(base + roles[0], headers))
    if credentials.get("Code", "Success") != "Success":
        raise RuntimeError(f"metadata service refused the role credentials: {credentials.get('Code')}")
    return credentials


def signed_query(action: str, version: str, params: dict[str, str], access_key_id: str, access_key_secret: str,
                 security_token: str | None = None) -> str:
    """The query string of a signed RPC GET: the action's parameters plus the common ones and the Signature."""
    params = {
        **params,
        "Action": action,
        "Format": "JSON",
        "Version": version,
        "AccessKeyId": access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": str(uuid.uuid4()),
        "Timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # noqa: UP017 (Ubuntu 22.04 has Python 3.10)
        **({"SecurityToken": security_token} if security_token else {}),
    }
    params["Signature"] = sign("GET", params, access_key_secret)
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def get_secret_parameter(region: str, name: str, credentials: dict[str, str]) -> str:
    query = signed_query("GetSecretParameter", OOS_VERSION, {"Name": name, "WithDecryption": "true", "RegionId": region},
                         credentials["AccessKeyId"], credentials["AccessKeySecret"], credentials["SecurityToken"])
    url = OOS_ENDPOINT.format(region=region) + "/?" + query
    try:
        body = json.loads(_get(url))
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read().decode() or "{}")
        raise RuntimeError(f"OOS GetSecretParameter {name}: {error.code} {detail.get('Code')}: {detail.get('Message')}") from None
    return body["Parameter"]["Value"]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: alicloud_oos.py REGION NAME", file=sys.stderr)
        return 2
    region, name = argv[1], argv[2]
    try:
        value = get_secret_parameter(region, name, role_credentials())
    except (RuntimeError, urllib.error.URLError, OSError, KeyError, ValueError) as error:
        print(f"alicloud_oos: {name}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
