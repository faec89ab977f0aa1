"""The pytest plugin and the auth class against the mock they ship with."""

import base64
import hashlib
import hmac
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from armor_psk_mock import ArmorPskAuth, binary, sign, start

from seed_client import SeedClient

DOCUMENTS = Path(__file__).parent / "documents"


def test_the_seeds_client_posts_json_and_a_get_with_an_empty_slot_is_accepted(armor_mock):
    armor_mock.add_stub({"method": "POST", "path": "/example/anywhere", "body": {"ok": True}})
    client = SeedClient(armor_mock.url, armor_mock.key_id, armor_mock.secret)
    posted = client._post_requests_apiKey_payload("/example/anywhere", {"name": "web-01"})
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"ok": True}
    header = sign(armor_mock.key_id, armor_mock.secret, "GET", "/me")
    me = requests.get(armor_mock.url + "/me", headers={"Authorization": header})
    assert me.status_code == 200, me.text
    assert me.json()["accounts"], me.text
    entries = armor_mock.journal()
    assert [(e["method"], e["path"], e["outcome"]) for e in entries] == [
        ("POST", "/example/anywhere", "accepted"),
        ("GET", "/me", "accepted"),
    ]


def test_a_wrong_secret_is_401_and_the_journal_names_the_mistake(armor_mock):
    wrong = requests.get(armor_mock.url + "/me", auth=ArmorPskAuth(armor_mock.key_id, "not-it"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_signature"
    (entry,) = armor_mock.journal()
    assert entry["outcome"] == "invalid_signature"
    assert entry["key_id"] == armor_mock.key_id
    # A body hashed where the slot must be empty is named as such.
    now = int(time.time())
    slot = base64.b64encode(hashlib.sha512(b"").digest()).decode()
    message = f"{armor_mock.key_id}GET/men-2{now}{slot}".encode()
    digest = hmac.new(armor_mock.secret.encode(), message, hashlib.sha512).digest()
    header = f"ARMOR-PSK {armor_mock.key_id}:{base64.b64encode(digest).decode()}:n-2:{now}"
    assert requests.get(armor_mock.url + "/me", headers={"Authorization": header}).status_code == 401
    assert "hashed_empty_body" in armor_mock.journal()[-1]["client_issues"]


@pytest.mark.armor_mock(openapi=[DOCUMENTS / "tickets-openapi.yml"])
def test_a_stub_and_an_openapi_document_are_served(armor_mock):
    auth = ArmorPskAuth(armor_mock.key_id, armor_mock.secret)
    ticket = requests.get(armor_mock.url + "/tickets/7", auth=auth)
    assert ticket.status_code == 200, ticket.text
    assert ticket.json() == {"id": 7, "state": "open"}
    invalid = requests.post(armor_mock.url + "/tickets", json={"state": "open"}, auth=auth)
    assert invalid.status_code == 400 and invalid.json()["error"] == "request_invalid"
    created = requests.post(armor_mock.url + "/tickets", json={"title": "disk full"}, auth=auth)
    assert created.status_code == 201, created.text
    armor_mock.add_stub({"method": "GET", "path": "/tickets/{id}", "text": "overridden"})
    assert requests.get(armor_mock.url + "/tickets/7", auth=auth).text == "overridden"
    assert sorted(op["path"] for op in armor_mock.operations()) == ["/tickets", "/tickets/{id}"]


def test_a_replay_is_refused(armor_mock):
    header = sign(armor_mock.key_id, armor_mock.secret, "GET", "/me")
    first = requests.get(armor_mock.url + "/me", headers={"Authorization": header})
    again = requests.get(armor_mock.url + "/me", headers={"Authorization": header})
    assert (first.status_code, again.status_code) == (200, 401)
    assert again.json()["error"] == "replayed_request"


def test_a_shifted_clock_puts_the_clients_timestamp_out_of_the_window(armor_mock):
    auth = ArmorPskAuth(armor_mock.key_id, armor_mock.secret)
    armor_mock.shift_clock(-600)
    late = requests.get(armor_mock.url + "/me", auth=auth)
    assert late.status_code == 401
    assert late.json()["error"] == "timestamp_out_of_window"
    armor_mock.shift_clock(0)
    assert requests.get(armor_mock.url + "/me", auth=auth).status_code == 200


def test_the_auth_class_signs_what_requests_sends(armor_mock):
    armor_mock.add_stub({"method": "PUT", "path": "/notes/{id}", "body": {"saved": True}})
    auth = ArmorPskAuth(armor_mock.key_id, armor_mock.secret)
    bodies = [dict(json={"é": "ü", "n": 1}), dict(data=b"\x00\xffraw"), dict(data="text é ✓"), {}]
    for body in bodies:
        answer = requests.put(armor_mock.url + "/notes/1?draft=1", auth=auth, **body)
        assert answer.status_code == 200, (body, answer.text)
    assert [e["outcome"] for e in armor_mock.journal()] == ["accepted"] * 4
    assert armor_mock.secret not in repr(auth) and armor_mock.secret not in repr(armor_mock)


def test_keys_added_and_revoked(armor_mock):
    armor_mock.add_key("second-key", "second-secret")
    auth = ArmorPskAuth("second-key", "second-secret")
    assert requests.get(armor_mock.url + "/me", auth=auth).status_code == 200
    armor_mock.revoke_key("second-key")
    assert requests.get(armor_mock.url + "/me", auth=auth).status_code == 401


def test_the_session_mock_is_reset_for_each_test(armor_mock_session):
    armor_mock_session.add_stub({"method": "GET", "path": "/only-here", "body": {}})
    armor_mock_session.shift_clock(-600)
    assert armor_mock_session.journal() == []


def test_the_session_mock_forgot_the_last_tests_stub_and_clock(armor_mock_session):
    auth = ArmorPskAuth(armor_mock_session.key_id, armor_mock_session.secret)
    assert requests.get(armor_mock_session.url + "/only-here", auth=auth).status_code == 404
    assert requests.get(armor_mock_session.url + "/me", auth=auth).status_code == 200


def test_start_works_without_pytest_and_stops_whatever_the_block_does():
    with pytest.raises(ZeroDivisionError):
        with start() as mock:
            pid = mock.process.pid
            assert requests.get(mock.url + "/me", auth=ArmorPskAuth(mock.key_id, mock.secret)).ok
            1 / 0
    assert mock.process.poll() == 0, "stopped by SIGTERM, exit 0"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_failing_test_shows_the_mocks_log(pytester):
    pytester.makepyfile(
        """
        import requests

        def test_fails(armor_mock):
            requests.get(armor_mock.url + "/me")
            assert False, "on purpose"
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "armor-psk mock http://127.0.0.1:" in output, output
    assert "/me" in output and "missing_authorization" in output, output


def test_the_binary_is_the_installed_one_and_rust_is_not_needed():
    assert Path(binary()).is_file()
    version = subprocess.run([binary(), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("armor-psk ")
