import pytest
import torch


@pytest.fixture
def one_thread():
    """Bitwise comparisons rely on one CPU thread, as engine.loop trains."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
