"""Train / val / test splits that never put near-duplicate frames on both sides.

Consecutive frame IDs are often frames of one acquisition (PSFHS, IUGC 2025), and some datasets
hold the same frame twice under IDs far apart (measured on PSFHS: identical pixels at 04316 and
04398, 04943 and 05000). A random frame split would then test on frames the model was trained
on. Frames are therefore grouped, and whole groups are assigned to a subset:

- an acquisition is a run of consecutive IDs whose neighbours look alike (perceptual-hash
  Hamming distance at most ``same_acquisition_distance``);
- acquisitions holding a near-duplicate pair anywhere (distance at most ``duplicate_distance``)
  are merged into one group.
"""
from __future__ import annotations

import re

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..geometry import aop_from_landmarks
from .images import read_grey
from .manifest import true_points

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def _frame_order_key(filename: str) -> tuple[str, int, str]:
    """Sort key (prefix, trailing number or -1, name): ``03744.png`` -> ``("", 3744, ...)``."""
    match = _TRAILING_NUMBER.match(filename.rsplit(".", 1)[0])
    return (match[1], int(match[2]), filename) if match else (filename, -1, filename)


def perceptual_hashes(image_paths, hash_size: int) -> np.ndarray:
    """Bits (N, hash_size**2) of ``imagehash.phash`` of each frame, as uint8 0/1."""
    return np.stack([
        imagehash.phash(Image.fromarray(read_grey(path)), hash_size=hash_size).hash.ravel()
        for path in image_paths]).astype(np.uint8)


def id_blocks(filenames, block: int) -> np.ndarray:
    """A label per frame for its stretch of ``block`` consecutive IDs: the file name's prefix and
    trailing number // ``block`` (``03744.png`` and ``03749.png`` share one at 50; ``03750.png``
    starts the next). A name without a trailing number is a stretch of its own. Consecutive IDs
    are one stretch of recording (a session, a setting), so a dataset's frames kept apart for
    unseen evaluation may be whole blocks of them, which no study's split sees."""
    if block < 1:
        raise ValueError(f"a block holds at least one ID, got {block}")
    labels = []
    for name in filenames:
        prefix, number, whole = _frame_order_key(name)
        labels.append(f"{prefix}#{number // block}" if number >= 0 else whole)
    return np.array(labels, dtype=object)


def hamming_distances(bits: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """(N, M) Hamming distances between rows of 0/1 bits and rows of ``other`` (default: ``bits``
    itself, N x N), by two matrix products."""
    ones = bits.astype(np.float32)
    others = ones if other is None else other.astype(np.float32)
    return np.rint(ones @ (1 - others).T + (1 - ones) @ others.T).astype(np.int64)


def nearest_distances(query: np.ndarray, reference: np.ndarray, apart=None) -> np.ndarray:
    """Each query row's Hamming distance to its nearest reference row (bits as from
    ``perceptual_hashes``); ``apart`` (query labels, reference labels): count only reference rows
    whose label differs from the query row's. Infinite where no reference row counts."""
    distances = hamming_distances(query, reference).astype(np.float64)
    if apart is not None:
        query_labels, reference_labels = (np.asarray(labels) for labels in apart)
        distances[query_labels[:, None] == reference_labels[None, :]] = np.inf
    if distances.shape[1] == 0:
        return np.full(len(query), np.inf)
    return distances.min(axis=1)


def _connected(n_nodes: int, pairs_a: np.ndarray, pairs_b: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(pairs_a)), (pairs_a, pairs_b)), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


