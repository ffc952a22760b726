"""The guided tour behind ``snapkit demo``.

It runs every part of snapkit end to end on the iris workspace shipped in
``snapkit/demo/iris`` (the same folder the tests use as ``fixtures/iris``),
inside a temporary folder it deletes afterwards:

1. start an embedded server on a free loopback port, create a user;
2. run the training script and capture the model, the data and the scoring
   function plus the workspace files straight to the server;
3. show what the snapshot holds, as ``snapkit show`` does: the objects and
   what each pickle imports (read from its opcodes, nothing unpickled), the
   libraries and the files;
4. list the user's snapshots;
5. edit the data, retrain, capture again, and show how little was uploaded;
6. diff the two snapshots and audit the first;
7. restore the first into a new folder and score a flower with its model.

It needs the ``server`` and ``demo`` extras (FastAPI, uvicorn, httpx;
pandas and scikit-learn for the training script).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapkit.errors import UsageError

__all__ = ["IRIS", "DemoResult", "run_demo"]

IRIS = Path(__file__).resolve().parent / "iris"
KEEP = ["model", "iris", "score"]


@dataclass
class DemoResult:
    """What the tour did, for the tests that run it."""

    snapshot_ids: list[str] = field(default_factory=list)
    first_upload: int = 0
    second_upload: int = 0
    listed: int = 0
    restored_files: list[str] = field(default_factory=list)
    #: What step 3 showed: object name -> what its pickle imports.
    shown_imports: dict[str, list[str]] = field(default_factory=dict)
    prediction: list[str] = field(default_factory=list)
    diff_changed: bool = False
    audit_ok: bool = False


def _require_extras() -> None:
    missing = []
    for module, extra in (
        ("fastapi", "server"),
        ("uvicorn", "server"),
        ("httpx", "server"),
        ("pandas", "demo"),
        ("sklearn", "demo"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} ({extra})")
    if missing:
        raise UsageError(
            "snapkit demo needs "
            + ", ".join(missing)
            + "; install them with: pip install 'snapkit[server,demo]'"
        )


def _train(workspace: Path) -> dict[str, Any]:
    from snapkit.cli.create import run_script

    return run_script(workspace / "train.py")


def run_demo(
    say: Callable[[str], None] = print, keep: Path | None = None
) -> DemoResult:
    """Run the tour, printing each step through ``say``; return what happened.

    ``keep``: a folder to leave the workspace, server data and restored copy in
    (default: a temporary folder, removed at the end).
    """
    _require_extras()
    from snapkit.audit import audit
    from snapkit.capture import CaptureReport, capture
    from snapkit.cli.show import describe, render
    from snapkit.diff import diff
    from snapkit.remote.client import Client
    from snapkit.restore import restore
    from snapkit.server import EmbeddedServer

    result = DemoResult()
    base = Path(tempfile.mkdtemp(prefix="snapkit-demo-")) if keep is None else keep
    base.mkdir(parents=True, exist_ok=True)
    try:
        workspace = base / "iris"
        shutil.copytree(IRIS, workspace, dirs_exist_ok=True)
        say(f"1. workspace: copied the iris example into {workspace}")

        with EmbeddedServer(base / "server-data") as server:
            token = server.add_user("demo")
            say(f"   server: listening on {server.url}, user 'demo' created")
            with Client(server.url, token, progress=False) as client:
                say("2. training: running train.py, then capturing model, iris, score")
                namespace = _train(workspace)
                report = CaptureReport()
                first = capture(
                    namespace=namespace,
                    include=KEEP,
                    files=workspace,
                    name="Iris Snapshot",
                    tags=["demo"],
                    to=client,
                    report=report,
                )
                result.first_upload = client.bytes_sent
                result.snapshot_ids.append(first.id)
                say(
                    f"   pushed snapshot {first.id[:12]}: {report.objects} objects, "
                    f"{report.files} files, {client.bytes_sent} bytes uploaded"
                )

                say(
                    f"3. what {first.id[:12]} holds (snapkit show {first.id[:12]}), "
                    "read without unpickling anything:"
                )
                shown = describe(first)
                result.shown_imports = {
                    o["name"]: o["imports"] or [] for o in shown["objects"]
                }
                for line in render(shown):
                    say("   " + line if line else "")

                infos = client.list_snapshots()
                result.listed = len(infos)
                say("4. your snapshots on the server:")
                for info in infos:
                    say(f"   {info.id[:12]}  {info.name}  {info.created}")

                say(
                    "5. editing iris.csv (five new flowers), retraining, "
                    "capturing again"
                )
                with open(workspace / "iris.csv", "a") as f:
                    for row in (
                        "5.0,3.4,1.5,0.2,setosa",
                        "6.1,2.9,4.7,1.4,versicolor",
                        "6.4,2.8,5.6,2.2,virginica",
                        "5.2,3.5,1.5,0.2,setosa",
                        "6.0,2.7,5.1,1.6,versicolor",
                    ):
                        f.write(row + "\n")
                namespace = _train(workspace)
                before = client.bytes_sent
                second = capture(
                    namespace=namespace,
                    include=KEEP,
                    files=workspace,
                    name="Iris Snapshot",
                    tags=["demo", "retrained"],
                    to=client,
                )
                result.second_upload = client.bytes_sent - before
                result.snapshot_ids.append(second.id)
                say(
                    f"   pushed snapshot {second.id[:12]}: only "
                    f"{result.second_upload} bytes uploaded this time "
                    f"(the first push sent {result.first_upload})"
                )

                say("6. what changed between the two snapshots:")
                d = diff((client, first.id), (client, second.id))
                result.diff_changed = d.changed
                for line in d.render(stat=True).splitlines():
                    say("   " + line)
                rep = audit((client, first.id), budget="50MB")
                result.audit_ok = rep.ok
                say(
                    f"   audit of {first.id[:12]}: "
                    + ("within the 50 MB budget" if rep.ok else "over budget")
                )

                into = base / "restored"
                say(f"7. restoring {first.id[:12]} into {into}")
                restored = restore(client, into=into, snapshot_id=first.id)
                result.restored_files = restored.written
                flower = [[5.9, 3.0, 5.1, 1.8]]
                result.prediction = restored.objects["score"](flower)
                say(
                    f"   {len(restored.written)} files written; "
                    "the restored model says "
                    f"{flower[0]} is {result.prediction[0]}"
                )
        say(
            "done: the server is stopped"
            + (
                f"; everything is kept in {base}"
                if keep is not None
                else " and the temporary folder removed"
            )
        )
        return result
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
