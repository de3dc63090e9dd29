"""The cti.* playbook actions through a running Casefold: a playbook file in playbooks_dir asks
AbuseIPDB, VirusTotal (hash and IP), MISP and a local CSV list about an IDS alert, against the fakes
on 127.0.0.1, and comments the verdicts on the alert's case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.abuseipdb import AbuseIPDBFake
from fakes.misp import MISPFake
from fakes.virustotal import EICAR_SHA256, VirusTotalFake, stats
from support.alerts import sample
from support.runs import only_run, post, process, steps_of

C2_IP = "116.163.24.195"
OTHER_IP = "45.155.205.233"  # known to no provider
ABUSE_KEY = "abuseipdb-key-0c41e7"
VT_KEY = "virustotal-key-9b22f0"
MISP_KEY = "MispAuthKey00000000000000000000000ab1234"  # MISP keys are 40 characters
KEYS = (ABUSE_KEY, VT_KEY, MISP_KEY)

STEPS = """\
  - ref: abuse
    action: cti.abuseipdb.check_ip
    args:
      ip_address: ${{ TRIGGER.data.data.dest_ip }}
    RETRY
  - ref: vt_ip
    action: cti.virustotal.lookup
    args:
      value: ${{ TRIGGER.data.data.dest_ip }}
      kind: ip
  - ref: vt_file
    action: cti.virustotal.lookup
    args:
      value: ${{ TRIGGER.data.data.fileinfo.sha256 }}
  - ref: misp
    action: cti.misp.search
    args:
      value: ${{ TRIGGER.data.data.dest_ip }}
      kind: ip
  - ref: local
    action: cti.local.lookup
    args:
      value: ${{ TRIGGER.data.data.fileinfo.sha256 }}
      kind: hash
  - ref: note
    action: core.cases.create_comment
    depends_on: [abuse, vt_ip, vt_file, misp, local]
    args:
      case_id: ${{ TRIGGER.case.id }}
      content: >-
        ${{ TRIGGER.data.data.dest_ip }}:
        AbuseIPDB ${{ ACTIONS.abuse.result.verdict }} (${{ ACTIONS.abuse.result.score }}),
        VirusTotal IP ${{ ACTIONS.vt_ip.result.verdict }},
        VirusTotal file ${{ ACTIONS.vt_file.result.verdict }},
        MISP ${{ ACTIONS.misp.result.verdict }},
        local list ${{ ACTIONS.local.result.verdict }}
