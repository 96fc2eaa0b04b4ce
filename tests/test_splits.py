"""Grouped train/val/test splits: no near-duplicate frames on both sides, fractions near target."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataset_builders import write_dataset
from iugc.config import load_preset
from iugc.data.labels import load_labels
from iugc.data.splits import (acquisition_groups, aop_strata, assign_groups, hamming_distances, id_blocks,
                              nearest_distances, perceptual_hashes, split_frames)

SPLIT = load_preset("paper")["split"]
SEED = load_preset("paper")["seed"]
# Independent near-copy check: a finer hash (256 bits) than the one the split uses. Pairs this
# close differ by about 2 grey levels on average (measured on psfhs_aop thumbnails).
FINE_HASH_SIZE, FINE_NEAR_COPY = 16, 10


@pytest.fixture(scope="module")
def real(psfhs_root):
    """Labels of psfhs_aop with their perceptual hashes, computed once for this module."""
    labels = load_labels(psfhs_root)
    hashes = perceptual_hashes(labels["image_path"], SPLIT["hash_size"])
    fine = hamming_distances(perceptual_hashes(labels["image_path"], FINE_HASH_SIZE))
    return labels, hashes, fine


def _split(real, seed):
    labels, hashes, _ = real
    return split_frames(labels, SPLIT["test_fraction"], SPLIT["val_fraction"], seed,
                        SPLIT["hash_size"], SPLIT["same_acquisition_distance"], hashes=hashes)


@pytest.mark.parametrize("seed", [SEED, 1, 2])
def test_no_near_copies_across_subsets_of_real_frames(real, seed):
    labels, hashes, fine = real
    split = _split(real, seed)
    subset = split["subset"].to_numpy()
    across = subset[:, None] != subset[None, :]
    assert not (across & (hamming_distances(hashes) <= 4)).any()
    assert not (across & (fine <= FINE_NEAR_COPY)).any()
    assert (split.groupby("group")["subset"].nunique() == 1).all()  # whole groups only
    # Known duplicates of psfhs_aop far apart in ID (identical pixels) share a subset.
    by_name = split.set_index("filename")["subset"]
    assert by_name["04316.png"] == by_name["04398.png"]
    assert by_name["04943.png"] == by_name["05000.png"]


def test_fractions_near_target_and_runs_kept_together(real):
    split = _split(real, SEED)
    fractions = split["subset"].value_counts(normalize=True)
    assert fractions["test"] == pytest.approx(SPLIT["test_fraction"], abs=0.02)
    assert fractions["val"] == pytest.approx(SPLIT["val_fraction"], abs=0.02)
    ids = split["filename"].str.removesuffix(".png").astype(int).to_numpy()
    subset = split["subset"].to_numpy()
    neighbours = np.diff(ids) == 1
    # A split of single frames would keep the sum of squared fractions of them together (0.44 at
    # 0.6 / 0.2 / 0.2); consecutive IDs that look unlike each other may part, most must not.
    chance = sum(f ** 2 for f in fractions)
    assert (subset[1:] == subset[:-1])[neighbours].mean() > chance + 0.3


def test_deterministic_per_seed(real):
    first, again, other = _split(real, 7), _split(real, 7), _split(real, 8)
    pd.testing.assert_frame_equal(first, again)
    assert (first["subset"] != other["subset"]).any()
    assert (first["group"] == other["group"]).all()


def _bits(rng, like=None, flips=0):
    bits = rng.integers(0, 2, 64, dtype=np.uint8) if like is None else like.copy()
    bits[rng.choice(64, flips, replace=False)] ^= 1
    return bits


def test_acquisitions_break_at_gaps_changes_and_prefixes_and_merge_duplicates():
    rng = np.random.default_rng(0)
    a1 = _bits(rng)
    a5 = _bits(rng)
    frames = {
        "a1.png": a1, "a2.png": _bits(rng, a1, 2),
        "a3.png": _bits(rng),                        # looks unlike a2: new acquisition
        "a5.png": a5, "a6.png": _bits(rng, a5, 3),   # ID gap, then a look-alike neighbour
        "a9.png": _bits(rng, a1, 1),                 # far from a1 in ID, a near-copy of it
        "b7.png": _bits(rng, a5, 20),                # other prefix, unlike everything
    }
    shuffled = ["a9.png", "b7.png", "a3.png", "a1.png", "a6.png", "a2.png", "a5.png"]
    labels = pd.DataFrame({"filename": shuffled})
    hashes = np.stack([frames[name] for name in shuffled])
    groups = acquisition_groups(labels, 8, same_acquisition_distance=10, duplicate_distance=4,
                                hashes=hashes)
    expected = {"a1.png": 0, "a2.png": 0, "a3.png": 1, "a5.png": 2, "a6.png": 2, "a9.png": 0,
                "b7.png": 3}
    assert list(groups) == [expected[name] for name in shuffled]


def test_assign_groups_fills_targets_with_whole_groups():
    groups = np.repeat(np.arange(40), np.random.default_rng(1).integers(1, 6, 40))
    subsets = assign_groups(groups, test_fraction=0.2, val_fraction=0.1, seed=3)
    assert set(subsets) == {"train", "val", "test"}
    for subset, target in [("test", 0.2), ("val", 0.1)]:
        assert abs((subsets == subset).sum() - target * len(groups)) <= 5 / 2
    assert all(len(set(subsets[groups == g])) == 1 for g in np.unique(groups))


def test_hamming_distances_count_differing_bits():
    bits = np.random.default_rng(2).integers(0, 2, (5, 64), dtype=np.uint8)
    expected = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(bits), expected)


def test_hamming_distances_between_two_sets_and_the_nearest_one():
    rng = np.random.default_rng(3)
    query, reference = rng.integers(0, 2, (4, 64), dtype=np.uint8), rng.integers(0, 2, (6, 64), dtype=np.uint8)
    expected = (query[:, None, :] != reference[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(query, reference), expected)
    np.testing.assert_array_equal(nearest_distances(query, reference), expected.min(1))
    # Apart: a query row never counts a reference row of its own label.
    query_labels, reference_labels = np.array(["a", "b", "c", "d"]), np.array(["a", "a", "b", "b", "b", "b"])
    masked = np.where(query_labels[:, None] == reference_labels[None, :], 10**6, expected)
    np.testing.assert_array_equal(nearest_distances(query, reference, apart=(query_labels, reference_labels)),
                                  masked.min(1))
    assert np.all(np.isinf(nearest_distances(query[:1], reference[:2], apart=(["a"], ["a", "a"]))))
    assert np.all(np.isinf(nearest_distances(query, reference[:0])))


def test_id_blocks_cut_consecutive_ids_into_stretches():
    names = ["03744.png", "03749.png", "03750.png", "03799.png", "03800.png", "scan_0003.png", "scan_0049.png",
             "scan_0050.png", "notes.png"]
    blocks = id_blocks(names, 50)
    assert blocks[0] == blocks[1] != blocks[2] == blocks[3] != blocks[4]
    assert blocks[5] == blocks[6] != blocks[7]
    assert blocks[0] != blocks[5]            # same number stretch, another prefix
    assert len(set(blocks)) == 6 and blocks[8] not in blocks[:8]
    assert len(set(id_blocks(names[:5], 1))) == 5
    with pytest.raises(ValueError):
        id_blocks(names, 0)


def test_split_frames_hashes_the_frames_itself(tmp_path):
    """Noise frames look unlike each other; a byte copy of frame 1 joins frame 1's group."""
    root = write_dataset(tmp_path / "ds")
    frames = root / "Training" / "Labeled cases"
    (frames / "00003.png").write_bytes((frames / "00001.png").read_bytes())
    split = split_frames(load_labels(root), test_fraction=0.3, val_fraction=0.0, seed=0,
                         hash_size=8, same_acquisition_distance=10)
    assert list(split["group"]) == [0, 1, 0]
    assert split["subset"][0] == split["subset"][2]


