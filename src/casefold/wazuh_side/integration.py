#!/usr/bin/env python3
"""Casefold's Wazuh integration: hands each alert integratord gives it to Casefold's intake.

Installed as <ossec>/integrations/custom-casefold by `casefold wazuh install-integration`, which
replaces the first line with the interpreter to use. Integratord runs it once per alert, serially,
and waits for it, so it must be small and fast and must never hang: everything (spool flush and
send) happens within the timeout. Stdlib only; runs on Python 3.9 (Wazuh 4.2-4.7) and 3.10+.

What it does, in order:
  1. Reads the alert file (argv[1]). Unreadable, empty, not JSON, or Wazuh's legacy key='value'
     format: one line on stderr and a non-zero exit (integratord logs it). Nothing else exits
     non-zero, except being unable to spool an alert it could not deliver (it would be lost).
  2. Under a lock on the spool dir, re-sends spooled alerts oldest first as NDJSON batches,
     deleting each spool file only once a 202 covers it, then POSTs the current alert.
  3. Any delivery failure (refused, timeout, 5xx, 429, 401/403, ...) spools the alert
     (atomic write) and exits 0; the next run retries. 400/413/422 mean the alert itself is
     bad: it goes to <spool>/rejected/ and is never retried.

Settings: <script dir>/custom-casefold.conf (JSON: url, token, spool_dir, log_file, timeout).
Non-empty argv hook_url/api_key override url/token. The token is never logged or printed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time

CONF_NAME = "custom-casefold.conf"
ENDPOINT = "/api/v1/alerts/wazuh"
DEFAULT_TIMEOUT = 10.0
BATCH_MAX_ALERTS = 500
BATCH_MAX_BYTES = 4 * 1024 * 1024  # well under the server's default 10 MiB body limit
STALE_TMP_SECONDS = 300  # a temp spool file this old belongs to a run that died mid-write
EXIT_USAGE = 2
EXIT_UNREADABLE = 6  # same numbers as Wazuh's own integrations use
EXIT_BAD_FORMAT = 7
EXIT_CANNOT_SPOOL = 8

# Legacy (no <alert_format>json</alert_format>) temp files are shell-style lines: alertdate='...'
LEGACY_RE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*='")


class Fatal(Exception):
    """A reason to exit non-zero; carries the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Deadline(BaseException):
    """Raised by the interval timer when the run's time budget is spent.

    A BaseException so that no `except Exception` on the way swallows it.
    """


# ---------------------------------------------------------------------------------- arguments


def _clean(arg: str) -> str:
    """An argv slot's value; the literal redirect token integratord may pass counts as empty."""
    s = arg.strip()
    if s.startswith(">") or s == "2>&1" or "/dev/null" in s:
        return ""
    return s


def _positive_number(text: str) -> float | None:
    """Timeout from argv: digits only (4.8.0-alpha glued '> /dev/null 2>&1' onto it)."""
    head = text.strip().split(" ", 1)[0] if text.strip() else ""
    if head.isascii() and head.isdigit() and 0 < int(head) <= 3600:
        return float(head)
    return None


def parse_args(argv: list[str]) -> dict:
    """Every layout integratord has used (4.2-4.6: 5 slots, 4.7: 7, 4.8+: 9; debug drops one)."""
    if len(argv) < 2 or not argv[1].strip():
        raise Fatal(
            "usage: custom-casefold <alert file> [api_key] [hook_url] [debug] ...", EXIT_USAGE
        )
    rest = argv[4:]
    options = ""
    for a in rest:
        # Found by suffix, like Wazuh's own scripts: its position moved between versions.
        if a.strip().endswith("options"):
            options = a.strip()
            break
    timeout = None
    if len(argv) > 6 and not argv[6].strip().endswith("options"):
        timeout = _positive_number(argv[6])
    # argv[7] (retries, 4.8+) is deliberately unused: the spool is the retry, and retrying
    # inline would block integratord, which runs every integration serially.
    return {
        "alert": argv[1].strip(),
        "api_key": _clean(argv[2]) if len(argv) > 2 else "",
        "hook_url": _clean(argv[3]) if len(argv) > 3 else "",
        "debug": any(a.strip() == "debug" for a in rest),
        "options": options,
        "timeout": timeout,
    }


# ------------------------------------------------------------------------------------ settings


