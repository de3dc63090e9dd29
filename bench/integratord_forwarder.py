#!/usr/bin/env python3
"""The least a Wazuh custom integration can do: POST the one alert integratord hands it.

    python3 integratord_forwarder.py <alert-file> <api-key> <hook-url>

Integratord (wazuh.md §1.5) runs the integration as a new process for every alert, with the
alert's temp file, the api key and the hook URL as argv[1..3], and waits for it to exit before
the next alert. This script does only that: read the file, one POST with a bearer token, exit.
No spool, no retries, no lock: it is the floor of that way's cost per alert, used by
bench/tailer.py to compare integratord's process-per-alert delivery with Casefold's own tailer.
The shipped integration (casefold.wazuh_side.integration) does more per alert, so is slower.

Standard library only, as a Wazuh integration must be (the manager's embedded Python). Exits 0
once the alert was accepted, 1 otherwise (integratord logs a non-zero exit), 2 on bad usage.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 10.0  # integratord's default <timeout> (4.8+)


def forward(alert_file: str, api_key: str, hook_url: str) -> int:
    with open(alert_file, "rb") as fh:
        body = fh.read()
    request = urllib.request.Request(
        hook_url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"integratord_forwarder: {hook_url}: {exc}", file=sys.stderr)
        return 1
    if status // 100 != 2:
        print(f"integratord_forwarder: {hook_url} answered {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    # Integratord may pass more slots (debug, options file, timeout, retries): they are ignored.
    if len(argv) < 4:
        print("usage: integratord_forwarder.py <alert-file> <api-key> <hook-url>", file=sys.stderr)
        return 2
    return forward(argv[1], argv[2], argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
