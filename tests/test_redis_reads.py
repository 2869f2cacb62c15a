"""How often a decision reads each record, watched with Redis's MONITOR: an automatic decision
reads its comment once in the worker (its batch reads the sites' policies and records once)
and once more in the deliverer; a moderator's decision reads the comment once, and the
moderator's record once (a ban that rejects the author's held comments reads each once too).
Only a decision that is announced by webhook passes through the webhook outbox."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from moderation.core.redis_keys import KEYS
from moderation.storage.comment_store import CommentStore
from moderation.storage.moderator_store import ModeratorStore, Role
from moderation.storage.policy_store import PolicyStore
from moderation.storage.site_store import SiteStore
from tests.support.processes import running_worker, wait_for
from tests.support.receiver import running_receiver

pytestmark = pytest.mark.e2e

#: Comments per site: with the embedded model's passes of 16, one batch of three passes.
PER_SITE = 20
ENV = {"MODERATION_ALLOW_PRIVATE_CALLBACKS": "true", "MODERATION_BATCH_WAIT": "0"}
END = "monitor:end"


@dataclasses.dataclass
class Watched:
    """The commands Redis ran, by phase: (from a Lua script, command, first argument)."""

    phases: dict[str, list[tuple[bool, str, str]]] = dataclasses.field(default_factory=dict)
    current: str = "start"

    def count(self, phase: str, command: str, key: str, *, lua: bool = False) -> int:
        return Counter(self.phases.get(phase, []))[(lua, command, key)]

    def keys_read(self, phase: str, command: str, prefix: str) -> Counter[str]:
        return Counter(
            key
            for lua, name, key in self.phases.get(phase, [])
            if not lua and name == command and key.startswith(prefix)
        )


@contextmanager
def monitored(url: str) -> Iterator[tuple[Watched, redis.Redis]]:
    """MONITOR in a thread; `marker.echo("phase:NAME")` starts a phase."""
    watched = Watched()
    ready = threading.Event()
    watcher = redis.Redis.from_url(url)

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            for entry in monitor.listen():
                name, _, rest = entry["command"].partition(" ")
                first = rest.split(" ", 1)[0]
                if name == "ECHO" and first == END:
                    return
                if name == "ECHO" and first.startswith("phase:"):
                    watched.current = first.removeprefix("phase:")
                    continue
                is_lua = entry["client_type"] == "lua"
                watched.phases.setdefault(watched.current, []).append((is_lua, name, first))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(10)
    marker = redis.Redis.from_url(url)
    try:
        yield watched, marker
    finally:
        marker.echo(END)
        thread.join(10)
        marker.close()
        watcher.close()


def test_each_record_is_read_once_per_decision(
    client, settings, redis_server, redis_client, tmp_path
):
    sites = SiteStore(redis_client, settings.secret_key)
    news, blog = sites.create("news"), sites.create("blog")
    policies = PolicyStore(redis_client, settings.policy)
    policies.replace("blog", dataclasses.replace(settings.policy, premoderate=True))
    token = ModeratorStore(redis_client).create("ann", Role.ADMIN, []).token
    moderator = {"Authorization": f"Bearer {token}"}
    news_ids = [KEYS.comment("news", f"c-{n}") for n in range(PER_SITE)]
    blog_ids = [KEYS.comment("blog", f"c-{n}") for n in range(PER_SITE)]
    with running_receiver() as receiver, monitored(redis_server.url) as (watched, marker):
        sites.set_callback_url("news", receiver.url + "/hooks")  # blog has none
        for credentials in (news, blog):
            headers = {"Authorization": f"Bearer {credentials.api_key}"}
            for n in range(PER_SITE):
                body = {"id": f"c-{n}", "content": f"comment {n}", "author": {"id": "u"}}
                assert client.post("/v1/comments", json=body, headers=headers).status_code == 202

        marker.echo("phase:scoring")
        log = tmp_path / "scoring.log"
        with running_worker(redis_server.url, log, ENV):
            wait_for(lambda: CommentStore(redis_client).pending_count() == 0, timeout=120)
        marker.echo("phase:deliveries")
        with running_worker(redis_server.url, tmp_path / "deliveries.log", ENV, deliveries=True):
            receiver.wait_for_requests(PER_SITE, timeout=60)
        marker.echo("phase:moderator")
        overturned = client.post(
            "/v1/review/news/c-0", json={"action": "reject", "overturn": True}, headers=moderator
        )
        marker.echo("phase:moderator-blog")
        approved = client.post("/v1/review/blog/c-1", json={"action": "approve"}, headers=moderator)
        late = client.post("/v1/review/blog/c-1", json={"action": "reject"}, headers=moderator)
        marker.echo("phase:moderator-delivery")
        with running_worker(redis_server.url, tmp_path / "deliveries.log", ENV, deliveries=True):
            receiver.wait_for_requests(PER_SITE + 1, timeout=60)
        marker.echo("phase:ban")
        banned = client.post(
            "/v1/review/blog/authors/u",
            json={"action": "ban", "reject_held": True},
            headers=moderator,
        )
        marker.echo("phase:done")

    assert log.read_text().count("scored a batch of") >= 3  # one batch, several passes
    assert overturned.status_code == 200, overturned.get_json()
    assert overturned.get_json()["status"] == "rejected"
    assert approved.status_code == 200, approved.get_json()
    assert late.status_code == 409, late.get_json()
    assert late.get_json()["error"]["current"]["status"] == "approved"
    assert banned.status_code == 200, banned.get_json()
    held = {f"c-{n}" for n in range(PER_SITE)} - {"c-1"}  # blog's, all but the one approved
    assert set(banned.get_json()["rejected"]) == held

    comments = KEYS.comment("", "")[:-1]
    # The worker: each comment once; each site's record and the policies once for the batch.
    assert watched.keys_read("scoring", "HGETALL", comments) == Counter(news_ids + blog_ids)
    assert watched.keys_read("scoring", "HGETALL", KEYS.site("")) == Counter(
        [KEYS.site("news"), KEYS.site("blog")]
    )
    policy_reads = watched.keys_read("scoring", "MGET", KEYS.policy(""))
    policy_reads += watched.keys_read("scoring", "GET", KEYS.policy(""))
    assert sum(policy_reads.values()) == 1, policy_reads
    # The decide script reads the comment's fields in one HMGET.
    assert watched.count("scoring", "HGET", news_ids[3], lua=True) == 0
    assert watched.count("scoring", "HMGET", news_ids[3], lua=True) == 1

    # The deliverer: the comment and its site once per webhook.
    assert watched.keys_read("deliveries", "HGETALL", comments) == Counter(news_ids)
    assert watched.keys_read("deliveries", "HGETALL", KEYS.site("")) == Counter(
        {KEYS.site("news"): PER_SITE}
    )

    # A moderator's decision: the comment once (the decide script returns the record as it
    # leaves it), the site once (its callback URL); the deliverer reads each once more.
    assert watched.keys_read("moderator", "HGETALL", comments) == Counter([news_ids[0]])
    assert not watched.keys_read("moderator", "HGET", comments)
    assert watched.keys_read("moderator", "HGETALL", KEYS.site("")) == Counter([KEYS.site("news")])
    assert watched.keys_read("moderator-delivery", "HGETALL", comments) == Counter([news_ids[0]])
    # A decision and a late one (a 409 with the current record): one read each.
    assert watched.keys_read("moderator-blog", "HGETALL", comments) == Counter({blog_ids[1]: 2})

    # A moderator's token: its index once, then the moderator's record once (one HGETALL, the
    # digest compared from it), per request.
    ann = KEYS.moderator("ann")
    for phase, requests in (("moderator", 1), ("moderator-blog", 2), ("ban", 1)):
        assert sum(watched.keys_read(phase, "GET", KEYS.moderator_token("")).values()) == requests
        assert watched.keys_read(phase, "HGETALL", ann) == Counter({ann: requests}), phase
        assert not watched.keys_read(phase, "HGET", ann), phase

    # The outbox: only decisions announced by webhook (news's) go in and come out; blog's
    # (no callback URL) pass it by, whoever decides.
    outbox = KEYS.outbox
    assert watched.count("scoring", "ZADD", outbox, lua=True) == PER_SITE
    assert watched.count("scoring", "ZREM", outbox) == PER_SITE
    assert watched.count("moderator", "ZADD", outbox, lua=True) == 1
    assert watched.count("moderator", "ZREM", outbox) == 1
    for phase in ("moderator-blog", "ban"):
        assert watched.count(phase, "ZADD", outbox, lua=True) == 0, phase
        assert watched.count(phase, "ZREM", outbox) == 0, phase

    # A ban that rejects the author's held comments: each of the author's comments read once
    # to find the held ones and once for the answer's recent comments, none again to decide.
    assert watched.keys_read("ban", "HGETALL", comments) == Counter({key: 2 for key in blog_ids})
