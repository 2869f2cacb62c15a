"""The `demo` site and `editor` moderator that `moderation up` makes, and remakes on restart."""

from __future__ import annotations

import redis

from moderation.core.settings import Settings
from moderation.ops.dev_accounts import DEMO_MODERATOR, DEMO_SITE, demo_accounts
from moderation.storage.moderator_store import ModeratorStore
from moderation.storage.site_store import SiteStore


def test_a_restart_gives_new_secrets_and_the_old_ones_stop_working(
    redis_client: redis.Redis, settings: Settings
) -> None:
    first = demo_accounts(redis_client, settings.secret_key, "http://127.0.0.1:8080/hooks/m")
    sites, moderators = SiteStore(redis_client, settings.secret_key), ModeratorStore(redis_client)
    assert (first.site, first.moderator) == (DEMO_SITE, DEMO_MODERATOR)
    assert sites.authenticate(first.api_key) == DEMO_SITE
    assert sites.get(DEMO_SITE).callback_url == "http://127.0.0.1:8080/hooks/m"
    editor = moderators.by_password(DEMO_MODERATOR, first.password)
    assert editor is not None and editor.sites == (DEMO_SITE,)

    moderators.set_disabled(DEMO_MODERATOR, True)
    second = demo_accounts(redis_client, settings.secret_key)  # `make run`: no newsroom
    assert sites.authenticate(first.api_key) is None
    assert sites.authenticate(second.api_key) == DEMO_SITE
    assert sites.get(DEMO_SITE).callback_url is None  # no webhooks to a newsroom that is gone
    assert second.webhook_secret == first.webhook_secret  # a rotation keeps the webhook secret
    assert moderators.by_password(DEMO_MODERATOR, first.password) is None
    assert moderators.by_password(DEMO_MODERATOR, second.password) is not None  # enabled again
