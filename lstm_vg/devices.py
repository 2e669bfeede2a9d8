"""The devices training runs on: a CPU split into host devices, `--devices N`, and joining a
multi-process run with `jax.distributed`. JAX is imported only when devices are chosen."""

from __future__ import annotations

import os

from lstm_vg.errors import UserError


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start_distributed() -> None:
    """jax.distributed.initialize from the environment: JAX_COORDINATOR_ADDRESS (host:port of
    process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID; on a TPU pod, Slurm or Open MPI, JAX
    detects what is not set."""
    import jax

    numbers = {}
    for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        value = os.environ.get(name)
        if value is not None and not value.isdigit():
            raise UserError(f"--distributed: {name}={value!r}: expected a whole number")
        numbers[name] = None if value is None else int(value)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # barriers between CPU hosts
    try:
        jax.distributed.initialize(num_processes=numbers["JAX_NUM_PROCESSES"],
                                   process_id=numbers["JAX_PROCESS_ID"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise UserError(f"--distributed: {error}; set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES "
                        f"and JAX_PROCESS_ID, or run under a TPU pod, Slurm or Open MPI") from None


def choose(count: int | None = None, host_devices: int | None = None,
           distributed: bool = False) -> list:
    """The devices to split runs over: the first `count` of this process's (after splitting
    the CPU into `host_devices` devices, by default one per core, and joining a multi-process
    run, both of which must happen before JAX first computes anything). On a CPU one device per
    core trains one run per core at once: small matmuls gain little from a second thread."""
    import jax

    # one per core unless the user split the CPU already (JAX_NUM_CPU_DEVICES or XLA_FLAGS)
    chosen_by_user = (jax.config.jax_num_cpu_devices >= 0
                      or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""))
    try:
        if host_devices is not None or not chosen_by_user:
            jax.config.update("jax_num_cpu_devices", host_devices or cpu_cores())
    except RuntimeError as error:  # JAX's backends are already running (an in-process call)
        if host_devices is not None:
            raise UserError(f"--host-devices: too late to split the CPU: {error}") from None
    if distributed:
        start_distributed()
    available = jax.local_devices()
    if count is not None and count > len(available):
        raise UserError(f"--devices {count}: only {len(available)} device(s) available "
                        f"({', '.join(map(str, available))}); on a CPU add --host-devices {count}")
    return available[:count]


def describe(host_devices: int | None = None) -> list[str]:
    """Lines for `lstm-vg info`: versions, the backend, and the devices `run` trains on."""
    import platform

    import jax
    import jaxlib
    import optax

    from lstm_vg import __version__

    devices = choose(None, host_devices)
    return [f"lstm-vg {__version__} · python {platform.python_version()} · jax {jax.__version__} "
            f"· jaxlib {jaxlib.__version__} · optax {optax.__version__}",
            f"backend: {jax.default_backend()} · {cpu_cores()} CPU core(s) · {len(devices)} device(s)",
            *[f"  {d.id}: {d.device_kind} ({d.platform})" for d in devices]]
