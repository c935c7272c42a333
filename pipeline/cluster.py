"""Where the tiles of a run execute: local threads, a Dask scheduler, or a batch cluster.

:func:`connect` is a context manager that yields what :func:`pipeline.tiling.run_tiled`
takes as ``client``:

- nothing given: ``None``, the tiles run in this process (local threads);
- ``scheduler="tcp://host:port"``: a :class:`distributed.Client` connected to a running
  scheduler, with a short connection timeout (:data:`CONNECT_TIMEOUT`); an unreachable
  scheduler is a :class:`ClusterError` naming the address;
- ``cluster={...}`` (the ``cluster:`` section of a config, :data:`CLUSTER_KEYS`): a
  dask-jobqueue cluster (SLURM, PBS, SGE or LSF) scaled to ``jobs`` jobs, and a client
  of it.  :func:`make_jobqueue_cluster` builds the cluster without submitting anything,
  so its ``job_script()`` can be inspected.

The client is never made the default Dask scheduler: only the tiles (Dask actors, see
:func:`pipeline.tiling.lockstep_diffuse`) run on the cluster; reading, the frame
statistics and the output store stay in this process.

Lost workers
------------
The tiles are Dask *actors*: stateful objects that live on one worker.  Dask does not
retry or move an actor when its worker dies.  :func:`pipeline.run.remove_stars_file`
does: it creates the tiles again on the workers that are left and resumes from the
run's checkpoint (``<output>.checkpoint``, on a shared file system), with one warning
line.  Without a checkpoint, with no worker left, or after
``pipeline.run.WORKER_LOSS_RETRIES`` losses, the loss is one :class:`ClusterError` line
naming the lost worker when Dask says which, and starting the same command again
resumes from the last saved iteration.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["CLUSTER_KEYS", "CLUSTER_KINDS", "CONNECT_TIMEOUT", "ClusterError", "connect",
           "make_jobqueue_cluster", "validate_cluster"]

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = "5s"

#: ``kind:`` of a ``cluster:`` section and the dask-jobqueue class it starts.
CLUSTER_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
                 "lsf": "LSFCluster"}

#: Keys of a ``cluster:`` section and their expected Python types.
CLUSTER_KEYS: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "cores": (int,),
    "memory": (str,),
    "walltime": (str,),
    "queue": (str,),
    "account": (str,),
    "processes": (int,),
    "jobs": (int,),
    "job_extra_directives": (list,),
    "local_directory": (str,),
}


class ClusterError(RuntimeError):
    """The cluster could not be reached or lost a worker (reported in one line).

    ``lost`` holds the addresses of the workers known to be lost, if any.
    """

    def __init__(self, message: str, lost=()):
        super().__init__(message)
        self.lost = tuple(lost)


def validate_cluster(section: Any, where: str = "cluster") -> dict[str, Any]:
    """Check a ``cluster:`` mapping; return a plain dict.  ``where`` prefixes errors."""
    if not isinstance(section, Mapping):
        raise ValueError(f"{where}: expected a mapping of {', '.join(CLUSTER_KEYS)}, "
                         f"got {type(section).__name__}")
    unknown = sorted(set(map(str, section)) - set(CLUSTER_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(CLUSTER_KEYS)}")
    for key, value in section.items():
        types = CLUSTER_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(f"{where}.{key}: expected {types[0].__name__}, "
                             f"got {value!r}")
        if key == "job_extra_directives" and not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}.{key}: expected a list of strings, got {value!r}")
        if key in ("cores", "processes", "jobs") and value < 1:
            raise ValueError(f"{where}.{key}: must be >= 1, got {value}")
    if "kind" not in section:
        raise ValueError(f"{where}: 'kind' is required ({'|'.join(CLUSTER_KINDS)})")
    if section["kind"] not in CLUSTER_KINDS:
        raise ValueError(f"{where}.kind: {section['kind']!r} is not one of "
                         f"{', '.join(CLUSTER_KINDS)}")
    for key in ("cores", "memory"):
        if key not in section:
            raise ValueError(f"{where}: '{key}' is required for a {section['kind']} cluster")
    return dict(section)


def make_jobqueue_cluster(section: Mapping[str, Any]):
    """The dask-jobqueue cluster of a validated ``cluster:`` section; no job submitted.

    ``account`` is ``account`` (``-A``) for SLURM and PBS and ``project`` (``-P``) for
    SGE and LSF.  The caller closes the cluster (``cluster.close()``).
    """
    section = validate_cluster(section)
    try:
        import dask_jobqueue
    except ImportError:
        raise ClusterError("a cluster: section needs the dask-jobqueue package "
                           "(pip install dask-jobqueue)") from None
    kind = section["kind"]
    kwargs: dict[str, Any] = {
        key: section[key]
        for key in ("cores", "memory", "walltime", "queue", "processes",
                    "job_extra_directives", "local_directory")
        if key in section
    }
    if "account" in section:
        kwargs["account" if kind in ("slurm", "pbs") else "project"] = section["account"]
    kwargs.setdefault("processes", 1)
    cls = getattr(dask_jobqueue, CLUSTER_KINDS[kind])
    return cls(**kwargs)


@contextlib.contextmanager
def connect(scheduler: str | None = None, cluster: Mapping[str, Any] | None = None):
    """Yield ``None`` (local), or a client of ``scheduler`` or of a jobqueue ``cluster``.

    Connection failures raise :class:`ClusterError` (one line, naming the address).
    """
    if scheduler and cluster:
        raise ValueError("give either a scheduler address or a cluster section, not both")
    if not scheduler and not cluster:
        yield None
        return
    from distributed import Client

    started = None
    if scheduler:
        if not isinstance(scheduler, str) or "://" not in scheduler:
            raise ValueError(f"scheduler {scheduler!r}: expected an address such as "
                             "tcp://host:8786")
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} within "
                               f"{CONNECT_TIMEOUT} ({type(exc).__name__})") from None
    else:
        started = make_jobqueue_cluster(cluster)
        started.scale(jobs=int(cluster.get("jobs", 1)))
        client = Client(started, set_as_default=False)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        if started is not None:
            with contextlib.suppress(Exception):
                started.close()


def worker_addresses(client) -> set[str]:
    """Addresses of the client's workers now (empty if the scheduler does not answer)."""
    try:
        return set(client.scheduler_info(n_workers=-1).get("workers", {}))
    except TypeError:  # older distributed: no n_workers argument
        return set(client.scheduler_info().get("workers", {}))
    except Exception:
        return set()


