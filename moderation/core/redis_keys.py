"""Redis key names: the only place they are spelled out.

Layout (every key under the `mod:` prefix):

    mod:comment:{site}:{id}        hash    the comment, its status and decision
    mod:pending                    zset    "{site}\\n{id}" by submission time: not yet decided
    mod:decided:{site}:{id}        channel published once when a decision is stored
    mod:recent:{kind}:{site}:{v}   zset    comment ids by submission time, for spam counters
    mod:worker-models              hash    worker name -> the models it scores with
    mod:held:{site}                zset    held comment ids by submission time (the review queue)
    mod:audit:{site}:{id}          list    the comment's audit events, oldest first (JSON)
    mod:events:{site}              stream  every site's audit events, for live views
    mod:author:{site}:{author}     hash    the author's comment counts by status, and their standing
                                           (banned, premoderated, trusted) with who set it and why
    mod:author-log:{site}:{author} list    every action on the author (ban, clear...), oldest first
    mod:author-comments:{s}:{a}    zset    the author's newest comment ids by submission time
    mod:reports:{site}:{id}        hash    reader id -> their report of the comment (JSON)
    mod:reported:{site}            zset    comment ids with reports no moderator has seen, by the
                                           latest report's time (the page's Reported view)
    mod:approved:{site}            zset    approved comment ids by decision time (the newest
                                           10,000: what moderators search to overturn)
    mod:stats:{site}:{hour}        hash    one UTC hour's counts for the dashboard (see
                                           moderation.storage.hourly_stats), kept 35 days
    mod:examples:{site}            stream  the site's labels (text, kind, source, scores)
    mod:label-stats:{site}         hash    labels per kind, a version bumped by every change,
                                           and the version the site's models last trained on
    mod:label-scores:{site}        hash    label id -> the toxicity model's scores of a label that
                                           came without them (Akismet, Perspective), by model
    mod:learning-queued:{site}     string  set while a retraining job for the site is queued
    mod:learning-lock:{site}       string  held by the one process retraining the site's models
    mod:models:{site}              hash    kind ("spam", "toxicity") -> the site model in use
    mod:model:{site}:{kind}:{n}    string  site model version n (an .npz file's bytes)
    mod:model-twin:{site}:{kind}:{n}  string  the same fitted without its held-out labels
    mod:model-log:{site}:{kind}    list    every training and rollback, newest first (JSON)
    mod:model-seq:{site}           hash    kind -> the last version number given out
    mod:policy:{site}              string  the site's own policy (JSON), when it has one
    mod:coral-secrets:{site}       string  the site's Coral signing secrets, encrypted (Fernet)
    mod:apikey-folded:{digest}     string  the site whose API key, lowercased, has this digest
                                           (the Akismet endpoints' keys in host names)
    mod:akismetkey:{digest}        string  the site whose Akismet-shaped key has this HMAC
    mod:akismet-usage:{site}:{m}   hash    month m's Akismet checks and corrections, in total
                                           and per blog (get-stats, key-sites, usage-limit)
    mod:akismet-months:{site}      set     the months with Akismet counts
    mod:retention                  zset    "{site}\\n{id}" of approved comments by decision time
    mod:outbox                     zset    "{site}\\n{id}" decided but webhook not yet queued
    mod:deliveries:{site}:{id}     list    the comment's webhook delivery attempts (JSON)
    mod:unresponsive:{origin}      string  when deliveries to a receiver that timed out resume
    mod:alive:{worker}             string  set every few seconds while a worker process lives
    mod:sweep-lock                 string  held by the one worker sweeping pending comments
    mod:engine-choice:{digest}     string  the engine measured best for one model on one kind
                                           of machine (JSON; see moderation.storage.engine_choices)
    mod:engine-choice-lock:{d}     string  held by the one worker measuring it
    mod:metrics:counters           hash    counters many processes add to (see metrics.py)
    mod:metrics:scoring:{model}    hash    the scoring latency histogram of one model
    mod:ratelimit:{LIMITER/...}    string  flask-limiter's counters (see http/rate_limits.py)

Also: site records and API key digests (`moderation.storage.site_store`), moderators and their
token digests (`moderation.storage.moderator_store`), per-site policies
(`moderation.storage.policy_store`).
"""

from __future__ import annotations


