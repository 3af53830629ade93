"""core.runtime: one rule for seeds, devices and progress."""
import pytest
import torch

from sv2tts.core.errors import InputError
from sv2tts.core.runtime import check_seed, derive_seed, make_generator, progress_bar, resolve_device


def test_device_validation():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device(None) == resolve_device("auto")
    for bad in ("tpu", "mps", 3):
        with pytest.raises(InputError, match="device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_seeds():
    assert check_seed(None) is None and check_seed(7) == 7
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InputError, match="seed"):
            check_seed(bad)
    a = torch.rand(3, generator=make_generator(5))
    torch.manual_seed(5)
    assert torch.equal(a, torch.rand(3))  # the same stream as torch.manual_seed
    assert not torch.equal(torch.rand(3, generator=make_generator(None)), torch.rand(3, generator=make_generator(None)))
    assert derive_seed(None, 0) is None
    assert derive_seed(3, 0) == derive_seed(3, 0) != derive_seed(3, 1) != derive_seed(4, 1)


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys):
    assert progress_bar(False, 10, "x") is None
    assert progress_bar(None, 10, "x") is None  # stderr is not a terminal under pytest
    bar = progress_bar(True, 10, "working")
    bar.update(10)
    bar.close()
    assert "working" in capsys.readouterr().err


def test_one_seed_range_for_every_stage():
    assert check_seed(2 ** 32 - 1) == 2 ** 32 - 1
    for bad in (2 ** 32, 2 ** 64):
        with pytest.raises(InputError, match="from 0 to 4294967295"):
            check_seed(bad)


def test_thread_choice_keeps_what_is_faster_and_keeps_probing():
    from sv2tts.core.runtime import ThreadChoice

    def run(choice, cost, pieces):
        used = []
        for _ in range(pieces):
            n = choice.next()
            used.append(n)
            choice.record(n, cost[n] * 256, 256)
        return used

    idle = ThreadChoice(2, probe=8)  # two threads are faster: one is only tried on probes
    assert run(idle, {2: 1.0, 1: 1.6}, 17) == [2, 2, 1, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 1, 2]
    busy = ThreadChoice(2, probe=8)  # a core taken: barriers make two threads slower
    assert run(busy, {2: 3.5, 1: 1.7}, 17) == [2, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1]
    assert run(ThreadChoice(1), {1: 1.0}, 5) == [1] * 5


def test_torch_threads_sets_the_count_for_the_block_and_restores_it():
    import torch

    from sv2tts.core.runtime import torch_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError("fails inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
