"""Which environment variables hold a secret, by their names: the rule ``harness.secrets`` redacts their values
by, here below every other module, so that a message made before any campaign (``errors.shown``: a collection
error quoting a value) can redact them too."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_NAME_PARTS = frozenset({"KEY", "KEYS", "APIKEY", "APIKEYS", "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS",
                         "PASSWD", "PASS", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS"})
#: (``TOKENS`` is not among them: ``MAX_TOKENS`` and the like are counts, and their digits would be redacted)
_NAME_ENDINGS = ("APIKEY", "APIKEYS", "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS")
#: The shortest environment value redacted (shorter ones, "true" or "1", would redact ordinary text).
MIN_SECRET_LENGTH = 8

#: Variables named as holding a secret whatever their names look like (``harness.secrets.treat_as_secret``).
named_secrets: set[str] = set()


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name looks like it holds a secret (see ``harness.secrets``)."""
    parts = re.split(r"[_\-.]", name.upper())
    return any(part in _NAME_PARTS or part.endswith(_NAME_ENDINGS) for part in parts if part)


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of ``environ``'s (default: the process's) secret-named variables (and those ``named_secrets``
    holds), longest first."""
    env = os.environ if environ is None else environ
    values = {value for name, value in env.items()
              if len(value) >= MIN_SECRET_LENGTH and (is_secret_name(name) or name in named_secrets)}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))
