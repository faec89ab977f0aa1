#!/usr/bin/env python3
"""An ARMOR-PSK client written from Armor's knowledge-base algorithm, with the
standard library only, run against the crate's example server.

    canonical = app_id + http_method + request_path + nonce + timestamp + body_slot
    body_slot = base64(sha512(json.dumps(body)))   for a POST, as the KB sample
              = ""                                 for a GET, as Armor's scripts
    signature = base64(hmac_sha512(secret_key, canonical))
    Authorization: ARMOR-PSK app_id:signature:nonce:timestamp

Usage: armor_client.py BASE_URL   (ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET in the
environment). Prints one line per check and 'N passed, N failed'; exits 1 if
any check failed.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

BASE = sys.argv[1].rstrip("/")
APP_ID = os.environ["ARMOR_PSK_KEY_ID"]
SECRET_KEY = os.environ["ARMOR_PSK_SECRET"]


def auth_header(method, path, payload, nonce=None, timestamp=None):
    request_path = urllib.parse.urlparse(path).path
    nonce = nonce or str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else timestamp
    if payload:
        body_slot = base64.standard_b64encode(hashlib.sha512(payload).digest()).decode()
    else:
        body_slot = ""
    content = (APP_ID, method, request_path, nonce, str(timestamp), body_slot)
    mac = hmac.new(SECRET_KEY.encode("utf-8"), "".join(content).encode("utf-8"), hashlib.sha512)
    signature = base64.standard_b64encode(mac.digest()).decode("utf-8")
    return f"ARMOR-PSK {APP_ID}:{signature}:{nonce}:{timestamp}"


def send(method, path, payload, authorization):
    headers = {"Authorization": authorization}
    if payload:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(BASE + path, data=payload or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


results = []


def check(name, condition, detail):
    results.append(condition)
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))


# POST the way the knowledge-base sample does: json.dumps(body), hashed and sent.
body = {"name": "web-01", "size": 2}
payload = bytes(json.dumps(body), "utf-8")
header = auth_header("POST", "/example/anywhere", payload)
status, answer = send("POST", "/example/anywhere", payload, header)
check("POST json.dumps body accepted", status == 200 and answer.get("key_id") == APP_ID
      and answer.get("body_bytes") == len(payload) and answer.get("path") == "/example/anywhere",
      (status, answer))

# The same request again: a replay.
status, answer = send("POST", "/example/anywhere", payload, header)
check("replay refused", status == 401 and answer.get("error") == "replayed_request", (status, answer))

# GET with an empty body slot, as Armor's own scripts sign it.
status, answer = send("GET", "/me", b"", auth_header("GET", "/me", b""))
check("GET with empty body slot accepted", status == 200 and answer.get("method") == "GET", (status, answer))

# The query string is not signed.
status, answer = send("GET", "/accounts?page=2", b"", auth_header("GET", "/accounts?page=2", b""))
check("query string left out of the signature", status == 200 and answer.get("path") == "/accounts", (status, answer))

# A body changed after signing.
tampered = bytes(json.dumps({"name": "web-01", "size": 3}), "utf-8")
status, answer = send("POST", "/example/anywhere", tampered, auth_header("POST", "/example/anywhere", payload))
check("tampered body refused", status == 401 and answer.get("error") == "invalid_signature", (status, answer))

# A clock ten minutes behind: refused, and the server says its time.
stale = int(time.time()) - 600
status, answer = send("GET", "/me", b"", auth_header("GET", "/me", b"", timestamp=stale))
check("stale timestamp refused with server_time", status == 401
      and answer.get("error") == "timestamp_out_of_window"
      and abs(answer.get("server_time", 0) - time.time()) < 60, (status, answer))

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
