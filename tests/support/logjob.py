"""A job for the logging tests, importable by dotted path: logs a line, returns its meta."""

from __future__ import annotations

import logging

from moderation.core.logs import job_meta

log = logging.getLogger(__name__)


def log_and_report(text: str) -> dict[str, str]:
    """Log `text`; return what `job_meta()` gives inside the job (for follow-up jobs)."""
    log.info("job says %s", text)
    return job_meta()