def acquisition_groups(labels_df: pd.DataFrame, hash_size: int, same_acquisition_distance: int,
                       duplicate_distance: int = 4, hashes: np.ndarray | None = None) -> np.ndarray:
    """A group number per row of ``labels_df`` (same row order), numbered in filename order.

    Frames are sorted by (prefix, trailing number) of their file names; a new acquisition starts
    where the number is not the previous one + 1 (or the prefix changes) or where the phash
    distance to the previous frame exceeds ``same_acquisition_distance``. Acquisitions holding
    a pair of frames within ``duplicate_distance`` of each other are then merged.
    ``hashes`` (from ``perceptual_hashes``, rows in ``labels_df`` order) skips the hashing.
    """
    n = len(labels_df)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if hashes is None:
        hashes = perceptual_hashes(labels_df["image_path"], hash_size)
    keys = [_frame_order_key(name) for name in labels_df["filename"]]
    order = np.array(sorted(range(n), key=keys.__getitem__))
    keys = [keys[i] for i in order]
    distances = hamming_distances(hashes[order])

    new_acquisition = [
        cur[0] != prev[0] or prev[1] < 0 or cur[1] != prev[1] + 1
        or distances[k, k + 1] > same_acquisition_distance
        for k, (prev, cur) in enumerate(zip(keys, keys[1:]))]
    acquisition = np.concatenate([[0], np.cumsum(new_acquisition)])

    a, b = np.nonzero(np.triu(distances <= duplicate_distance, 1))
    merged = _connected(acquisition[-1] + 1, acquisition[a], acquisition[b])[acquisition]
    groups = np.empty(n, dtype=np.int64)
    groups[order] = pd.factorize(merged)[0]  # numbered by first frame in filename order
    return groups


def aop_strata(groups: np.ndarray, aop: np.ndarray, n_strata: int) -> np.ndarray:
    """A stratum per frame: which of ``n_strata`` equally populated bins its acquisition's mean
    AoP falls in, among the acquisitions (0 = the lowest angles). Acquisitions with no defined
    AoP form one stratum of their own, after the others.

    Why AoP: the error grows with the angle (the head's tangent point is harder to place at wide
    angles; the report's by_aop_range table), and the AoP distribution is skewed, so a random
    draw of ~50 acquisitions can give one held-out subset many more wide angles than the other.
    Measured on the 1082 real frames thinned to 2 per acquisition, seed 42: validation AoP mean
    104 deg (90th percentile 149) against 98 (127) on test, and the radii calibrated on that
    validation split over-covered the test split (0.92-0.99 at a 0.9 target)."""
    ids, codes = np.unique(groups, return_inverse=True)
    sums = np.bincount(codes, weights=np.nan_to_num(aop), minlength=len(ids))
    defined = np.bincount(codes, weights=np.isfinite(aop), minlength=len(ids))
    means = np.divide(sums, defined, out=np.full(len(ids), np.nan), where=defined > 0)
    stratum = np.full(len(ids), n_strata, dtype=np.int64)
    finite = np.isfinite(means)
    if finite.any():
        # Ranks, not values: equal counts of acquisitions per stratum even with tied angles.
        ranks = np.argsort(np.argsort(means[finite], kind="stable"), kind="stable")
        stratum[finite] = ranks * n_strata // finite.sum()
    return stratum[codes]


