"""What an action sees of the world while it runs.

Case changes are not written on the spot: they are queued as `effects` and applied by the engine
in the same transaction that records the step, so a step is never half-done (changed the case but
not recorded) or done twice. A dry run (`casefold playbook test`) gets the same context with
`dry_run` set: effects are collected for display and never applied, HTTP calls are described, not
made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from casefold.cases.bulk import CaseOp
from casefold.enrichment.service import Enricher

Effect = Callable[[Connection], Any]


@dataclass
class ActionContext:
    playbook: str
    run_id: int | None
    alert_id: int | None
    case_id: int | None  # the case the alert folded into, if any
    case_opened_by_alert: bool  # that case was opened by this very alert
    engine: Engine | None  # for reads (search_cases); None in pure dry runs
    run_now: Callable[[Effect], Any] | None  # run a write immediately (opening a case)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    http_client: httpx.Client | None = None
    http_allow: Callable[[str], None] | None = None  # raises when a URL is not allowed
    dry_run: bool = False
    live: bool = False  # with dry_run: still make HTTP calls (`playbook test --live`)
    timeout: float = 30.0
    effects: list[tuple[str, Effect]] = field(default_factory=list)
    http_trace: list[dict[str, Any]] = field(default_factory=list)
    settings: Any = None
    enricher: Enricher | None = None  # threat-intel lookups: shared cache and budgets
    alert: Mapping[str, Any] | None = None  # the normalised alert the run is for
    wazuh: Any = None  # where wazuh.send_event delivers (actions.wazuh.WazuhSender)
    responses: Any = None  # response.service.ResponseService: policy-checked active responses
    case_ops: list[CaseOp] = field(default_factory=list)  # case changes, applied in bulk
    # Set by an action that reached another system (not served from cache): the engine then
    # records the step at once, so a crash never makes the call again.
    called_out: bool = False

    @property
    def actor(self) -> str:
        return f"playbook:{self.playbook}"

    def defer(self, description: str, effect: Effect) -> None:
        self.effects.append((description, effect))

    def change_case(self, op: CaseOp) -> None:
        self.case_ops.append(op)

    def planned_changes(self) -> list[str]:
        """What this run would change, in words (for dry runs and traces)."""
        return [d for d, _ in self.effects] + [op.describe() for op in self.case_ops]

    @property
    def makes_requests(self) -> bool:
        return not self.dry_run or self.live
