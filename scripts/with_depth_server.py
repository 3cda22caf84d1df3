"""Run a command with a real depth server on 127.0.0.1 beside it (for the real-window tier):

    .venv/bin/python scripts/with_depth_server.py [--tiny-model PATH] -- COMMAND [ARGS...]

The server (`python -m server`, SQLite in a throwaway folder, no worker: its jobs wait in the queue,
as a busy or restarted server's do) runs from this machine's .venv, since the Debian 13 root that
runs the window tests cannot run .venv. COMMAND gets FATHOM_TEST_SERVER_URL, FATHOM_TEST_SERVER_KEY
(an account with 10 tokens) and FATHOM_TEST_SERVER_KEY_EMPTY (no tokens); scripts/trixie_root.sh
passes FATHOM_* variables into the root, which shares this machine's network. The server stops
when COMMAND ends; its exit status is COMMAND's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.blender.test_remote import DepthServer  # noqa: E402 (the same server the Blender tests start)


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny-model", default=os.environ.get("FATHOM_TINY_MODEL", str(ROOT / "out/tier/tiny.onnx")))
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    with tempfile.TemporaryDirectory(prefix="fathom-window-server-") as folder:
        catalog = Path(folder) / "catalog.json"
        catalog.write_text(json.dumps({"models": {"da2-small": {"path": str(Path(args.tiny_model).resolve())}}}))
        server = DepthServer(Path(folder), catalog).start(workers=0)
        try:
            env = {
                **os.environ,
                "FATHOM_TEST_SERVER_URL": server.url,
                "FATHOM_TEST_SERVER_KEY": server.user(tokens=10),
                "FATHOM_TEST_SERVER_KEY_EMPTY": server.user(tokens=0),
            }
            return subprocess.run(command, env=env).returncode
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
