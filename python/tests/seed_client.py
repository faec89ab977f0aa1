"""The Python 3.6.5 POST sample of Armor's knowledge base ("Access the
Armor API System via an API token (Python)"), as published: only its two
placeholders (`"<api_key_id>"`, `"<secret_key>"`) read from the instance,
and its empty `body =` default given a value, so that it runs."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlparse

import requests


class SeedClient:
    def __init__(self, url, key_id, secret):
        self.url, self.key_id, self.secret = url, key_id, secret

    def _url(self, path):
        return self.url + path

    def _post_requests_apiKey_payload(self, path="/example/anywhere", body = {}):
        app_id = self.key_id
        secret_key = self.secret
        request_path = urlparse(path).path
        http_method = "POST"
        timestamp = int(time.time())
        nonce = uuid.uuid4()
        hash_obj = hashlib.sha512(bytes(json.dumps(body), 'utf-8'))
        request_body = base64.standard_b64encode(hash_obj.digest())
        content = (app_id, http_method, request_path, str(nonce), str(timestamp), request_body.decode())
        request_data = ''.join(content)
        mc = hmac.new(bytes(secret_key, 'utf-8'), bytes(request_data, 'utf-8'), hashlib.sha512)
        signature = base64.standard_b64encode(mc.digest())
        auth_header = "ARMOR-PSK " + str(app_id) + ':' + str(signature.decode('utf-8')) + ':' + str(
    nonce) + ':' + str(timestamp)
        request_header = {
            'Content-Type': 'application/json',
            "Authorization": auth_header
        }
        response = requests.post(self._url(path), data=json.dumps(body), headers=request_header)
        print (response.status_code)
        return response
