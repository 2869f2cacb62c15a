"""The `demo` site and its moderator that `moderation up` creates, or refreshes on a restart."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from moderation.storage.moderator_store import ModeratorExistsError, ModeratorStore, Role
from moderation.storage.site_store import SiteExistsError, SiteStore

DEMO_SITE = "demo"
DEMO_MODERATOR = "editor"


@dataclass(frozen=True)
class DemoAccounts:
    """Shown in the banner: fresh secrets on every start (the earlier ones stop working)."""

    site: str
    api_key: str
    webhook_secret: str
    moderator: str
    password: str


def demo_accounts(
    connection: redis.Redis, secret_key: str, callback_url: str | None = None
) -> DemoAccounts:
    """The `demo` site with a new API key and `callback_url` (None: no webhooks), and the
    `editor` moderator of that site with a new password, enabled."""
    sites = SiteStore(connection, secret_key)
    try:
        site = sites.create(DEMO_SITE, callback_url)
    except SiteExistsError:
        site = sites.rotate_api_key(DEMO_SITE)
        sites.set_callback_url(DEMO_SITE, callback_url)
    moderators = ModeratorStore(connection)
    try:
        login = moderators.create(DEMO_MODERATOR, Role.MODERATOR, [DEMO_SITE])
    except ModeratorExistsError:
        login = moderators.reset_password(DEMO_MODERATOR)
        moderators.set_disabled(DEMO_MODERATOR, False)
    return DemoAccounts(site.site, site.api_key, site.webhook_secret, login.name, login.password)
