"""Cassettes: a live upstream's answers recorded once, replayed offline.

One plain JSON Lines file per scenario, ``DIR/<scenario>.jsonl``: one line per request the live boundary
forwarded, in trial order (so a re-recording diffs line by line), each with the trial (index and seed), the
request's key, how many times the same request had been forwarded before in that trial (``occurrence``),
the request (its API, path, model, last message and body: what a reviewer reads), and the answer (status,
the content-type and retry-after headers only, body, latency in milliseconds). Never a request header:
the key is not written, and its value is redacted from every body.

The key of a request is the SHA-256 of its method, path and canonical JSON body (after the trial's drift).
A replay answers ``(trial seed, key, occurrence)`` exactly as recorded, and nothing else: a trial that was not
recorded (a campaign with more trials, or another seed) is not answered with another trial's answers, which
made it a copy of that trial judged as a trial of its own (an outside review: a live model completing 80% of
its tasks passed ``completion_rate >= 0.9`` in 70% of replays with ten times the recorded trials, the verdict
stating 5%). A request found nowhere is a ``CassetteMiss`` naming its model, last message and the file (or the
trial that was not recorded), never a call to the network.

Time: a forwarded call moves its trial's virtual clock by its latency as the cassette keeps it, whole
milliseconds (``recorded_latency``): the recording run by its measured latency rounded so, a replay by the
entry's ``latency_ms`` (the entry it answers from), never by the real time a lookup takes. So a replay's
records and traces are the recorded run's, to the digit, every time. An entry without ``latency_ms`` (or null: a
hand-written one) takes no virtual time; one whose ``latency_ms`` is not a finite number >= 0 is a
``ConfigError`` naming its line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CassetteMiss, ConfigError, hide_own_frames
from ..harness.secrets import redact_environment, redact_short
from ..process.umask import as_ordinary_file
from ..seeding import canonical, canonical_json

__tracebackhide__ = hide_own_frames

REDACTED = "[REDACTED]"
#: The answer headers a cassette keeps (and the agent gets): never anything that could carry a credential.
KEPT_HEADERS = ("content-type", "retry-after", "retry-after-ms")


def cassette_path(directory: str | os.PathLike[str], scenario: str) -> Path:
    """The cassette file of ``scenario`` in ``directory`` (a secret the environment holds in the name redacted:
    recorded and replayed under the same redacted name)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", redact_environment(scenario)).strip("._") or "scenario"
    return Path(directory) / f"{name}.jsonl"


def request_key(method: str, path: str, body: Any, *, parsed: bool = False) -> str:
    """The key of a request: its method, path and canonical body (``parsed``: a body ``json.loads`` made, or built
    of such values, whose text is made without the walk that makes an agent's containers exact: the same key, but
    for bodies nested past ~450 levels, see ``seeding.canonical_json``)."""
    text = f"{method.upper()} {path}\n{canonical_json(body) if parsed else canonical(body)}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def recorded_latency(seconds: float) -> float:
    """A call's latency as a cassette keeps it (whole milliseconds), in seconds: what its trial's virtual clock
    advances by, when recording (the measured latency, so rounded) and when replaying (the entry's
    ``latency_ms``), so that both give the same float."""
    return round(seconds * 1000) / 1000


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


