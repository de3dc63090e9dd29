"""The normalised alert every source produces: the one shape folding and playbooks read.

Sources are pure: raw payload in, `NormalizedAlert` out, no I/O. The raw payload is kept
verbatim beside it by the store, so nothing a source drops is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OBSERVABLE_TYPES = ("ip", "hash", "domain", "url", "user", "hostname")


@dataclass(frozen=True, slots=True)
class Observable:
    """A thing worth looking up or pivoting on, found in an alert.

    `public` is only meaningful for IPs: True for globally routable addresses (worth sending to
    threat intel), False for private, loopback, link-local, documentation and other reserved ranges.
    `kind` refines the type (hash algorithm "md5"/"sha1"/"sha256"/"imphash", "ipv4"/"ipv6").
    `field` is the dotted path in the raw alert the value came from.
    """

    type: str
    value: str
    field: str
    kind: str | None = None
    public: bool | None = None


@dataclass(slots=True)
class NormalizedAlert:
    source: str  # "wazuh", "extrahop", "github", …
    source_id: str  # the producer's own id, or "sha256:<hex>" of the content when it has none
    node: str  # cluster node or manager name: the id is only unique per node (wazuh.md §4.3)
    time_original: str  # the timestamp exactly as the producer wrote it
    time_utc: datetime  # timezone-aware, UTC
    title: str
    level: int
    rule_id: str | None = None
    groups: list[str] = field(default_factory=list)
    mitre_ids: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    agent_id: str | None = None
    agent_name: str | None = None
    agent_ip: str | None = None
    manager: str | None = None
    location: str | None = None
    observables: list[Observable] = field(default_factory=list)

    @property
    def dedup_key(self) -> str:
        return f"{self.source}|{self.node}|{self.source_id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (times as ISO 8601 strings).

        Written out by hand: `dataclasses.asdict` deep-copies recursively and showed up as a tenth
        of intake CPU in profiles.
        """
        return {
            "source": self.source,
            "source_id": self.source_id,
            "node": self.node,
            "time_original": self.time_original,
            "time_utc": self.time_utc.isoformat().replace("+00:00", "Z"),
            "title": self.title,
            "level": self.level,
            "rule_id": self.rule_id,
            "groups": list(self.groups),
            "mitre_ids": list(self.mitre_ids),
            "tactics": list(self.tactics),
            "techniques": list(self.techniques),
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "agent_ip": self.agent_ip,
            "manager": self.manager,
            "location": self.location,
            "observables": [
                {
                    "type": o.type,
                    "value": o.value,
                    "field": o.field,
                    "kind": o.kind,
                    "public": o.public,
                }
                for o in self.observables
            ],
        }
