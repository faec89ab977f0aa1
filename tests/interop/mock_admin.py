#!/usr/bin/env python3
"""A client written from the seed's sample (no X-Account-Context, a UUID
nonce, the body hashed when there is one), run against `armor-psk mock
--stubs tests/fixtures/stubs`, and a test suite driving the mock's admin API
over HTTP: keys issued and revoked, the clock shifted, the journal read and
cleared, a reused nonce noticed.

Usage: mock_admin.py BASE_URL   (ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET in the
environment). Prints one line per check and 'N passed, N failed'.
"""

import json
import os
import sys
import time

from armor_psk_client import Checks, auth_header, send

BASE = sys.argv[1].rstrip("/")
APP_ID = os.environ["ARMOR_PSK_KEY_ID"]
SECRET_KEY = os.environ["ARMOR_PSK_SECRET"]
checks = Checks()


def signed(method, path, body=None, app_id=APP_ID, secret=SECRET_KEY, **sign):
    payload = json.dumps(body).encode() if body is not None else b""
    header = auth_header(app_id, secret, method, path, payload, **sign)
    return send(BASE + path, method, payload, {"Authorization": header})


def admin(method, path, body=None):
    payload = json.dumps(body).encode() if body is not None else b""
    return send(BASE + "/__mock" + path, method, payload, {})


status, _ = admin("DELETE", "/journal")
checks.check("the journal is cleared", status == 204, status)

# The seed's client, unchanged: no X-Account-Context.
status, me = signed("GET", "/me")
checks.check("GET /me without X-Account-Context", status == 200
             and me["user"]["links"]["userId"] == 4922, (status, me))
status, created = signed("POST", "/tickets", {"subject": "disk full"})
checks.check("POST to a stubbed path", status == 201 and created == {"created": True},
             (status, created))
status, tickets = signed("GET", "/tickets/list")
checks.check("a stubbed list", status == 200 and [t["id"] for t in tickets] == [1, 2],
             (status, tickets))

# Keys: issued for another user, used, revoked.
status, key = admin("POST", "/keys", {"user": 5100})
checks.check("a key issued over the admin API", status == 201
             and key["user"] == 5100 and len(key["secret_key"]) == 43, (status, key))
status, me = signed("GET", "/me", app_id=key["key_id"], secret=key["secret_key"])
checks.check("the new key signs for its user", status == 200
             and me["user"]["links"]["userId"] == 5100, (status, me))
status, _ = admin("DELETE", "/keys/" + key["key_id"])
checks.check("the key is revoked", status == 204, status)
status, refused = signed("GET", "/me", app_id=key["key_id"], secret=key["secret_key"])
checks.check("the revoked key is refused", status == 401
             and refused.get("error") == "invalid_signature", (status, refused))

# A reused nonce with a new timestamp: refused, and named.
status, _ = signed("GET", "/me", nonce="reused-nonce-1")
status_again, _ = signed("GET", "/me", nonce="reused-nonce-1", timestamp=int(time.time()) - 3)
status, journal = admin("GET", "/journal")
last = journal[-1]
checks.check("a reused nonce is noticed", status_again == 401
             and "nonce_reused" in last["client_issues"]
             and last["outcome"] == "replayed_request", last)

# The clock shifted back 400 s: a fresh request is out of the window.
status, clock = admin("POST", "/clock", {"offset_seconds": -400})
checks.check("the clock is shifted", status == 200 and clock["offset_seconds"] == -400, clock)
status, answer = signed("GET", "/me")
checks.check("a fresh request is now out of the window", status == 401
             and answer.get("error") == "timestamp_out_of_window"
             and abs(answer.get("server_time", 0) - (int(time.time()) - 400)) <= 5, (status, answer))
admin("POST", "/clock", {"offset_seconds": 0})

status, journal = admin("GET", "/journal")
paths = [entry["path"] for entry in journal]
checks.check("the journal lists the requests, oldest first", status == 200
             and paths[:3] == ["/me", "/tickets", "/tickets/list"]
             and journal[0]["outcome"] == "accepted" and journal[0]["key_id"] == APP_ID
             and journal[-1]["outcome"] == "timestamp_out_of_window"
             and "clock_skew" in journal[-1]["client_issues"], journal)
status, _ = admin("DELETE", "/journal")
status, journal = admin("GET", "/journal")
checks.check("and is empty once cleared", journal == [], journal)

sys.exit(checks.finish())
