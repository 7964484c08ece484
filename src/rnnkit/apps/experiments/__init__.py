"""Experiments: why gated recurrent cells exist (the vanishing gradient), on three tasks."""

from rnnkit.apps.experiments.tasks import adding_problem, copy_task, sequential_mnist
from rnnkit.apps.experiments.vanishing_gradient import (
    ExperimentConfig,
    SequenceModel,
    hidden_gradient_norms,
    run_experiment,
    state_gradient_norms,
)

__all__ = [
    "ExperimentConfig",
    "SequenceModel",
    "adding_problem",
    "copy_task",
    "hidden_gradient_norms",
    "run_experiment",
    "sequential_mnist",
    "state_gradient_norms",
]
