"""Jira Cloud (REST v3, ADF bodies) and Server/Data Center (REST v2, plain text) issues.

Used by the ticket-sync outbox, which needs each change to land exactly once:

* Requests that only read, or that set a value (PUT issue, PUT assignee), go through the shared
  HTTP layer with its retries: sending them twice does no harm.
* Requests that make something new (create an issue, add a comment, fire a transition) are sent
  once. After a 5xx, a timeout or a dropped connection nobody knows whether Jira acted, and a
  blind resend could make a second issue, so the error is retryable and the caller looks first
  (`find_by_label`, `list_comments`, `transition_to` finding the issue already there). A 429 is
  still waited out and resent: Jira refused it, so nothing happened.

Search differs by deployment: Cloud has `GET /rest/api/{2,3}/search/jql` paged by
`nextPageToken` (the old `/search` answers 410 there since 2025), Server/DC has
`GET /rest/api/2/search` paged by `startAt`/`total`. Cloud search is eventually consistent: an
issue made a second ago may not be found yet, so the outbox's own record of what it created comes
first and `find_by_label` is the fallback after an unknown outcome.

Errors come as `{"errorMessages": [...], "errors": {field: message}}`; both parts end up in the
ProviderError's message, never the credentials.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from casefold.connectors.http import (
    ProviderError,
    ProviderHTTP,
    QuotaExceeded,
    json_body,
    refused,
    short_body,
)
from casefold.signing import SignatureError, verify_hub_signature

NAME = "jira"
CATEGORIES = ("new", "indeterminate", "done")  # Jira's statusCategory keys
ISSUE_FIELDS = ("summary", "status", "labels", "priority", "resolution", "assignee", "updated")
SEARCH_FIELDS = ("summary", "status", "labels", "created")
MAX_SUMMARY = 255  # Jira's own limit
MAX_LABEL = 255
_MAX_PAGES = 100  # a runaway pager (a token that never ends) stops here
_PAGE = 100
_CREDENTIALS_HINT = "check the Jira credentials"


class IssueNotFound(ProviderError):
    """Jira says the issue does not exist, or the account may not see it (it does not tell)."""

    def __init__(self, provider: str, key: str, message: str) -> None:
        super().__init__(provider, message, status=404, retryable=False)
        self.key = key


def basic_auth(user: str, token: str) -> str:
    """The Authorization value for Cloud (email + API token) or DC (user + password)."""
    raw = f"{user}:{token}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def bearer_auth(token: str) -> str:
    """The Authorization value for a Server/DC personal access token."""
    return f"Bearer {token}"


class Jira:
    def __init__(
        self,
        http: ProviderHTTP,
        base_url: str,
        *,
        api_version: int = 3,
        auth: str,
        cloud: bool | None = None,
    ) -> None:
        if api_version not in (2, 3):
            raise ValueError(f"Jira REST API version must be 2 or 3, not {api_version!r}")
        self.http = http
        self.provider = http.provider
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.auth = auth
        # v3 exists on Cloud only; v2 is most often a Server/DC (and a 410 corrects the guess).
        self.cloud = api_version == 3 if cloud is None else cloud
        # Sends each request once: see the module docstring for why creating calls need it.
        # max_retry_after < 0 turns every 429 into QuotaExceeded, which `_send_once` handles.
        once = replace(http.policy, attempts=1, max_retry_after=-1.0)
        self._once = ProviderHTTP(http.provider, http.client, once, sleep=http.sleep)
        self._secrets = _secret_parts(auth)

    # --- issues --------------------------------------------------------------------------------

    def create_issue(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create an issue; `{id, key, self}`. Sent once (see the module docstring).

        `fields` are Jira's, with shortcuts: `project` may be a key, `issuetype` and `priority`
        names, `assignee` an account id (v3) or user name (v2), `description` plain text (made
        ADF on v3). Raises ValueError, before sending, for what Jira would refuse anyway.
        """
        if not str(fields.get("summary") or "").strip():
            raise ValueError("a Jira issue needs a summary")
        body = {"fields": self._fields(fields)}
        response = self._send_once("create an issue", "POST", self._url("issue"), json=body)
        if response.status_code != 201:
            raise self._error(response)
        created = json_body(self.provider, response)
        if not isinstance(created, dict) or not created.get("key"):
            raise ProviderError(
                self.provider,
                f"answered {response.status_code} without an issue key: {short_body(response)}",
                status=response.status_code,
            )
        return created

    def get_issue(self, key: str, fields: Sequence[str] | None = ISSUE_FIELDS) -> dict[str, Any]:
        """The issue as Jira gives it (`{id, key, self, fields}`); fields=None asks for all."""
        params = {"fields": ",".join(fields)} if fields is not None else None
        response = self.http.request(
            "GET", self._url("issue", key), headers=self._headers(), params=params
        )
        if response.status_code != 200:
            raise self._error(response, key)
        return _object(self.provider, response)

    def update_issue(
        self,
        key: str,
        fields: Mapping[str, Any] | None = None,
        update: Mapping[str, Any] | None = None,
    ) -> None:
        """`PUT /issue/{key}`: `fields` set values, `update` applies operations
        (`{"labels": [{"add": "triaged"}]}`). Same shortcuts as create_issue."""
        if not fields and not update:
            raise ValueError("update_issue needs fields or update operations")
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = self._fields(fields)
        if update:
            body["update"] = self._operations(update)
        url = self._url("issue", key)
        if update and "comment" in update:
            # Adding a comment is not idempotent, so this one goes out once.
            response = self._send_once(f"update {key}", "PUT", url, json=body)
        else:
            response = self.http.request("PUT", url, headers=self._headers(), json=body)
        if response.status_code != 204:
            raise self._error(response, key)

    def assign(self, key: str, account: str | None) -> None:
        """Assign to an account id (v3) or user name (v2); None leaves it unassigned."""
        member = "accountId" if self.api_version == 3 else "name"
        response = self.http.request(
            "PUT",
            self._url("issue", key, "assignee"),
            headers=self._headers(),
            json={member: account},
        )
        if response.status_code != 204:
            raise self._error(response, key)

    # --- search --------------------------------------------------------------------------------

    def find_by_label(
        self, project: str, label: str, fields: Sequence[str] = SEARCH_FIELDS
    ) -> dict[str, Any] | None:
        """The oldest issue of `project` carrying `label` (our idempotency label), or None.

        The oldest, so that if an unknown outcome ever left two issues, every caller settles on
        the same one. None can also mean "created too recently to be indexed" on Cloud."""
        found = self.find_all_by_label(project, label, fields)
        if not found:
            return None
        return min(found, key=_age_order)

    def find_all_by_label(
        self, project: str, label: str, fields: Sequence[str] = SEARCH_FIELDS
    ) -> list[dict[str, Any]]:
        """Every issue of `project` carrying `label`, every page read."""
        _check_label(label)
        jql = (
            f"project = {_jql_string(project)} AND labels = {_jql_string(label)}"
            " ORDER BY created ASC"
        )
        wanted = list(dict.fromkeys([*fields, "labels"]))  # labels: to drop stale index entries
        if self.cloud:
            issues = self._search_jql(jql, wanted)
        else:
            try:
                issues = self._search_classic(jql, wanted)
            except _SearchGone:
                # A Cloud site reached through v2: the old search was removed there.
                self.cloud = True
                issues = self._search_jql(jql, wanted)
        # Pages of an eventually consistent index can repeat an issue; keep each once.
        seen: set[str] = set()
        unique: list[dict[str, Any]] = []
        for issue in issues:
            ident = str(issue.get("id") or issue.get("key"))
            if ident not in seen and _has_label(issue, label):
                seen.add(ident)
                unique.append(issue)
        return unique

    def _search_jql(self, jql: str, fields: list[str]) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"jql": jql, "fields": ",".join(fields), "maxResults": _PAGE}
            if token:
                params["nextPageToken"] = token
            response = self.http.request(
                "GET", self._url("search", "jql"), headers=self._headers(), params=params
            )
            if response.status_code != 200:
                raise self._error(response)
            page = _object(self.provider, response)
            issues.extend(i for i in page.get("issues") or [] if isinstance(i, dict))
            token = page.get("nextPageToken")
            if page.get("isLast", True) or not token:
                return issues
            if token in seen:
                raise ProviderError(self.provider, "search paging repeats itself (same page token)")
            seen.add(token)
        raise ProviderError(self.provider, f"search did not end after {_MAX_PAGES} pages")

    def _search_classic(self, jql: str, fields: list[str]) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            params = {
                "jql": jql,
                "fields": ",".join(fields),
                "startAt": len(issues),
                "maxResults": _PAGE,
            }
            # Classic search lives only under v2 on Server/DC.
            response = self.http.request(
                "GET", self._url("search", version=2), headers=self._headers(), params=params
            )
            if response.status_code == 410:
                raise _SearchGone
            if response.status_code != 200:
                raise self._error(response)
            page = _object(self.provider, response)
            batch = [i for i in page.get("issues") or [] if isinstance(i, dict)]
            issues.extend(batch)
            total = page.get("total")
            # An empty page ends it too: the total can shrink while we page.
            if not batch or not isinstance(total, int) or len(issues) >= total:
                return issues
        raise ProviderError(self.provider, f"search did not end after {_MAX_PAGES} pages")

    # --- comments ------------------------------------------------------------------------------

    def add_comment(self, key: str, body: str) -> dict[str, Any]:
        """Add a comment (ADF on v3); Jira's comment object plus `text`. Sent once."""
        if not body.strip():
            raise ValueError("a Jira comment cannot be empty")
        payload = {"body": text_to_adf(body) if self.api_version == 3 else body}
        response = self._send_once(
            f"comment on {key}", "POST", self._url("issue", key, "comment"), json=payload
        )
        if response.status_code != 201:
            raise self._error(response, key)
        return _with_text(_object(self.provider, response))

    def list_comments(self, key: str) -> list[dict[str, Any]]:
        """Every comment, oldest first: Jira's objects, each with `text` (the body as text)."""
        comments: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            params = {"startAt": len(comments), "maxResults": _PAGE, "orderBy": "created"}
            response = self.http.request(
                "GET", self._url("issue", key, "comment"), headers=self._headers(), params=params
            )
            if response.status_code != 200:
                raise self._error(response, key)
            page = _object(self.provider, response)
            batch = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            comments.extend(_with_text(c) for c in batch)
            total = page.get("total")
            if not batch or not isinstance(total, int) or len(comments) >= total:
                return comments
        raise ProviderError(
            self.provider, f"comments of {key} did not end after {_MAX_PAGES} pages"
        )

    # --- workflow ------------------------------------------------------------------------------

    def transitions(self, key: str) -> list[dict[str, Any]]:
        """The transitions the workflow offers from the issue's current status."""
        response = self.http.request(
            "GET", self._url("issue", key, "transitions"), headers=self._headers()
        )
        if response.status_code != 200:
            raise self._error(response, key)
        found = _object(self.provider, response).get("transitions")
        return [t for t in found or [] if isinstance(t, dict)]

    def transition_to(
        self,
        key: str,
        *,
        name: str | None = None,
        category: str | None = None,
        status: str | None = None,
    ) -> str | None:
        """Move the issue by transition name, target status name or target status category.

        Returns the transition id used, or None when the issue is already there (so a repeat
        after an unknown outcome is harmless). Sent once (see the module docstring)."""
        asked = (("name", name), ("status", status), ("category", category))
        given = [(kind, value) for kind, value in asked if value is not None]
        if len(given) != 1:
            raise ValueError("transition_to needs exactly one of name, status or category")
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"status category must be one of {', '.join(CATEGORIES)}")
        current = (self.get_issue(key, ["status"]).get("fields") or {}).get("status") or {}
        now_status, now_category = _status_name(current), _category_key(current)
        if status is not None and now_status.casefold() == status.casefold():
            return None
        if category is not None and now_category == category:
            return None
        offered = [t for t in self.transitions(key) if t.get("isAvailable", True) is not False]
        match = next((t for t in offered if _matches(t, name, status, category)), None)
        if match is None:
            if name is not None and now_status.casefold() == name.casefold():
                return None  # a transition is usually named after its status, e.g. "Done"
            kind, wanted = given[0]
            choices = ", ".join(
                f"'{t.get('name')}' (→ {_status_name(t.get('to') or {})})" for t in offered
            )
            raise ProviderError(
                self.provider,
                f"no transition of {key} by {kind} {wanted!r} from status '{now_status}'; "
                f"available: {choices or 'none'}",
            )
        if _status_name(match.get("to") or {}).casefold() == now_status.casefold():
            return None  # a looped transition would change nothing but fire post-functions
        ident = str(match.get("id"))
        response = self._send_once(
            f"move {key}",
            "POST",
            self._url("issue", key, "transitions"),
            json={"transition": {"id": ident}},
        )
        if response.status_code != 204:
            raise self._error(response, key)
        return ident

    # --- plumbing ------------------------------------------------------------------------------

    def _url(self, *parts: str, version: int | None = None) -> str:
        path = "/".join(quote(p, safe="") for p in parts)
        return f"{self.base_url}/rest/api/{version or self.api_version}/{path}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self.auth, "Accept": "application/json"}

    def _send_once(self, what: str, method: str, url: str, *, json: Any) -> httpx.Response:
        """Send without resending after an unknown outcome; 429s (nothing done) are resent."""
        policy = self.http.policy
        for attempt in range(1, policy.attempts + 1):
            before = self._once.calls
            try:
                return self._once.request(method, url, headers=self._headers(), json=json)
            except QuotaExceeded as exc:
                wait = exc.retry_after
                if wait is None or wait > policy.max_retry_after:
                    raise QuotaExceeded(
                        self.provider, str(exc).removeprefix(f"{self.provider}: "), wait
                    ) from None
                if attempt == policy.attempts:
                    raise ProviderError(
                        self.provider,
                        f"{what}: rate limited (429) (after {attempt} attempts)",
                        retryable=True,
                    ) from None
                self.http.sleep(wait)
            except ProviderError as exc:
                detail = str(exc).removeprefix(f"{self.provider}: ")
                raise ProviderError(
                    self.provider,
                    f"{what}: {detail}; sent once, as Jira may have acted on it",
                    retryable=exc.retryable,
                ) from None
            finally:
                self.http.calls += self._once.calls - before
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Jira's fields from the caller's, shortcuts expanded, checked before sending."""
        out = dict(fields)
        if isinstance(out.get("project"), str):
            out["project"] = {"key": out["project"]}
        if isinstance(out.get("issuetype"), str):
            out["issuetype"] = {"name": out["issuetype"]}
        if isinstance(out.get("priority"), str):
            out["priority"] = {"name": out["priority"]}
        if isinstance(out.get("assignee"), str):
            out["assignee"] = {("accountId" if self.api_version == 3 else "name"): out["assignee"]}
        if "summary" in out:
            _check_summary(out["summary"])
        if "labels" in out:
            labels = out["labels"]
            if isinstance(labels, str) or not isinstance(labels, Iterable):
                raise ValueError("Jira labels must be a list of strings")
            out["labels"] = [_check_label(label) for label in labels]
        if "description" in out:
            out["description"] = self._body(out["description"])
        return out

    def _operations(self, update: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(update)
        for op in out.get("labels") or []:
            for verb, value in op.items() if isinstance(op, dict) else ():
                if verb == "set":
                    for label in value:
                        _check_label(label)
                else:
                    _check_label(value)
        comments = out.get("comment")
        if comments:
            out["comment"] = [
                {"add": {**op["add"], "body": self._body(op["add"].get("body", ""))}}
                if isinstance(op, dict) and isinstance(op.get("add"), dict)
                else op
                for op in comments
            ]
        if "description" in out:
            out["description"] = [
                {"set": self._body(op["set"])} if isinstance(op, dict) and "set" in op else op
                for op in out["description"]
            ]
        return out

    def _body(self, value: Any) -> Any:
        """A description or comment in the version's format: ADF on v3, text on v2."""
        if value is None:
            return None
        if self.api_version == 3:
            return text_to_adf(value) if isinstance(value, str) else value
        return adf_to_text(value) if isinstance(value, dict) else value

    def _error(self, response: httpx.Response, key: str | None = None) -> ProviderError:
        status = response.status_code
        detail = self._mask(_envelope(response))
        if status == 404 and key is not None and _is_envelope(response):
            return IssueNotFound(self.provider, key, f"{key}: answered 404: {detail}")
        hint = ""
        if status == 404:
            # Not Jira's issue answer: a wrong base URL must not pass for a deleted issue.
            hint = "check the Jira base URL and API version"
        elif status == 401:
            hint = _CREDENTIALS_HINT
        elif status == 403:
            if response.headers.get("x-seraph-loginreason", "").startswith("AUTHENTICATION_DENIED"):
                hint = (
                    "Jira wants a CAPTCHA after failed logins: sign in once in a browser, "
                    "then " + _CREDENTIALS_HINT
                )
            else:
                hint = _CREDENTIALS_HINT + " and the account's permissions"
        elif status == 410:
            hint = "this API was removed; on Jira Cloud use api_version 3"
        where = f"{key}: " if key else ""
        return refused(self.provider, status, where + detail, hint=hint)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class _SearchGone(Exception):
    """The classic search answered 410: this is a Cloud site."""


