"""The response policy: may Casefold act on this target now?

Rules, checked in this order (the first that refuses names itself in the decision):
- `protected`: the target is in a network never to act on (loopback, private ranges, Casefold's
  own host and the Wazuh API host by default) or is not an address at all;
- `cooldown`: the same target was acted on less than `cooldown_seconds` ago;
- `budget`: `max_per_hour` responses were executed in the last hour, all targets together;
- then `dry_run` (record only), `approval` (wait for an analyst), or execute.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from casefold.config import ResponseSettings
from casefold.store.tables import (
    RESPONSE_ACTIVE,
    RESPONSE_DONE,
    RESPONSE_QUEUED,
    RESPONSE_UNDONE,
    responses,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
EXECUTE, REFUSE, AWAIT, DRY_RUN = "execute", "refuse", "await_approval", "dry_run"
ACTED = (RESPONSE_QUEUED, RESPONSE_ACTIVE, RESPONSE_DONE, RESPONSE_UNDONE)


@dataclass(frozen=True)
class Decision:
    verdict: str  # execute, refuse, await_approval, dry_run
    rule: str | None = None  # which rule refused
    reason: str = ""


def _networks(values: Iterable[str]) -> list[Network]:
    out: list[Network] = []
    for value in values:
        text = value.strip()
        try:
            out.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        host = urlsplit(text).hostname if "://" in text else text
        try:  # a host name: protect every address it resolves to now
            for info in socket.getaddrinfo(host, None):
                out.append(ipaddress.ip_network(info[4][0]))
        except (OSError, UnicodeError):
            continue
    return out


class ResponsePolicy:
    def __init__(self, conf: ResponseSettings, own_hosts: Iterable[str] = ()) -> None:
        self.conf = conf
        self.protected = _networks([*conf.never_act_on, *conf.protected_hosts, *own_hosts])

    def protected_by(self, target: str) -> str | None:
        try:
            address = ipaddress.ip_address(target.strip().strip("[]"))
        except ValueError:
            return f"{target!r} is not an IP address"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for net in self.protected:
            if address in net:
                return f"{address} is in {net}, a network never acted on"
        if address.is_unspecified or address.is_multicast:
            return f"{address} is not a host address"
        return None

    def decide(self, conn: Connection, target: str, now: datetime) -> Decision:
        why = self.protected_by(target)
        if why is not None:
            return Decision(REFUSE, "protected", why)
        conf = self.conf
        # A response queued but not yet delivered counts as acted on: two quick requests must
        # not both slip under the cooldown or the budget.
        acted = responses.c.state.in_(ACTED)
        when = func.coalesce(responses.c.executed_at, responses.c.created_at)
        if conf.cooldown_seconds > 0:
            last = conn.execute(
                select(func.max(when)).where(responses.c.target == target, acted)
            ).scalar()
            if last is not None:
                last = last if last.tzinfo else last.replace(tzinfo=now.tzinfo)
                if now - last < timedelta(seconds=conf.cooldown_seconds):
                    return Decision(
                        REFUSE,
                        "cooldown",
                        f"{target} was acted on at {last.isoformat()}, less than "
                        f"{conf.cooldown_seconds:g} s ago",
                    )
        executed = conn.execute(
            select(func.count()).where(acted, when >= now - timedelta(hours=1))
        ).scalar_one()
        if executed >= conf.max_per_hour:
            return Decision(
                REFUSE, "budget", f"{executed} responses in the last hour (max_per_hour)"
            )
        if conf.dry_run:
            return Decision(DRY_RUN, None, "dry run: recorded, nothing done")
        if conf.require_approval:
            return Decision(AWAIT, None, "waiting for an analyst's approval")
        return Decision(EXECUTE, None, "allowed by policy")
