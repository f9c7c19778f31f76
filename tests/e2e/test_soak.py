"""Soak: create-new/delete-old swaps of a rate-limited mirror session, past the whole id
space (issue 9, case 4). Before ids were reused, swap 64 535 gave the new session the
group of port 1's rx hook and every later create failed with OFPGMFC_GROUP_EXISTS.

Slow (65 535 swaps took 57 minutes on a busy 2-core machine), so not in the default run:
``ip netns exec NS .venv/bin/python -m pytest -m slow tests/e2e/test_soak.py -s``
(``SGGW_SOAK_SWAPS=N`` for another count)."""
import http.client
import json
import os
import time

import pytest

from app.store.store import FIRST_API_ID
from flows.tables import MAX_SESSION_ID
from testbed.topology import TwoSites
from tests.e2e.test_all_or_nothing import MIRRORS, assert_agree, stored

SWAPS = int(os.environ.get("SGGW_SOAK_SWAPS", MAX_SESSION_ID - FIRST_API_ID + 1 + 1000))


@pytest.mark.slow
def test_create_delete_swaps_keep_creating_past_the_id_space():
    with TwoSites(analyzers=1) as bed:
        bed.state_file = os.path.join(bed.workdir, "state.json")
        conn = http.client.HTTPConnection("127.0.0.1", bed.api_port, timeout=30)

        def call(method, path, body=None):  # one kept-alive connection: ~2x faster
            conn.request(method, MIRRORS + path, json.dumps(body) if body else None,
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()

        def session(i):
            return {"name": "s%d" % i, "sources": [{"port": bed["hostA"].outside}],
                    "destinations": [{"port": bed["ana1"].outside}],
                    "rate_limit": {"pps": 100}}

        assert call("POST", "", session(0))[0] == 201
        started = time.monotonic()
        for i in range(1, SWAPS + 1):
            status, body = call("POST", "", session(i))
            assert status == 201, (i, body)
            status, body = call("DELETE", "/s%d" % (i - 1))
            assert status == 204, (i, body)
            if i % 10000 == 0:
                print("%d swaps, %.0f s" % (i, time.monotonic() - started), flush=True)
        seconds = time.monotonic() - started
        print("%d swaps in %.0f s (%.1f ms each)" % (SWAPS, seconds, 1000 * seconds / SWAPS))
        assert_agree(bed)
        assert [s["id"] for s in stored(bed).values()] in ([FIRST_API_ID], [FIRST_API_ID + 1])