# --- Atlassian Document Format --------------------------------------------------------------


def text_to_adf(text: str) -> dict[str, Any]:
    """Plain text as an ADF document: blank lines split paragraphs, single newlines become hard
    breaks, and ``` fences (optionally with a language) become code blocks."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    content: list[dict[str, Any]] = []
    paragraph: list[str] = []

    def close_paragraph() -> None:
        if paragraph:
            content.append(_paragraph(paragraph))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = line.strip()
        if fence.startswith("```"):
            close_paragraph()
            language = fence[3:].strip().strip("`").strip()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            i += 1  # the closing fence; an unclosed one runs to the end
            joined = "\n".join(code)
            # ADF refuses empty text nodes, so an empty block has no content at all.
            block: dict[str, Any] = {
                "type": "codeBlock",
                "content": [{"type": "text", "text": joined}] if joined else [],
            }
            if language:
                block["attrs"] = {"language": language}
            content.append(block)
            continue
        if line.strip():
            paragraph.append(line)
        else:
            close_paragraph()
        i += 1
    close_paragraph()
    return {"type": "doc", "version": 1, "content": content}


def _paragraph(lines: list[str]) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    for n, line in enumerate(lines):
        if n:
            nodes.append({"type": "hardBreak"})
        nodes.append({"type": "text", "text": line})
    return {"type": "paragraph", "content": nodes}


_BLOCKS_IN_LISTS = ("bulletList", "orderedList")


def adf_to_text(doc: Any) -> str:
    """An ADF document (a comment or description from Jira) as plain text. Strings (v2 bodies)
    come back as they are; node types this does not know give their text content."""
    if doc is None:
        return ""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return str(doc)
    return "\n\n".join(b for b in _blocks(doc.get("content") or []) if b != "").strip("\n")


def _blocks(nodes: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        children = node.get("content") or []
        if kind == "codeBlock":
            language = (node.get("attrs") or {}).get("language") or ""
            out.append(f"```{language}\n{_inline(children)}\n```")
        elif kind in _BLOCKS_IN_LISTS:
            items = []
            for n, item in enumerate(children, 1):
                marker = f"{n}. " if kind == "orderedList" else "- "
                body = "\n".join(_blocks((item or {}).get("content") or []))
                items.append(marker + body.replace("\n", "\n  "))
            out.append("\n".join(items))
        elif kind == "rule":
            out.append("---")
        elif kind in ("paragraph", "heading") or _is_inline_parent(children):
            out.append(_inline(children))
        else:  # blockquote, panel, table, expand…: their blocks, flattened
            out.extend(_blocks(children))
    return out


def _is_inline_parent(children: Sequence[Any]) -> bool:
    return any(isinstance(c, dict) and c.get("type") in ("text", "hardBreak") for c in children)


def _inline(nodes: Sequence[Any]) -> str:
    parts: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        attrs = node.get("attrs") or {}
        if kind == "text":
            parts.append(str(node.get("text") or ""))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            label = attrs.get("text") or f"@{attrs.get('id', 'someone')}"
            parts.append(label if str(label).startswith("@") else f"@{label}")
        elif kind == "emoji":
            parts.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind in ("inlineCard", "blockCard"):
            parts.append(str(attrs.get("url") or ""))
        elif kind == "date":
            parts.append(str(attrs.get("timestamp") or ""))
        elif kind == "status":
            parts.append(str(attrs.get("text") or ""))
        else:
            parts.append(_inline(node.get("content") or []))
    return "".join(parts)


# --- webhooks and links ---------------------------------------------------------------------


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `X-Hub-Signature: sha256=<hex>` is the HMAC-SHA256 of the raw body under the
    webhook's secret (the scheme GitHub uses too). No secret or no header is never valid."""
    if not secret:
        return False
    try:
        verify_hub_signature(secret, body, header, header_name="X-Hub-Signature")
    except SignatureError:
        return False
    return True


