"""``make test-hardware`` passes only when it tested something on the board.

The hardware tests skip themselves where their part is missing (no camera, no jumper, not
a Raspberry Pi). A run in which nothing passed (no test collected, or every test skipped)
tested nothing, and ends with a failure, not with pytest's success.
"""

from __future__ import annotations

import pytest

_passed: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        _passed.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _passed and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _passed:
        terminalreporter.write_line(
            "test-hardware: no hardware test passed (all skipped or none collected): the "
            "board was not tested. See docs/image.md, \"Hardware test plan\".", red=True)
