"""A site's event stream has one cap, a Python constant, that the Python write and the Lua
scripts both pass to Redis: what Redis itself is told (MONITOR) is checked, not the text."""

from __future__ import annotations

import re

import redis

from moderation.core.records import Action, Decision, Submission, utc_now
from moderation.storage import comment_store
from moderation.storage.comment_store import SITE_EVENTS_MAXLEN, CommentStore


def xadd_caps(monitor: redis.client.Monitor, count: int) -> list[tuple[str, str]]:
    """The next `count` XADD commands Redis ran (from any client or script): their origin
    (`lua` for a script) and the MAXLEN each asked for."""
    seen: list[tuple[str, str]] = []
    while len(seen) < count:
        command = monitor.next_command()  # raises TimeoutError past the socket timeout
        words = command["command"].split()
        if words[0].upper() == "XADD":
            cap = words[words.index("MAXLEN") + 1 :]
            seen.append((command["client_type"], cap[1] if cap[0] == "~" else cap[0]))
    return seen


def test_every_write_to_a_sites_event_stream_caps_it_at_the_python_constant(
    redis_server, redis_client
):
    watcher = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        store = CommentStore(redis_client)
        with watcher.monitor() as monitor:
            store.accept("news", Submission("c-1", "text"), lambda pipe, site, id_: "job-1")
            decision = Decision(Action.APPROVE, [], {"toxicity": 0.1}, {}, "auto", utc_now())
            assert store.decide("news", "c-1", decision).stored
            assert store.erase("news", "c-1", actor="site:news")
            caps = xadd_caps(monitor, 3)
    finally:
        watcher.close()

    # submit (a Python pipeline), then the decision and the erasure (Lua scripts)
    assert [origin == "lua" for origin, _ in caps] == [False, True, True], caps
    assert [cap for _, cap in caps] == [str(SITE_EVENTS_MAXLEN)] * 3


def test_the_scripts_name_no_cap_of_their_own():
    """No number after MAXLEN in the comment store's Lua: the cap comes from the constant."""
    for script in (comment_store._DECIDE_SCRIPT, comment_store._ERASE_SCRIPT):
        caps = re.findall(r"'MAXLEN',\s*'~',\s*([^,]+),", script)
        assert caps and set(caps) == {"EVENTS_MAXLEN"}, caps
        assert f"local EVENTS_MAXLEN = '{SITE_EVENTS_MAXLEN}'" in script
