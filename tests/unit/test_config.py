"""Settings: file, environment, overrides; a wrong setting is named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from casefold.config import Settings, load_settings
from casefold.errors import ConfigError


def test_defaults():
    s = load_settings(environ={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8800, Path("casefold-data"))
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.is_sqlite


def test_file_then_env_then_overrides(tmp_path: Path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("port: 9000\nhost: 0.0.0.0\nmax_body_bytes: 4096\n")
    s = load_settings(
        cfg,
        {"host": "127.0.0.2"},
        environ={"CASEFOLD_PORT": "9100", "CASEFOLD_TOKEN": "not a setting"},
    )
    assert (s.port, s.host, s.max_body_bytes) == (9100, "127.0.0.2", 4096)


def test_postgres_url_uses_psycopg3():
    s = Settings(database_url="postgresql://u@h:5432/db")
    assert s.sqlalchemy_url == "postgresql+psycopg://u@h:5432/db"
    assert not s.is_sqlite


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("port: lots\n", {}, "invalid setting port:"),
        ("colour: blue\n", {}, "invalid setting colour: unknown setting"),
        ("", {"CASEFOLD_SQLITE_SYNCHRONOUS": "SOMETIMES"}, "invalid setting sqlite_synchronous"),
        ("- a\n- b\n", {}, "invalid setting config"),
        ("port: [\n", {}, "not valid YAML at line"),
    ],
)
def test_a_wrong_setting_is_named(tmp_path: Path, text: str, env: dict[str, str], needle: str):
    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ=env)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yml", environ={})


def test_every_setting_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in doc, name
        env = "CASEFOLD_SECRET__" if name == "secrets" else f"CASEFOLD_{name.upper()}"
        assert env in doc, name


def test_secrets_from_file_and_environment_never_show(tmp_path: Path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("secrets:\n  crowdsec_cti:\n    CTI_API_KEY: from-file\n    OTHER: kept\n")
    s = load_settings(cfg, environ={"CASEFOLD_SECRET__CROWDSEC_CTI__CTI_API_KEY": "from-env"})
    assert s.secret_values() == {"crowdsec_cti": {"CTI_API_KEY": "from-env", "OTHER": "kept"}}
    assert "from-env" not in repr(s) and "from-env" not in str(s.model_dump())


def test_list_settings_from_the_environment():
    s = load_settings(
        environ={
            "CASEFOLD_BUNDLED_PLAYBOOKS": "a, b",
            "CASEFOLD_HTTP_ALLOW_NETWORKS": "[127.0.0.0/8]",
        }
    )
    assert s.bundled_playbooks == ["a", "b"]
    assert s.http_allow_networks == ["127.0.0.0/8"]


def test_threat_intel_settings_lay_over_the_defaults_and_come_from_the_environment():
    s = load_settings(
        environ={
            "CASEFOLD_THREAT_INTEL__CROWDSEC__URL": "https://cti.example.net",
            "CASEFOLD_THREAT_INTEL__VIRUSTOTAL__BUDGET": "[{calls: 1000, per: day}]",
            "CASEFOLD_AUTO_ENRICH": "crowdsec,local",
            "CASEFOLD_WAZUH__API_URL": "https://manager:55000",
        }
    )
    assert s.threat_intel.crowdsec.url == "https://cti.example.net"
    # only the URL was given: CrowdSec keeps its community-key budget
    assert [(b.calls, b.per) for b in s.threat_intel.crowdsec.budget] == [(50, "day")]
    assert [(b.calls, b.per) for b in s.threat_intel.virustotal.budget] == [(1000, "day")]
    assert s.auto_enrich == ["crowdsec", "local"]
    assert s.wazuh.api_url == "https://manager:55000"


def test_a_misspelt_provider_stops_start_up_naming_it():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"CASEFOLD_AUTO_ENRICH": "crowdsek"})
    assert "auto_enrich" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={"threat_intel": {"crowdsec": {"budget": [{"calls": -1}]}}})
    assert "threat_intel.crowdsec.budget" in str(err.value)


def test_sla_targets_lay_over_the_defaults_and_are_checked():
    s = load_settings(
        environ={
            "CASEFOLD_SLA__ACKNOWLEDGE__CRITICAL": "600",
            "CASEFOLD_SLA__ACKNOWLEDGE__LOW": "none",
            "CASEFOLD_SLA__RESOLVE": "{informational: 2592000}",
            "CASEFOLD_SLA_CHECK_SECONDS": "0",
        }
    )
    assert s.sla.acknowledge == {"fatal": 900, "critical": 600, "high": 3600, "medium": 14400}
    assert s.sla.resolve["informational"] == 2592000
    assert s.sla.resolve["low"] == 604800
    assert s.sla_check_seconds == 0
    assert "informational" not in load_settings(environ={}).sla.acknowledge
    for env, needle in [
        ({"CASEFOLD_SLA__ACKNOWLEDGE__HIGH": "0"}, "invalid setting sla.acknowledge.high"),
        ({"CASEFOLD_SLA__RESOLVE__LOW": "-5"}, "invalid setting sla.resolve.low"),
        ({"CASEFOLD_SLA__RESOLVE__SEVERE": "5"}, "invalid setting sla.resolve.severe"),
        ({"CASEFOLD_SLA_CHECK_SECONDS": "-1"}, "invalid setting sla_check_seconds"),
    ]:
        with pytest.raises(ConfigError) as exc:
            load_settings(environ=env)
        assert needle in str(exc.value)
