"""Training: a run directory from a config (:func:`train`).

One topic a module: :mod:`~seqattn.train.loop` (the run: steps, validation, checkpoints, early
stopping), :mod:`~seqattn.train.schedule`, :mod:`~seqattn.train.loss`,
:mod:`~seqattn.train.prepare` (vocabularies and encoded data), :mod:`~seqattn.train.guided`
(the supervised alignment head), :mod:`~seqattn.train.state` (resume, the run directory),
:mod:`~seqattn.train.distributed` (torchrun) and :mod:`~seqattn.train.validate`.
"""

from seqattn.train.loop import Reporter, train

__all__ = ["Reporter", "train"]
