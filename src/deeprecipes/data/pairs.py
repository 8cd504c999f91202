"""Pairs of labelled samples for metric learning (Siamese networks): genuine pairs share a label, impostors don't.

``sample_pairs`` gives every sample of a mini-batch a partner from the same batch, with a chosen share of genuine
pairs (balanced by default); ``fixed_pairs`` draws a reproducible set of pairs over a whole split for evaluation.
Both draw from a ``torch.Generator`` when one is given, else from torch's global CPU generator (the one the engine
checkpoints, so a resumed run draws the same pairs as one never stopped). Work is O(n), no n x n matrices.
"""

from __future__ import annotations

import torch

__all__ = ["draw_partners", "sample_pairs", "fixed_pairs"]


def draw_partners(
    labels: torch.Tensor, genuine: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A partner index for every sample: uniform among the *other* samples with the same label where ``genuine``,
    uniform among the samples with another label elsewhere.

    Parameters
    ----------
    labels : Tensor, shape (n,)
        Integer class labels.
    genuine : Tensor of bool, shape (n,)
        Which samples want a genuine partner. A sample alone in its class gets an impostor instead; in a set of a
        single class every partner is genuine; a set of one sample is paired with itself.
    generator : torch.Generator, optional
        CPU generator; default torch's global one.

    Returns
    -------
    partner : Tensor of int64, shape (n,)
        Indices into ``labels`` (on the CPU).
    same : Tensor of bool, shape (n,)
        Whether each pair is genuine.
    """
    y = labels.detach().reshape(-1).cpu().long()
    want = genuine.detach().reshape(-1).cpu().bool()
    n = len(y)
    if len(want) != n:
        raise ValueError(f"genuine has {len(want)} entries for {n} labels")
    if n == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
    order = torch.sort(y, stable=True).indices  # sorted position -> sample index
    classes, counts = torch.unique_consecutive(y[order], return_counts=True)
    offsets = torch.cumsum(counts, 0) - counts  # first sorted position of each class
    slot = torch.searchsorted(classes, y)
    cnt, off = counts[slot], offsets[slot]
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n) - offsets.repeat_interleave(counts)  # position of each sample within its class
    want = (want & (cnt > 1)) | (cnt == n)  # no other class member: impostor; no other class: genuine
    u = torch.rand(n, generator=generator)
    # genuine: one of the cnt - 1 other members of the class, skipping the sample itself
    rg = (u * (cnt - 1)).long().clamp(max=(cnt - 2).clamp_min(0))
    pos_genuine = torch.where(cnt > 1, off + rg + (rg >= rank).long(), off)
    # impostor: one of the n - cnt samples outside the class block [off, off + cnt)
    ri = (u * (n - cnt)).long().clamp(max=(n - cnt - 1).clamp_min(0))
    pos_impostor = torch.where(ri < off, ri, ri + cnt)
    partner = order[torch.where(want, pos_genuine, pos_impostor)]
    return partner, y[partner] == y


def sample_pairs(
    labels: torch.Tensor,
    genuine_fraction: float = 0.5,
    *,
    pairing: str = "balanced",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair every sample of a batch with a partner from the same batch.

    ``pairing="balanced"``: exactly ``round(n * genuine_fraction)`` samples, chosen at random, get a genuine
    partner and the rest an impostor (fewer genuine ones only when a class has a single member in the batch).
    ``pairing="random"``: the partner is any other sample, as ywpkwon/siamese_tf_mnist paired two independent
    batches (about 10% genuine pairs on MNIST).

    Returns ``(partner, same)`` as :func:`draw_partners`.
    """
    n = len(labels)
    if pairing == "random":
        if n < 2:
            return torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.bool)
        r = (torch.rand(n, generator=generator) * (n - 1)).long().clamp(max=n - 2)
        partner = r + (r >= torch.arange(n)).long()
        y = labels.detach().reshape(-1).cpu()
        return partner, y[partner] == y
    if pairing != "balanced":
        raise ValueError(f"pairing must be 'balanced' or 'random', got {pairing!r}")
    if not 0.0 <= genuine_fraction <= 1.0:
        raise ValueError(f"genuine_fraction must be in [0, 1], got {genuine_fraction}")
    want = torch.zeros(n, dtype=torch.bool)
    want[torch.randperm(n, generator=generator)[: round(n * genuine_fraction)]] = True
    return draw_partners(labels, want, generator)


def fixed_pairs(
    labels: torch.Tensor, n_pairs: int = 10000, *, seed: int = 0, genuine_fraction: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A reproducible, balanced set of pairs over a whole split: the same for every run and every model.

    Anchors are ``n_pairs`` distinct samples (all of them, shuffled, when ``n_pairs`` >= the split's size);
    partners are drawn from the whole split. Returns ``(anchor, partner, same)``, indices on the CPU.
    """
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    anchor = torch.randperm(n, generator=g)[: min(n_pairs, n)]
    want = torch.zeros(n, dtype=torch.bool)
    want[anchor[torch.randperm(len(anchor), generator=g)[: round(len(anchor) * genuine_fraction)]]] = True
    partner, same = draw_partners(labels, want, g)
    return anchor, partner[anchor], same[anchor]