def issue_url(template: str, key: str) -> str:
    """The issue's link for people: `$ticket_id` in the template replaced by the key. A template
    without the placeholder is taken as the site's address (…/browse/KEY)."""
    if "$ticket_id" in template:
        return template.replace("$ticket_id", key)
    return f"{template.rstrip('/')}/browse/{key}"


# --- helpers ---------------------------------------------------------------------------------


def _secret_parts(auth: str) -> list[str]:
    """What must never appear in a message: the header value, its token, and for Basic the
    decoded password."""
    parts = [auth]
    scheme, _, token = auth.partition(" ")
    if token:
        parts.append(token)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(token, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            password = decoded.partition(":")[2]
            if password:
                parts.append(password)
    return sorted({p for p in parts if len(p) >= 4}, key=len, reverse=True)


def _check_summary(summary: Any) -> None:
    if not isinstance(summary, str):
        raise ValueError("a Jira summary must be a string")
    if "\n" in summary or "\r" in summary:
        raise ValueError("a Jira summary cannot contain line breaks")
    if len(summary) > MAX_SUMMARY:
        raise ValueError(f"a Jira summary is at most {MAX_SUMMARY} characters")


def _check_label(label: Any) -> str:
    if not isinstance(label, str) or not label:
        raise ValueError(f"a Jira label must be a non-empty string, not {label!r}")
    if any(c.isspace() for c in label):
        raise ValueError(f"Jira labels cannot contain spaces: {label!r}")
    if len(label) > MAX_LABEL:
        raise ValueError(f"a Jira label is at most {MAX_LABEL} characters")
    return label


def _jql_string(value: str) -> str:
    """A JQL string literal: double-quoted, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _has_label(issue: Mapping[str, Any], label: str) -> bool:
    labels = (issue.get("fields") or {}).get("labels")
    # Without labels in the answer, trust the JQL; with them, the index may lag an edit.
    return labels is None or label in labels


def _age_order(issue: Mapping[str, Any]) -> tuple[int, str]:
    ident = str(issue.get("id") or "")
    return (int(ident) if ident.isdigit() else 1 << 62, ident)


def _matches(
    transition: Mapping[str, Any], name: str | None, status: str | None, category: str | None
) -> bool:
    target = transition.get("to") or {}
    if name is not None:
        return str(transition.get("name") or "").casefold() == name.casefold()
    if status is not None:
        return _status_name(target).casefold() == status.casefold()
    return _category_key(target) == category


def _status_name(status: Mapping[str, Any]) -> str:
    return str(status.get("name") or "")


def _category_key(status: Mapping[str, Any]) -> str:
    return str((status.get("statusCategory") or {}).get("key") or "")


def _with_text(comment: dict[str, Any]) -> dict[str, Any]:
    comment["text"] = adf_to_text(comment.get("body"))
    return comment


def _object(provider: str, response: httpx.Response) -> dict[str, Any]:
    body = json_body(provider, response)
    if not isinstance(body, dict):
        raise ProviderError(
            provider,
            f"answered {response.status_code} with JSON that is not an object: "
            f"{short_body(response)}",
            status=response.status_code,
        )
    return body


def _is_envelope(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and ("errorMessages" in body or "errors" in body)


def _envelope(response: httpx.Response) -> str:
    """Jira's `errorMessages` and `errors` as one line, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return short_body(response) or "(no body)"
    if not isinstance(body, dict):
        return short_body(response)
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{field}: {message}" for field, message in errors.items())
    if not parts and body.get("message"):
        parts.append(str(body["message"]))
    return "; ".join(parts) or short_body(response)
