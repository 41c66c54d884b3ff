"""A sweep's jobs checked on one composition where they differ only in values.

Composing a job's config takes about 75 ms on the project's machine (Hydra reads, merges and
types the config files), so checking a 16-job sweep before it starts took 1.2 s and a 100-job
one would take 7.5. A sweep's jobs mostly differ in values (seeds, learning rates), which
Hydra sets one by one on the composed defaults, after every group is chosen. :class:`SweptValues`
keeps the first job's composed config and gives each next job a copy with the overrides in
which it differs set as Hydra sets them (its override parser and its setter): 0.12 against
1.25 s for the 16 jobs. Anything else is composed in full: a job that differs in a group, a
Hydra key, a list or mapping, an added or deleted key (``+``/``~``), or in a value that does
not set cleanly (its full composition then gives Hydra's own message).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import Container, DictConfig, OmegaConf

from ..compose import open_mapping_overrides
from ..overrides import key_of


class SweptValues:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.base: DictConfig | None = None
        self.base_job: list[str] = []
        self._parser = OverridesParser.create()

    def remember(self, cfg: DictConfig, job: list[str]) -> None:
        """A job's config composed in full: the base of the next jobs' (the first one)."""
        if self.enabled and self.base is None:
            self.base, self.base_job = cfg, list(job)

    def config(self, job: list[str]) -> DictConfig | None:
        """This job's config from the base, the values it differs in set; None: compose it
        in full."""
        base = self.base
        if base is None or sorted(map(key_of, job)) != sorted(map(key_of, self.base_job)):
            return None
        differ = open_mapping_overrides([o for o in job if o not in self.base_job])
        for o in differ:
            key = key_of(o)
            value = OmegaConf.select(base, key, default=base)  # base: no such key
            if o.startswith(("+", "~")) or "/" in key or key.startswith("hydra"):
                return None
            if value is base or isinstance(value, Container):  # a group's node, a list
                return None
        try:
            cfg = copy.deepcopy(base)
            ConfigLoaderImpl._apply_overrides_to_config(self._parser.parse_overrides(differ), cfg)
        except Exception:  # noqa: BLE001  # the full composition says what is wrong
            return None
        return cfg


def remembered(load: Callable[[DictConfig, list[str]], DictConfig]) -> Callable:
    """Hydra's ``load_sweep_config`` (a job's whole config, Hydra's node too) composing each
    job once, and a job that differs from the sweep's first only in values from a copy of it:
    Hydra's sweeper composes every job of a batch to validate it just before a launcher
    composes them again (about 75 ms a job here). The copy's record of its overrides
    (``hydra.overrides.task``, ``hydra.job.override_dirname``) is set as Hydra sets it."""
    done: dict = {}
    swept: dict[int, SweptValues] = {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        if key not in done:
            values = swept.setdefault(id(master_config), SweptValues())
            cfg = values.config(list(sweep_overrides))
            if cfg is None:
                cfg = load(master_config, sweep_overrides)
                values.remember(cfg, list(sweep_overrides))
            else:
                _record_overrides(cfg, list(sweep_overrides))
                OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
            done[key] = cfg
        return copy.deepcopy(done[key])

    return load_sweep_config


def _record_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """``hydra.overrides.task`` and ``hydra.job.override_dirname`` of a job with these
    overrides (its Hydra overrides are the base job's: it differs only in values)."""
    app = [
        o for o in OverridesParser.create().parse_overrides(overrides) if not o.is_hydra_override()
    ]
    dirname = cfg.hydra.job.config.override_dirname
    cfg.hydra.overrides.task = [o.input_line for o in app]
    cfg.hydra.job.override_dirname = get_overrides_dirname(
        overrides=app,
        kv_sep=dirname.kv_sep,
        item_sep=dirname.item_sep,
        exclude_keys=dirname.exclude_keys,
    )
