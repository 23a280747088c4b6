"""Semi-supervised fine-tuning: the unlabeled frames used *while* fine-tuning, one module per
method and one registry line (as the auxiliary tasks): :mod:`.mean_teacher`, :mod:`.fixmatch`,
:mod:`.temporal`; :mod:`.base` is what a method is, :mod:`.perturb` the named perturbations,
:mod:`.unlabeled` the frames and pairs they draw; the settings are ``endopat.config.SemiConfig``."""

from endopat.semi.fixmatch import FixMatch
from endopat.semi.mean_teacher import MeanTeacher
from endopat.semi.temporal import Temporal

SEMI = {m.name: m for m in (MeanTeacher, FixMatch, Temporal)}
