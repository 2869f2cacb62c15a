"""Foreign protocols the service speaks, one room each: a pure translation module (the wire
format in, a decision out; no I/O) and the Flask blueprint that serves it.

- `akismet` / `akismet_api`: Akismet's `/1.1/` form-encoded calls (WordPress, most spam plugins).
- `perspective` / `perspective_api`: Google's Perspective `commentanalyzer` v1alpha1, and
  `perspective_discovery` / `perspective_discovery_api`: its discovery document (Google's client).
- `coral` / `coral_api`: Coral Talk's External Moderation Phase (`POST /coral/<site>`).

A new protocol gets the same pair here and one line in `moderation.app`.
"""
