"""Which environment variables hold a secret (by their names, and those ``name_as_secret`` named), and the forms a
value takes written down (``written_forms``): what ``harness.secrets`` redacts by, here below every other module,
so that ``errors.shown`` redacts them in every message too (a collection error before any campaign)."""

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

#: Variables named as holding a secret whatever their names look like (``name_as_secret``).
_named: set[str] = set()


def name_as_secret(name: str) -> bool:
    """Hold environment variable ``name``'s value a secret whatever its name looks like (through
    ``harness.secrets.treat_as_secret``, which also refreshes its redaction); whether it was not named before."""
    if name in _named:
        return False
    _named.add(name)
    return True


def secret_names() -> tuple[str, ...]:
    """The variables ``name_as_secret`` named, sorted."""
    return tuple(sorted(_named))


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name looks like it holds a secret (see ``harness.secrets``)."""
    parts = re.split(r"[_\-.]", name.upper())
    return any(part in _NAME_PARTS or part.endswith(_NAME_ENDINGS) for part in parts if part)


_NAME_VERDICTS: dict[str, bool] = {}  # name -> ``is_secret_name(name)``, for the names of the environment


def _secret_named(name: str) -> bool:
    """``is_secret_name(name)``, remembered for a plain ``str`` (each campaign reads the environment twice)."""
    if type(name) is not str:
        return is_secret_name(name)
    verdict = _NAME_VERDICTS.get(name)
    if verdict is None:
        verdict = is_secret_name(name)
        if len(_NAME_VERDICTS) < 4096:
            _NAME_VERDICTS[name] = verdict
    return verdict


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of ``environ``'s (default: the process's) secret-named variables (and those ``name_as_secret``
    named), longest first."""
    env = os.environ if environ is None else environ
    values = {value for name, value in env.items()
              if len(value) >= MIN_SECRET_LENGTH and (_secret_named(name) or name in _named)}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))


def _escaped_forms(value: str) -> set[str]:
    """``value`` as one layer of escaping writes it: in its ``repr`` (either quoting: a text holding both quotes is
    shown in single quotes, ``\\'`` escaped), in ``ascii``, in JSON (``\\uXXXX`` or not) and in the ``repr`` of
    its UTF-8 bytes (``b'P\\xc3\\xa4ss...'``, a ``bytearray``: a tool that returns the secret encoded)."""
    import json  # (here: ``errors`` imports this module, and a message is rarely made)

    quoted = value + '"'  # (both quotes: ``repr`` quotes it in single quotes and escapes a single quote)
    encoded = quoted.encode("utf-8", "backslashreplace")
    return {repr(value)[1:-1], repr(quoted)[1:-2], ascii(value)[1:-1], ascii(quoted)[1:-2],
            json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
            repr(value.encode("utf-8", "backslashreplace"))[2:-1], repr(encoded)[2:-2]}


def written_forms(value: str) -> set[str]:
    """``value`` as it may appear written down: as it is, and escaped once or twice (``_escaped_forms``): an
    exception's or a tool result's text shows its ``repr``, a dict holding JSON text the ``repr`` of the JSON (a
    multi-line key's ``\\\\n``), a JSON report the JSON of a ``repr``; URL-encoded (a connection string's
    password, a token in a query); and inside a shell-quoted word of a printed command (``'`` as ``'"'"'``), with
    its braces doubled as a format string holds them (a replay command's template)."""
    import urllib.parse

    once = _escaped_forms(value)
    quoted = value.replace("'", "'\"'\"'")
    # (URL-encoded as its bytes: a value the environment held as bytes that are not UTF-8 has surrogates, which
    # ``quote`` of the text refuses with ``UnicodeEncodeError``; every message with the variable set raised it)
    raw = value.encode("utf-8", "surrogateescape")
    forms = {value, *once, *(twice for form in once if form != value for twice in _escaped_forms(form)),
             urllib.parse.quote(raw, safe=""), urllib.parse.quote(raw), urllib.parse.quote_plus(raw),
             quoted, *(form.replace("{", "{{").replace("}", "}}") for form in (value, quoted))}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
