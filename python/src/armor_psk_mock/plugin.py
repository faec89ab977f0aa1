"""The pytest plugin (registered through the ``pytest11`` entry point, so
no ``conftest.py`` is needed).

Fixtures:

- ``armor_mock``: one mock per test, stopped after it;
- ``armor_mock_session``: one mock for the whole session (its journal,
  stubs added at run time and clock are reset before each test that
  uses it).

What they serve: ``@pytest.mark.armor_mock(openapi=[...], stubs=[...],
args=[...])`` on a test (``armor_mock`` only), else the ini options
``armor_mock_openapi``, ``armor_mock_stubs`` and ``armor_mock_args``
(paths relative to the rootdir). A failing test's report shows the mock's
log.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Iterator, List

import pytest

from ._mock import Mock, launch

_LOG = pytest.StashKey[List[Mock]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "armor_mock_openapi", "OpenAPI/Swagger documents (or directories) the mocks serve",
        type="paths", default=[],
    )
    parser.addini(
        "armor_mock_stubs", "stub files (or directories) the mocks serve",
        type="paths", default=[],
    )
    parser.addini("armor_mock_args", "more `armor-psk mock` options", type="args", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "armor_mock(openapi=[], stubs=[], args=[]): what the test's armor_mock serves",
    )


def _settings(config: pytest.Config, marker: "pytest.Mark | None"):
    openapi = [Path(p) for p in config.getini("armor_mock_openapi")]
    stubs = [Path(p) for p in config.getini("armor_mock_stubs")]
    args = list(config.getini("armor_mock_args"))
    if marker is not None:
        root = Path(str(config.rootpath))
        resolve = lambda p: Path(p) if Path(p).is_absolute() else root / p  # noqa: E731
        openapi = [resolve(p) for p in marker.kwargs.get("openapi", openapi)]
        stubs = [resolve(p) for p in marker.kwargs.get("stubs", stubs)]
        extra = marker.kwargs.get("args", args)
        args = shlex.split(extra) if isinstance(extra, str) else list(extra)
    return openapi, stubs, args


def _watch(node: pytest.Item, mock: Mock) -> None:
    node.stash.setdefault(_LOG, []).append(mock)


@pytest.fixture
def armor_mock(request: pytest.FixtureRequest) -> Iterator[Mock]:
    """A mock of Armor's API for this test: ``url``, ``key_id``,
    ``secret``, ``journal()``, ``add_stub()``, ``add_key()``,
    ``shift_clock()``; stopped when the test ends, however it ends."""
    openapi, stubs, args = _settings(request.config, request.node.get_closest_marker("armor_mock"))
    mock = launch(openapi, stubs, args)
    _watch(request.node, mock)
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="session")
def _armor_mock_session(pytestconfig: pytest.Config) -> Iterator[Mock]:
    openapi, stubs, args = _settings(pytestconfig, None)
    mock = launch(openapi, stubs, args)
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def armor_mock_session(_armor_mock_session: Mock, request: pytest.FixtureRequest) -> Mock:
    """One mock for the session (the ini options say what it serves),
    reset for each test: journal cleared, added stubs removed, clock back
    to the system's."""
    mock = _armor_mock_session
    mock.clear_journal()
    mock.clear_stubs()
    mock.shift_clock(0)
    _watch(request.node, mock)
    return mock


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        for mock in item.stash.get(_LOG, []):
            log = mock.log.replace(mock.secret, "<secret>")
            report.sections.append((f"armor-psk mock {mock.url} log", log or "(empty)"))
    return report
