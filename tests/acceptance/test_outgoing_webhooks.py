"""Outgoing webhooks (``settings.webhooks``): one POST per domain event to a real HTTP server
on loopback, signed with Standard Webhooks and checked with ``standardwebhooks``; retried
through the outbox with the same ``webhook-id``; refused without their secret. And the
outbox as the operator sees it: ``events list``, ``deliveries list|retry``, the run summary."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from abonnement.cli.common import Exit
from abonnement.plugins.storage.sql import SqlStorage
from tests.acceptance.receiver import SIGNING_SECRET, Receiver
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED
from tests.conftest import run

ENV = {"ABONNEMENT_WEBHOOK_SIGNING_SECRET": SIGNING_SECRET}
NOTIFICATIONS = "  notifications:\n"
# Bob's first month: what the engine records when `apply` and `run` start and bill it
FIRST_MONTH = ["subscription.created", "subscription.status_changed", "invoice.created",
               "payment.succeeded", "invoice.paid"]  # fmt: skip


def _shop(tmp_path, url: str, *, events: str = "", retries: int = 0) -> Scenario:
    wanted = f", events: {events}" if events else ""
    block = (f"  webhooks:\n    endpoints:\n      - {{url: '{url}'{wanted}}}\n"
             f"    retries: {retries}\n    timeout: 2\n")  # fmt: skip
    return Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED,
                    replace={NOTIFICATIONS: block + NOTIFICATIONS})  # fmt: skip


def _instance(s: Scenario) -> str:
    store = SqlStorage(s.db_url)
    try:
        return store.instance_id()
    finally:
        store.close()


def test_one_signed_post_per_event_with_the_event_as_json(tmp_path):
    with Receiver() as hooks:
        s = _shop(tmp_path, hooks.url)
        s.cli("apply", "--as-of", "2026-12-01", env=ENV)
        s.cli("run", "--until", "2026-12-01", env=ENV)
    instance = _instance(s)
    assert len(hooks.calls) == 5  # one per event, not one per message (there are three)
    bodies = [Webhook(SIGNING_SECRET).verify(body, headers) for headers, body in hooks.calls]
    assert [b["type"] for b in bodies] == FIRST_MONTH
    assert [h["webhook-id"] for h, _ in hooks.calls] == [
        f"evt_{instance}_{n}" for n in range(1, 6)]  # fmt: skip
    assert all(b["id"] == h["webhook-id"] for b, (h, _) in zip(bodies, hooks.calls, strict=True))
    # the same shape as `events list --json`
    assert bodies == s.cli("events", "list", env=ENV)
    paid = bodies[3]
    assert paid["subject_id"] == "bob-coffee" and paid["seq"] == 4
    assert paid["date"] == "2026-12-01"
    assert paid["data"]["invoice"] == "INV-00001" and paid["data"]["amount"] == "25.00"
    headers, body = hooks.calls[0]
    assert headers["content-type"] == "application/json"
    # a changed body, another secret, or a stale timestamp do not verify
    with pytest.raises(WebhookVerificationError):
        Webhook(SIGNING_SECRET).verify(body.replace(b"bob", b"eve"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(body, headers)
    stale = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 600)}
    with pytest.raises(WebhookVerificationError):
        Webhook(SIGNING_SECRET).verify(body, stale)
    # recorded as deliveries, each sent once; a rerun sends nothing again
    sent = s.cli("deliveries", "list", "--status", "sent", env=ENV)
    assert sorted(d["event_type"] for d in sent if d["channel"] == "webhooks") == sorted(
        FIRST_MONTH)  # fmt: skip
    with Receiver() as again:
        s.cli("run", "--until", "2026-12-01", env=ENV)
    assert again.calls == []


def test_an_endpoint_gets_only_the_events_it_asks_for(tmp_path):
    with Receiver() as hooks:
        s = _shop(tmp_path, hooks.url, events='["invoice.*", payment.succeeded]')
        s.cli("apply", "--as-of", "2026-12-01", env=ENV)
        s.cli("run", "--until", "2026-12-01", env=ENV)
    assert [json.loads(b)["type"] for _, b in hooks.calls] == [
        "invoice.created", "payment.succeeded", "invoice.paid"]  # fmt: skip


def test_a_500_is_retried_at_once_with_the_same_webhook_id(tmp_path):
    with Receiver(failures=1) as hooks:
        s = _shop(tmp_path, hooks.url, events="[subscription.created]", retries=1)
        s.cli("apply", "--as-of", "2026-12-01", env=ENV)
        result = s.cli("run", "--until", "2026-12-01", env=ENV)
    assert result["notifications"]["retrying"] == 0
    first, second = hooks.calls
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    assert first[1] == second[1]
    assert Webhook(SIGNING_SECRET).verify(second[1], second[0])["type"] == "subscription.created"


def test_a_500_is_retried_on_the_next_run_with_the_same_webhook_id(tmp_path):
    with Receiver(failures=1) as hooks:
        s = _shop(tmp_path, hooks.url, events="[subscription.created]")
        s.cli("apply", "--as-of", "2026-12-01", env=ENV)  # it delivers what it set off: a 500
        (waiting,) = [d for d in s.cli("deliveries", "list", env=ENV) if d["channel"] == "webhooks"]
        assert (waiting["status"], waiting["attempts"], waiting["next_try_on"]) == (
            "pending", 1, "2026-12-01")  # fmt: skip
        assert waiting["error"] == "HTTPError: HTTP Error 500: Internal Server Error"
        assert s.cli("run", "--until", "2026-12-01", env=ENV)["notifications"]["retrying"] == 0
    (failed, _), (retried, body) = hooks.calls
    assert failed["webhook-id"] == retried["webhook-id"] == waiting["event_id"]
    assert Webhook(SIGNING_SECRET).verify(body, retried)["type"] == "subscription.created"
    (done,) = [d for d in s.cli("deliveries", "list", env=ENV) if d["channel"] == "webhooks"]
    assert (done["status"], done["attempts"], done["sent_on"], done["error"]) == (
        "sent", 2, "2026-12-01", None)  # fmt: skip


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (
            "",
            "outgoing webhooks are signed: set the environment variable "
            "ABONNEMENT_WEBHOOK_SIGNING_SECRET",
        ),
        ("whsec_not*base64", "ABONNEMENT_WEBHOOK_SIGNING_SECRET is not `whsec_` and base64"),
        (
            "whsec_c2hvcnQ=",
            "ABONNEMENT_WEBHOOK_SIGNING_SECRET is 5 bytes long, fewer than 16 (a "
            "secret is `whsec_` and the base64 of 16 bytes or more)",
        ),
    ],
)
def test_webhooks_without_a_usable_secret_refuse_to_start(tmp_path, secret, message):
    s = _shop(tmp_path, "http://127.0.0.1:9/hooks")
    env = {"ABONNEMENT_WEBHOOK_SIGNING_SECRET": secret}
    lines = (s.config / "abonnement.yaml").read_text().splitlines()
    line = lines.index("  webhooks:") + 1
    where = f"{s.config / 'abonnement.yaml'}:{line}:3"
    # validate checks the config, as a CI job without secrets does: valid, with a note
    checked = run("--config", str(s.config), "validate", "--format", "json", env=env)
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert (report["valid"], report["errors"]) == (True, [])
    (note,) = report["warnings"]
    assert (note["line"], note["column"], note["severity"]) == (line, 3, "warning")
    assert note["message"] == (f"{message} (signing is asked for in settings.webhooks); "
                               "commands that deliver refuse to start without it")  # fmt: skip
    assert note["hint"].startswith("make one with `python -c")
    text = run("--config", str(s.config), "validate", env=env)
    assert text.exit_code == 0 and ": valid (" in text.stdout
    assert f"{where}: warning: {message} (signing is asked for in settings.webhooks)" in text.stderr
    for command in (
        ("run", "--until", "2026-12-01"),
        ("serve", "--port", "0"),
        ("apply", "--as-of", "2026-12-01"),
        ("deliveries", "retry", "--all-failed"),
        ("checkout", "coffee-monthly", "--contact", "bob", "--card", "tok_visa"),
    ):
        refused = run("--config", str(s.config), "--db", s.db_url, "-q", *command, env=env)
        assert refused.exit_code == 1, command
        assert refused.stderr.startswith(
            f"{where}: error: {message} (signing is asked for in settings.webhooks); "
        )
    assert s.charges() == []
    assert not (tmp_path / "a.db").exists() or SqlStorage(s.db_url).event_log() == []


def test_events_list_filters_by_type_date_and_subscription(tmp_path):
    s = _shop(tmp_path, "http://127.0.0.1:9/hooks", events="[none.such]")
    s.cli("apply", "--as-of", "2026-12-01", env=ENV)
    s.cli("run", "--until", "2027-01-01", env=ENV)
    instance = _instance(s)
    args = ("--config", str(s.config), "--db", s.db_url, "events", "list")
    text = run(*args, "--type", "invoice.*", "--since", "2026-12-15", env=ENV)
    assert text.exit_code == 0
    assert text.stdout == (
        "DATE        TYPE             SUBJECT     SEQ  ID\n"
        f"2027-01-01  invoice.created  bob-coffee    7  evt_{instance}_7\n"
        f"2027-01-01  invoice.paid     bob-coffee    9  evt_{instance}_9\n"
    )
    csv = run(*args, "--type", "invoice.*", "--since", "2026-12-15", "--csv", env=ENV).stdout
    assert csv.splitlines() == ["date,type,subject_id,seq,id",
                                f"2027-01-01,invoice.created,bob-coffee,7,evt_{instance}_7",
                                f"2027-01-01,invoice.paid,bob-coffee,9,evt_{instance}_9"]  # fmt: skip
    paid = s.cli("events", "list", "--type", "payment.succeeded", "--subscription",
                 "bob-coffee", env=ENV)  # fmt: skip
    assert [(e["date"], e["data"]["invoice"], e["data"]["amount"]) for e in paid] == [
        ("2026-12-01", "INV-00001", "25.00"), ("2027-01-01", "INV-00002", "25.00")]  # fmt: skip
    assert s.cli("events", "list", "--subscription", "nobody", env=ENV) == []
    everything = s.cli("events", "list", env=ENV)
    assert [e["type"] for e in everything] == [*FIRST_MONTH, "reminder.due", "invoice.created",
                                                "payment.succeeded", "invoice.paid"]  # fmt: skip


def test_a_delivery_given_up_shows_in_the_run_then_is_retried_by_hand(tmp_path):
    with Receiver(failures=1000) as hooks:
        s = _shop(tmp_path, hooks.url, events="[subscription.created]")
        s.cli("apply", "--as-of", "2026-11-20", env=ENV)
        args = ("--config", str(s.config), "--db", s.db_url)
        codes = []
        # the apply tries first, then the outbox once per run with backoff: 8 tries in all
        for week in range(12):
            on = (date(2026, 12, 1) + timedelta(weeks=week)).isoformat()
            result = run(*args, "run", "--until", on, env=ENV)
            codes.append(result.exit_code)
            if result.exit_code:
                break
        assert codes == [0] * 6 + [Exit.PARTIAL]
        assert result.stderr.endswith(
            "1 delivery given up (messages and webhooks): see `abonnement deliveries list "
            "--status failed`, then `abonnement deliveries retry --all-failed`\n")  # fmt: skip
        assert len(hooks.calls) == 8
        assert len({h["webhook-id"] for h, _ in hooks.calls}) == 1
        instance = _instance(s)
        key = f"1/event/{_digest(hooks.url)}/webhooks"
        listed = run(*args, "deliveries", "list", "--status", "failed", env=ENV)
        header, line = listed.stdout.splitlines()
        assert re.split(r"\s{2,}", header) == ["STATUS", "ATTEMPTS", "WHEN", "EVENT", "CHANNEL",
                                               "RECIPIENT", "ID", "ERROR"]  # fmt: skip
        assert re.split(r"\s{2,}", line.strip()) == [
            "failed", "8", "subscription.created", "webhooks", hooks.url, key,
            "HTTPError: HTTP Error 500: Internal Server Error"]  # fmt: skip
        for title, cell in (("EVENT", "subscription"), ("RECIPIENT", "http"), ("ID", key)):
            assert header.index(title) == line.index(cell)  # the columns line up
        (row,) = s.cli("deliveries", "list", "--status", "failed", env=ENV)
        assert row == {"id": key, "event_id": f"evt_{instance}_1",
                       "event_type": "subscription.created", "channel": "webhooks",
                       "template": "event", "recipient": hooks.url, "status": "failed",
                       "attempts": 8, "next_try_on": None, "sent_on": None,
                       "error": "HTTPError: HTTP Error 500: Internal Server Error"}  # fmt: skip
        # still down: a retry by hand tries once more and says so (exit 4)
        again = run(*args, "deliveries", "retry", key, "--as-of", on, env=ENV)
        assert again.exit_code == Exit.PARTIAL
        assert re.split(r"\s{2,}", again.stdout.splitlines()[1].strip())[:3] == [
            "failed", "9", "subscription.created"]  # fmt: skip
        hooks.failures = 0  # the receiver is back
        fixed = run(*args, "deliveries", "retry", "--all-failed", "--as-of", on, "--json",
                    env=ENV)  # fmt: skip
        assert fixed.exit_code == 0, fixed.output
        (sent,) = json.loads(fixed.stdout)["retried"]
        assert (sent["id"], sent["status"], sent["attempts"], sent["sent_on"]) == (
            key, "sent", 10, on)  # fmt: skip
    assert len(hooks.calls) == 10
    assert len({h["webhook-id"] for h, _ in hooks.calls}) == 1
    assert s.cli("deliveries", "list", "--status", "failed", env=ENV) == []
    nothing = run(*args, "deliveries", "retry", "--all-failed", "--as-of", on, env=ENV)
    assert (nothing.exit_code, nothing.stdout) == (0, "no failed deliveries\n")
    sent_twice = run(*args, "deliveries", "retry", key, "--json", env=ENV)
    assert sent_twice.exit_code == Exit.REFUSED
    assert json.loads(sent_twice.stdout)["error"]["message"] == (
        f"delivery `{key}` was sent already")  # fmt: skip
    missing = run(*args, "deliveries", "retry", "nope", "--json", env=ENV)
    assert (missing.exit_code, json.loads(missing.stdout)["error"]["message"]) == (
        Exit.NOT_FOUND, "no delivery `nope`; see `abonnement deliveries list`")  # fmt: skip
    neither = run(*args, "deliveries", "retry", env=ENV)
    assert (
        neither.exit_code == Exit.USAGE and "give a delivery ID or --all-failed" in neither.stderr
    )


def _digest(url: str) -> str:
    import hashlib

    return hashlib.sha256(url.encode()).hexdigest()[:16]


def test_the_receiver_of_the_guide_verifies_what_abonnement_sends(tmp_path):
    guide = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    (source,) = re.findall(r"```python\n(.*?)```", guide, re.S)
    names: dict = {}
    exec(source, names)  # the guide's receiver, as a reader would copy it
    with Receiver() as hooks:
        s = _shop(tmp_path, hooks.url, events="[payment.succeeded]")
        s.cli("apply", "--as-of", "2026-12-01", env=ENV)
        s.cli("run", "--until", "2026-12-01", env=ENV)
    ((headers, body),) = hooks.calls
    event = names["verify"](body, headers, SIGNING_SECRET)
    assert event["type"] == "payment.succeeded"
    assert names["verify"](body + b"\n", headers, SIGNING_SECRET) is None
    # the guide's example body has the keys a real one has
    (example,) = re.findall(r"```json\n(.*?)```", guide, re.S)
    shown = json.loads(re.sub(r"…", "", example))
    assert set(shown) == set(event) and set(shown["data"]) == set(event["data"])
