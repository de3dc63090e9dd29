"""Settings: the only reader of the config file and of `CASEFOLD_*` environment variables.

Precedence, lowest first: defaults, the YAML file (`--config`), the environment, command-line flags.
Every setting is declared once below with its default and help text; `docs/configuration.md`
lists them and a test keeps the two in step. A wrong value stops start-up with one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from casefold.errors import ConfigError

ENV_PREFIX = "CASEFOLD_"


class BudgetLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    calls: int = Field(ge=0)
    per: Literal["minute", "hour", "day"] = "day"


class ProviderSettings(BaseModel):
    """One threat-intel provider: where it is, how long to wait and retry, what it may cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field("", description="Base URL (empty: the provider is not configured).")
    timeout: float = Field(10.0, gt=0, le=300)
    attempts: int = Field(3, ge=1, le=10, description="Tries per lookup (5xx, timeouts, 429).")
    backoff: float = Field(0.5, ge=0, le=60, description="Seconds before the 2nd try; doubles.")
    budget: list[BudgetLimit] = Field(default_factory=list)
    cache_ttl: float = Field(86_400.0, ge=0, description="Seconds a found answer is reused.")
    negative_ttl: float = Field(3_600.0, ge=0, description="Seconds a 'not found' is reused.")
    # Provider-specific options: OpenCTI's hash filter key, AbuseIPDB's maxAgeInDays.
    hash_key: str = "hashes.SHA-256"
    max_age_days: int = Field(90, ge=1, le=365)


# Free-tier allowances by default; raise them for paid keys. A provider's settings in the config
# file are laid over these, so setting only its url keeps its budget.
_PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {
    "crowdsec": {"url": "https://cti.api.crowdsec.net", "budget": [{"calls": 50, "per": "day"}]},
    "opencti": {},
    "abuseipdb": {
        "url": "https://api.abuseipdb.com/api/v2",
        "budget": [{"calls": 1000, "per": "day"}],
    },
    "virustotal": {
        "url": "https://www.virustotal.com/api/v3",
        "budget": [{"calls": 4, "per": "minute"}, {"calls": 500, "per": "day"}],
    },
    "misp": {},
}


class ThreatIntelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    crowdsec: ProviderSettings = ProviderSettings(**_PROVIDER_DEFAULTS["crowdsec"])
    opencti: ProviderSettings = ProviderSettings()
    abuseipdb: ProviderSettings = ProviderSettings(**_PROVIDER_DEFAULTS["abuseipdb"])
    virustotal: ProviderSettings = ProviderSettings(**_PROVIDER_DEFAULTS["virustotal"])
    misp: ProviderSettings = ProviderSettings()
    local_files: list[Path] = Field(
        default_factory=list, description="IoC lists (CSV or STIX 2.1 bundles) for cti.local."
    )

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            for name, defaults in _PROVIDER_DEFAULTS.items():
                given = data.get(name)
                if isinstance(given, Mapping):
                    data[name] = {**defaults, **given}
        return data

    def provider(self, name: str) -> ProviderSettings:
        return getattr(self, name)


class WazuhSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    queue_socket: Path = Path("/var/ossec/queue/sockets/queue")
    api_url: str = Field("", description="Wazuh API (https://manager:55000); empty: the socket.")
    api_verify_tls: bool = True
    api_timeout: float = Field(10.0, gt=0, le=300)