_LOADED: dict[str, tuple[tuple[str, int, int], Cassette]] = {}  # resolved path -> (stamp, cassette)
_LOADED_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Recorded:
    """One answer of a cassette."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    latency_s: float


class Cassette:
    """One scenario's cassette: entries recorded in this campaign (written at its end), or loaded to replay."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()):
        self.path = path
        self.secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._new: list[tuple[int, int, dict[str, Any]]] = []  # (trial, sequence, entry)
        self._exact: dict[tuple[int, str, int], Recorded] = {}
        self._seeds: set[int] = set()  # the trials recorded (their seeds)

    # -- recording ----------------------------------------------------------------------------------------
    def add(self, *, trial: int, seed: int, key: str, occurrence: int, method: str, path: str, api: str | None,
            model: str, last_message: str, request: Any, answer: Recorded) -> None:
        """Record one answer (thread-safe); written by ``write``."""
        headers = {k: v for k, v in answer.headers if k in KEPT_HEADERS}
        entry = {"trial": trial, "seed": seed, "key": key, "occurrence": occurrence, "method": method, "path": path,
                 "api": api, "model": model, "last_message": last_message, "request": request,
                 "status": answer.status, "headers": headers,
                 "body": answer.body.decode("utf-8", "replace"), "latency_ms": round(answer.latency_s * 1000)}
        with self._lock:
            self._new.append((trial, len(self._new), entry))

    def write(self) -> Path:
        """Write the recorded entries, in trial order, atomically (a reader never sees half a file)."""
        with self._lock:
            entries = [e for _, _, e in sorted(self._new, key=lambda t: (t[0], t[1]))]
        lines = [json.dumps(self._scrubbed(e), sort_keys=True, ensure_ascii=False, allow_nan=False) for e in entries]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write("".join(line + "\n" for line in lines))
            as_ordinary_file(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path

    def scrub_text(self, text: str) -> str:
        """``text`` as a cassette keeps it: the live key, then the environment's secret values, taken out."""
        return redact_environment(redact(text, self.secrets))

    def _scrubbed(self, value: Any) -> Any:
        """An entry as written: in every string, the live key, then the environment's secret values (a cassette is
        meant to be committed). Not the secret shapes reports redact, which ordinary words may match
        ("risk-assessment"): a replay must answer what was recorded."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self._scrubbed(k): self._scrubbed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrubbed(v) for v in value]
        return value

    # -- replaying ----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read a cassette to replay (a missing or broken file is a ConfigError saying how to make one). A file
        replayed again unchanged (same size and modification time) is read once per process."""
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None or not path.is_file():
            raise ConfigError(f"no cassette {path}: record one with --agent-chaos-record={path.parent} (a live run), "
                              "then replay it with --agent-chaos-cassette")
        stamp = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with _LOADED_LOCK:
            cached = _LOADED.get(stamp[0])
            if cached is not None and cached[0] == stamp:
                return cached[1]
        cassette = cls._read(path)
        with _LOADED_LOCK:
            _LOADED[stamp[0]] = (stamp, cassette)
        return cassette

    @classmethod
    def _read(cls, path: Path) -> Cassette:
        cassette = cls(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key, occurrence, seed = str(entry["key"]), int(entry["occurrence"]), int(entry["seed"])
                status, headers = int(entry["status"]), entry.get("headers") or {}
                latency = _latency_ms(entry.get("latency_ms"))
                answer = Recorded(status, tuple((str(k), str(v)) for k, v in headers.items()),
                                  str(entry.get("body", "")).encode("utf-8"), latency / 1000)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{path}:{number}: not a cassette entry ({exc}); re-record the cassette") from exc
            cassette._exact.setdefault((seed, key, occurrence), answer)
            cassette._seeds.add(seed)
        return cassette

    def find(self, seed: int, key: str, occurrence: int) -> Recorded | None:
        """The answer recorded for this request of the trial of this seed (None: it was not recorded)."""
        return self._exact.get((seed, key, occurrence))

    def miss(self, model: str, last_message: str, seed: int | None = None) -> CassetteMiss:
        """The error of a request this cassette cannot answer (``seed``: the trial's)."""
        if seed is not None and seed not in self._seeds:
            return CassetteMiss(f"the cassette {self.path} holds no trial of seed {seed}: a replay answers each "
                                "trial with what that trial was answered when recorded, never with another trial's "
                                "(copies of one trial would be judged as trials of their own). Replay with the "
                                "recording's seed and at most its trials, or record this campaign with "
                                f"--agent-chaos-record={self.path.parent}; nothing was sent to the network")
        shown = redact_short(last_message, 200)  # (redacted before it is cut: no secret is left half-shown)
        return CassetteMiss(f"the cassette {self.path} has no answer for a request to model {model or '?'!r} whose "
                            f"last message is {shown!r}: the agent's requests changed since it was recorded (a "
                            f"stale cassette). Re-record it with --agent-chaos-record={self.path.parent}; nothing "
                            "was sent to the network")


def _latency_ms(value: Any) -> float:
    """An entry's ``latency_ms``: a finite number >= 0 (what a replay's clock advances by, in milliseconds); none
    (a hand-written entry) is 0."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"latency_ms={value!r} is not a number of milliseconds >= 0")
    return float(value)


def last_message(messages: Iterable[Mapping[str, Any]]) -> str:
    """The text of a request's last message (for a reviewer, and for a miss's message)."""
    items = list(messages)
    if not items:
        return ""
    last = items[-1]
    content = last.get("content")
    if isinstance(content, str) and content:
        return content
    calls = last.get("tool_calls") or ()
    if calls:
        return "; ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
    return str(content or "")
