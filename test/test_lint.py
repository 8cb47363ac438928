"""ruff (configured in ruff.toml) stays clean on the whole tree."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = Path(sys.prefix) / "bin" / "ruff"
    result = subprocess.run([str(ruff), "check", "--no-cache", str(REPO)], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout[-4000:]
