import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# the project's small real samples, read where they lie (never copied into the repository);
# ENDOPAT_SHARED_DATA points elsewhere, e.g. for a clone that does not sit beside shared/
SHARED_DATA = Path(os.environ.get("ENDOPAT_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real samples not found at {SHARED_DATA}")
    return SHARED_DATA