def load_settings(args: dict, script_path: str) -> tuple[dict, list[str]]:
    """Conf file beside the script, then argv overrides. Problems are returned, not raised."""
    script_dir = os.path.dirname(script_path)
    ossec = os.path.dirname(script_dir)
    problems: list[str] = []
    conf: dict = {}
    conf_path = os.path.join(script_dir, CONF_NAME)
    try:
        with open(conf_path, encoding="utf-8") as f:
            loaded = json.load(f)
        if isinstance(loaded, dict):
            conf = loaded
        else:
            problems.append(f"{conf_path} is not a JSON object")
    except FileNotFoundError:
        if not (args["hook_url"] and args["api_key"]):
            problems.append(f"{conf_path} not found")
    except (OSError, ValueError) as exc:
        problems.append(f"cannot read {conf_path}: {type(exc).__name__}")

    def text(key: str, default: str) -> str:
        v = conf.get(key)
        return v.strip() if isinstance(v, str) and v.strip() else default

    timeout = args["timeout"]
    if timeout is None:
        v = conf.get("timeout")
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 3600
        timeout = float(v) if ok else DEFAULT_TIMEOUT
    return {
        "url": args["hook_url"] or text("url", ""),
        "token": args["api_key"] or text("token", ""),
        "spool_dir": text("spool_dir", os.path.join(ossec, "var", "casefold-spool")),
        "log_file": text("log_file", os.path.join(ossec, "logs", "casefold-integration.log")),
        "timeout": timeout,
    }, problems


