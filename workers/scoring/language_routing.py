"""Where a comment's toxicity gets read: by this worker, by a live worker whose model reads the
comment's language (handed over on that language's queue), or by no one (the site policy's
`unscored_languages` decides; spam is scored either way)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from moderation.core.language_detection import UNDETERMINED, LanguageDetector
from moderation.core.records import Comment
from moderation.storage.worker_languages import LiveLanguages


class Placement(StrEnum):
    HERE = "here"  # this worker's model reads the language (or it is undetermined)
    HAND_OVER = "hand over"  # another live worker's model reads it
    UNREAD = "unread"  # no live worker's model reads it


@dataclass(frozen=True)
class LanguageRoute:
    language: str
    placement: Placement


@dataclass(frozen=True)
class LanguageRouter:
    """Detects each comment's language and says where its toxicity can be read."""

    detector: LanguageDetector
    reads: frozenset[str]  # what this worker's toxicity model reads
    live: LiveLanguages

    def language(self, comment: Comment) -> str:
        """The comment's language; the host's `context.language` is only a hint."""
        submission = comment.submission
        return self.detector.detect(submission.content, hint=submission.context.get("language"))

    def route(self, comment: Comment) -> LanguageRoute:
        language = self.language(comment)
        if language == UNDETERMINED or language in self.reads:
            return LanguageRoute(language, Placement.HERE)
        if self.live.covers(language):
            return LanguageRoute(language, Placement.HAND_OVER)
        return LanguageRoute(language, Placement.UNREAD)
