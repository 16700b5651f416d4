"""Who a log record belongs to: the web request or the Celery task (and its round / model).

Web: ``labelapp.middleware.RequestIdMiddleware`` binds ``request_id`` for the request.
Workers: Celery's ``task_prerun`` / ``task_postrun`` signals (connected below) bind
``task_id``, the task's name and the ids in its arguments (``model_version_id`` ->
``model_id``, ``round_id``, ``chunk_id``). Services that learn an id later (a training run
creating its model version) may call ``bind_log_context(model_id=...)``.

``ContextFilter`` (installed on the console handler by ``settings.LOGGING``) copies the
bound values onto every record passing through: ``record.request_id``, ``record.task_id``,
``record.round_id``, ``record.model_id`` ("-" when unbound) and ``record.context``, the bound
ones as ``key=value`` pairs (``request_id=9f2c...`` or ``task_id=... model_id=4``), which the
log format prints. Values live in contextvars, so threads and requests never mix.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import logging
import re

from celery.signals import task_postrun, task_prerun

FIELDS = ("request_id", "task_id", "task", "round_id", "model_id", "chunk_id")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "labelapp_log_context", default=None
)
# Task arguments that name what a task works on, and the field each goes to.
TASK_ARGUMENT_FIELDS = {
    "model_version_id": "model_id",
    "model_id": "model_id",
    "round_id": "round_id",
    "chunk_id": "chunk_id",
}
_SAFE_VALUE = re.compile(r"[^A-Za-z0-9._:@-]")


def current_log_context() -> dict[str, str]:
    return dict(_context.get() or {})


def bind_log_context(**values: object) -> contextvars.Token:
    """Add ``values`` (None drops a field) to the current context; returns a token for
    ``reset_log_context``. Values are shortened and stripped to safe characters, so a
    hostile header or argument cannot forge log lines."""
    merged = current_log_context()
    for name, value in values.items():
        if name not in FIELDS:
            raise ValueError(f"unknown log context field {name!r}: one of {FIELDS}")
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = _SAFE_VALUE.sub("", str(value))[:100]
    return _context.set(merged)


def reset_log_context(token: contextvars.Token | None = None) -> None:
    if token is None:
        _context.set(None)
    else:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the bound context on every record (never filters a record out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get() or {}
        for name in FIELDS:
            setattr(record, name, bound.get(name, "-"))
        record.context = " ".join(f"{k}={bound[k]}" for k in FIELDS if k in bound) or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``LABELAPP_LOG_FORMAT=json``), for log collectors: time,
    level, logger, message, the bound ids as their own keys, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k in FIELDS if (v := getattr(record, k, "-")) != "-"})
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def task_argument_ids(task, args, kwargs) -> dict[str, object]:
    """The ids named in a task's call, by parameter name, e.g. {"model_id": 4}."""
    try:
        signature = inspect.signature(task.run)
        bound = signature.bind_partial(*(args or ()), **(kwargs or {}))
    except (TypeError, ValueError):  # arguments that do not fit: log without them
        return {}
    named = dict(bound.arguments)
    for name, param in signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:  # def task(**options)
            named.update(named.pop(name, {}))
    return {
        TASK_ARGUMENT_FIELDS[name]: value
        for name, value in named.items()
        if name in TASK_ARGUMENT_FIELDS and value is not None
    }


# The context before each running task, restored after it: a task run eagerly inside a
# request logs with both ids and hands the request its own context back.
_before_task: dict[str, contextvars.Token] = {}


@task_prerun.connect(dispatch_uid="labelapp.logging_context.prerun")
def _bind_task(task_id=None, task=None, args=None, kwargs=None, **_):
    ids = task_argument_ids(task, args, kwargs) if task is not None else {}
    stale = {name: None for name in ("round_id", "model_id", "chunk_id")}
    token = bind_log_context(task_id=task_id, task=getattr(task, "name", None), **{**stale, **ids})
    if task_id is not None:
        _before_task[task_id] = token


@task_postrun.connect(dispatch_uid="labelapp.logging_context.postrun")
def _unbind_task(task_id=None, **_):
    token = _before_task.pop(task_id, None) if task_id is not None else None
    if token is None:
        return
    try:
        _context.reset(token)
    except ValueError:  # set in another context (should not happen): start clean
        reset_log_context()