def endpoint_url(base: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if not path.endswith(ENDPOINT):
        path += ENDPOINT
    # Userinfo is dropped: urllib would not use it (auth is the Bearer token) and http.client
    # would echo it in a "nonnumeric port" error.
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def url_secrets(url: str) -> list[str]:
    """Parts of the URL that must never reach a log line."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        return [v for v in (userinfo, parts.password, parts.query, parts.fragment) if v]
    except ValueError:
        return [url]


def safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment: what may appear in a log line."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return "<unparseable url>"


# ------------------------------------------------------------------------------------- logging


class Log:
    """One line per event in our own log file (never integrations.log); the token is scrubbed."""

    def __init__(self, path: str, secrets: list[str], echo: bool) -> None:
        self.path = path
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self.echo = echo

    def __call__(self, message: str) -> None:
        for s in self.secrets:
            message = message.replace(s, "***")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} custom-casefold[{os.getpid()}]: {message}\n"
        if self.echo:  # debug: integratord logs our stdout at debug2
            sys.stdout.write(line)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass  # logging must never turn a spooled alert into a failure


# --------------------------------------------------------------------------------------- spool


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(directory: str, name: str, data: bytes) -> str:
    """Temp file + fsync + rename: a reader sees the whole alert or nothing."""
    os.makedirs(directory, mode=0o770, exist_ok=True)
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, ".tmp-" + name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, final)
    _fsync_dir(directory)
    return final


def spool_name() -> str:
    # Lexical order = arrival order: zero-padded nanoseconds first, pid and randomness to be unique.
    return f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}.json"


def spool_files(spool: str, log: Log) -> list[str]:
    names = []
    now = time.time()
    for name in os.listdir(spool):
        path = os.path.join(spool, name)
        if name.startswith(".tmp-"):
            _recover_tmp(spool, name, now, log)
        elif name.endswith(".json") and os.path.isfile(path):
            names.append(name)
    return sorted(names)


def _recover_tmp(spool: str, name: str, now: float, log: Log) -> None:
    """A run that died between fsync and rename left a complete or partial temp file."""
    path = os.path.join(spool, name)
    try:
        if now - os.stat(path).st_mtime < STALE_TMP_SECONDS:
            return  # maybe another run is writing it right now
        with open(path, "rb") as f:
            data = f.read()
        json.loads(data.decode("utf-8"))
        os.rename(path, os.path.join(spool, name[len(".tmp-") :]))
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        reject_file(spool, name, "unfinished spool write", log)


def reject_file(spool: str, name: str, reason: str, log: Log) -> None:
    rejected = os.path.join(spool, "rejected")
    os.makedirs(rejected, mode=0o770, exist_ok=True)
    try:
        os.rename(os.path.join(spool, name), os.path.join(rejected, name.replace(".tmp-", "")))
    except FileNotFoundError:
        return
    log(f"rejected spooled alert {name}: {reason}; moved to {rejected}, not retried")


# ---------------------------------------------------------------------------------------- HTTP


class Sender:
    def __init__(self, url: str, token: str, deadline: float) -> None:
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            # A redirect could carry the token elsewhere or turn the POST into a GET.
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        self.url = endpoint_url(url)
        self.token = token
        self.deadline = deadline
        self.opener = urllib.request.build_opener(NoRedirect())

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def post(self, body: bytes, ndjson: bool) -> tuple[int, object, str]:
        """(status, parsed JSON body or None, failure reason). status 0 = no HTTP answer."""
        import socket
        import urllib.error
        import urllib.request

        left = self.remaining()
        if left <= 0.05:
            return 0, None, "no time left in the timeout"
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/x-ndjson" if ndjson else "application/json",
                "Accept": "application/json",
                "User-Agent": "casefold-wazuh-integration/1",
            },
        )
        try:
            with self.opener.open(req, timeout=left) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                raw = exc.read()
            except Exception:  # the status is what matters
                raw = b""
        except Deadline:
            return 0, None, "timed out"
        except (socket.timeout, TimeoutError):
            return 0, None, "timed out"
        except urllib.error.URLError as exc:
            return 0, None, f"cannot connect: {exc.reason}"
        except (OSError, ValueError) as exc:
            return 0, None, f"{type(exc).__name__}: {exc}"
        try:
            parsed = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            parsed = None
        return status, parsed, f"HTTP {status}"


def _error_message(parsed: object) -> str:
    if isinstance(parsed, dict):
        msg = parsed.get("message") or parsed.get("error")
        if isinstance(msg, str):
            return msg[:300]
    return ""


def _bad_alert(status: int) -> bool:
    # The alert itself is unacceptable; re-sending it would fail forever.
    return status in (400, 413, 422)


# ----------------------------------------------------------------------------------- the work


def drain(spool: str, sender: Sender, log: Log) -> tuple[bool, str]:
    """Send every spooled alert, oldest first. (fully drained?, why not)."""
    names = spool_files(spool, log)
    tally = {"delivered": 0, "duplicates": 0}
    ok, why = True, ""
    i = 0
    while ok and i < len(names):
        batch: list[tuple[str, bytes]] = []
        size = 0
        while i < len(names) and len(batch) < BATCH_MAX_ALERTS:
            name = names[i]
            try:
                with open(os.path.join(spool, name), "rb") as f:
                    data = f.read().strip()
                json.loads(data.decode("utf-8"))
            except FileNotFoundError:
                i += 1
                continue
            except (OSError, ValueError):
                reject_file(spool, name, "unreadable or not JSON", log)
                i += 1
                continue
            if batch and size + len(data) + 1 > BATCH_MAX_BYTES:
                break
            batch.append((name, data))
            size += len(data) + 1
            i += 1
        if batch:
            ok, why = send_batch(spool, batch, sender, log, tally)
    if tally["delivered"]:
        # The duplicate count shows whether alerts were ever sent twice (it should stay 0).
        log(
            f"delivered {tally['delivered']} spooled alert(s), {tally['duplicates']} already "
            f"stored{'' if ok else '; stopped: ' + why}"
        )
    return ok, why


def send_batch(
    spool: str, batch: list[tuple[str, bytes]], sender: Sender, log: Log, tally: dict
) -> tuple[bool, str]:
    """POST one NDJSON batch and settle its files. (every file settled?, failure reason)."""
    body = b"\n".join(data for _, data in batch) + b"\n"
    status, parsed, why = sender.post(body, ndjson=True)
    if status == 202:
        results = parsed.get("results") if isinstance(parsed, dict) else None
        by_index: dict[int, dict] = {}
        if isinstance(results, list):
            for pos, r in enumerate(results):
                if isinstance(r, dict):
                    idx = r.get("index", pos)
                    by_index[idx if isinstance(idx, int) else pos] = r
        for idx, (name, _) in enumerate(batch):
            r = by_index.get(idx, {})
            if "error" in r:
                reject_file(spool, name, f"refused: {_error_message(r['error'])}", log)
                continue
            try:
                os.unlink(os.path.join(spool, name))
            except FileNotFoundError:
                pass
            tally["delivered"] += 1
            tally["duplicates"] += r.get("duplicate") is True
        return True, ""
    if _bad_alert(status):
        results = parsed.get("results") if isinstance(parsed, dict) else None
        if len(batch) == 1 or (
            status == 422 and isinstance(results, list) and len(results) == len(batch)
        ):
            # Every item was judged and refused (a mixed batch gets 202 with per-item errors).
            msg = _error_message(parsed)
            for name, _ in batch:
                reject_file(spool, name, f"HTTP {status} {msg}".rstrip(), log)
            return True, ""
        # Which one is bad is unknown (or the batch is just too big): halve and retry.
        half = len(batch) // 2
        ok, why = send_batch(spool, batch[:half], sender, log, tally)
        if ok:
            ok, why = send_batch(spool, batch[half:], sender, log, tally)
        return ok, why
    if status in (401, 403):
        why += f" (check the token in {CONF_NAME})"
    return False, why


def acquire_lock(spool: str, sender: Sender) -> int | None:
    """An flock on <spool>/.lock so two runs never send the same spool file; None if busy."""
    fd = os.open(os.path.join(spool, ".lock"), os.O_RDWR | os.O_CREAT, 0o660)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if sender.remaining() < 0.5:
                os.close(fd)
                return None
            time.sleep(0.05)


def read_alert(path: str) -> tuple[bytes, str]:
    """(one-line JSON bytes to send as is, alert id). Raises Fatal for unusable files."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise Fatal(
            f"cannot read alert file {path}: {exc.strerror or exc}", EXIT_UNREADABLE
        ) from None
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        raise Fatal(f"alert file {path} is empty", EXIT_UNREADABLE)
    if LEGACY_RE.match(text):
        raise Fatal(
            "alert is in Wazuh's legacy key='value' format: add "
            "<alert_format>json</alert_format> to the custom-casefold <integration> block",
            EXIT_BAD_FORMAT,
        )
    try:
        alert = json.loads(text)
    except ValueError as exc:
        raise Fatal(f"alert file {path} is not valid JSON: {exc}", EXIT_BAD_FORMAT) from None
    if not isinstance(alert, dict):
        raise Fatal(f"alert file {path} holds JSON but not an object", EXIT_BAD_FORMAT)
    # Newlines in valid JSON are only whitespace, so this keeps the bytes and makes one NDJSON line.
    line = text.replace("\r", " ").replace("\n", " ").encode("utf-8")
    alert_id = alert.get("id")
    return line, alert_id if isinstance(alert_id, str) else "?"