class JiraSettings(BaseModel):
    """Two-way sync of cases with Jira issues. Credentials: secret `jira` with EMAIL and
    API_TOKEN (Cloud, Basic) or PAT (Server/Data Center, Bearer); WEBHOOK_SECRET for webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field("", description="https://acme.atlassian.net (empty: no Jira sync).")
    api_version: Literal[2, 3] = Field(3, description="3: Cloud (ADF); 2: Server/Data Center.")
    project: str = ""
    issue_type: str = "Task"
    min_severity: Literal["informational", "low", "medium", "high", "critical", "fatal"] = "high"
    sources: list[str] = Field(default_factory=list, description="Only cases of these sources.")
    labels: list[str] = Field(default_factory=lambda: ["casefold"])
    priority_map: dict[str, str] = Field(
        default_factory=lambda: {
            "critical": "Highest",
            "high": "High",
            "medium": "Medium",
            "low": "Low",
            "informational": "Lowest",
        },
        description="Case priority (or, when unknown, severity) → Jira priority name.",
    )
    status_to_jira: dict[str, str] = Field(
        default_factory=lambda: {
            "new": "new",
            "in_progress": "indeterminate",
            "resolved": "done",
            "closed": "done",
        },
        description="Case status → Jira status name or status category (new, indeterminate, done).",
    )
    status_from_jira: dict[str, str] = Field(
        default_factory=lambda: {"new": "new", "indeterminate": "in_progress", "done": "resolved"},
        description="Jira status name or category → case status.",
    )
    assignee_map: dict[str, str] = Field(
        default_factory=dict, description="Casefold assignee → Jira accountId (v3) or name (v2)."
    )
    account_id: str = Field("", description="Casefold's own Jira account: its changes are ours.")
    issue_url: str = Field("", description="Link template with $ticket_id (default: /browse/).")
    timeout: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(8, ge=1, le=50)
    reconcile_seconds: float = Field(300.0, ge=0, description="0: no periodic reconcile.")


class ExtraHopSettings(BaseModel):
    """ExtraHop Reveal(x) detection tracking. Credentials: secret `extrahop` with API_KEY
    (appliance) or CLIENT_ID and CLIENT_SECRET (Reveal(x) 360)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field("", description="https://console.example.com (empty: detections untracked).")
    update_detections: bool = True
    poll_seconds: float = Field(0.0, ge=0, description="Poll detections by mod_time (0: off).")
    risk_levels: dict[int, int] = Field(
        default_factory=lambda: {0: 5, 40: 8, 70: 12, 90: 15},
        description="Lowest risk score of each band → alert level (and so case severity).",
    )
    poll_lookback_seconds: float = Field(3600.0, ge=0, le=30 * 86400)
    timeout: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(8, ge=1, le=50)


