"""``python -m endopat`` (also what torchrun launches: ``torchrun --nproc_per_node=N -m endopat ...``)."""

from endopat.cli import main

main()
