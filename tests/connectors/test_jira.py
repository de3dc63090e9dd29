"""The Jira connector against the fake Jira (Cloud and Server/DC), over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from fakes.base import FakeRequest, FakeServer, Reply
from fakes.jira import ALICE, AUTOMATION, BOB, JiraFake, Transition

from casefold.connectors.http import ProviderError, ProviderHTTP, QuotaExceeded, RetryPolicy
from casefold.connectors.jira import (
    IssueNotFound,
    Jira,
    adf_to_text,
    basic_auth,
    bearer_auth,
    issue_url,
    text_to_adf,
    verify_signature,
)

TOKEN = "jira-token-5f0c1e9a77"
PAT = "jira-pat-0d3b6c41aa"
EMAIL = "casefold@example.com"
LABEL = "casefold-case-42"


@pytest.fixture
def cloud() -> Iterator[JiraFake]:
    with JiraFake(email=EMAIL, token=TOKEN, pat=None) as server:
        yield server


@pytest.fixture
def dc() -> Iterator[JiraFake]:
    with JiraFake(mode="dc", email="casefold", token=TOKEN, pat=PAT) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def connector(
    fake: JiraFake,
    client: httpx.Client,
    *,
    version: int = 3,
    auth: str | None = None,
    sleeps: list[float] | None = None,
    policy: RetryPolicy | None = None,
) -> Jira:
    # Recording the waits instead of sleeping keeps Retry-After tests fast and observable.
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    policy = policy or RetryPolicy(attempts=3, backoff=0.01, timeout=1)
    http = ProviderHTTP("jira", client, policy, sleep=sleep)
    if auth is None:
        auth = bearer_auth(PAT) if fake.mode == "dc" else basic_auth(EMAIL, TOKEN)
    return Jira(http, fake.url, api_version=version, auth=auth)


def fields(**extra: Any) -> dict[str, Any]:
    return {
        "project": {"key": "SEC"},
        "issuetype": {"name": "Task"},
        "summary": "Wazuh 100212: Cobalt Strike beacon on WS-0042",
        "labels": ["casefold", LABEL],
        "priority": {"name": "High"},
        **extra,
    }


def last(fake: JiraFake) -> FakeRequest:
    return fake.requests[-1].request


def query(request: FakeRequest) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(request.query).items()}


# --- create -----------------------------------------------------------------------------------


def test_create_v3_sends_the_description_as_adf(cloud: JiraFake, client: httpx.Client):
    description = (
        "Agent: WS-0042 (10.20.0.42)\nRule: 100212 level 12\n\n"
        '```json\n{"ip": "116.163.24.195"}\n```\n'
        "See the case."
    )
    created = connector(cloud, client).create_issue(fields(description=description))

    assert created["key"] == "SEC-1"
    assert created["self"] == f"{cloud.url}/rest/api/3/issue/{created['id']}"
    request = last(cloud)
    assert request.method == "POST" and request.path == "/rest/api/3/issue"
    assert request.headers["authorization"] == basic_auth(EMAIL, TOKEN)
    assert request.headers["accept"] == "application/json"
    stored = cloud.issue("SEC-1")
    assert stored.fields["description"] == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Agent: WS-0042 (10.20.0.42)"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "Rule: 100212 level 12"},
                ],
            },
            {
                "type": "codeBlock",
                "attrs": {"language": "json"},
                "content": [{"type": "text", "text": '{"ip": "116.163.24.195"}'}],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "See the case."}]},
        ],
    }
    assert stored.labels == ["casefold", LABEL] and stored.status == "To Do"
    assert cloud.count_created() == 1


def test_create_v2_on_dc_sends_plain_text_and_assigns_by_name(dc: JiraFake, client: httpx.Client):
    jira = connector(dc, client, version=2)
    created = jira.create_issue(fields(description="line one\n\nline two", assignee="alice"))

    assert created["key"] == "SEC-1"
    assert last(dc).path == "/rest/api/2/issue"
    assert last(dc).headers["authorization"] == f"Bearer {PAT}"
    assert last(dc).json()["fields"]["assignee"] == {"name": "alice"}
    stored = dc.issue("SEC-1")
    assert stored.fields["description"] == "line one\n\nline two"
    assert stored.assignee == ALICE.account_id


def test_create_expands_shortcuts_on_v3(cloud: JiraFake, client: httpx.Client):
    connector(cloud, client).create_issue(
        {
            "project": "SEC",
            "issuetype": "Incident",
            "summary": "CrowdSec: ssh-bf",
            "priority": "Highest",
            "assignee": BOB.account_id,
        }
    )
    sent = last(cloud).json()["fields"]
    assert sent["project"] == {"key": "SEC"} and sent["issuetype"] == {"name": "Incident"}
    assert sent["priority"] == {"name": "Highest"}
    assert sent["assignee"] == {"accountId": BOB.account_id}
    assert cloud.issue("SEC-1").assignee == BOB.account_id


def test_keys_are_sequential_per_project(client: httpx.Client):
    with JiraFake(email=EMAIL, token=TOKEN, projects=("SEC", "OPS")) as fake:
        jira = connector(fake, client)
        keys = [jira.create_issue(fields(project={"key": p}))["key"] for p in ("SEC", "OPS", "SEC")]
    assert keys == ["SEC-1", "OPS-1", "SEC-2"]


@pytest.mark.parametrize(
    "bad",
    [
        {"labels": ["wazuh", "two words"]},
        {"labels": ["tab\there"]},
        {"labels": "wazuh"},
        {"summary": "first line\nsecond line"},
        {"summary": "x" * 256},
        {"summary": "  "},
    ],
)
def test_what_jira_would_refuse_is_refused_before_sending(
    cloud: JiraFake, client: httpx.Client, bad: dict[str, Any]
):
    with pytest.raises(ValueError):
        connector(cloud, client).create_issue(fields(**bad))
    assert cloud.requests == []


def test_jira_refusals_carry_its_field_errors(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    with pytest.raises(ProviderError) as caught:
        jira.create_issue(fields(priority={"name": "Urgent"}, project={"key": "NOPE"}))
    message = str(caught.value)
    assert caught.value.status == 400 and not caught.value.retryable
    assert "priority: Priority name 'Urgent' is not valid" in message
    assert "project: Specify a valid project ID or key" in message
    assert cloud.count_created() == 0


def test_fake_wants_adf_on_v3_and_text_on_v2(cloud: JiraFake, dc: JiraFake, client: httpx.Client):
    body = {"fields": fields(description="plain")}
    answer = client.post(cloud.base_url(3) + "/issue", headers=cloud.headers(), json=body)
    assert answer.status_code == 400
    assert answer.json() == {
        "errorMessages": [],
        "errors": {
            "description": "Operation value must be an Atlassian Document "
            "(see the Atlassian Document Format)"
        },
    }
    empty_text = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": ""}]}]}  # fmt: skip
    body = {"fields": fields(description=empty_text)}
    answer = client.post(cloud.base_url(3) + "/issue", headers=cloud.headers(), json=body)
    assert answer.status_code == 400 and "INVALID_INPUT" in answer.json()["errors"]["description"]
    body = {"fields": fields(description=text_to_adf("x"))}
    answer = client.post(dc.base_url(2) + "/issue", headers=dc.headers(bearer=True), json=body)
    assert answer.status_code == 400 and "description" in answer.json()["errors"]
    # DC has no REST v3 at all.
    assert (
        client.get(dc.base_url(3) + "/myself", headers=dc.headers(bearer=True)).status_code == 404
    )


# --- search -----------------------------------------------------------------------------------


def test_find_by_label_on_cloud_reads_every_page(cloud: JiraFake, client: httpx.Client):
    oldest = cloud.add_issue(labels=[LABEL], age=500)
    for age in (400, 300, 200, 100):
        cloud.add_issue(labels=[LABEL, "dup"], age=age)
    cloud.add_issue(labels=["other"])

    found = connector(cloud, client).find_by_label("SEC", LABEL)

    assert found is not None and found["key"] == oldest.key
    assert found["fields"]["labels"] == [LABEL]
    searches = [r.request for r in cloud.requests]
    assert [r.path for r in searches] == ["/rest/api/3/search/jql"] * 3  # pages of 2
    first = query(searches[0])
    assert first["jql"] == f'project = "SEC" AND labels = "{LABEL}" ORDER BY created ASC'
    assert "nextPageToken" not in first and "labels" in first["fields"].split(",")
    assert all("nextPageToken" in query(r) for r in searches[1:])


def test_fake_search_jql_omits_the_token_on_the_last_page(cloud: JiraFake, client: httpx.Client):
    for _ in range(3):
        cloud.add_issue(labels=[LABEL])
    url, headers = cloud.base_url(3) + "/search/jql", cloud.headers()
    params = {"jql": f'project = SEC AND labels = "{LABEL}"'}
    page = client.get(url, headers=headers, params=params).json()
    assert page["isLast"] is False and len(page["issues"]) == 2
    assert page["issues"][0] == {"id": page["issues"][0]["id"]}  # no fields asked, ids only
    page = client.get(
        url, headers=headers, params=params | {"nextPageToken": page["nextPageToken"]}
    ).json()
    assert page["isLast"] is True and "nextPageToken" not in page and len(page["issues"]) == 1
    # Cloud removed the old search.
    assert client.get(cloud.base_url(3) + "/search", headers=headers).status_code == 410


def test_find_by_label_on_dc_pages_with_start_at(dc: JiraFake, client: httpx.Client):
    keys = [dc.add_issue(labels=[LABEL], age=100 - n).key for n in range(5)]

    jira = connector(dc, client, version=2)
    found = jira.find_by_label("SEC", LABEL)
    every = jira.find_all_by_label("SEC", LABEL)

    assert found is not None and found["key"] == keys[0]
    assert sorted(i["key"] for i in every) == sorted(keys)
    pages = [query(r.request) for r in dc.requests[:3]]
    assert [r.request.path for r in dc.requests[:3]] == ["/rest/api/2/search"] * 3
    assert [p["startAt"] for p in pages] == ["0", "2", "4"]


def test_v2_on_cloud_moves_to_search_jql_after_410(cloud: JiraFake, client: httpx.Client):
    cloud.add_issue(labels=[LABEL])
    jira = connector(cloud, client, version=2)
    assert jira.find_by_label("SEC", LABEL) is not None
    assert [r.request.path for r in cloud.requests] == [
        "/rest/api/2/search",
        "/rest/api/2/search/jql",
    ]
    assert jira.cloud is True


def test_find_by_label_none_when_nothing_matches(cloud: JiraFake, client: httpx.Client):
    cloud.add_issue(labels=["other"])
    assert connector(cloud, client).find_by_label("SEC", LABEL) is None


def test_search_lag_hides_a_fresh_issue(client: httpx.Client):
    with JiraFake(email=EMAIL, token=TOKEN, search_lag=30) as fake:
        jira = connector(fake, client)
        jira.create_issue(fields())
        assert jira.find_by_label("SEC", LABEL) is None
        fake.search_lag = 0
        found = jira.find_by_label("SEC", LABEL)
    assert found is not None and found["key"] == "SEC-1"


def test_jql_values_are_quoted(cloud: JiraFake, client: httpx.Client):
    label = 'odd"label\\x'
    cloud.add_issue(labels=[label])
    assert connector(cloud, client).find_by_label("SEC", label) is not None
    assert query(last(cloud))["jql"].startswith('project = "SEC" AND labels = "odd\\"label\\\\x"')


def test_search_with_a_label_with_a_space_is_refused(cloud: JiraFake, client: httpx.Client):
    with pytest.raises(ValueError):
        connector(cloud, client).find_by_label("SEC", "two words")
    assert cloud.requests == []


def test_search_in_an_unknown_project_is_an_error(cloud: JiraFake, client: httpx.Client):
    with pytest.raises(ProviderError, match="The value 'NOPE' does not exist"):
        connector(cloud, client).find_by_label("NOPE", LABEL)


# --- get and update ---------------------------------------------------------------------------


def test_get_issue_asks_for_the_fields(cloud: JiraFake, client: httpx.Client):
    key = connector(cloud, client).create_issue(fields())["key"]
    issue = connector(cloud, client).get_issue(key)
    assert issue["key"] == key
    assert set(issue["fields"]) == {
        "summary",
        "status",
        "labels",
        "priority",
        "resolution",
        "assignee",
        "updated",
    }
    assert issue["fields"]["status"]["statusCategory"]["key"] == "new"
    assert issue["fields"]["priority"]["name"] == "High"
    everything = connector(cloud, client).get_issue(key, fields=None)
    assert "description" in everything["fields"] and "comment" in everything["fields"]


def test_update_issue_fields_and_operations(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    jira.update_issue(key, fields={"summary": "Renamed", "description": "New text"})
    jira.update_issue(key, update={"labels": [{"add": "triaged"}, {"remove": "casefold"}]})

    stored = cloud.issue(key)
    assert stored.fields["summary"] == "Renamed"
    assert stored.fields["description"] == text_to_adf("New text")
    assert stored.labels == [LABEL, "triaged"]
    with pytest.raises(ValueError):
        jira.update_issue(key, update={"labels": [{"add": "has space"}]})
    with pytest.raises(ValueError):
        jira.update_issue(key)


def test_assign_by_account_id_on_cloud_and_name_on_dc(
    cloud: JiraFake, dc: JiraFake, client: httpx.Client
):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    jira.assign(key, ALICE.account_id)
    assert last(cloud).path == f"/rest/api/3/issue/{key}/assignee"
    assert last(cloud).json() == {"accountId": ALICE.account_id}
    assert cloud.issue(key).assignee == ALICE.account_id
    jira.assign(key, None)
    assert cloud.issue(key).assignee is None

    jira2 = connector(dc, client, version=2)
    key = jira2.create_issue(fields())["key"]
    jira2.assign(key, "bob")
    assert last(dc).json() == {"name": "bob"} and dc.issue(key).assignee == BOB.account_id
    with pytest.raises(ProviderError, match="User 'nobody' does not exist"):
        jira2.assign(key, "nobody")


# --- comments ---------------------------------------------------------------------------------


def test_comments_both_ways_on_cloud(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    mine = jira.add_comment(key, "Enriched: malicious\n\n```\nwhois 1.2.3.4\n```")

    assert mine["text"] == "Enriched: malicious\n\n```\nwhois 1.2.3.4\n```"
    assert mine["author"]["accountId"] == AUTOMATION.account_id
    stored = cloud.issue(key).comments[0].body
    assert stored == text_to_adf("Enriched: malicious\n\n```\nwhois 1.2.3.4\n```")
    person = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {
                        "type": "mention",
                        "attrs": {"id": AUTOMATION.account_id, "text": "@Casefold"},
                    },
                    {"type": "text", "text": " false positive,", "marks": [{"type": "strong"}]},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "closing"},
                ],
            },
            {
                "type": "codeBlock",
                "attrs": {"language": "bash"},
                "content": [{"type": "text", "text": "grep sshd auth.log"}],
            },
        ],
    }
    cloud.comment_as(key, person, user=ALICE)
    cloud.comment_as(key, "plain from a v2 client", user=BOB)

    comments = jira.list_comments(key)

    assert [c["text"] for c in comments] == [
        mine["text"],
        "@Casefold false positive,\nclosing\n\n```bash\ngrep sshd auth.log\n```",
        "plain from a v2 client",
    ]
    assert [c["author"]["displayName"] for c in comments] == ["Casefold Automation", "Alice", "Bob"]
    assert [query(r.request)["startAt"] for r in cloud.requests[-2:]] == ["0", "2"]  # paged


def test_comments_on_dc_are_plain_text(dc: JiraFake, client: httpx.Client):
    jira = connector(dc, client, version=2)
    key = jira.create_issue(fields())["key"]
    jira.add_comment(key, "from casefold")
    dc.comment_as(key, "from alice")
    assert dc.issue(key).comments[0].body == "from casefold"
    assert [c["text"] for c in jira.list_comments(key)] == ["from casefold", "from alice"]
    with pytest.raises(ValueError):
        jira.add_comment(key, "   ")


# --- transitions ------------------------------------------------------------------------------


def test_transition_by_name_status_and_category(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    offered = {t["name"]: t["to"]["name"] for t in jira.transitions(key)}
    assert offered == {"Start Progress": "In Progress", "Done": "Done"}

    assert jira.transition_to(key, name="start progress") == "21"
    assert cloud.issue(key).status == "In Progress"
    assert last(cloud).json() == {"transition": {"id": "21"}}
    assert jira.transition_to(key, category="done") == "31"
    assert cloud.issue(key).status == "Done" and cloud.issue(key).resolution == "Done"
    assert jira.transition_to(key, status="To Do") == "11"
    assert cloud.issue(key).status == "To Do" and cloud.issue(key).resolution is None


def test_transition_when_already_there_sends_nothing(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    cloud.set_status(key, "Done")
    assert jira.transition_to(key, category="done") is None
    assert jira.transition_to(key, status="done") is None
    assert jira.transition_to(key, name="Done") is None  # named after its status
    assert cloud.calls("POST transitions") == 0


def test_transition_not_offered_names_the_choices(client: httpx.Client):
    workflow = (
        Transition("21", "Start Progress", "In Progress"),
        Transition("31", "Resolve", "Done", sources=("In Progress",)),
    )
    with JiraFake(email=EMAIL, token=TOKEN, transitions=workflow) as fake:
        jira = connector(fake, client)
        key = jira.create_issue(fields())["key"]
        with pytest.raises(ProviderError) as caught:
            jira.transition_to(key, category="done")
        assert fake.calls("POST transitions") == 0
    message = str(caught.value)
    assert "from status 'To Do'" in message and "'Start Progress' (→ In Progress)" in message
    assert not caught.value.retryable


def test_transition_arguments_are_checked(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    with pytest.raises(ValueError):
        jira.transition_to("SEC-1")
    with pytest.raises(ValueError):
        jira.transition_to("SEC-1", name="Done", category="done")
    with pytest.raises(ValueError):
        jira.transition_to("SEC-1", category="closed")


def test_fake_refuses_an_invalid_transition_id(cloud: JiraFake, client: httpx.Client):
    key = cloud.add_issue().key
    answer = client.post(
        f"{cloud.base_url(3)}/issue/{key}/transitions",
        headers=cloud.headers(),
        json={"transition": {"id": "99"}},
    )
    assert answer.status_code == 400
    assert answer.json()["errorMessages"] == ["Transition id '99' is not valid for this issue."]
    answer = client.post(
        f"{cloud.base_url(3)}/issue/{key}/transitions",
        headers=cloud.headers(),
        json={"transition": {"id": "31"}, "fields": {"resolution": {"name": "Done"}}},
    )
    assert answer.status_code == 400 and "resolution" in answer.json()["errors"]


# --- errors -----------------------------------------------------------------------------------


def test_bad_credentials_are_not_in_the_message(cloud: JiraFake, client: httpx.Client):
    wrong = "wrong-token-7c1d"
    jira = connector(cloud, client, auth=basic_auth(EMAIL, wrong))
    with pytest.raises(ProviderError) as caught:
        jira.get_issue("SEC-1")
    message = str(caught.value)
    assert caught.value.status == 401
    assert "Client must be authenticated to access this resource." in message
    assert "check the Jira credentials" in message
    assert (
        wrong not in message
        and base64.b64encode(f"{EMAIL}:{wrong}".encode()).decode() not in message
    )


def test_an_echoed_credential_is_masked(client: httpx.Client):
    class Echo(FakeServer):
        def handle(self, request: FakeRequest) -> Reply:
            return Reply(400, {"errorMessages": [f"bad header {request.headers['authorization']}"]})

    with Echo() as echo:
        http = ProviderHTTP("jira", client, RetryPolicy(attempts=1, timeout=1))
        jira = Jira(http, echo.url, auth=bearer_auth(PAT))
        with pytest.raises(ProviderError) as caught:
            jira.get_issue("SEC-1")
    assert PAT not in str(caught.value) and "***" in str(caught.value)


def test_captcha_after_failed_logins_says_so(client: httpx.Client):
    with JiraFake(mode="dc", email="casefold", token=TOKEN, captcha_after=2) as fake:
        bad = connector(fake, client, version=2, auth=basic_auth("casefold", "nope"))
        for _ in range(2):
            with pytest.raises(ProviderError):
                bad.get_issue("SEC-1")
        good = connector(fake, client, version=2, auth=basic_auth("casefold", TOKEN))
        with pytest.raises(ProviderError) as caught:
            good.get_issue("SEC-1")
    assert caught.value.status == 403 and "CAPTCHA" in str(caught.value)


def test_unknown_issue_is_issue_not_found(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    with pytest.raises(IssueNotFound) as caught:
        jira.get_issue("SEC-999")
    assert caught.value.key == "SEC-999" and caught.value.status == 404
    assert "Issue does not exist or you do not have permission to see it." in str(caught.value)
    for call in (
        lambda: jira.add_comment("SEC-999", "x"),
        lambda: jira.list_comments("SEC-999"),
        lambda: jira.transitions("SEC-999"),
        lambda: jira.assign("SEC-999", None),
        lambda: jira.update_issue("SEC-999", fields={"summary": "x"}),
    ):
        with pytest.raises(IssueNotFound):
            call()


def test_a_wrong_base_url_is_not_a_missing_issue(cloud: JiraFake, client: httpx.Client):
    http = ProviderHTTP("jira", client, RetryPolicy(attempts=1, timeout=1))
    jira = Jira(http, cloud.url + "/jira", auth=basic_auth(EMAIL, TOKEN))
    with pytest.raises(ProviderError) as caught:
        jira.get_issue("SEC-1")
    assert not isinstance(caught.value, IssueNotFound) and "base URL" in str(caught.value)


def test_429_with_retry_after_is_waited_out(cloud: JiraFake, client: httpx.Client):
    key = cloud.add_issue().key
    cloud.fail_next(1, 429, retry_after=2)
    sleeps: list[float] = []
    issue = connector(cloud, client, sleeps=sleeps).get_issue(key)
    assert issue["key"] == key and sleeps == [2.0]
    assert [r.status for r in cloud.requests] == [429, 200]


def test_429_on_create_is_resent_as_nothing_was_done(cloud: JiraFake, client: httpx.Client):
    cloud.fail_next(1, 429, retry_after=1)
    sleeps: list[float] = []
    jira = connector(cloud, client, sleeps=sleeps)
    assert jira.create_issue(fields())["key"] == "SEC-1"
    assert sleeps == [1.0] and cloud.count_created() == 1 and jira.http.calls == 2


def test_rate_limit_without_retry_after_is_a_spent_quota(client: httpx.Client):
    with JiraFake(email=EMAIL, token=TOKEN) as fake:
        fake.rate_limit(2, retry_after=None, reason="jira-quota-tenant-based")
        jira = connector(fake, client)
        jira.find_by_label("SEC", LABEL)
        jira.find_by_label("SEC", LABEL)
        with pytest.raises(QuotaExceeded):
            jira.find_by_label("SEC", LABEL)
        answer = client.get(fake.base_url(3) + "/myself", headers=fake.headers())
    assert answer.status_code == 429 and "retry-after" not in answer.headers
    assert answer.headers["x-ratelimit-remaining"] == "0"
    assert answer.headers["ratelimit-reason"] == "jira-quota-tenant-based"
    assert answer.headers["x-ratelimit-reset"].endswith("Z")


def test_server_errors_on_reads_are_retried(cloud: JiraFake, client: httpx.Client):
    key = cloud.add_issue().key
    cloud.fail_next(2, 500)
    assert connector(cloud, client).get_issue(key)["key"] == key
    assert [r.status for r in cloud.requests] == [500, 500, 200]


@pytest.mark.parametrize("failure", ["reset", "hang", 503])
def test_lasting_failures_are_retryable(cloud: JiraFake, client: httpx.Client, failure: Any):
    cloud.fail_next(2, failure)
    # Only the hang needs a short timeout; a 503 or a reset must not be overtaken by it on a
    # busy machine (CI once saw the 503 arrive after 0.2 s).
    policy = RetryPolicy(attempts=2, backoff=0.01, timeout=0.2 if failure == "hang" else 5.0)
    with pytest.raises(ProviderError) as caught:
        connector(cloud, client, policy=policy).get_issue("SEC-1")
    assert caught.value.retryable
    expected = {"reset": "cannot reach", "hang": "no answer within 0.2 s", 503: "server error 503"}
    assert expected[failure] in str(caught.value)
    # The fake counts a request when it handles it; a hung one may be handled just after the
    # client gave up on it (a 0.2 s timeout on a busy machine).
    deadline = time.monotonic() + 5
    while cloud.calls("GET issue") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cloud.calls("GET issue") == 2


def test_a_reset_then_an_answer_succeeds(cloud: JiraFake, client: httpx.Client):
    key = cloud.add_issue().key
    cloud.fail_next(1, "reset")
    assert connector(cloud, client).get_issue(key)["key"] == key
    assert cloud.calls("GET issue") == 2


@pytest.mark.parametrize("failure", [500, "reset", "hang"])
def test_create_after_an_unknown_outcome_is_not_resent(
    cloud: JiraFake, client: httpx.Client, failure: Any
):
    cloud.fail_after_commit(1, failure)
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=0.3)
    jira = connector(cloud, client, policy=policy)
    with pytest.raises(ProviderError) as caught:
        jira.create_issue(fields())
    assert caught.value.retryable and "sent once" in str(caught.value)
    assert cloud.calls("POST issue") == 1 and cloud.count_created() == 1
    # The caller's check before trying again finds the issue that was made.
    found = jira.find_by_label("SEC", LABEL)
    assert found is not None and found["key"] == "SEC-1"


def test_comment_and_transition_are_sent_once(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    cloud.fail_after_commit(2, 502)
    with pytest.raises(ProviderError, match="sent once"):
        jira.add_comment(key, "hello")
    with pytest.raises(ProviderError, match="sent once"):
        jira.transition_to(key, category="done")
    assert len(cloud.issue(key).comments) == 1 and cloud.issue(key).status == "Done"
    # Trying again finds the issue where it should be and does nothing.
    assert jira.transition_to(key, category="done") is None
    assert cloud.calls("POST comment") == 1 and cloud.calls("POST transitions") == 1


# --- webhooks, links, ADF ---------------------------------------------------------------------


def test_signature_test_vector_and_tampering():
    body = b'{"timestamp":1719936000123,"webhookEvent":"jira:issue_updated"}'
    header = "sha256=b6243e0474578baec9cb9cef3c5b140439f5d711bb2201d49b454a4b63b967c7"
    assert verify_signature("jira-secret", body, header)
    assert verify_signature("jira-secret", body, header.upper().replace("SHA256", "sha256"))
    assert not verify_signature("jira-secret", body.replace(b"123", b"124"), header)
    assert not verify_signature("other-secret", body, header)
    assert not verify_signature("jira-secret", body, header.replace("sha256=", "sha1="))
    assert not verify_signature("jira-secret", body, None)
    assert not verify_signature("", body, header)


class Receiver(FakeServer):
    name = "webhook-receiver"

    def handle(self, request: FakeRequest) -> Reply:
        return Reply(204)


def test_fake_sends_signed_webhooks(cloud: JiraFake, client: httpx.Client):
    jira = connector(cloud, client)
    key = jira.create_issue(fields())["key"]
    jira.transition_to(key, category="done")
    with Receiver() as receiver:
        answer = cloud.send_webhook(
            receiver.url + "/hooks/jira",
            "jira:issue_updated",
            key,
            secret="jira-secret",
            changes={"status": ("To Do", "Done")},
        )
        cloud.comment_as(key, "thanks")
        cloud.send_webhook(
            receiver.url + "/hooks/jira", "comment_created", key, secret="jira-secret",
            comment="thanks", user=BOB,
        )  # fmt: skip
        again = cloud.redeliver(answer)
        delivered = [r.request for r in receiver.requests]

    assert answer.status_code == 204 and again.status_code == 204
    first, comment, retried = delivered
    assert verify_signature("jira-secret", first.body, first.headers["x-hub-signature"])
    payload = orjson.loads(first.body)
    assert payload["webhookEvent"] == "jira:issue_updated"
    assert payload["issue"]["key"] == key and payload["user"]["accountId"] == ALICE.account_id
    assert payload["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert payload["issue"]["fields"]["labels"] == ["casefold", LABEL]
    assert payload["changelog"]["items"][0] | {} == {
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": "10000",
        "fromString": "To Do",
        "to": "10001",
        "toString": "Done",
    }
    assert first.headers["x-atlassian-webhook-retry"] == "0"
    body = orjson.loads(comment.body)
    assert body["webhookEvent"] == "comment_created" and "user" not in body
    assert body["comment"]["body"] == "thanks"
    assert body["comment"]["author"]["accountId"] == BOB.account_id
    assert verify_signature("jira-secret", comment.body, comment.headers["x-hub-signature"])
    # A retry is the same delivery: same identifier, same bytes, count one higher.
    assert retried.body == first.body
    ident = "x-atlassian-webhook-identifier"
    assert retried.headers[ident] == first.headers[ident] != comment.headers[ident]
    assert retried.headers["x-atlassian-webhook-retry"] == "1"


def test_issue_url():
    assert issue_url("https://acme.atlassian.net/browse/$ticket_id", "SEC-42") == (
        "https://acme.atlassian.net/browse/SEC-42"
    )
    assert (
        issue_url("https://jira.example.org/", "SEC-7") == "https://jira.example.org/browse/SEC-7"
    )


def test_text_to_adf_shapes():
    assert text_to_adf("") == {"type": "doc", "version": 1, "content": []}
    doc = text_to_adf("a\r\nb\n\n\n\nc\n```\n\n```\n```py\nunclosed\n\nstill code")
    assert doc["content"] == [
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "hardBreak"},
                {"type": "text", "text": "b"},
            ],
        },
        {"type": "paragraph", "content": [{"type": "text", "text": "c"}]},
        {"type": "codeBlock", "content": []},
        {
            "type": "codeBlock",
            "attrs": {"language": "py"},
            "content": [{"type": "text", "text": "unclosed\n\nstill code"}],
        },
    ]


@pytest.mark.parametrize(
    "text",
    [
        "one paragraph",
        "two\nlines\n\nand another",
        '```json\n{"a": 1}\n```',
        "before\n\n```\ncode\n\nwith blank\n```\n\nafter",
    ],
)
def test_adf_round_trip(text: str):
    assert adf_to_text(text_to_adf(text)) == text


def test_adf_to_text_other_nodes():
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "T"}]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "x"}]}
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "emoji", "attrs": {"shortName": ":ok:", "text": "👌"}},
                                    {"type": "inlineCard", "attrs": {"url": "https://e.x/1"}},
                                ],
                            }
                        ],
                    },
                ],
            },  # fmt: skip
            {"type": "rule"},
            {
                "type": "panel",
                "content": [
                    {"type": "paragraph", "content": [{"type": "mention", "attrs": {"id": "abc"}}]}
                ],
            },  # fmt: skip
        ],
    }
    assert adf_to_text(doc) == "T\n\n- x\n- 👌https://e.x/1\n\n---\n\n@abc"
    assert adf_to_text(None) == "" and adf_to_text("v2 text") == "v2 text"