class ResponseSettings(BaseModel):
    """Active response under policy: what may be acted on, how often, with whose approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    never_act_on: list[str] = Field(
        default_factory=lambda: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
            "fe80::/10",
        ],
        description="Networks never blocked (besides Casefold's own and the Wazuh API host).",
    )
    protected_hosts: list[str] = Field(
        default_factory=list, description="More hosts or networks never to act on."
    )
    cooldown_seconds: float = Field(900.0, ge=0, description="Between two actions on one target.")
    max_per_hour: int = Field(20, ge=0, description="Responses executed per hour, all targets.")
    require_approval: bool = Field(False, description="Responses wait for an analyst.")
    approval_timeout_seconds: float = Field(3600.0, gt=0)
    default_ttl_seconds: float = Field(3600.0, ge=0, description="Undo after this (0: never).")
    dry_run: bool = Field(False, description="Record what would happen; act on nothing.")
    firewall_block_url: str = ""
    firewall_unblock_url: str = ""
    firewall_method: str = "POST"
    firewall_unblock_method: str = "DELETE"
    firewall_body: dict[str, Any] | None = Field(
        default_factory=lambda: {"ip": "{ip}", "ttl": "{ttl}", "reason": "{reason}"}
    )
    timeout: float = Field(10.0, gt=0, le=300)


SlaSeverity = Literal["informational", "low", "medium", "high", "critical", "fatal"]
SLA_KINDS = ("acknowledge", "resolve")
SlaSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# Seconds from a case's creation; informational has none. A map in the config file is laid over
# these (so tightening one severity keeps the others); a null value removes a target.
_SLA_DEFAULTS: dict[str, dict[str, float]] = {
    "acknowledge": {"fatal": 900, "critical": 900, "high": 3600, "medium": 14_400, "low": 86_400},
    "resolve": {
        "fatal": 14_400,
        "critical": 14_400,
        "high": 86_400,
        "medium": 259_200,
        "low": 604_800,
    },
}
# How a target is switched off from the environment, where there is no YAML null.
_SLA_OFF = ("", "none", "null", "off")


class SlaSettings(BaseModel):
    """Service-level targets per case severity, in seconds from the case's creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    acknowledge: dict[SlaSeverity, SlaSeconds] = Field(
        default_factory=lambda: dict(_SLA_DEFAULTS["acknowledge"]),
        description="Severity → seconds until the case must be acknowledged.",
    )
    resolve: dict[SlaSeverity, SlaSeconds] = Field(
        default_factory=lambda: dict(_SLA_DEFAULTS["resolve"]),
        description="Severity → seconds until the case must be resolved.",
    )

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for kind in SLA_KINDS:
            given = data.get(kind)
            if isinstance(given, Mapping):
                merged = {**_SLA_DEFAULTS[kind], **given}
                data[kind] = {
                    sev: v
                    for sev, v in merged.items()
                    if v is not None and not (isinstance(v, str) and v.strip().lower() in _SLA_OFF)
                }
        return data


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        Path("casefold-data"),
        description="Directory for the SQLite database, the admin token and other state.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; postgresql://… runs on PostgreSQL. Default: SQLite in "
        "data_dir.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8800, ge=0, le=65535, description="Port the HTTP server listens on.")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of a separate, unauthenticated Prometheus /metrics listener (0: off).",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics listener binds to (keep it private)."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted; larger gets 413."
    )
    folding_rules: Path | None = Field(
        None, description="YAML file of folding rules; replaces the bundled defaults when set."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous mode; FULL fsyncs every commit (survives power loss), "
        "NORMAL survives a process crash only.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity."
    )
    token_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=300,
        description="How long a verified API token is trusted before the store is asked again "
        "(a revoked token stops working within this time).",
    )
    web_session_hours: float = Field(
        12.0,
        gt=0,
        le=720,
        description="How long a web UI sign-in lasts before the user must sign in again.",
    )
    fold_batch_size: int = Field(
        500,
        ge=1,
        le=100_000,
        description="How many stored alerts the folding worker claims at a time.",
    )

    playbooks_dir: Path | None = Field(
        None,
        description="Directory of playbook YAML files, reloaded on change. Default: "
        "<data_dir>/playbooks.",
    )
    bundled_playbooks: list[str] = Field(
        default_factory=list,
        description="Bundled playbooks to activate, e.g. [wazuh-crowdsec-ticketing].",
    )
    playbook_workers: int = Field(2, ge=0, le=64, description="Threads running playbook steps.")
    secrets: dict[str, dict[str, SecretStr]] = Field(
        default_factory=dict,
        description="Credentials for playbooks and connectors, as name → key → value (SECRETS."
        "<name>.<KEY>). Never logged or returned. Environment: CASEFOLD_SECRET__<NAME>__<KEY>.",
    )
    vars: dict[str, Any] = Field(
        default_factory=dict, description="Values playbooks read as VARS.<name>.<key>."
    )
    http_allow_networks: list[str] = Field(
        default_factory=list,
        description="Networks core.http_request may reach besides public addresses (CIDR).",
    )
    threat_intel: ThreatIntelSettings = Field(
        default_factory=ThreatIntelSettings,
        description="Threat-intel providers: URLs, timeouts, retries, budgets, cache times.",
    )
    auto_enrich: list[
        Literal["crowdsec", "opencti", "abuseipdb", "virustotal", "misp", "local"]
    ] = Field(
        default_factory=list,
        description="Providers that enrich every case's public observables without a playbook.",
    )
    jira: JiraSettings = Field(
        default_factory=JiraSettings, description="Jira issues kept in sync with cases."
    )
    extrahop: ExtraHopSettings = Field(
        default_factory=ExtraHopSettings, description="ExtraHop detections tracked by cases."
    )
    outbox_retry_seconds: float = Field(
        5.0, gt=0, le=3600, description="Outbox back-off before the second try; doubles to 1 h."
    )
    playbook_lease_seconds: float = Field(
        300.0, ge=1, le=86_400, description="How long a claimed run may take before another try."
    )
    outbox_lease_seconds: float = Field(
        300.0, ge=1, le=86_400, description="How long a delivery may take before another try."
    )
    webhook_sources: dict[str, str] = Field(
        default_factory=dict,
        description="Standard Webhooks sources: name → secret name holding its WEBHOOK_SECRET.",
    )
    webhook_events_file: Path | None = Field(
        None, description="Also write accepted webhook events as JSON lines here (for Wazuh)."
    )
    response: ResponseSettings = Field(
        default_factory=ResponseSettings,
        description="Active response policy, firewall API, undo TTL, approval.",
    )
    wazuh: WazuhSettings = Field(
        default_factory=WazuhSettings,
        description="Where wazuh.send_event delivers: the analysisd queue socket or the API.",
    )
    sla: SlaSettings = Field(
        default_factory=SlaSettings,
        description="Targets per severity for acknowledging and resolving cases (seconds).",
    )
    sla_check_seconds: float = Field(
        30.0, ge=0, le=86_400, description="How often SLA breaches are looked for (0: never)."
    )
    tail_alerts_json: Path | None = Field(
        None,
        description="Follow this alerts.json (e.g. /var/ossec/logs/alerts/alerts.json) through "
        "rotations, with a checkpoint in the store. Default: not followed.",
    )
    tail_start: Literal["beginning", "end"] = Field(
        "beginning",
        description="Where to start following when no checkpoint exists: the live file's "
        "beginning (lossless) or its end.",
    )
    tail_poll_seconds: float = Field(
        0.25, gt=0, le=60, description="How often the followed file is checked when idle."
    )
    tail_batch_lines: int = Field(
        500, ge=1, le=100_000, description="Most lines stored per transaction by the tailer."
    )
    tail_max_line_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="A longer line is recorded as rejected and skipped, never held in memory.",
    )
    tail_fold_helper: bool = Field(
        True,
        description="On SQLite, when this process may use two or more CPUs: normalise the "
        "followed file's alerts and decide their folds in a helper process, beside the writer.",
    )

    @property
    def playbooks_path(self) -> Path:
        return self.playbooks_dir or self.data_dir / "playbooks"

    def secret_values(self) -> dict[str, dict[str, str]]:
        return {
            name: {k: v.get_secret_value() for k, v in keys.items()}
            for name, keys in self.secrets.items()
        }

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Users write postgresql://; we always drive PostgreSQL through psycopg 3.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'casefold.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")


