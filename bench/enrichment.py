"""Threat-intel benchmark: an alert flood must not burn the providers' quotas.

    .venv/bin/python bench/enrichment.py [--quick]

Starts fake CrowdSec, OpenCTI, AbuseIPDB, VirusTotal and MISP servers on 127.0.0.1 (the same
fakes the tests use: real HTTP), and a Casefold runtime on a fresh SQLite store with automatic
enrichment on for all five providers and the article's playbook (which looks every alert's
attacker address up in CrowdSec). It then stores a flood of CrowdSec alerts from a few attacker
addresses (default 10,000 alerts, 50 addresses), lets folding, playbooks and enrichment finish,
and reports:
  - the calls each provider received (target: at most one per address, so at most 50);
  - the time the whole flood took to be folded, run and enriched;
  - cached lookups per second through the Enricher: answered from memory, and answered from
    the store (a fresh process whose memory cache is empty).
Writes bench/results/enrichment.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

from fakes.abuseipdb import AbuseIPDBFake  # noqa: E402
from fakes.crowdsec import CrowdSecFake  # noqa: E402
from fakes.misp import MISPFake  # noqa: E402
from fakes.opencti import OpenCTIFake  # noqa: E402
from fakes.virustotal import VirusTotalFake  # noqa: E402
from support.alerts import crowdsec_alert  # noqa: E402

from casefold.config import Settings  # noqa: E402
from casefold.enrichment.cache import EnrichmentCache  # noqa: E402
from casefold.intake.body import Item, Parsed  # noqa: E402
from casefold.intake.receiver import receive  # noqa: E402
from casefold.runtime import Runtime  # noqa: E402
from casefold.sources.wazuh import parse_wazuh_alert  # noqa: E402

PROVIDERS = ("crowdsec", "opencti", "abuseipdb", "virustotal", "misp")


def attacker_ips(n: int) -> list[str]:
    # Globally routable addresses (documentation ranges would be skipped as not public).
    return [f"{31 + i // 200}.{(i % 200) + 10}.7.{(i * 7) % 250 + 1}" for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--ips", type=int, default=50)
    ap.add_argument("--lookups", type=int, default=200_000, help="cached lookups to time")
    ap.add_argument("--quick", action="store_true", help="1,000 alerts (a smoke test)")
    ap.add_argument("--output", type=Path, default=BENCH / "results" / "enrichment.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.alerts, args.lookups = 1_000, 20_000

    ips = attacker_ips(args.ips)
    crowdsec = CrowdSecFake(
        {ip: ("malicious", "suspicious", "known")[i % 3] for i, ip in enumerate(ips)},
        quota=10 * args.ips,
    )
    opencti = OpenCTIFake()
    for ip in ips[::5]:
        opencti.add_indicator(f"[ipv4-addr:value = '{ip}']", name="botnet C2", score=80)
    abuse = AbuseIPDBFake({ip: 90 for ip in ips[::2]})
    vt = VirusTotalFake()
    misp = MISPFake()
    for ip in ips[::4]:
        misp.add_attribute(ip, "ip-src", event_info="SSH brute force campaign")
    fakes = {
        "crowdsec": crowdsec,
        "opencti": opencti,
        "abuseipdb": abuse,
        "virustotal": vt,
        "misp": misp,
    }
    for fake in fakes.values():
        fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="casefold-bench-enrich-"))
    settings = Settings(
        data_dir=tmp,
        bundled_playbooks=["wazuh-crowdsec-ticketing"],
        auto_enrich=list(PROVIDERS),
        threat_intel={
            "crowdsec": {"url": crowdsec.url},
            "opencti": {"url": opencti.url + "/graphql"},
            "abuseipdb": {"url": abuse.base_url},
            # The free tier's 4 lookups a minute would skip most of the flood's lookups (and
            # so trivially make few calls); a paid key's budget shows the cache at work.
            "virustotal": {"url": vt.base_url, "budget": [{"calls": 10_000, "per": "day"}]},
            "misp": {"url": misp.url},
        },
        secrets={
            "crowdsec_cti": {"CTI_API_KEY": crowdsec.api_key},
            "opencti": {"OPENCTI_API_TOKEN": opencti.token},
            "abuseipdb": {"ABUSEIPDB_API_KEY": abuse.api_key},
            "virustotal": {"VIRUSTOTAL_API_KEY": vt.api_key},
            "misp": {"MISP_API_KEY": misp.api_key},
        },
    )
    rt = Runtime(settings)
    rt.start()
    try:
        docs = [crowdsec_alert(n, ips[n % len(ips)]) for n in range(args.alerts)]
        t0 = time.perf_counter()
        for start in range(0, len(docs), 1000):
            chunk = docs[start : start + 1000]
            receive(
                Parsed([Item(i, d) for i, d in enumerate(chunk)], single=False),
                parse_wazuh_alert,
                rt.writer,
            )
        stored = time.perf_counter() - t0
        rt.folding.drain()
        rt.playbooks.drain()
        rt.auto_enrich.drain()
        flood_s = time.perf_counter() - t0
        calls = {
            name: (fake.total if name == "crowdsec" else len(fake.requests))
            for name, fake in fakes.items()
        }

        enricher = rt.enricher
        t1 = time.perf_counter()
        for i in range(args.lookups):
            enricher.lookup("crowdsec", "ip", ips[i % len(ips)])
        memory_per_s = args.lookups / (time.perf_counter() - t1)
        rt.writer.run(lambda conn: None, background=True)  # cache rows are written
        cold = EnrichmentCache(rt.engine, None, memory_items=0)
        n_store = min(args.lookups // 10, 20_000)
        t2 = time.perf_counter()
        for i in range(n_store):
            assert cold.get("crowdsec", f"ip:{ips[i % len(ips)]}") is not None
        store_per_s = n_store / (time.perf_counter() - t2)
    finally:
        rt.stop()
        for fake in fakes.values():
            fake.stop()

    ok_calls = all(c <= args.ips for c in calls.values())
    result = {
        "alerts": args.alerts,
        "attacker_ips": args.ips,
        "calls": calls,
        "max_calls_allowed": args.ips,
        "calls_pass": ok_calls,
        "store_seconds": round(stored, 2),
        "flood_seconds": round(flood_s, 2),
        "cached_lookups_per_s_memory": round(memory_per_s),
        "cached_lookups_per_s_store": round(store_per_s),
    }
    print(f"\ncasefold enrichment benchmark: {args.alerts:,} alerts from {args.ips} addresses")
    print(f"{'provider':<12} {'calls':>6}  target <= {args.ips}")
    for name in PROVIDERS:
        print(f"{name:<12} {calls[name]:>6}  {'PASS' if calls[name] <= args.ips else 'FAIL'}")
    print(f"flood stored in {stored:.1f} s; folded, run and enriched in {flood_s:.1f} s")
    print(f"cached lookups/s: {memory_per_s:,.0f} from memory, {store_per_s:,.0f} from the store")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0 if ok_calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
