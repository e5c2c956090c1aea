"""Running a batch on a Ray cluster: each task a Ray task, each a whole `rlm` run on its node.

The driver (this process) keeps the bookkeeping of `runner.Batch` — what is done, the budget,
the results file — and submits at most `jobs` tasks at a time, so the batch's `--max-cost` can
still stop new ones. Each Ray task runs `Rlm.ask_async` on whichever node takes it, with its own
sandboxed worker there, and sends back its result and its trajectory, which the driver writes
beside the results. `num_cpus` per task keeps a node from running more sandboxes than it has
cores; a task whose node process dies is run again by Ray (`max_retries`).

Sources: a git URL is cloned by the node; a local path whose loaded files (what the loader
keeps: no secret-named, ignored, excluded or binary files) come to at most `ship_max` bytes is
packed once, put in Ray's object store and unpacked on the node under the same name; a larger
path is passed as it is, so it must be on storage every node sees at the same path.
Models are resolved here, on the driver, so every node calls the same ones; provider keys and
`RLM_*` request settings come from the nodes' environment.

Ray is imported only by this module, and only when `rlm batch --ray` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import sys
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rlm_cli.api import Inputs, ModelFlags, Rlm
from rlm_cli.batch.events import Summary
from rlm_cli.batch.results import TaskResult
from rlm_cli.batch.runner import Batch, execute, trace_path
from rlm_cli.batch.tasks import Task
from rlm_cli.errors import RlmError, UsageError, WorkerError
from rlm_cli.sources.git import is_git_url

CONNECT_TIMEOUT = 5.0  # seconds; ray.init itself would wait minutes for an address nobody answers


@dataclass(frozen=True)
class RayOptions:
    address: str  # host:port, ray://host:port, "auto" (RAY_ADDRESS or a cluster on this machine) or "local"
    num_cpus: float = 1.0  # per task
    max_retries: int = 3  # when the node process running a task dies
    ship_max: int = 5_000_000  # bytes: local sources up to this size travel with the task
    jobs: int | None = None  # tasks in flight; None: the cluster's CPUs / num_cpus


def connect(options: RayOptions) -> Any:
    """`ray`, connected; an address nobody answers is one usage error, found in seconds."""
    try:
        import ray
    except ImportError:
        raise UsageError('--ray needs Ray: pip install "rlm-cli[ray]"') from None
    address = options.address
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if address not in ("auto", "local"):
        _check_reachable(address)
    started_here: dict[str, Any] = {"include_dashboard": False} if address == "local" else {}  # refused for a running cluster
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **started_here)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--ray {options.address}: cannot connect to a Ray cluster ({str(exc).splitlines()[0]})") from None
    return ray


def _check_reachable(address: str) -> None:
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(f"--ray {address}: not an address (HOST:PORT, ray://HOST:PORT, auto or local)")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise UsageError(f"--ray {address}: no Ray cluster answers at {host}:{port} ({exc.strerror or exc})") from None


def run_on_ray(batch: Batch, options: RayOptions, rlm: Rlm) -> Summary:
    """Run the batch's pending tasks on the cluster; `rlm` resolves their models here."""
    # Ray's driver prints the cluster's errors (a dead worker) on stdout, which is not for them.
    with contextlib.redirect_stdout(sys.stderr):
        return _run(batch, options, rlm)


