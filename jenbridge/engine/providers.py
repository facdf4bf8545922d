"""Execution providers for ONNX Runtime: which ones this process really has, and in what order.

onnxruntime-gpu lists CUDA (and TensorRT) among its "available" providers even on a machine
without a GPU or without the CUDA libraries; asking for one there logs a red error
(`libcublasLt.so.13: cannot open shared object file`) and the session quietly runs on CPU. So a
provider is only used after a *probe*: a one-node session created with it, logging silenced,
whose `get_providers()` must list it. The probe runs once per provider per process (~1 ms on
CPU; the first CUDA probe loads the CUDA libraries).

Names: users give short names ("cuda", "coreml", "cpu", "tensorrt", "directml"), any case, or
ORT's own ("CUDAExecutionProvider"). The default order is CUDA -> CoreML -> CPU; CPU is always
the last resort, so a session can always be made.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("jenbridge.engine")

CPU = "CPUExecutionProvider"
ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
}
DEFAULT_ORDER = ("CUDAExecutionProvider", "CoreMLExecutionProvider", CPU)
MAX_DEFAULT_THREADS = 8  # the U-Net's kernels stop scaling well past this on one socket
ORT_DEFAULT_SEVERITY = 2  # onnxruntime's own default logger severity (warning)

# A complete ONNX model (IR 8, opset 17): y = Identity(x), x float32 of shape (1,). Built once with
# onnx.helper; inlined so the probe needs neither the `onnx` package nor a file.
_PROBE_MODEL = bytes.fromhex(
    "08083a370a100a017812017922084964656e746974791201675a0f0a0178120a0a08080112040a0208"
    "01620f0a0179120a0a08080112040a02080142040a001011"
)


def canonical_name(name: str) -> str:
    """'cuda', 'CUDA' or 'CUDAExecutionProvider' -> 'CUDAExecutionProvider' (else ValueError)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"provider name must be a non-empty string, got {name!r}")
    text = name.strip()
    if text.lower() in ALIASES:
        return ALIASES[text.lower()]
    for full in set(ALIASES.values()):
        if text.lower() == full.lower():
            return full
    import onnxruntime as ort

    known = ort.get_all_providers()
    for full in known:
        if text.lower() in (full.lower(), full.lower().removesuffix("executionprovider")):
            return full
    short = ", ".join(sorted(k for k in ALIASES if k != "dml"))
    raise ValueError(f"unknown execution provider {name!r} (try {short}, or an ONNX Runtime name)")


def parse_providers(spec: str | Sequence[str] | None) -> list[str] | None:
    """A comma-separated string or a list of names -> canonical names (None stays None)."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [canonical_name(s) for s in items if not (isinstance(s, str) and not s.strip())]
    if not names:
        raise ValueError("empty provider list: name at least one (e.g. cpu)")
    return list(dict.fromkeys(names))  # drop repeats, keep order


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Silence ONNX Runtime's default logger (C++) and its Python-side EP messages for a while.

    The default logger cannot be read back, so it is restored to ORT's default (warning).
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # fatal only
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)


@cache
def probe(provider: str) -> bool:
    """Whether a session created with `provider` (canonical name) really runs on it here."""
    if provider == CPU:
        return True
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return False
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        with quiet_onnxruntime():
            session = ort.InferenceSession(_PROBE_MODEL, options, providers=[provider, CPU])
    except Exception as err:  # any failure to build the session means "not usable"
        log.debug("provider %s failed its probe: %s", provider, err)
        return False
    return provider in session.get_providers()


def usable_providers() -> list[str]:
    """The default-order providers that pass their probe in this process (CPU always last)."""
    return [p for p in DEFAULT_ORDER if probe(p)]


def choose_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Providers to create sessions with, best first, CPU always included as the fallback.

    requested None: the default order (CUDA -> CoreML -> CPU) filtered by the probe. Otherwise
    the requested ones, in the given order, that pass the probe (each one that does not is
    logged as a warning), then CPU. Unknown names raise ValueError.
    """
    names = parse_providers(requested)
    if names is None:
        return usable_providers()
    chosen = []
    for name in names:
        if probe(name):
            chosen.append(name)
        else:
            log.warning("execution provider %s is not usable here (no device or libraries); "
                        "falling back", name)
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def default_threads() -> int:
    """Intra-op threads: the CPU cores this process may run on, at most MAX_DEFAULT_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_THREADS))


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """Options shared by the bundle's sessions: all graph optimizations, `threads` intra-op
    threads (default `default_threads()`), one inter-op thread (the graphs are sequential),
    no spin-waiting and errors-only session logging (ORT warns about shape ops it places on CPU
    under CUDA).

    Spin-waiting is off because the engine shares the CPU with a DAW (and here with training
    jobs): spinning workers steal the cores the thread they wait for needs. Measured on this
    2-core machine under load (small U-Net, 236 frames, batch 2, 2 threads): 316 ms per call
    spinning, 166 ms not.
    """
    import onnxruntime as ort

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def create_session(
    model: str | bytes, providers: Sequence[str], options: onnxruntime.SessionOptions
) -> onnxruntime.InferenceSession:
    """An InferenceSession on the first of `providers` that works (each passed its probe).

    Failures of a GPU provider at this stage (e.g. out of device memory) are kept out of the
    log's red noise and end in a CPU session; read `get_providers()` for what it runs on.
    """
    import onnxruntime as ort

    if list(providers) == [CPU]:
        return ort.InferenceSession(model, options, providers=[CPU])
    with quiet_onnxruntime():
        return ort.InferenceSession(model, options, providers=list(providers))