class Keyspace:
    """Key names; nothing outside the storage modules builds one."""

    prefix = "mod"

    @property
    def rate_limits(self) -> str:
        """The prefix of flask-limiter's counters (limits appends `:{LIMITER/...}`)."""
        return f"{self.prefix}:ratelimit"

    def comment(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:comment:{site}:{comment_id}"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    def decided_channel(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:decided:{site}:{comment_id}"

    def recent(self, kind: str, site: str, value: str) -> str:
        return f"{self.prefix}:recent:{kind}:{site}:{value}"

    def site(self, name: str) -> str:
        return f"{self.prefix}:site:{name}"

    @property
    def sites(self) -> str:
        return f"{self.prefix}:sites"

    def api_key(self, key_digest: str) -> str:
        return f"{self.prefix}:apikey:{key_digest}"

    def api_key_folded(self, key_digest: str) -> str:
        return f"{self.prefix}:apikey-folded:{key_digest}"

    def akismet_key(self, key_digest: str) -> str:
        return f"{self.prefix}:akismetkey:{key_digest}"

    def akismet_usage(self, site: str, month: str) -> str:
        return f"{self.prefix}:akismet-usage:{site}:{month}"

    def akismet_months(self, site: str) -> str:
        return f"{self.prefix}:akismet-months:{site}"

    @property
    def worker_models(self) -> str:
        return f"{self.prefix}:worker-models"

    def held(self, site: str) -> str:
        return f"{self.prefix}:held:{site}"

    def audit(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:audit:{site}:{comment_id}"

    def site_events(self, site: str) -> str:
        return f"{self.prefix}:events:{site}"

    def author_counts(self, site: str, author_id: str) -> str:
        return f"{self.prefix}:author:{site}:{author_id}"

    def author_log(self, site: str, author_id: str) -> str:
        return f"{self.prefix}:author-log:{site}:{author_id}"

    def author_comments(self, site: str, author_id: str) -> str:
        return f"{self.prefix}:author-comments:{site}:{author_id}"

    def reports(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:reports:{site}:{comment_id}"

    def reported(self, site: str) -> str:
        return f"{self.prefix}:reported:{site}"

    def approved(self, site: str) -> str:
        return f"{self.prefix}:approved:{site}"

    def hourly_stats(self, site: str, hour: int) -> str:
        """`hour`: hours since the epoch (UTC)."""
        return f"{self.prefix}:stats:{site}:{hour}"

    def labels(self, site: str) -> str:
        """Named before labels were learned from; kept so that stored labels stay."""
        return f"{self.prefix}:examples:{site}"

    def label_stats(self, site: str) -> str:
        return f"{self.prefix}:label-stats:{site}"

    def label_scores(self, site: str) -> str:
        return f"{self.prefix}:label-scores:{site}"

    def learning_queued(self, site: str) -> str:
        return f"{self.prefix}:learning-queued:{site}"

    def learning_lock(self, site: str) -> str:
        return f"{self.prefix}:learning-lock:{site}"

    def site_models(self, site: str) -> str:
        return f"{self.prefix}:models:{site}"

    def site_model(self, site: str, kind: str, version: int) -> str:
        return f"{self.prefix}:model:{site}:{kind}:{version}"

    def site_model_twin(self, site: str, kind: str, version: int) -> str:
        return f"{self.prefix}:model-twin:{site}:{kind}:{version}"

    def model_log(self, site: str, kind: str) -> str:
        return f"{self.prefix}:model-log:{site}:{kind}"

    def model_sequence(self, site: str) -> str:
        return f"{self.prefix}:model-seq:{site}"

    def moderator(self, name: str) -> str:
        return f"{self.prefix}:moderator:{name}"

    @property
    def moderators(self) -> str:
        return f"{self.prefix}:moderators"

    def moderator_token(self, token_digest: str) -> str:
        return f"{self.prefix}:modtoken:{token_digest}"

    def policy(self, site: str) -> str:
        return f"{self.prefix}:policy:{site}"

    def coral_secrets(self, site: str) -> str:
        return f"{self.prefix}:coral-secrets:{site}"

    @property
    def retention(self) -> str:
        return f"{self.prefix}:retention"

    def alive(self, worker_name: str) -> str:
        return f"{self.prefix}:alive:{worker_name}"

    @property
    def sweep_lock(self) -> str:
        return f"{self.prefix}:sweep-lock"

    @property
    def metric_counters(self) -> str:
        return f"{self.prefix}:metrics:counters"

    def scoring_histogram(self, model: str) -> str:
        return f"{self.prefix}:metrics:scoring:{model}"

    @property
    def scoring_models(self) -> str:
        return f"{self.prefix}:metrics:scoring-models"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}:outbox"

    def deliveries(self, site: str, comment_id: str) -> str:
        return f"{self.prefix}:deliveries:{site}:{comment_id}"

    def unresponsive(self, origin: str) -> str:
        return f"{self.prefix}:unresponsive:{origin}"

    def engine_choice(self, digest: str) -> str:
        return f"{self.prefix}:engine-choice:{digest}"

    def engine_choice_lock(self, digest: str) -> str:
        return f"{self.prefix}:engine-choice-lock:{digest}"


KEYS = Keyspace()
