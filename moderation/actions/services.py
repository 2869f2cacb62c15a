"""The objects a request or a job needs (stores, enqueuers, the review service), built once from
Settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from moderation.actions.reader_reports import ReaderReports, ReportStore
from moderation.actions.review_service import ReviewService
from moderation.core.redis_connections import connect
from moderation.core.settings import Settings
from moderation.storage.author_store import AuthorStore
from moderation.storage.comment_store import CommentStore
from moderation.storage.coral_secrets import CoralSecretStore
from moderation.storage.durability import Durability
from moderation.storage.hourly_stats import DashboardStats
from moderation.storage.job_queues import DeliveryEnqueuer, LearningEnqueuer, ScoringEnqueuer
from moderation.storage.label_store import LabelStore
from moderation.storage.moderator_store import ModeratorStore
from moderation.storage.policy_store import PolicyStore
from moderation.storage.site_store import SiteStore
from moderation.storage.webhook_outbox import DeliveryLog, Outbox


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    comments: CommentStore
    sites: SiteStore
    enqueue_scoring: ScoringEnqueuer
    moderators: ModeratorStore
    review: ReviewService
    outbox: Outbox
    deliveries: DeliveryLog
    policies: PolicyStore
    labels: LabelStore
    coral_secrets: CoralSecretStore
    authors: AuthorStore
    reader_reports: ReaderReports
    stats: DashboardStats


def build_services(settings: Settings) -> Services:
    connection = connect(settings.redis_url)
    comments = CommentStore(
        connection,
        track_retention=settings.retention_days > 0,
        durability=Durability.from_settings(settings),
    )
    sites = SiteStore(connection, settings.secret_key)
    outbox = Outbox(connection, comments, sites, DeliveryEnqueuer(connection, settings))
    # Each new label asks for the site's models to be retrained.
    labels = LabelStore(connection, on_change=LearningEnqueuer(connection, settings))
    authors = AuthorStore(connection, comments.durability)
    reports = ReportStore(connection)
    policies = PolicyStore(connection, settings.policy)
    return Services(
        settings=settings,
        redis=connection,
        comments=comments,
        sites=sites,
        enqueue_scoring=ScoringEnqueuer(connection, settings),
        moderators=ModeratorStore(connection),
        review=ReviewService(comments, sites, outbox, labels, authors, reports),
        outbox=outbox,
        deliveries=DeliveryLog(connection),
        policies=policies,
        labels=labels,
        coral_secrets=CoralSecretStore(connection, settings.secret_key),
        authors=authors,
        reader_reports=ReaderReports(comments, reports, policies, outbox),
        stats=DashboardStats(connection),
    )