def test_a_cap_draws_whole_acquisitions_from_across_the_set(real):
    """data.max_labeled = 300 of the 1082 real frames: whole acquisitions, spread over the ID
    range (the first 300 frames by ID are a narrow slice of the acquisitions)."""
    labels, hashes, _ = real
    split = split_frames(labels, SPLIT["test_fraction"], SPLIT["val_fraction"], SEED, SPLIT["hash_size"],
                         SPLIT["same_acquisition_distance"], hashes=hashes, max_frames=300)
    used = split[split["subset"] != "unused"]
    assert 270 <= len(used) <= 300
    assert split.groupby("group")["subset"].apply(lambda s: (s == "unused").all() or (s != "unused").all()).all()
    ids = np.sort(split["filename"].str.extract(r"(\d+)")[0].astype(int).to_numpy())
    chosen = used["filename"].str.extract(r"(\d+)")[0].astype(int)
    low, high = np.quantile(ids, [0.1, 0.9])
    assert (chosen < low).sum() >= 10 and (chosen > high).sum() >= 10   # both ends of the range
    assert used.groupby("subset")["group"].nunique()["test"] >= 10      # enough acquisitions to test on
    fractions = used["subset"].value_counts(normalize=True)
    assert abs(fractions["test"] - SPLIT["test_fraction"]) < 0.05


