"""A mock of Armor's API behind ARMOR-PSK, for test suites.

The ``armor-psk`` binary ships in this distribution; :func:`start` runs it
on a free loopback port, and the pytest plugin gives a test one through the
``armor_mock`` fixture. :class:`ArmorPskAuth` signs what ``requests``
sends::

    import requests
    from armor_psk_mock import ArmorPskAuth, start

    with start() as mock:
        me = requests.get(mock.url + "/me", auth=ArmorPskAuth(mock.key_id, mock.secret))
        assert me.status_code == 200
"""

from ._auth import ArmorPskAuth, sign
from ._mock import Mock, MockError, binary, start

__all__ = ["ArmorPskAuth", "Mock", "MockError", "binary", "sign", "start"]
