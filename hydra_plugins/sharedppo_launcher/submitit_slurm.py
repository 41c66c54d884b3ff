"""``hydra/launcher=slurm`` (conf/hydra/launcher/slurm.yaml): Hydra's submitit SLURM launcher,
whose job of several tasks (``tasks_per_node`` x ``nodes``) is one run across processes, as
under torchrun (``sharedppo.cli.tasks``). A job of one task runs as under Hydra's own launcher.

Registered with Hydra here, where Hydra looks for plugins; needs hydra-submitit-launcher (the
``sweep`` extra), without which the class is no launcher (``sharedppo.compose`` registers it
only when it is one).
"""

from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        SlurmLauncher as SubmititSlurmLauncher,
    )
except ImportError:  # no sweep extra: Hydra's plugin scan must still import this module
    SubmititSlurmLauncher = object


class SlurmLauncher(SubmititSlurmLauncher):
    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """One task of a job, in the process submitit started for it on the cluster."""
        # Imported here: Hydra imports every installed plugin in every Hydra app, and this one
        # loads sharedppo (torch) and submitit only in a job's task.
        import submitit
        from submitit.core.utils import JobPaths

        from sharedppo.cli.tasks import join_tasks, private_log

        job = submitit.JobEnvironment()
        first = JobPaths(job.paths.folder, job_id=job.job_id, task_id=0)
        private = join_tasks(job, first.result_pickle)
        if private is not None:  # a rank other than 0: Hydra's log is not the job folder's
            assert self.hydra_context is not None
            loader = self.hydra_context.config_loader
            load = loader.load_sweep_config

            def load_sweep_config(master_config: Any, overrides: list[str]) -> Any:
                return private_log(load(master_config, overrides), private)

            loader.load_sweep_config = load_sweep_config  # type: ignore[method-assign]
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
