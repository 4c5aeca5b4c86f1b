"""What a command said on stderr, less its progress lines: off a terminal dbank prints one every few
seconds of a long step (direction_bank/progress.py), so how many come depends on the machine's
speed, and a test that counts a command's error lines must not count them."""
import re

# progress.ProgressCounter's line: 'DESC: DONE[/TOTAL] UNIT[ (PCT%)], ELAPSED s'
PROGRESS_LINE = re.compile(r"^[^:\n]+: \d+(/\d+)? \S+( \(\d+%\))?, \d+ s$")


def said(stderr: str) -> list[str]:
    """The lines of `stderr` that are not progress lines."""
    return [line for line in stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
