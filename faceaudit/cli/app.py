"""The typer app, its command groups, the consoles and the error handling every command shares.

Exit codes (DESIGN.md): 0 ok/pass, 1 gate failed (nothing else exits 1), 2 bad input or usage,
3 inconclusive, 4 internal error.
"""

from __future__ import annotations

import datetime as _dt
import json
import errno
import functools
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from faceaudit.core.errors import FaceAuditError

app = typer.Typer(
    name="faceaudit",
    help=(
        "Experimental bias audits of face-recognition models.\n\n"
        "A controlled-attribute generator renders every synthetic identity at every skin-tone level and "
        "edits one nuisance attribute at a time; the models under test are scored on genuine and matched "
        "impostor pairs; the statistics give per-group FMR/FNMR with seed-clustered CIs and paired causal "
        "contrasts; the result is an HTML model card.\n\n"
        "Typical use:  faceaudit audit protocols/default.yaml --out runs/default\n\n"
        "Exit codes: 0 ok/pass, 1 a fairness bound is violated (gate only), 2 bad input or usage "
        "(one line on stderr), 3 inconclusive, 4 internal error (traceback in a log file; --debug "
        "prints it)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
directions_app = typer.Typer(help="Learn and inspect the generator's attribute directions.", no_args_is_help=True)
app.add_typer(directions_app, name="directions")
annotate_app = typer.Typer(help="Collect human ratings of a run's faces in a local web app, and export them.", no_args_is_help=True)
app.add_typer(annotate_app, name="annotate")


import_app = typer.Typer(help="Import a dataset (CausalFace, labelled real photographs, or your own comparison scores) "
                              "as a run directory.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
models_app = typer.Typer(help="The models faceaudit can audit; `models fetch PACK` downloads an InsightFace pack.",
                         invoke_without_command=True)
app.add_typer(models_app, name="models")

# Rich tables are for people at a terminal; piped or in CI they must not wrap at 80 columns.
out_console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INTERNAL = 4
_state = {"debug": False}


def echo(text: str) -> None:
    """Plain text to stdout, exactly as given (no markup, no wrapping)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def error_line(text: str) -> None:
    # markup=False: a path or protocol value with [brackets] is printed as it is.
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(" ".join(str(text).split()), markup=False)


def _fail(err: FaceAuditError) -> None:
    # One line on stderr, no traceback: the message already names what and where.
    error_line(str(err))
    raise typer.Exit(err.exit_code)


#: OS errors a user causes and can fix (paths, permissions, a full disk): exit 2, not an internal error.
_USER_OS_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOSPC,
                   errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP, errno.EMFILE, errno.EFBIG}


def _user_error(err: BaseException) -> Optional[str]:
    """A one-line message when ``err`` is a failure the user caused (not a bug in faceaudit)."""
    if isinstance(err, OSError) and err.errno in _USER_OS_ERRNOS:
        where = err.filename if err.filename is not None else "file system"
        extra = f" -> {err.filename2}" if getattr(err, "filename2", None) else ""
        return f"{where}{extra}: {err.strerror or err}"
    if isinstance(err, UnicodeDecodeError):
        return f"input is not UTF-8 text ({err.reason} at byte {err.start})"
    return None


def _internal_error(err: BaseException) -> None:
    tb = "".join(traceback.format_exception(err))
    if _state["debug"]:
        sys.stderr.write(tb)
        error_line(f"internal error: {type(err).__name__}: {err}")
        raise typer.Exit(EXIT_INTERNAL)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = Path(os.environ.get("FACEAUDIT_LOG_DIR") or tempfile.gettempdir())
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, log = tempfile.mkstemp(prefix=f"faceaudit-crash-{stamp}-", suffix=".log", dir=log_dir)
        with os.fdopen(fd, "w") as f:
            f.write(f"faceaudit {' '.join(sys.argv[1:])}\n\n{tb}")
        where = f"traceback in {log}"
    except OSError:
        where = "re-run with --debug for the traceback"
    error_line(f"internal error (a bug in faceaudit, exit 4): {type(err).__name__}: {err}; {where}")
    raise typer.Exit(EXIT_INTERNAL)


def handles_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except FaceAuditError as err:
            _fail(err)
        except KeyboardInterrupt:
            err_console.print("interrupted: finished stages are kept; re-run the same command to resume")
            raise typer.Exit(130)
        except Exception as err:  # noqa: BLE001 - the one place that classifies every failure
            msg = _user_error(err)
            if msg is not None:
                error_line(msg)
                raise typer.Exit(2)
            _internal_error(err)

    return wrapper


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Print the traceback of an internal error (exit 4) "
                                     "instead of writing it to a log file.")) -> None:
    _state["debug"] = debug


RunArg = typer.Argument(..., help="Run directory (created by `audit` or `generate`).")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
JsonOpt = typer.Option(False, "--json", help="Print the result as one JSON object (for scripts).")
ModelOpt = typer.Option(
    None, "--model", "-m",
    help="Model to test (repeatable): dlib, sface, faceres, mobileface, insightface[:PACK], facenet, onnx:PATH, "
         "PATH.yaml (model spec), package.module:factory. Replaces the protocol's model list; the run's "
         "protocol.yaml records it.",
)
DeviceOpt = typer.Option(None, "--device", help="auto, cpu or cuda (replaces the protocol's device).")


#: ``--policy`` of the commands that run the gate stage (audit, import --audit)
PolicyOpt = typer.Option(
    None, "--policy", "-p",
    help="Gate policy YAML (e.g. protocols/policies/default.yaml), instead of the protocol's analysis.policy: "
         "the gate stage checks the results against its bounds after the analysis and writes RUN/results/gate.json, "
         "and the card colours its headline against it only. The audit still exits 0 on a failed or inconclusive "
         "gate (the verdict is printed and recorded); `faceaudit gate` exits 1 or 3. A relative path is read from the "
         "working directory, else from faceaudit's source tree; a missing file is exit 2 before any stage runs. "
         "Without a policy, a gate.json an earlier audit wrote is removed.")


def gate_verdict(path: Path) -> Optional[dict]:
    """The verdict recorded in ``results/gate.json`` (status, policy, its file, counts), or None."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return {"file": str(path), "status": data.get("status"), "policy": data.get("policy"),
            "policy_file": data.get("policy_file"), "counts": data.get("counts") or {}, "error": data.get("error")}


def gate_line(gate: dict) -> str:
    """One line on the gate the audit ran: its verdict, or why it could not be evaluated."""
    where = f"{gate['policy']} ({gate['policy_file']})"
    if gate.get("error"):
        return f"gate {where}: could not be evaluated: {gate['error']} -> {gate['file']}"
    c = gate["counts"]
    return (f"gate {where}: {str(gate['status']).upper()}: {c.get('pass', 0)} passed, {c.get('fail', 0)} failed, "
            f"{c.get('inconclusive', 0)} inconclusive -> {gate['file']} (the audit exits 0; `faceaudit gate` "
            "exits 1 on a failed bound, 3 when inconclusive)")