def _run(batch: Batch, options: RayOptions, rlm: Rlm) -> Summary:
    ray = connect(options)
    try:
        remote = ray.remote(_run_task).options(num_cpus=options.num_cpus, max_retries=options.max_retries)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        jobs = options.jobs or max(1, int(cpus // options.num_cpus))
        batch.begin(jobs, f"Ray at {options.address} ({cpus:g} CPUs)")
        shipped: dict[tuple[str, Inputs], Any] = {}
        in_flight: dict[Any, Task] = {}
        try:
            while True:
                while len(in_flight) < jobs and (task := batch.next_task()) is not None:
                    try:
                        resolved = _resolved(task, rlm)
                        in_flight[remote.remote(resolved, _ship(resolved, options.ship_max, shipped, ray))] = task
                    except RlmError as exc:
                        batch.finished(TaskResult.failed(task.id, exc))
                if not in_flight:
                    break
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    task = in_flight.pop(ref)
                    batch.finished(_collect(ray, ref, task, batch, options))
        except BaseException:
            for ref, task in in_flight.items():
                ray.cancel(ref, force=True)
                batch.abandoned(task.id)
            raise
        finally:
            summary = batch.end()
    finally:
        ray.shutdown()
    return summary


def _resolved(task: Task, rlm: Rlm) -> Task:
    """The task with its models as this machine resolves them (options, environment, config file)."""
    choice = rlm.settings(task.request.models).models
    flags = ModelFlags(choice.model, choice.sub_model, choice.api_base, choice.sub_api_base)
    return replace(task, request=replace(task.request, models=flags, trace=None))


def _ship(task: Task, ship_max: int, shipped: dict[tuple[str, Inputs], Any], ray: Any) -> dict[str, Any]:
    """The task's small local sources, packed and put in the object store once per source and filters."""
    inputs = task.request.inputs
    refs: dict[str, Any] = {}
    for source in inputs.sources:
        key = (source, replace(inputs, sources=()))
        if key not in shipped:
            packed = pack(source, inputs, ship_max) if not is_git_url(source) and "://" not in source else None
            shipped[key] = ray.put(packed) if packed is not None else None
        if shipped[key] is not None:
            refs[source] = shipped[key]
    return refs


def pack(source: str, inputs: Inputs, ship_max: int) -> bytes | None:
    """What the loader keeps of a local file or directory, as tar.gz bytes; None when it is
    missing, unusable or larger than `ship_max`. Only the loaded files travel, so secret-named,
    ignored, excluded and binary files never reach the object store or a node's disk."""
    if not Path(source).exists():
        return None  # maybe on the nodes' storage; if not, the node says so as the task's error
    try:
        loaded = replace(inputs, sources=(source,)).load()
    except RlmError:
        return None  # the node says why, as the task's error
    encoded = {rel: text.encode("utf-8") for rel, text in loaded.files.items()}
    if sum(map(len, encoded.values())) > ship_max:
        return None
    name = os.path.basename(os.path.abspath(source))
    is_file = Path(source).is_file()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for rel, data in encoded.items():
            info = tarfile.TarInfo(name if is_file else f"{name}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _collect(ray: Any, ref: Any, task: Task, batch: Batch, options: RayOptions) -> TaskResult:
    """The result of a finished Ray task, with its trajectory written beside the results."""
    try:
        record, trajectory = ray.get(ref)
    except ray.exceptions.RayError as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        tries = options.max_retries + 1
        return TaskResult.failed(task.id, WorkerError(f"the Ray task failed {tries} time(s): {type(exc).__name__}: {why}"))
    result = TaskResult.from_json(record)
    if trajectory is None:
        return replace(result, trace_file=None)
    path = trace_path(batch.plan.traces, task.id)
    path.write_text(trajectory, encoding="utf-8")
    return replace(result, trace_file=str(path))


def _run_task(task: Task, shipped: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """On the node: unpack shipped sources, run the ask, hand back the result and trajectory."""
    import ray

    with tempfile.TemporaryDirectory(prefix="rlm-ray-") as scratch:
        root = Path(scratch)
        named = task.request.inputs.sources
        sources = tuple(_unpack(ray.get(shipped[s]), root / str(i)) if s in shipped else s for i, s in enumerate(named))
        trace = root / "trajectory.jsonl"
        request = replace(task.request, inputs=replace(task.request.inputs, sources=sources), trace=trace)
        result = asyncio.run(execute(task.id, lambda: Rlm().ask_async(request)))
        trajectory = trace.read_text(encoding="utf-8") if trace.exists() else None
        return result.as_json(), trajectory


def _unpack(packed: bytes, into: Path) -> str:
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        (name,) = {member.name.split("/", 1)[0] for member in tar.getmembers()}
        tar.extractall(into, filter="data")
    return str(into / name)