SECRET_PREFIX = ENV_PREFIX + "SECRET__"
_LIST_SETTINGS = {
    "bundled_playbooks",
    "http_allow_networks",
    "auto_enrich",
    "local_files",
    "budget",
    "labels",
    "sources",
}
_MAPPING_SETTINGS = {
    "vars",
    "webhook_sources",
    "priority_map",
    "status_to_jira",
    "status_from_jira",
    "assignee_map",
    "acknowledge",  # sla.acknowledge / sla.resolve as a whole
    "resolve",
}


def _env_value(name: str, value: str) -> Any:
    """Lists come as `a,b` or `[a, b]`, mappings as inline YAML/JSON; the rest as text."""
    if name in _LIST_SETTINGS or name in _MAPPING_SETTINGS:
        text = value.strip()
        if text.startswith(("[", "{")):
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                return value  # validation then names the setting
        if name in _LIST_SETTINGS:
            return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    known = Settings.model_fields
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(SECRET_PREFIX):
            # CASEFOLD_SECRET__CROWDSEC_CTI__CTI_API_KEY → secrets.crowdsec_cti.CTI_API_KEY
            name, _, secret_key = key[len(SECRET_PREFIX) :].partition("__")
            if name and secret_key:
                out.setdefault("secrets", {}).setdefault(name.lower(), {})[secret_key] = value
            continue
        if key.startswith(ENV_PREFIX):
            # CASEFOLD_THREAT_INTEL__CROWDSEC__URL → threat_intel.crowdsec.url
            path = key[len(ENV_PREFIX) :].lower().split("__")
            # Other CASEFOLD_* variables (e.g. a client's CASEFOLD_TOKEN) are not settings.
            if path[0] in known:
                target = out
                for part in path[:-1]:
                    target = target.setdefault(part, {})
                target[path[-1]] = _env_value(path[-1], value)
    return out


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from file, environment and overrides.

    Raises ConfigError naming the bad setting.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("config", f"cannot read {config_file}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError("config", f"{config_file} is not valid YAML{where}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("config", f"{config_file} must hold a mapping of settings")
        values.update(loaded)
    env = _env_settings(os.environ if environ is None else environ)
    if "secrets" in env:  # environment secrets add to (and override keys of) the file's
        merged = {k: dict(v) for k, v in (values.get("secrets") or {}).items()}
        for name, keys in env.pop("secrets").items():
            merged.setdefault(name, {}).update(keys)
        values["secrets"] = merged
    values = _deep_merge(values, env)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "config"
        reason = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(name, reason) from exc
