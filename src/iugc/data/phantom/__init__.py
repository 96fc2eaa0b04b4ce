"""The built-in phantom: synthetic transperineal ultrasound frames in the IUGC 2025 layout.

Each acquisition is one random anatomy seen by a convex probe: a fan-shaped field of view, an
oblong hyperechoic pubic symphysis (PS) near the probe and a fetal skull (a bright elliptical rim
with acoustic shadow beyond it), on speckled soft tissue. Its frames are near-duplicates: the
probe moves a little and the speckle decorrelates a little from frame to frame.

The landmarks are exact properties of the ellipses that are drawn: PS1 and PS2 are the ends of the
symphysis' long axis (the farthest pair of its contour), FH1 is the point where the line from PS1
touches the skull (closed form), so AoP follows the organisers' convention exactly. The priors
(positions, sizes, angles, grey levels) were measured on PSFHS frames at 256 x 256 and scale with
the frame size.

The unlabeled pool mixes standard-plane frames with non-standard ones that lose or spoil a
structure, plus a few blank and duplicated frames; ``phantom_truth.csv`` records which is which,
so the standard-plane filter can be scored. No file is named ``Example*``: in the real IUGC set
that prefix marks standard-plane frames, the phantom's must be found by a classifier.
"""
from .geometry import ellipse_rim, sample_geometry, tangent_point
from .write import LABELED_DIR, NON_STANDARD_KINDS, TRUTH_CSV, UNLABELED_DIR, make_phantom

__all__ = ["LABELED_DIR", "NON_STANDARD_KINDS", "TRUTH_CSV", "UNLABELED_DIR", "ellipse_rim",
           "make_phantom", "sample_geometry", "tangent_point"]
