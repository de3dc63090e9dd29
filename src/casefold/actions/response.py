"""Active responses from playbooks: block an IP on a firewall, run a Wazuh AR command.

Every request goes through the response policy (never-act-on networks, cooldown, hourly
budget, approval, dry run) and is recorded with its decision on the case; execution and the
undo at the end of the TTL go through the outbox. A trial (`playbook test`) decides nothing and
acts on nothing: it says what it would ask.
"""

from __future__ import annotations

from typing import Any

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY
from casefold.errors import InvalidInputError


def _ip(args: dict[str, Any], name: str = "ip_address") -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be an IP address", field=name)
    return value.strip()


def _ttl(args: dict[str, Any]) -> float | None:
    ttl = args.get("ttl")
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
        raise InvalidInputError("ttl must be a number of seconds (0: never undone)", field="ttl")
    return float(ttl)


def _request(
    ctx: ActionContext, action: str, target: str, params: dict[str, Any], ttl: float | None
) -> dict[str, Any]:
    if ctx.dry_run or ctx.responses is None or ctx.run_now is None:
        ctx.http_trace.append({"response": action, "target": target, "sent": False})
        return {"state": "not_requested", "action": action, "target": target, "dry_run": True}
    service = ctx.responses
    ctx.called_out = True  # recorded at once: a resumed run must not ask a second time
    return ctx.run_now(
        lambda conn: service.request(
            conn,
            action=action,
            target=target,
            params=params,
            case_id=ctx.case_id,
            alert_id=ctx.alert_id,
            actor=ctx.actor,
            ttl=ttl,
        )
    )


@REGISTRY.action(
    "firewall.block_ip", kind="network", required=("ip_address",), optional=("ttl", "reason")
)
def block_ip(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Ask to block an IP on the firewall (policy first; undone after `ttl` seconds)."""
    ip = _ip(args)
    reason = args.get("reason") or f"Casefold {ctx.playbook}"
    return _request(ctx, "firewall.block_ip", ip, {"reason": str(reason)}, _ttl(args))


@REGISTRY.action("firewall.unblock_ip", kind="network", required=("ip_address",))
def unblock_ip(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Ask to lift a block on the firewall."""
    ip = _ip(args)
    return _request(ctx, "firewall.unblock_ip", ip, {}, 0)


@REGISTRY.action(
    "wazuh.active_response",
    kind="network",
    required=("command", "target"),
    optional=("agents", "arguments", "ttl", "undo_command"),
)
def active_response(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run a Wazuh AR command on agents (default: the alert's agent) through the Wazuh API.

    `target` is what the command acts on (the attacker's IP): the policy judges it."""
    command = args.get("command")
    if not isinstance(command, str) or not command.strip():
        raise InvalidInputError("command must be an AR command name", field="command")
    target = _ip(args, "target")
    agents = args.get("agents")
    if agents is None:
        agent = (ctx.alert or {}).get("agent_id")
        agents = [agent] if agent and agent != "000" else []
    if not isinstance(agents, list) or not agents or not all(isinstance(a, str) for a in agents):
        raise InvalidInputError("agents must be a list of agent ids (not 000)", field="agents")
    arguments = args.get("arguments") or []
    if not isinstance(arguments, list):
        raise InvalidInputError("arguments must be a list", field="arguments")
    params = {
        "command": command.strip(),
        "agents": agents,
        "arguments": [str(a) for a in arguments],
        "alert": {"data": {"srcip": target}},
    }
    if args.get("undo_command"):
        params["undo_command"] = str(args["undo_command"])
    return _request(ctx, "wazuh.active_response", target, params, _ttl(args))
