import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing when pytest runs.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
