"""The seed's way of calling Armor (standard library only, no
X-Account-Context but where the document requires it), against
`armor-psk mock --openapi tests/fixtures/openapi`:
three operations of the documents, a 400 for a bad body, and a client that
signs the raw body as Armor's published script does (its TODO says so),
which the mock names in its journal.

Usage: mock_openapi.py BASE_URL   (ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET in
the environment). Prints one line per check and 'N passed, N failed'.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

from armor_psk_client import Checks, auth_header, send

base = sys.argv[1].rstrip("/")
key_id, secret = os.environ["ARMOR_PSK_KEY_ID"], os.environ["ARMOR_PSK_SECRET"]
checks = Checks()


def signed(method, path, body=None, headers=None):
    payload = json.dumps(body).encode() if body is not None else b""
    header = auth_header(key_id, secret, method, path, payload)
    return send(base + path, method, payload, {"Authorization": header, **(headers or {})})


status, ticket = signed("GET", "/tickets/42")
checks.check("GET /tickets/42 (Swagger 2.0)", status == 200 and "title" in ticket, (status, ticket))
status, comments = signed("GET", "/tickets/ABC-1/comments?limit=5")
checks.check("GET /tickets/ABC-1/comments, the document's example", status == 200
             and comments == {"items": [{"id": 7, "body": "Looking into it"}], "total": 1}, (status, comments))
# The containers document declares X-Account-Context required.
status, refused = signed("GET", "/containers/accounts")
checks.check("GET /containers/accounts without its required X-Account-Context: 400", status == 400
             and refused.get("errors", [{}])[0].get("name") == "x-account-context", (status, refused))
status, account = signed("GET", "/containers/accounts", headers={"X-Account-Context": "1024"})
checks.check("GET /containers/accounts (OpenAPI 3.1, server path)", status == 200
             and account.get("name") == "Acme", (status, account))
status, created = signed("POST", "/tickets", {"title": "Disk full", "priority": "high"})
checks.check("POST /tickets", status == 201, (status, created))
status, invalid = signed("POST", "/tickets", {"title": "Disk full", "priority": "urgent"})
checks.check("a bad body is a 400 naming the field", status == 400
             and invalid.get("error") == "request_invalid"
             and invalid["errors"][0]["pointer"] == "/priority", (status, invalid))

# Armor's published script signs the raw body in place of its hash.
payload = json.dumps({"title": "raw"}).encode()
nonce, timestamp = str(uuid.uuid4()), int(time.time())
content = key_id + "POST" + "/tickets" + nonce + str(timestamp) + payload.decode()
signature = base64.standard_b64encode(
    hmac.new(secret.encode(), content.encode(), hashlib.sha512).digest()).decode()
status, refused = send(base + "/tickets", "POST", payload,
                       {"Authorization": f"ARMOR-PSK {key_id}:{signature}:{nonce}:{timestamp}"})
checks.check("a raw-body signature is refused", status == 401
             and refused.get("error") == "invalid_signature", (status, refused))
status, journal = send(base + "/__mock/journal", "GET", b"", {})
last = journal[-1]
checks.check("the journal names the mistake and keeps the body", "raw_body_signed" in last["client_issues"]
             and last["body"] == {"text": payload.decode()} and last["body_len"] == len(payload), last)

sys.exit(checks.finish())
