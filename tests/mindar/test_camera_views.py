"""The synthetic camera views put the print where their true corners say, the same way every time."""

from __future__ import annotations

import numpy as np

from tests.support.camera_views import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    Camera,
    Pose,
    corners_within,
    expose,
    place_print,
    project,
    target_corners,
    target_plane_homography,
    views_of_target,
    views_without_target,
)

QUADRANT_COLOURS = np.array([[250, 20, 20], [20, 250, 20], [20, 20, 250], [250, 250, 20]], dtype=np.uint8)


def quadrant_print(width: int = 300, height: int = 200) -> np.ndarray:
    """A print of four flat colours, one per quadrant (top-left, top-right, bottom-left, bottom-right)."""
    picture = np.empty((height, width, 3), np.uint8)
    picture[: height // 2, : width // 2] = QUADRANT_COLOURS[0]
    picture[: height // 2, width // 2 :] = QUADRANT_COLOURS[1]
    picture[height // 2 :, : width // 2] = QUADRANT_COLOURS[2]
    picture[height // 2 :, width // 2 :] = QUADRANT_COLOURS[3]
    return picture


def test_each_quadrant_of_the_print_lands_where_the_homography_projects_it() -> None:
    picture = quadrant_print()
    pose = Pose(size=320, centre=(40, -30), tilt_x=30, tilt_y=-20, roll=35)
    homography = target_plane_homography((300, 200), pose)
    frame = place_print(np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8), picture, homography)
    quadrant_centres = np.array([[75, 50], [225, 50], [75, 150], [225, 150]], dtype=float)
    for (x, y), colour in zip(project(homography, quadrant_centres), QUADRANT_COLOURS, strict=True):
        assert np.abs(frame[round(y), round(x)].astype(int) - colour).max() <= 2


def test_the_print_fills_the_quadrilateral_of_its_true_corners_and_nothing_outside() -> None:
    picture = np.full((200, 300, 3), 255, np.uint8)
    homography = target_plane_homography((300, 200), Pose(size=300, tilt_y=40, roll=-10))
    frame = place_print(np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8), picture, homography)
    corners = target_corners((300, 200), homography)
    inside = corners.mean(axis=0)
    outside = corners[0] + (corners[0] - inside) * 0.1
    assert frame[round(inside[1]), round(inside[0])].min() == 255
    assert frame[round(outside[1]), round(outside[0])].max() == 0


def test_views_are_the_same_for_the_same_seed_and_differ_for_another() -> None:
    picture = quadrant_print()
    first, again, other = (
        views_of_target(picture, seed=3),
        views_of_target(picture, seed=3),
        views_of_target(picture, seed=4),
    )
    assert all(np.array_equal(a.frame, b.frame) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].frame, other[0].frame)
    assert all(view.frame.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3) for view in first)


def test_views_without_a_target_have_no_corners() -> None:
    views = views_without_target([quadrant_print()])
    assert views and all(view.target_corners is None for view in views)


def test_corners_count_as_located_within_a_tenth_of_the_diagonal_only() -> None:
    truth = np.array([[0.0, 0.0], [300.0, 0.0], [300.0, 400.0], [0.0, 400.0]])  # diagonal 500
    assert corners_within(truth + [49.0, 0.0], truth)
    assert not corners_within(truth + [[0.0, 0.0], [0.0, 0.0], [0.0, 51.0], [0.0, 0.0]], truth)
    assert not corners_within(None, truth)


def test_a_dim_noisy_camera_darkens_and_roughens_a_flat_grey_scene() -> None:
    grey = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 128, np.uint8)
    recorded = expose(grey, Camera(noise=8.0, gain=0.5), np.random.default_rng(0))
    assert 55 < recorded.mean() < 75
    assert 6 < recorded.std() < 10


def test_motion_blur_draws_a_point_into_a_streak_of_its_length_along_its_direction() -> None:
    point = np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    point[240, 320] = 255
    along_rows = expose(point, Camera(noise=0.0, motion=9, motion_angle=0), np.random.default_rng(0))[..., 0]
    along_columns = expose(point, Camera(noise=0.0, motion=9, motion_angle=90), np.random.default_rng(0))[
        ..., 0
    ]
    assert np.count_nonzero(along_rows) == np.count_nonzero(along_rows[240, 316:325]) == 9
    assert np.count_nonzero(along_columns) == np.count_nonzero(along_columns[236:245, 320]) == 9
