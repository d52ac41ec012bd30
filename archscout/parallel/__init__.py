"""Parallel evaluation: `archscout run --workers N` / `--ray-address ADDR` (Ray tasks).

`connect(...)` is what the CLI calls before it opens the study: it returns None for the serial
in-process path (one worker and no address; Ray is then never imported), else a connected
`ray_pool.RayPool`, or raises `RayPoolError` with one line. `driver.ParallelDriver` schedules the
experiments. What is not here: the loop's stages (loop.py).
"""

from __future__ import annotations

from pathlib import Path


class ParallelError(ValueError):
    """A bad --workers / --ray-address (one line; nothing was written)."""


def connect(study: Path, overrides: dict, workers: int, address: str | None):
    """None (serial), or a RayPool connected for this study's preset and device."""
    from archscout.config import ConfigError, get_preset
    from archscout.study import load_config

    if workers < 1:
        raise ParallelError(f"--workers must be at least 1; got {workers}")
    try:
        config = load_config(study, overrides)
        preset = get_preset(config.preset, config.presets_file)
    except ConfigError as err:
        raise ParallelError(str(err)) from None
    address = address or config.ray.address
    if workers == 1 and address is None:
        return None
    from archscout.parallel.ray_pool import RayPool, RayPoolError

    try:
        return RayPool.connect(workers, preset, device=config.device, address=address,
                               runtime_env=config.ray.runtime_env, max_retries=config.ray.max_retries)
    except RayPoolError as err:
        raise ParallelError(str(err)) from None
