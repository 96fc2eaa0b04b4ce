import numpy as np
import pytest
from model_builders import augment as build_augment
from model_builders import eval_transform as build_eval_transform

from iugc.config import load_preset
from iugc.data.augment import SpeckleNoise, apply, reseed

SIZE = 128
LANDMARKS = np.array([[40.3, 50.7], [88.6, 45.2], [70.1, 90.4]], dtype=np.float32)


@pytest.fixture(scope="module")
def aug():
    return load_preset("paper")["augment"]


def only(aug, **on):
    """Table 1 with every step off except those given (and normalisation)."""
    off = dict(elastic_p=0.0, brightness_contrast_p=0.0, blur_p=0.0, speckle_p=0.0)
    return {**aug, **off, **on}


def bright_dots(size, points, sigma=1.2):
    """A black frame with a small bright Gaussian dot at each point (sub-pixel centres)."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    for x, y in points:
        image = np.maximum(image, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return np.rint(image * 255).astype(np.uint8)


def dot_centre(image, x, y, radius=4):
    """Where the dot near (x, y) is: intensity-weighted centroid above the local floor."""
    xi, yi = int(round(x)), int(round(y))
    window = image[yi - radius:yi + radius + 1, xi - radius:xi + radius + 1].astype(float)
    weight = (window - window.min()) ** 2
    yy, xx = np.mgrid[yi - radius:yi + radius + 1, xi - radius:xi + radius + 1]
    return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()


@pytest.mark.parametrize("overrides", [
    {},  # Table 1 as it is (the elastic branch forced on)
    # A field strong enough to move the dots by several pixels, to check the keypoint inverse.
    {"alpha_affine": 0.0, "elastic_alpha": 60.0, "elastic_sigma": 6.0},
], ids=["table1", "strong_elastic"])
def test_landmarks_stay_on_the_dots(aug, overrides):
    params = {**aug, "elastic_p": 1.0, **overrides}
    image = bright_dots(SIZE, LANDMARKS)
    moved, errors = [], []
    for seed in range(25):
        out, points = apply(build_augment(params, seed=seed), image, LANDMARKS)
        assert points.shape == (3, 2)
        moved.append(np.linalg.norm(points - LANDMARKS, axis=1))
        errors += [np.linalg.norm(dot_centre(out, *p) - p) for p in points]
    assert np.max(moved) > 2.0  # the geometry really moved the landmarks
    assert np.max(errors) < 1.0
    assert np.mean(errors) < 0.3


def test_landmarks_pushed_out_of_frame_are_kept(aug):
    points = np.array([[-100.0, 5.0], [SIZE + 100.0, 60.0], [60.0, 60.0]], dtype=np.float32)
    for seed in range(5):
        _, out = apply(build_augment({**aug, "elastic_p": 1.0}, seed=seed), bright_dots(SIZE, []), points)
        assert out.shape == (3, 2)
        assert out[0, 0] < 0 and out[1, 0] > SIZE - 1


def test_without_the_elastic_branch_landmarks_do_not_move(aug):
    params = {**aug, "elastic_p": 0.0}
    for seed in range(5):
        _, points = apply(build_augment(params, seed=seed), bright_dots(SIZE, LANDMARKS), LANDMARKS)
        np.testing.assert_array_equal(points, LANDMARKS)


def test_same_seed_same_output_other_seed_other_output(aug):
    image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    first = apply(build_augment(aug, seed=7), image, LANDMARKS / 2)
    again = apply(build_augment(aug, seed=7), image, LANDMARKS / 2)
    other = apply(build_augment(aug, seed=8), image, LANDMARKS / 2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    # reseeding an existing pipeline replays the same draws
    transform = build_augment(aug)
    np.testing.assert_array_equal(apply(reseed(transform, 7), image, LANDMARKS / 2)[0], first[0])


def test_steps_fire_independently(aug):
    """Elastic (p 0.8) and blur (p 0.5) do not fire in lockstep when a pipeline is reseeded per
    frame (as pretraining does); albumentations' own seeding gives every step the same first draw."""
    params = only(aug, elastic_p=aug["elastic_p"], blur_p=aug["blur_p"])
    image = bright_dots(64, [(32.0, 32.0)])
    transform = build_augment(params)
    elastic, blurred = [], []
    for frame in range(300):
        out, points = apply(reseed(transform, frame), image, np.array([[32.0, 32.0]]))
        elastic.append(not np.allclose(points, 32.0))
        # without the warp the frame is unchanged unless the blur flattened the dot's peak
        blurred.append(not elastic[-1] and out.max() < 0.95)
    elastic = np.array(elastic)
    assert abs(elastic.mean() - aug["elastic_p"]) < 0.08
    # blur seen alone on about (1 - p_elastic) * p_blur of the frames
    assert abs(np.mean(blurred) - (1 - aug["elastic_p"]) * aug["blur_p"]) < 0.06


def test_normalisation_happens_once(aug):
    image = np.full((64, 64), 255, dtype=np.uint8)
    image[:, :32] = 0
    for seed in range(20):
        out, _ = apply(build_augment(aug, seed=seed), image, LANDMARKS[:0])
        assert out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
        assert out.max() > 0.5  # divided by 255 once, not twice
    out, points = apply(build_eval_transform(aug), image, LANDMARKS)
    np.testing.assert_allclose(out, image / aug["normalize_std"], atol=1e-7)
    np.testing.assert_array_equal(points, LANDMARKS)


def test_blur_kernels_are_the_odd_sizes_of_the_range(aug):
    impulse = np.zeros((15, 15), dtype=np.uint8)
    impulse[7, 7] = 255
    widths = set()
    transform = build_augment(only(aug, blur_p=1.0), seed=0)
    for _ in range(40):
        out, _ = apply(transform, impulse, LANDMARKS[:0])
        row = out[7]
        np.testing.assert_allclose(row, row[::-1], atol=1e-6)  # centred: no half-pixel shift
        widths.add(int((row > 0).sum()))
    low, high = aug["blur_kernel"]
    assert widths == {k for k in range(low, high + 1) if k % 2}


def test_speckle_is_multiplicative_gaussian(aug):
    speckle = SpeckleNoise(mean=aug["speckle_mean"], std=aug["speckle_std"], p=1.0)
    speckle.set_random_seed(0)
    image = np.full((256, 256), 200, dtype=np.uint8)
    out = speckle(image=image)["image"]
    factor = out / 200.0 - 1.0
    assert abs(factor.mean() - aug["speckle_mean"]) < 1e-3
    assert abs(factor.std() - aug["speckle_std"]) < 0.05 * aug["speckle_std"]
    dark = speckle(image=np.zeros((32, 32), dtype=np.uint8))["image"]
    assert not dark.any()  # multiplicative: black stays black