def assign_groups(groups: np.ndarray, test_fraction: float, val_fraction: float,
                  seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Subset name per frame: groups in a seeded random order fill test, then val, then train.

    A group joins a subset when it brings that subset's frame count closer to its target, so
    each fraction ends near its target (within about half a group), and only when it is at
    most half that target: a held-out subset rests on several acquisitions, never on one large
    one (frames of an acquisition are near-copies, so one acquisition is one piece of evidence).
    A held-out subset that no group is small enough for (a tiny dataset) gets the smallest
    remaining group, so it is never empty.

    ``strata`` (one label per frame, the same for a group's frames; e.g. ``aop_strata``): the
    strata are taken in turn, groups in random order within each, and the target a group is
    measured against is the fraction of the frames of its stratum and all before it. Each
    subset then draws its share of every stratum (stratified sampling), and a stratum's
    rounding carries over to the next instead of adding up.
    """
    group_ids, first, sizes = np.unique(groups, return_index=True, return_counts=True)
    stratum = np.zeros(len(group_ids), dtype=np.int64) if strata is None else np.asarray(strata)[first]
    order = np.random.default_rng(seed).permutation(len(group_ids))
    order = order[np.argsort(stratum[order], kind="stable")]  # strata in turn, random within each
    stratum_codes = np.unique(stratum, return_inverse=True)[1]
    frames_through = np.cumsum(np.bincount(stratum_codes, weights=sizes))  # frames of strata <= k
    fractions = {"test": test_fraction, "val": val_fraction}
    totals = {name: fraction * len(groups) for name, fraction in fractions.items()}
    filled = dict.fromkeys(fractions, 0)
    subset_of_group = {}
    for index in order:
        through = frames_through[stratum_codes[index]]
        subset = next((name for name, fraction in fractions.items()
                       if filled[name] + sizes[index] / 2 < fraction * through
                       and sizes[index] <= totals[name] / 2),
                      "train")
        if subset != "train":
            filled[subset] += sizes[index]
        subset_of_group[group_ids[index]] = subset
    for name, target in totals.items():
        spare = [i for i in np.argsort(sizes, kind="stable") if subset_of_group[group_ids[i]] == "train"]
        if target > 0 and not filled[name] and len(spare) > 1:
            subset_of_group[group_ids[spare[0]]] = name
            filled[name] += sizes[spare[0]]
    return np.array([subset_of_group[g] for g in groups], dtype=object)


def cap_groups(groups: np.ndarray, max_frames: int | None, seed: int) -> np.ndarray:
    """Which frames a cap of ``max_frames`` keeps: whole groups, drawn in a seeded random order
    (so from across the whole set, never its first IDs), as long as they fit under the cap."""
    keep = np.ones(len(groups), dtype=bool)
    if max_frames is None or max_frames >= len(groups):
        return keep
    ids, sizes = np.unique(groups, return_counts=True)
    chosen, total = set(), 0
    for index in np.random.default_rng([seed, 1]).permutation(len(ids)):
        if total + sizes[index] <= max_frames:
            chosen.add(ids[index])
            total += sizes[index]
    return np.isin(groups, list(chosen))


def thin_groups(groups: np.ndarray, filenames, per_group: int | None) -> np.ndarray:
    """Which frames a cap of ``per_group`` frames per acquisition keeps: that many, evenly spaced
    in filename order (the first and the last of a longer run, and between them).

    Frames of one acquisition are near-copies: past a few they add compute, not evidence. At a
    fixed frame budget, thinning buys acquisitions, which is what the test estimate's and the
    calibration's precision rest on (measured on the 1082 real frames: 271 acquisitions, of which
    three hold 185 frames)."""
    keep = np.ones(len(groups), dtype=bool)
    if per_group is None:
        return keep
    keys = [_frame_order_key(name) for name in filenames]
    for group in np.unique(groups):
        rows = sorted(np.flatnonzero(groups == group), key=keys.__getitem__)
        if len(rows) > per_group:
            chosen = np.unique(np.round(np.linspace(0, len(rows) - 1, per_group)).astype(int))
            keep[np.setdiff1d(rows, np.asarray(rows)[chosen])] = False
    return keep


def split_frames(labels_df: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int,
                 hash_size: int, same_acquisition_distance: int, duplicate_distance: int = 4,
                 hashes: np.ndarray | None = None, max_frames: int | None = None,
                 max_frames_per_group: int | None = None, aop_strata_count: int = 1) -> pd.DataFrame:
    """``labels_df`` with ``group`` (see ``acquisition_groups``) and ``subset`` (train, val,
    test, or "unused" for frames past ``max_frames_per_group`` of an acquisition or outside a
    ``max_frames`` cap) columns; whole groups go to one subset, deterministically for a given
    seed. Thinning comes first, so the cap counts the frames that will be used; the subsets are
    then stratified by the acquisitions' AoP in ``aop_strata_count`` strata (1: not stratified),
    the AoP taken from the labelled landmarks (``aop_strata``)."""
    groups = acquisition_groups(labels_df, hash_size, same_acquisition_distance,
                                duplicate_distance, hashes)
    out = labels_df.copy()
    out["group"] = groups
    used = thin_groups(groups, labels_df["filename"], max_frames_per_group)
    used[used] = cap_groups(groups[used], max_frames, seed)
    out["subset"] = "unused"
    if used.any():
        strata = None
        if aop_strata_count > 1:
            strata = aop_strata(groups[used], aop_from_landmarks(true_points(labels_df[used])), aop_strata_count)
        out.loc[used, "subset"] = assign_groups(groups[used], test_fraction, val_fraction, seed, strata)
    return out
