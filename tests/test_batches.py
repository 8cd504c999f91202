"""Batches: sizes, drop_last, seeded per-epoch order, resuming with ``start``, and device placement."""

from __future__ import annotations

import pytest
import torch

from deeprecipes.data import Batches


def make(n: int = 10, **kwargs) -> Batches:
    x = torch.arange(n)
    y = x * 2
    kwargs.setdefault("batch_size", 3)
    return Batches(x, y, **kwargs)


def indices(batches) -> list[list[int]]:
    return [xb.tolist() for xb, *_ in batches]


@pytest.mark.parametrize(
    "n, batch_size, drop_last, sizes",
    [
        (10, 3, False, [3, 3, 3, 1]),
        (10, 3, True, [3, 3, 3]),
        (9, 3, False, [3, 3, 3]),
        (9, 3, True, [3, 3, 3]),
        (2, 5, False, [2]),
        (2, 5, True, []),
        (55000, 128, True, [128] * 429),  # the old tutorials' drop of the last 88 images
    ],
)
@pytest.mark.parametrize("shuffle", [False, True])
def test_sizes(n, batch_size, drop_last, sizes, shuffle):
    b = make(n, batch_size=batch_size, drop_last=drop_last, shuffle=shuffle)
    assert len(b) == len(sizes)
    assert [len(xb) for xb, _ in b.epoch(0)] == sizes


def test_sequential_without_shuffle():
    b = make(7, batch_size=3, shuffle=False)
    assert indices(b.epoch(0)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert indices(b.epoch(5)) == indices(b.epoch(0))
    assert b.order(0) is None
    assert indices(b) == indices(b.epoch(0))


def test_pairs_stay_aligned():
    for xb, yb in make(100, batch_size=7, shuffle=True, seed=3).epoch(2):
        assert yb.equal(xb * 2)


def test_same_seed_and_epoch_same_order():
    a, b = make(50, seed=7), make(50, seed=7)
    for epoch in range(3):
        assert indices(a.epoch(epoch)) == indices(b.epoch(epoch))
        assert indices(a.epoch(epoch)) == indices(a.epoch(epoch))


def test_order_differs_across_epochs_and_seeds():
    b = make(50, seed=0)
    orders = [indices(b.epoch(e)) for e in range(4)]
    assert all(orders[i] != orders[j] for i in range(4) for j in range(i + 1, 4))
    assert indices(make(50, seed=1).epoch(0)) != orders[0]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_start_skips_exactly_that_many_batches(drop_last, shuffle):
    b = make(23, batch_size=4, shuffle=shuffle, drop_last=drop_last, seed=5)
    whole = indices(b.epoch(3))
    for start in range(len(b) + 2):
        assert indices(b.epoch(3, start=start)) == whole[start:]


def test_every_sample_once_per_epoch():
    b = make(103, batch_size=10, shuffle=True, seed=11)
    for epoch in range(3):
        seen = torch.cat([xb for xb, _ in b.epoch(epoch)])
        assert len(seen) == 103
        assert seen.sort().values.equal(torch.arange(103))


def test_drop_last_sees_each_sample_at_most_once():
    b = make(103, batch_size=10, shuffle=True, drop_last=True, seed=11)
    seen = torch.cat([xb for xb, _ in b.epoch(0)])
    assert len(seen) == 100 and len(set(seen.tolist())) == 100


DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shuffle", [False, True])
def test_tensors_stay_on_their_device(device, shuffle):
    x = torch.zeros(20, 4, device=device)
    y = torch.zeros(20, dtype=torch.int64, device=device)
    b = Batches(x, y, batch_size=6, shuffle=shuffle)
    batches = list(b.epoch(1))
    assert [len(xb) for xb, _ in batches] == [6, 6, 6, 2]
    for xb, yb in batches:
        assert xb.device.type == torch.device(device).type and yb.device.type == torch.device(device).type
        assert xb.shape[1:] == (4,) and yb.dtype == torch.int64
    if shuffle:
        assert b.order(1).device.type == torch.device(device).type


def test_single_tensor():
    b = Batches(torch.arange(5), batch_size=2, shuffle=False)
    assert [t for (t,) in b.epoch(0)][-1].tolist() == [4]


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {"batch_size": 2}),
        ((torch.zeros(3), torch.zeros(4)), {"batch_size": 2}),
        ((torch.zeros(3),), {"batch_size": 0}),
    ],
)
def test_bad_arguments(args, kwargs):
    with pytest.raises(ValueError):
        Batches(*args, **kwargs)
