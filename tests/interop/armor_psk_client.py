"""ARMOR-PSK signing and sending, written from Armor's knowledge-base
algorithm with the standard library only; shared by the interop scripts.

    canonical = app_id + http_method + request_path + nonce + timestamp + body_slot
    body_slot = base64(sha512(body))   when there is a body, as the KB sample
              = ""                     for a GET, as Armor's scripts
    signature = base64(hmac_sha512(secret_key, canonical))
    Authorization: ARMOR-PSK app_id:signature:nonce:timestamp
"""

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def auth_header(app_id, secret_key, method, path, payload, nonce=None, timestamp=None):
    request_path = urllib.parse.urlparse(path).path
    nonce = nonce or str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else timestamp
    if payload:
        body_slot = base64.standard_b64encode(hashlib.sha512(payload).digest()).decode()
    else:
        body_slot = ""
    content = (app_id, method, request_path, nonce, str(timestamp), body_slot)
    mac = hmac.new(secret_key.encode("utf-8"), "".join(content).encode("utf-8"), hashlib.sha512)
    signature = base64.standard_b64encode(mac.digest()).decode("utf-8")
    return f"ARMOR-PSK {app_id}:{signature}:{nonce}:{timestamp}"


def send(url, method, payload, headers):
    """Sends a request; returns (status, parsed JSON body)."""
    headers = dict(headers)
    if payload:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=payload or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Checks:
    """Prints one line per check and the tally."""

    def __init__(self):
        self.results = []

    def check(self, name, condition, detail):
        self.results.append(condition)
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))

    def finish(self):
        passed = sum(self.results)
        print(f"{passed} passed, {len(self.results) - passed} failed")
        return 0 if passed == len(self.results) else 1
