"""The seed's client through a recording mock, then against a playback
mock that has only the recordings: the same calls, the same answers.

Usage: record_playback.py BASE_URL record|playback RESULTS_FILE
(ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET in the environment). In `record` it
writes what it got to RESULTS_FILE; in `playback` it compares.
Prints one line per check and 'N passed, N failed'.
"""

import json
import os
import sys

from armor_psk_client import Checks, auth_header, send

base, mode, results_file = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
key_id, secret = os.environ["ARMOR_PSK_KEY_ID"], os.environ["ARMOR_PSK_SECRET"]
checks = Checks()

calls = [("GET", "/me"), ("GET", "/accounts"), ("GET", "/accounts/1025")]
got = {}
for method, path in calls:
    header = auth_header(key_id, secret, method, path, b"")
    status, body = send(base + path, method, b"", {"Authorization": header})
    got[path] = [status, body]

if mode == "record":
    for method, path in calls:
        checks.check(f"{method} {path} through the recorder", got[path][0] == 200, got[path])
    with open(results_file, "w") as out:
        json.dump(got, out)
else:
    with open(results_file) as recorded_file:
        recorded = json.load(recorded_file)
    for method, path in calls:
        status, body = got[path]
        want_status, want_body = recorded[path]
        if path == "/me":
            # --redact username: the recording has no such field.
            want_body["user"].pop("username", None)
        checks.check(f"{method} {path} played back", status == want_status and body == want_body,
                     (status, body, want_body))

sys.exit(checks.finish())
