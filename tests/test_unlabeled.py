"""Listing the unlabeled pool (Training/Unlabeled cases, nested folders)."""
from __future__ import annotations

import os

from dataset_builders import write_frame
from iugc.data.unlabeled import list_unlabeled


def test_nested_pool_sorted_with_example_flags(tmp_path):
    pool = tmp_path / "Training" / "Unlabeled cases"
    for relpath in ["b/Example12.jpg", "a/2/frame.png", "a/1/frame.PNG", "Example1.jpg", "z.bmp"]:
        write_frame(pool / relpath)
    (pool / "a" / "notes.txt").write_text("not a frame")
    write_frame(pool / "__MACOSX" / "b" / "._Example12.jpg")  # archive debris, not a frame
    frames = list_unlabeled(tmp_path)
    assert list(frames["relpath"]) == ["Example1.jpg", "a/1/frame.PNG", "a/2/frame.png",
                                       "b/Example12.jpg", "z.bmp"]
    assert list(frames["is_example"]) == [True, False, False, True, False]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in frames["image_path"])


def test_missing_pool_is_an_empty_table(tmp_path):
    frames = list_unlabeled(tmp_path)
    assert frames.empty and list(frames.columns) == ["image_path", "relpath", "is_example"]


def test_a_capped_pool_is_whole_folders_from_across_the_pool():
    import pandas as pd

    from iugc.data.unlabeled import cap_pool

    relpaths = [f"case{c:02d}/frame{f}.png" for c in range(20) for f in range(5)]
    pool = pd.DataFrame({"image_path": relpaths, "relpath": relpaths, "is_example": False})
    capped = cap_pool(pool, 30, seed=0)
    folders = capped["relpath"].str.split("/").str[0]
    assert len(capped) == 30 and folders.value_counts().eq(5).all()
    assert set(folders) != {f"case{c:02d}" for c in range(6)}  # not the first six folders
    assert cap_pool(pool, None, seed=0) is pool