def test_cap_groups_keeps_whole_groups_under_the_cap():
    from iugc.data.splits import cap_groups

    groups = np.repeat(np.arange(10), [5, 1, 7, 3, 3, 9, 2, 4, 6, 2])
    keep = cap_groups(groups, 20, seed=0)
    assert keep.sum() <= 20 and keep.sum() >= 15
    assert all(keep[groups == g].all() or not keep[groups == g].any() for g in range(10))
    assert cap_groups(groups, None, seed=0).all() and cap_groups(groups, 100, seed=0).all()
    assert not np.array_equal(cap_groups(groups, 20, seed=0), cap_groups(groups, 20, seed=1))


def test_a_large_acquisition_never_makes_a_held_out_subset_alone():
    groups = np.repeat(np.arange(31), [37] + [5] * 30)  # one acquisition of 37 frames, thirty of 5
    for seed in range(10):
        subsets = assign_groups(groups, test_fraction=0.2, val_fraction=0.1, seed=seed)
        assert (subsets[groups == 0] == "train").all()
        for subset in ("test", "val"):
            assert len(np.unique(groups[subsets == subset])) >= 2


def test_a_tiny_dataset_still_gets_a_test_and_a_validation_acquisition():
    groups = np.repeat(np.arange(6), 6)  # 36 frames: every acquisition is larger than half a target
    subsets = assign_groups(groups, test_fraction=0.2, val_fraction=0.1, seed=0)
    assert (subsets == "test").sum() == 6 and (subsets == "val").sum() == 6


def test_thinning_keeps_evenly_spaced_frames_of_each_acquisition():
    from iugc.data.splits import thin_groups

    names = [f"{i:05d}.png" for i in (7, 3, 1, 2, 5, 4, 6, 9, 8)]
    groups = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])  # 0: frames 1-7 (shuffled rows); 1: frames 8-9
    keep = thin_groups(groups, names, per_group=3)
    assert sorted(n for n, k in zip(names, keep) if k) == ["00001.png", "00004.png", "00007.png", "00008.png", "00009.png"]
    assert thin_groups(groups, names, per_group=None).all()
    assert thin_groups(groups, names, per_group=1).sum() == 2


