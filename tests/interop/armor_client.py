#!/usr/bin/env python3
"""An ARMOR-PSK client written from Armor's knowledge-base algorithm
(armor_psk_client.py, standard library only), run against the crate's
example server.

Usage: armor_client.py BASE_URL   (ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET in the
environment). Prints one line per check and 'N passed, N failed'; exits 1 if
any check failed.
"""

import json
import os
import sys
import time

from armor_psk_client import Checks, auth_header as sign, send as send_to

BASE = sys.argv[1].rstrip("/")
APP_ID = os.environ["ARMOR_PSK_KEY_ID"]
SECRET_KEY = os.environ["ARMOR_PSK_SECRET"]


def auth_header(method, path, payload, nonce=None, timestamp=None):
    return sign(APP_ID, SECRET_KEY, method, path, payload, nonce, timestamp)


def send(method, path, payload, authorization):
    return send_to(BASE + path, method, payload, {"Authorization": authorization})


checks = Checks()
check = checks.check


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

sys.exit(checks.finish())
