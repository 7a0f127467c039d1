"""Training the TSPO temporal agent (``tspo-eval train``): policy optimisation of the selector head
with a frozen answering model as the reward, and TempSamp-R1's off-policy guidance.

Modules, bottom-up: ``policy`` (scores with grad, Gumbel-top-K, log-probabilities, loss),
``rewards``, ``advantages`` (group normalisation, TempSamp-R1 variants), ``schedules``, ``data``
(items, candidates, oracle), ``needles``, ``frame_store`` (decoded candidate frames on disk),
``rollout`` (one prompt), ``evaluation``, ``metrics``, ``checkpointing``, ``options``, ``trainer``.
The answerers (``--answerer``, the synthetic-reader included) come from :mod:`tspo_eval.answering`.
"""
from tspo_eval.training.options import TrainOptions

__all__ = ["TrainOptions", "train"]


def __getattr__(name: str):
    if name == "train":
        from tspo_eval.training.trainer import train

        return train
    raise AttributeError(name)