def test_thinning_buys_acquisitions_on_the_real_frames(real):
    """Two frames per acquisition: every one of the real set's acquisitions is used, each held-out
    subset rests on many more acquisitions than a 300-frame cap of whole acquisitions gives."""
    labels, hashes, _ = real
    args = (labels, SPLIT["test_fraction"], SPLIT["val_fraction"], SEED, SPLIT["hash_size"],
            SPLIT["same_acquisition_distance"])
    thinned = split_frames(*args, hashes=hashes, max_frames_per_group=2)
    capped = split_frames(*args, hashes=hashes, max_frames=300)
    used = thinned[thinned["subset"] != "unused"]
    assert used["group"].nunique() == thinned["group"].nunique()
    assert used.groupby("group").size().max() == 2
    acquisitions = used.groupby("subset")["group"].nunique()
    capped_acquisitions = capped[capped["subset"] != "unused"].groupby("subset")["group"].nunique()
    assert acquisitions["val"] >= 30 and acquisitions["test"] >= 30
    assert acquisitions["val"] >= 2 * capped_acquisitions["val"]


def test_aop_strata_are_equal_count_bins_of_acquisitions():
    groups = np.repeat(np.arange(20), 2)
    aop = np.repeat(np.linspace(60, 170, 20), 2) + np.tile([-1.0, 1.0], 20)  # two frames, one mean each
    aop[[38, 39]] = np.nan                                                   # the last one: undefined
    strata = aop_strata(groups, aop, n_strata=4)
    assert all(len(set(strata[groups == g])) == 1 for g in range(20))        # one stratum per acquisition
    per_acquisition = strata[::2]
    assert per_acquisition[-1] == 4                                           # undefined AoP: its own
    assert sorted(np.bincount(per_acquisition[:-1])) == [4, 5, 5, 5]         # 19 in four near-equal bins
    assert (np.diff(per_acquisition[:-1]) >= 0).all()                         # in order of the angle


def test_stratified_assignment_draws_each_subset_from_every_stratum():
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 4, 200)
    groups = np.repeat(np.arange(200), sizes)
    strata = np.repeat(np.arange(200) * 10 // 200, sizes)                     # 10 strata of 20 acquisitions
    subsets = assign_groups(groups, test_fraction=0.2, val_fraction=0.2, seed=0, strata=strata)
    for subset in ("test", "val"):
        assert abs((subsets == subset).sum() - 0.2 * len(groups)) <= 3 / 2    # within half a group overall
        for stratum in range(10):
            inside = strata == stratum
            # The cumulative target: a stratum's share is off by at most about a group.
            assert abs((subsets[inside] == subset).sum() - 0.2 * inside.sum()) <= 4
    # One stratum is the unstratified draw itself.
    np.testing.assert_array_equal(assign_groups(groups, 0.2, 0.2, seed=0, strata=np.zeros(len(groups))),
                                  assign_groups(groups, 0.2, 0.2, seed=0))


def test_stratifying_by_aop_balances_the_held_out_subsets_of_the_real_frames(real):
    """The validation split calibrates what the test split measures: their AoP distributions,
    and so the share of wide, harder angles, should be alike. Over ten split seeds, the gap of
    their 90th AoP percentiles (deg) shrinks by more than half with the preset's strata."""
    labels, hashes, _ = real

    def gap(seed, count):
        split = split_frames(labels, SPLIT["test_fraction"], SPLIT["val_fraction"], seed, SPLIT["hash_size"],
                             SPLIT["same_acquisition_distance"], hashes=hashes, max_frames_per_group=2,
                             aop_strata_count=count)
        q90 = split.groupby("subset")["aop"].quantile(0.9)
        return q90["val"] - q90["test"]

    plain = np.array([gap(seed, 1) for seed in range(10)])
    stratified = np.array([gap(seed, SPLIT["aop_strata"]) for seed in range(10)])
    assert np.sqrt(np.mean(stratified ** 2)) < 0.5 * np.sqrt(np.mean(plain ** 2))
