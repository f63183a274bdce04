"""Assertions shared by the server tests."""

import os

import pytest


def assert_pid_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def process_uid(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid
