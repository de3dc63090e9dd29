"""What a threat-intel provider says about one observable, in one shape for every provider.

Each connector maps its provider's answer to a verdict on a common scale (malicious, suspicious,
clean, unknown) and a score from 0 to 100, keeps the provider's own JSON in `data`, and writes a
one-line summary an analyst can read on the case.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

ObservableKind = Literal["ip", "hash", "domain", "url"]
KINDS: tuple[str, ...] = ("ip", "hash", "domain", "url")
VERDICTS = ("malicious", "suspicious", "clean", "unknown")
# Worst first: when providers disagree, the case shows the worst verdict.
VERDICT_RANK = {v: i for i, v in enumerate(VERDICTS)}


@dataclass(frozen=True)
class Finding:
    provider: str
    kind: str
    value: str
    found: bool  # the provider knows the observable (False: a negative answer)
    verdict: str  # one of VERDICTS
    score: int | None = None  # 0–100 on the provider's own evidence
    summary: str = ""
    data: Any = None  # the provider's answer as it sent it
    extra: dict[str, Any] = field(default_factory=dict)  # connector-specific, e.g. OpenCTI events

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Finding:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


class Provider(Protocol):
    """A threat-intel connector: a name, the observable kinds it answers, one lookup call."""

    name: str
    kinds: frozenset[str]

    def lookup(self, kind: str, value: str) -> Finding:
        """Ask the provider. Raises ProviderError (or QuotaExceeded) when it cannot answer."""
        ...

    def describe(self, kind: str, value: str) -> tuple[str, str]:
        """(method, URL) of the request a lookup would send, for dry runs."""
        ...


def worst(verdicts: list[str]) -> str:
    known = [v for v in verdicts if v in VERDICT_RANK]
    return min(known, key=VERDICT_RANK.__getitem__) if known else "unknown"
