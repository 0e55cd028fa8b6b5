"""`make help` lists every target the Makefile declares, as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_help_lists_every_phony_target_and_no_make_escapes() -> None:
    makefile = (REPO / "Makefile").read_text()
    declared = re.search(r"(?m)^\.PHONY: (.+)$", makefile)
    assert declared
    done = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True)
    listed = re.findall(r"(?m)^  make (\S+) ", done.stdout)
    assert sorted(listed) == sorted(declared[1].split())
    assert "$$" not in done.stdout
