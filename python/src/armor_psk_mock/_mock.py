"""Running the ``armor-psk mock`` binary: :func:`start` and :class:`Mock`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

__all__ = ["Mock", "MockError", "binary", "start"]

PathLike = Union[str, "os.PathLike[str]"]

#: How long :func:`start` waits for ``listening on``.
START_TIMEOUT = 30.0
#: How long a stop waits after SIGTERM before it kills the process.
STOP_TIMEOUT = 5.0


class MockError(RuntimeError):
    """The mock could not start, or its admin API refused a call; the
    message holds what it printed."""


def binary() -> str:
    """The ``armor-psk`` executable: ``$ARMOR_PSK_MOCK_BIN``, else the one
    this distribution installed beside the interpreter, else ``PATH``'s."""
    override = os.environ.get("ARMOR_PSK_MOCK_BIN")
    if override:
        return override
    name = "armor-psk.exe" if sys.platform == "win32" else "armor-psk"
    for scheme_path in (
        sysconfig.get_path("scripts"),
        sysconfig.get_path("scripts", f"{os.name}_user"),
        str(Path(sys.executable).parent),
    ):
        candidate = Path(scheme_path) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise MockError(
        "the armor-psk binary is not installed: pip install armor-psk-mock "
        "(or set ARMOR_PSK_MOCK_BIN)"
    )


class Mock:
    """A running mock: its base URL, a key it accepts, its journal, stubs,
    keys and clock (through its admin API under ``/__mock/``)."""

    def __init__(self, process: "subprocess.Popen[bytes]", url: str, key_id: str, secret: str):
        self.process = process
        #: ``http://127.0.0.1:PORT``, no trailing slash.
        self.url = url
        #: The key id of a key the mock accepts.
        self.key_id = key_id
        #: Its secret.
        self.secret = secret
        self._log: List[str] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Mock(url={self.url!r}, key_id={self.key_id!r}, secret=<redacted>)"

    # The admin API.

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + "/__mock" + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise MockError(f"{method} /__mock{path}: {error.code} {detail}") from None
        return json.loads(text) if text else None

    def journal(self) -> List[Dict[str, Any]]:
        """The requests the mock received, oldest first: ``method``,
        ``path``, ``status``, ``outcome`` (``accepted`` or the refusal's
        code), ``client_issues`` (the client mistakes it noticed), ..."""
        return self._admin("GET", "/journal")

    def clear_journal(self) -> None:
        """Forgets the requests received so far."""
        self._admin("DELETE", "/journal")

    def add_stub(self, stub: Union[Dict[str, Any], Sequence[Dict[str, Any]]]) -> None:
        """Answers ``stub["method"] stub["path"]`` (``{name}`` matches one
        segment) with its ``status``, ``headers`` and ``body`` (JSON) or
        ``text``, ahead of every other stub and route."""
        self._admin("POST", "/stubs", stub)

    def clear_stubs(self) -> None:
        """Forgets the stubs added with :meth:`add_stub`."""
        self._admin("DELETE", "/stubs")

    def add_key(self, key_id: str, secret: str, user: Optional[int] = None) -> None:
        """Installs a key (for the first user unless ``user`` names one)."""
        body: Dict[str, Any] = {"key_id": key_id, "secret_key": secret}
        if user is not None:
            body["user"] = user
        self._admin("POST", "/keys", body)

    def revoke_key(self, key_id: str) -> None:
        """Revokes a key: its next request is refused."""
        self._admin("DELETE", "/keys/" + urllib.request.quote(key_id, safe=""))

    def shift_clock(self, seconds: int) -> None:
        """Moves the mock's clock ``seconds`` from the system clock
        (negative: back), to test a client's handling of skew; 0 resets."""
        self._admin("POST", "/clock", {"offset_seconds": int(seconds)})

    def operations(self) -> List[Dict[str, Any]]:
        """The operations of the loaded OpenAPI documents."""
        return self._admin("GET", "/operations")

    # The process.

    @property
    def log(self) -> str:
        """What the mock printed so far (one line per request, warnings)."""
        with self._lock:
            return "".join(self._log)

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            with self._lock:
                self._log.append(line.decode(errors="replace"))
        stream.close()

    def stop(self) -> int:
        """Stops the mock (SIGTERM, then a kill after 5 s) and returns its
        exit status; stopping a stopped mock does nothing."""
        if self.process.poll() is None:
            if sys.platform == "win32":
                self.process.terminate()
            else:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _arguments(
    openapi: Sequence[PathLike], stubs: Sequence[PathLike], args: Sequence[str]
) -> List[str]:
    arguments: List[str] = []
    for document in openapi:
        arguments += ["--openapi", os.fspath(document)]
    for stub in stubs:
        arguments += ["--stubs", os.fspath(stub)]
    return arguments + list(args)


def launch(
    openapi: Sequence[PathLike] = (),
    stubs: Sequence[PathLike] = (),
    args: Sequence[str] = (),
    key_id: Optional[str] = None,
    secret: Optional[str] = None,
) -> Mock:
    """Starts a mock and returns it running; the caller stops it
    (:func:`start` does, as a context manager)."""
    key_id = key_id or str(uuid.uuid4())
    secret = secret or secrets.token_urlsafe(32)
    command = [binary(), "mock", "--listen", "127.0.0.1:0", "--key", f"{key_id}={secret}"]
    command += _arguments(openapi, stubs, args)
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    mock = Mock(process, "", key_id, secret)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        text = line.decode(errors="replace")
        mock._log.append(text)
        if text.startswith("listening on "):
            url = text[len("listening on ") :].strip()
            break
    if url is None:
        mock.stop()
        log = "".join(mock._log).replace(secret, "<secret>")
        raise MockError(f"armor-psk mock did not start (exit {process.returncode}):\n{log}")
    mock.url = url.rstrip("/")
    threading.Thread(target=mock._read, args=(process.stdout,), daemon=True).start()
    return mock


@contextmanager
def start(
    openapi: Sequence[PathLike] = (),
    stubs: Sequence[PathLike] = (),
    args: Sequence[str] = (),
    key_id: Optional[str] = None,
    secret: Optional[str] = None,
) -> Iterator[Mock]:
    """Runs a mock for the ``with`` block, and stops it however the block
    ends.

    ``openapi`` and ``stubs``: documents and stub files (or directories) to
    serve; ``args``: more ``armor-psk mock`` options (``--window 60``,
    ``--require-account-context``, ...); ``key_id``/``secret``: the key it
    accepts (one is generated otherwise).
    """
    mock = launch(openapi, stubs, args, key_id, secret)
    try:
        yield mock
    finally:
        mock.stop()
