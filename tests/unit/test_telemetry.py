"""Everything written to the API or the log is cut to a sane length; refusals are said once."""

from __future__ import annotations

import io
import json

import structlog

from custom_scheduler import convert
from custom_scheduler.telemetry import ITEMS_LIMIT, VALUE_LIMIT, Once, configure_logging


def test_messages_written_to_the_api_are_cut() -> None:
    long = "victim, " * 10_000
    event = convert.event_body(
        namespace="ns",
        pod_name="p",
        pod_uid="u",
        type_="Normal",
        reason="Nominated",
        message=long,
        timestamp="t",
        instance="i",
    )
    condition = convert.pod_condition_patch("PodScheduled", "False", "Unschedulable", long, "t")
    for message in (event["message"], condition["status"]["conditions"][0]["message"]):
        assert len(message) == convert.MESSAGE_LIMIT
        assert message.endswith(f"... ({len(long) - convert.MESSAGE_LIMIT} more characters)")
    assert convert.cut("short") == "short"


def test_log_values_are_cut_but_a_traceback_is_not() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    try:
        raise ValueError("x" * 5000)
    except ValueError:
        structlog.get_logger().warning(
            "pod_nominated", reason="r" * 50_000, waiting_for=[f"ns/p{i}" for i in range(2000)], exc_info=True
        )
    finally:
        structlog.reset_defaults()
    line = json.loads(out.getvalue())
    assert len(line["reason"]) == VALUE_LIMIT
    assert len(line["waiting_for"]) == ITEMS_LIMIT + 1 and line["waiting_for"][-1] == "... (1980 more)"
    assert "x" * 5000 in line["exception"]


def test_once_says_a_thing_once_and_stays_bounded() -> None:
    once = Once(size=3)
    assert once.first(("pod", "refused")) and not once.first(("pod", "refused"))
    for i in range(10):
        once.first(i)
    assert len(once._seen) <= 3
