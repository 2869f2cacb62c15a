"""The objects a request needs (stores, enqueuer), built once per app from its Settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from moderation.authors import AuthorStore
from moderation.connections import connect
from moderation.coral_secrets import CoralSecretStore
from moderation.deliveries import DeliveryLog, Outbox
from moderation.durability import Durability
from moderation.hourly_stats import DashboardStats
from moderation.labels import LabelStore
from moderation.moderators import ModeratorStore
from moderation.policies import PolicyStore
from moderation.queue import DeliveryEnqueuer, LearningEnqueuer, ScoringEnqueuer
from moderation.reports import ReaderReports, ReportStore
from moderation.review import ReviewService
from moderation.settings import Settings
from moderation.sites import SiteStore
from moderation.store import CommentStore


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


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["moderation"]
