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
