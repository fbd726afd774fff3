import subprocess
import sys

import repmatch


def test_version_and_cli_help() -> None:
    assert repmatch.__version__
    out = subprocess.run(
        [sys.executable, "-m", "repmatch", "--help"], capture_output=True, text=True, check=True
    )
    assert "repmatch" in out.stdout
