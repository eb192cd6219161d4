"""The station's log after a restart (issue 16): every FLASH no person has acknowledged is an
alarm again at once, and escalated at the next review; that is one line for all of them, not one
per message, while every other alarm keeps its own line."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from hotline.protocol.envelope import Lane, MessageType
from hotline.station.datadir import ConsoleSection
from hotline.station.discipline import Discipline, _Found, _ref

S = 1_000_000_000
NOW = 1_800_000_000 * S


def _flash(seq: int, received_ns: int) -> tuple[str, _Found]:
    message = _ref("moscow", "in", Lane.FLASH, seq, MessageType.PRINCIPAL, received_ns=received_ns)
    return f"flash:moscow:{seq}", _Found(
        "flash", "moscow", "FLASH from Moscow", received_ns, message
    )


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_restart_logs_one_line_for_every_unacknowledged_flash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    discipline = Discipline(cast(Any, None), ConsoleSection())  # no webhook: no station needed
    found = dict(_flash(seq, NOW - 3600 * S) for seq in [*range(1, 119), 140, 141])
    found["path_down:moscow:10.0.0.1:7000"] = _Found(
        "path_down", "moscow", "link moscow: path 10.0.0.1:7000 is DOWN", NOW
    )
    with caplog.at_level(logging.INFO, logger="hotline.discipline"):
        discipline._apply(found, NOW)
        assert len(discipline.alarms) == 121  # each FLASH is an alarm of its own, as before
        assert _lines(caplog, logging.WARNING) == [
            "ALARM path_down: link moscow: path 10.0.0.1:7000 is DOWN",
            "ALARM flash: 120 FLASH messages on link moscow not acknowledged by a person here "
            "(FLASH 1-118, 140-141)",
        ]
        caplog.clear()
        discipline._apply(found, NOW + S)  # they have waited since they arrived: escalated
        assert _lines(caplog, logging.ERROR) == [
            "ALARM ESCALATED flash: 120 FLASH messages on link moscow not acknowledged by a "
            "person here (FLASH 1-118, 140-141)"
        ]
        caplog.clear()
        found.update([_flash(142, NOW + 2 * S)])  # one more arrives: a line of its own
        discipline._apply(found, NOW + 2 * S)
        assert _lines(caplog, logging.WARNING) == ["ALARM flash: FLASH from Moscow"]
