"""``hydra/launcher=packed``: registered with Hydra here, where Hydra looks for plugins (a
plugin's class must live in the ``hydra_plugins`` package); the work is done in
``sharedppo.cli.packed``."""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is
# in sys.modules, where a dataclass with string annotations cannot resolve its module.
from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class PackedLauncherConf:
    _target_: str = "hydra_plugins.sharedppo_launcher.packed_launcher.PackedLauncher"
    # The most jobs one pack (one process) trains; jobs that cannot share a pack train alone.
    max_pack: int = 64
    # Packs at once, each a process of its own; 0: one per CPU this process may use.
    n_jobs: int = 0


ConfigStore.instance().store(
    group="hydra/launcher", name="packed", node=PackedLauncherConf, provider="sharedppo"
)


class PackedLauncher(Launcher):
    def __init__(self, max_pack: int = 64, n_jobs: int = 0) -> None:
        self.max_pack = max_pack
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        # The task function is not called: a pack trains its jobs together (train_pack).
        self.config = config
        self.hydra_context = hydra_context
        # Imported here, as in launch.
        from sharedppo.cli.swept import remembered

        loader = hydra_context.config_loader
        loader.load_sweep_config = remembered(loader.load_sweep_config)  # type: ignore[method-assign]

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        # Imported here: Hydra imports every installed plugin in every Hydra app, and this one
        # loads sharedppo (torch) only when it launches.
        from sharedppo.cli.packed import launch

        assert self.config is not None and self.hydra_context is not None
        return launch(
            self.config,
            self.hydra_context,
            self.n_jobs,
            self.max_pack,
            job_overrides,
            initial_job_idx,
        )