def workers_see(client, path: str | os.PathLike) -> bool:
    """Whether every worker of ``client`` finds the folder ``path``: a file system they
    share with this process.  ``False`` with no worker yet or no answer."""
    try:
        seen = client.run(os.path.isdir, os.fspath(path))
    except Exception:
        return False
    return bool(seen) and all(seen.values())


def is_cluster_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a run with a client, means the cluster failed.

    A dead worker surfaces as ``OSError("Unable to contact Actor's worker")``, a closed
    comm, a cancelled future or a timeout, depending on when it died.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"KilledWorker", "CancelledError", "FutureCancelledError",
                         "CommClosedError", "TimeoutError", "OSError"}) or \
        "worker" in str(exc).lower() or "actor" in str(exc).lower()


def cluster_error(exc: BaseException, client=None, before: set[str] | None = None,
                  wait: float = 3.0) -> ClusterError:
    """The one-line :class:`ClusterError` for a run that failed on the cluster.

    With the ``client`` and the workers ``before`` the run, the lost workers are named
    (the scheduler notices a dead worker within moments; this waits up to ``wait`` s).
    """
    import time

    lost: set[str] = set()
    if client is not None and before:
        deadline = time.monotonic() + wait
        while True:
            now = worker_addresses(client)
            lost = before - now if now else set()
            if lost or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    text = " ".join(str(exc).split()) or type(exc).__name__
    who = (f"worker{'s' if len(lost) > 1 else ''} {', '.join(sorted(lost))} lost"
           if lost else "a Dask worker was lost or unreachable")
    return ClusterError(
        f"{who} during the run ({type(exc).__name__}: {text}); the tiles are Dask "
        "actors, which Dask does not retry; start the same command again to resume "
        "from the last checkpoint", lost=sorted(lost))