def main(argv: list[str]) -> int:
    started = time.monotonic()
    try:
        args = parse_args(argv)
    except Fatal as exc:
        print(f"custom-casefold: {exc}", file=sys.stderr)
        return exc.code
    settings, problems = load_settings(args, os.path.realpath(__file__))
    secrets = [settings["token"], *url_secrets(settings["url"])]
    log = Log(settings["log_file"], secrets, args["debug"])
    try:
        line, alert_id = read_alert(args["alert"])
    except Fatal as exc:
        log.echo = False  # printed once below, on stderr
        log(str(exc))
        print(f"custom-casefold: {exc}", file=sys.stderr)
        return exc.code

    spool = settings["spool_dir"]
    # Keep a margin so interpreter exit and a spool write still fit inside the timeout.
    budget = settings["timeout"]
    deadline = started + max(budget - 0.5, budget * 0.5)
    failure = "; ".join(problems)
    if not failure and not settings["url"]:
        failure = "no url configured"
    elif not failure and not settings["token"]:
        failure = "no token configured"

    lock_fd = None
    try:
        if not failure:
            try:
                os.makedirs(spool, mode=0o770, exist_ok=True)
                sender = Sender(settings["url"], settings["token"], deadline)
                lock_fd = acquire_lock(spool, sender)
                if lock_fd is None:
                    failure = "another run holds the spool lock"
                else:
                    failure = deliver(spool, line, alert_id, sender, log, deadline)
            except Deadline:  # the timer fired in the instant before it was disarmed
                failure = "timed out"
            except OSError as exc:
                failure = f"spool {spool}: {exc.strerror or exc}"
            if failure is None:
                return 0  # delivered, or rejected as bad and set aside
        name = spool_name()
        try:
            write_atomic(spool, name, line + b"\n")
        except OSError as exc:
            # Neither delivered nor durably spooled: the one case besides a bad file where
            # exiting 0 would lose an alert without anyone noticing.
            msg = (
                f"alert {alert_id} lost: delivery failed ({failure}) and the spool "
                f"{spool} is not writable: {exc.strerror or exc}"
            )
            log(msg)
            print(f"custom-casefold: {msg}", file=sys.stderr)
            return EXIT_CANNOT_SPOOL
        where = safe_url(settings["url"]) if settings["url"] else "casefold"
        log(f"alert {alert_id} spooled as {name}: delivery to {where} failed: {failure}")
        return 0
    finally:
        if lock_fd is not None:
            os.close(lock_fd)  # releases the flock


def deliver(
    spool: str, line: bytes, alert_id: str, sender: Sender, log: Log, deadline: float
) -> str | None:
    """Drain the spool, then send this alert. None when settled, else why it must be spooled."""
    import signal

    def expired(signum: int, frame: object) -> None:
        raise Deadline()

    # A hard stop for the network phase: socket timeouts are per read, not per request.
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.01))
    try:
        drained, why = drain(spool, sender, log)
        if not drained:
            return f"{why} (spool not drained, alert queued behind it)"
        status, parsed, why = sender.post(line, ndjson=False)
        if status == 202:
            return None
        if _bad_alert(status):
            name = spool_name()
            write_atomic(os.path.join(spool, "rejected"), name, line + b"\n")
            log(
                f"alert {alert_id} rejected by casefold ({why} {_error_message(parsed)}); "
                f"kept in rejected/{name}, not retried"
            )
            return None
        if status in (401, 403):
            why += f" (check the token in {CONF_NAME})"
        return why
    except Deadline:
        return "timed out"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
