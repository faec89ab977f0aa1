"""ARMOR-PSK signing: the header, and a ``requests`` auth class."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Optional, Union
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

__all__ = ["ArmorPskAuth", "sign"]


def sign(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    nonce: Optional[str] = None,
    timestamp: Optional[int] = None,
) -> str:
    """The ``Authorization`` value for one request.

    ``path`` is the path only (a query or fragment is cut off: neither is
    signed); an empty ``body`` gives the empty body slot.

    >>> sign("k", "s", "GET", "/me", nonce="n", timestamp=1).startswith("ARMOR-PSK k:")
    True
    """
    nonce = nonce if nonce is not None else str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    path = urlsplit(path).path or "/"
    slot = base64.b64encode(hashlib.sha512(body).digest()).decode() if body else ""
    message = "".join((key_id, method.upper(), path, nonce, str(timestamp), slot))
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha512).digest()
    signature = base64.b64encode(digest).decode()
    return f"ARMOR-PSK {key_id}:{signature}:{nonce}:{timestamp}"


class ArmorPskAuth(AuthBase):
    """Signs each request exactly as ``requests`` sends it: the prepared
    request's method, path (no query) and body bytes.

    >>> import requests
    >>> prepared = requests.Request("GET", "http://127.0.0.1/me?x=1").prepare()
    >>> ArmorPskAuth("k", "s")(prepared).headers["Authorization"].startswith("ARMOR-PSK k:")
    True
    """

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self._secret = secret

    def __repr__(self) -> str:
        return f"ArmorPskAuth(key_id={self.key_id!r}, secret=<redacted>)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body: Union[bytes, str, None] = request.body
        if body is None:
            data = b""
        elif isinstance(body, str):
            # Sent as the bytes signed: UTF-8, whatever the transport would
            # have made of a str.
            data = body.encode("utf-8")
            request.body = data
            request.headers["Content-Length"] = str(len(data))
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            raise TypeError(
                "ArmorPskAuth signs bodies given as bytes or str; a streamed or file "
                "body cannot be signed before it is sent"
            )
        path = urlsplit(request.url or "/").path or "/"
        request.headers["Authorization"] = sign(
            self.key_id, self._secret, request.method or "GET", path, data
        )
        return request
