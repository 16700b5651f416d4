"""Log records carry the request id (web) or the task id and its round / model (workers)."""

from __future__ import annotations

import io
import logging
import re

import pytest
from celery import shared_task

from labelapp.logging_context import (
    ContextFilter,
    bind_log_context,
    current_log_context,
    reset_log_context,
)
from labelapp.middleware import RequestIdMiddleware, request_id_from

log = logging.getLogger("labelapp.tests.logging_context")


@pytest.fixture
def captured(settings):
    """Records through a handler configured like settings.LOGGING's console handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]))
    records: list[logging.LogRecord] = []
    handler.emit, real_emit = (lambda r: (records.append(r), real_emit(r))), handler.emit
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield records, stream
    log.removeHandler(handler)
    reset_log_context()


def test_settings_logging_puts_the_filter_and_the_context_on_the_console_handler(settings):
    console = settings.LOGGING["handlers"]["console"]
    assert console["filters"] == ["context"]
    assert settings.LOGGING["filters"]["context"]["()"] == "labelapp.logging_context.ContextFilter"
    assert "%(context)s" in settings.LOGGING["formatters"]["plain"]["format"]
    assert settings.CELERY_WORKER_HIJACK_ROOT_LOGGER is False  # workers keep that handler


# --- web requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("lb-7f3a.99_x", True),
        ("a" * 64, True),
        ("a" * 65, False),  # too long
        ("abc def", False),
        ("x\nFORGED LOG LINE", False),
        ("<script>", False),
        ("-leading-dash", False),
        ("", False),
        (None, False),
    ],
)
def test_incoming_request_id_is_kept_only_when_it_is_a_short_plain_token(incoming, kept):
    rid = request_id_from(incoming)
    if kept:
        assert rid == incoming
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)


def test_every_response_carries_a_request_id(client):
    resp = client.get("/api/openapi.json")
    assert re.fullmatch(r"[0-9a-f]{32}", resp["X-Request-ID"])
    assert client.get("/api/openapi.json")["X-Request-ID"] != resp["X-Request-ID"]
    assert client.get("/api/openapi.json", HTTP_X_REQUEST_ID="edge-42")["X-Request-ID"] == "edge-42"
    assert client.get("/no-such-page/")["X-Request-ID"]  # errors too


def test_records_written_during_a_request_carry_its_id(rf, captured):
    records, stream = captured

    def view(request):
        log.info("inside the view")
        from django.http import HttpResponse

        return HttpResponse("ok")

    log.info("before")
    response = RequestIdMiddleware(view)(rf.get("/", HTTP_X_REQUEST_ID="req-abc"))
    log.info("after")
    assert response["X-Request-ID"] == "req-abc"
    assert [r.request_id for r in records] == ["-", "req-abc", "-"]
    lines = stream.getvalue().splitlines()
    assert "[request_id=req-abc] inside the view" in lines[1]
    assert "[-] before" in lines[0] and "[-] after" in lines[2]


def test_the_request_id_is_cleared_even_when_the_view_raises(rf, captured):
    def view(request):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        RequestIdMiddleware(view)(rf.get("/"))
    assert current_log_context() == {}


def test_context_values_are_sanitised(captured):
    records, stream = captured
    bind_log_context(request_id="abc\n2026-01-01 INFO forged line", model_id=7)
    log.info("x")
    assert records[0].request_id == "abc2026-01-01INFOforgedline"
    assert records[0].model_id == "7"
    assert "\n" not in stream.getvalue().strip()
    with pytest.raises(ValueError, match="unknown log context field"):
        bind_log_context(user="x")


# --- Celery tasks -------------------------------------------------------------------------


@shared_task(name="tests.log_scoring_task")
def log_scoring_task(model_version_id: int, chunk_id: int | None = None) -> None:
    log.info("scoring")


@shared_task(name="tests.log_round_task")
def log_round_task(**kwargs) -> None:
    log.info("round")


def test_task_records_carry_task_id_and_the_ids_in_its_arguments(captured):
    records, stream = captured
    log_scoring_task.apply(args=(4,), kwargs={"chunk_id": 17}, task_id="task-0001")
    (record,) = records
    assert record.task_id == "task-0001" and record.model_id == "4" and record.chunk_id == "17"
    assert record.round_id == "-" and record.request_id == "-"
    assert (
        "[task_id=task-0001 task=tests.log_scoring_task model_id=4 chunk_id=17] scoring"
        in stream.getvalue()
    )
    assert current_log_context() == {}  # task_postrun unbound it


def test_a_task_run_inside_a_request_logs_both_and_gives_the_context_back(captured):
    records, _ = captured
    token = bind_log_context(request_id="req-9")
    log_round_task.apply(kwargs={"round_id": 3}, task_id="task-0002")
    log.info("back in the request")
    assert (records[0].request_id, records[0].task_id, records[0].round_id) == (
        "req-9",
        "task-0002",
        "3",
    )
    assert (records[1].request_id, records[1].task_id) == ("req-9", "-")
    reset_log_context(token)


def test_a_failing_task_still_unbinds(captured):
    @shared_task(name="tests.log_failing_task")
    def failing(model_version_id: int) -> None:
        raise ValueError("no such model")

    failing.apply(args=(9,), task_id="task-0003")  # apply() stores the exception
    assert current_log_context() == {}


def test_json_format_puts_each_record_on_one_line_with_its_ids():
    import json

    from labelapp.logging_context import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        bind_log_context(task_id="t-1", model_id=7)
        log.info("scored %d candidates\nin one chunk", 12)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        reset_log_context()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the newline in a message and the traceback stay inside the JSON
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "scored 12 candidates\nin one chunk"
    assert (first["task_id"], first["model_id"], first["level"]) == ("t-1", "7", "INFO")
    assert "request_id" not in first  # unbound ids are left out
    assert "RuntimeError: boom" in second["exc_info"]
