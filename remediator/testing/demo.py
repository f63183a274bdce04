"""placeholder"""

from typing import TextIO


def run_demo(*, port: int, exit_after_script: bool, out: TextIO) -> int:
    raise NotImplementedError
