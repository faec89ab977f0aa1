#!/usr/bin/env python3
"""A client of Armor's API written from the seed's algorithm
(armor_psk_client.py, standard library only), run against `armor-psk mock`:
GET /me with an empty body slot and X-Account-Context.

Usage: mock_client.py BASE_URL   (ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET in the
environment). Prints one line per check and 'N passed, N failed'; exits 1 if
any check failed.
"""

import os
import sys

from armor_psk_client import Checks, auth_header, send

BASE = sys.argv[1].rstrip("/")
APP_ID = os.environ["ARMOR_PSK_KEY_ID"]
SECRET_KEY = os.environ["ARMOR_PSK_SECRET"]
checks = Checks()


def get(path, account):
    headers = {"Authorization": auth_header(APP_ID, SECRET_KEY, "GET", path, b"")}
    if account is not None:
        headers["X-Account-Context"] = str(account)
    return send(BASE + path, "GET", b"", headers)


status, me = get("/me", 1024)
checks.check("GET /me with X-Account-Context 1024 accepted", status == 200
             and me["user"]["links"]["userId"] == 4922
             and [a["id"] for a in me["accounts"]] == [1024, 1025]
             and "1024" in me["permissions"], (status, me))

status, answer = get("/me", 2048)
checks.check("another user's account is a 403 with Armor's envelope", status == 403
             and answer.get("ErrorCode") == "AccountContextForbidden"
             and {"ErrorCode", "Message", "Detail", "ReferenceId"} <= answer.keys(), (status, answer))

status, account = get("/accounts/1025", 1025)
checks.check("GET /accounts/1025 in its own context", status == 200
             and account.get("accountType") == "Partner Customer" and account.get("parent") == 1024,
             (status, account))

status, answer = send(BASE + "/me", "GET", b"", {"X-Account-Context": "1024"})
checks.check("unsigned request is a 401 with a Message", status == 401
             and "Message" in answer and answer.get("error") == "missing_authorization", (status, answer))

sys.exit(checks.finish())