"""


def playbook(retry: str = "") -> str:
    head = (
        "title: Threat-intel verdicts\n"
        "description: Ask every provider about an IDS alert's remote end and file.\n"
        "trigger:\n  source: wazuh\n  groups: [ids]\nactions:\n"
    )
    return head + STEPS.replace("    RETRY\n", f"    retry_policy: {retry}\n" if retry else "")


def ids_file_alert(n: int, dest_ip: str = C2_IP) -> dict[str, Any]:
    """The Suricata sample as integratord hands it over, about a file fetched from `dest_ip`."""
    alert = sample("suricata_ids_alert_86601_indexer_doc.json")
    for key in ("@timestamp", "_id", "input"):
        alert.pop(key)
    alert["id"] = f"1672191304.{26001000 + n}"
    data = alert["data"]
    data.update(dest_ip=dest_ip, dest_port="80", app_proto="http")
    data["alert"].update(
        signature="ET POLICY PE EXE or DLL Windows file download HTTP", signature_id="2018959"
    )
    data["fileinfo"] = {"filename": "/invoice.exe", "sha256": EICAR_SHA256, "size": "68"}
    return alert


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[AbuseIPDBFake, VirusTotalFake, MISPFake]]:
    """Started once for the module (stopping a server takes a while); each test gets them with
    their counters and quotas reset."""
    with (
        AbuseIPDBFake({C2_IP: 100}, api_key=ABUSE_KEY) as abuse,
        VirusTotalFake(api_key=VT_KEY) as vt,  # knows EICAR: 62 engines say malicious
        MISPFake(api_key=MISP_KEY) as misp,
    ):
        vt.add_ip(C2_IP, analysis=stats(malicious=1, harmless=60), as_owner="CHINA UNICOM")
        misp.add_attribute(C2_IP, "ip-dst", event_info="Cobalt Strike C2 infrastructure")
        yield abuse, vt, misp


@pytest.fixture
def abuse(fakes) -> AbuseIPDBFake:
    fake = fakes[0]
    fake.requests.clear()
    fake.reset_quota()
    return fake


@pytest.fixture
def vt(fakes) -> VirusTotalFake:
    fake = fakes[1]
    fake.requests.clear()
    fake.reset_quota()
    return fake


@pytest.fixture
def misp(fakes) -> MISPFake:
    fake = fakes[2]
    fake.requests.clear()
    return fake


def make_api(api_factory, tmp_path: Path, abuse, vt, misp, *, retry: str = "", **kw: Any):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "cti-verdicts.yml").write_text(playbook(retry))
    iocs = tmp_path / "iocs.csv"
    iocs.write_text(
        "type,value,verdict,score,description,source,tags\n"
        f"sha256,{EICAR_SHA256},suspicious,60,test file seen on the mail gateway,soc,eicar\n"
    )
    # A tiny back-off keeps the retry tests fast; the three attempts still happen.
    abuse_conf = {"url": abuse.base_url, "backoff": 0.001, **kw.pop("abuseipdb", {})}
    return api_factory(
        playbooks_dir=playbooks,
        threat_intel={
            "abuseipdb": abuse_conf,
            "virustotal": {"url": vt.base_url},
            "misp": {"url": misp.url},
            "local_files": [iocs],
        },
        secrets={
            "abuseipdb": {"ABUSEIPDB_API_KEY": ABUSE_KEY},
            "virustotal": {"VIRUSTOTAL_API_KEY": VT_KEY},
            "misp": {"MISP_API_KEY": MISP_KEY},
        },
        **kw,
    )


@pytest.fixture
def cti_api(api_factory, tmp_path, abuse, vt, misp):
    return make_api(api_factory, tmp_path, abuse, vt, misp)


def comments_about(api, run: dict[str, Any], ip: str) -> list[str]:
    case = api.get(f"/api/v1/cases/{run['case']}").json()
    return [c["content"] for c in case["comments"] if c["content"].startswith(f"{ip}:")]


VERDICTS = (
    f"{C2_IP}: AbuseIPDB malicious (100), VirusTotal IP suspicious, "
    "VirusTotal file malicious, MISP malicious, local list suspicious"
)
# step → the provider it asks
REMOTE = {"abuse": "abuseipdb", "vt_ip": "virustotal", "vt_file": "virustotal", "misp": "misp"}


def test_every_provider_verdict_reaches_the_case_comment(cti_api, abuse, vt, misp):
    alert_id = post(cti_api, ids_file_alert(1))
    process(cti_api)
    run = only_run(cti_api, alert_id)
    assert run["status"] == "succeeded" and run["playbook"] == "cti-verdicts"
    assert comments_about(cti_api, run, C2_IP) == [VERDICTS]
    steps = steps_of(run)
    assert all(s["status"] == "succeeded" for s in steps.values()), steps
    for ref, provider in REMOTE.items():
        provenance = steps[ref]["result"]["provenance"]
        assert provenance["provider"] == provider
        assert provenance["from_cache"] is False
        assert datetime.fromisoformat(provenance["fetched_at"]).tzinfo is not None
    assert steps["local"]["result"]["provenance"] == {"provider": "local", "from_cache": False}
    # what each provider was asked
    assert abuse.calls_for(C2_IP) == 1 and misp.calls_for(C2_IP) == 1
    assert vt.calls_for(C2_IP) == 1 and vt.calls_for(EICAR_SHA256) == 1
    assert steps["vt_file"]["result"]["kind"] == "hash"  # guessed from the value's form
    # no key in what was recorded, though each one was sent
    recorded = json.dumps(run)
    assert not [k for k in KEYS if k in recorded]
    assert abuse.requests[0].request.headers["key"] == ABUSE_KEY


def test_a_second_alert_is_answered_from_the_cache(cti_api, abuse, vt, misp):
    first_id = post(cti_api, ids_file_alert(1))
    process(cti_api)
    calls = (len(abuse.requests), len(vt.requests), len(misp.requests))
    second_id = post(cti_api, ids_file_alert(2))
    process(cti_api)
    assert (len(abuse.requests), len(vt.requests), len(misp.requests)) == calls == (1, 2, 1)
    first = steps_of(only_run(cti_api, first_id))
    run = only_run(cti_api, second_id)
    steps = steps_of(run)
    for ref in REMOTE:
        provenance = steps[ref]["result"]["provenance"]
        assert provenance["from_cache"] is True
        # when the answer was really fetched: during the first run
        assert provenance["fetched_at"] == first[ref]["result"]["provenance"]["fetched_at"]
    # the same verdicts, on the case both alerts folded into
    assert comments_about(cti_api, run, C2_IP) == [VERDICTS, VERDICTS]


def test_a_spent_budget_skips_the_lookup_and_the_comment_still_comes(
    api_factory, tmp_path, abuse, vt, misp
):
    api = make_api(
        api_factory,
        tmp_path,
        abuse,
        vt,
        misp,
        abuseipdb={"budget": [{"calls": 1, "per": "day"}]},
    )
    post(api, ids_file_alert(1))
    process(api)
    second_id = post(api, ids_file_alert(2, dest_ip=OTHER_IP))
    process(api)
    assert abuse.calls_for(OTHER_IP) == 0 and len(abuse.requests) == 1
    run = only_run(api, second_id)
    assert run["status"] == "succeeded"
    steps = steps_of(run)
    assert steps["abuse"]["status"] == "skipped"
    assert steps["abuse"]["reason"] == "skipped: budget"
    assert steps["abuse"]["result"]["verdict"] == "unknown"
    assert steps["note"]["status"] == "succeeded"
    assert vt.calls_for(OTHER_IP) == 1  # the other providers were still asked
    [comment] = comments_about(api, run, OTHER_IP)
    assert comment == (
        f"{OTHER_IP}: AbuseIPDB unknown (null), VirusTotal IP unknown, "
        "VirusTotal file malicious, MISP unknown, local list suspicious"
    )


def test_a_provider_down_fails_the_step_and_a_retry_of_the_run_finishes_it(cti_api, abuse, vt):
    abuse.fail_next(3, 500)  # every attempt of the HTTP layer
    alert_id = post(cti_api, ids_file_alert(1))
    process(cti_api)
    run = only_run(cti_api, alert_id)
    assert run["status"] == "failed"
    steps = steps_of(run)
    assert steps["abuse"]["status"] == "failed"
    assert "server error 500" in steps["abuse"]["error"]
    assert "after 3 attempts" in steps["abuse"]["error"]
    assert run["error"].startswith("step abuse failed")
    assert steps["vt_ip"]["status"] == "succeeded"  # the other lookups went on
    assert steps["note"]["status"] == "skipped"
    assert comments_about(cti_api, run, C2_IP) == []
    assert abuse.statuses() == [500, 500, 500]
    # The provider is back: retrying the run asks again only what failed.
    assert cti_api.post(f"/api/v1/runs/{run['id']}/retry").status_code == 202
    cti_api.runtime.playbooks.drain()
    again = cti_api.get(f"/api/v1/runs/{run['id']}").json()
    assert again["status"] == "succeeded"
    assert abuse.statuses() == [500, 500, 500, 200]
    assert vt.calls_for(C2_IP) == 1
    assert comments_about(cti_api, again, C2_IP) == [VERDICTS]


def test_with_a_retry_policy_the_failed_lookup_waits_for_its_next_attempt(
    api_factory, tmp_path, abuse, vt, misp
):
    api = make_api(api_factory, tmp_path, abuse, vt, misp, retry="{max_attempts: 2, backoff: 600}")
    abuse.fail_next(3, 500)
    alert_id = post(api, ids_file_alert(1))
    process(api)
    run = only_run(api, alert_id)
    assert run["status"] == "queued"  # back in the queue until the backoff is over
    steps = steps_of(run)
    assert steps["abuse"]["status"] == "waiting"
    assert steps["abuse"]["reason"] == "retry 2/2"
    assert "server error 500" in steps["abuse"]["error"]
    assert "note" not in steps  # waits for the lookup
    assert comments_about(api, run, C2_IP) == []
