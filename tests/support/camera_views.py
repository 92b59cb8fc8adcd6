"""Deterministic synthetic phone-camera frames of a printed target, with the target's true corners."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FRAME_WIDTH = 640
FRAME_HEIGHT = 480
# MindAR's controller assumes a vertical field of view of 45 degrees; views are rendered with the same
# camera so that every view is a pose its estimator can represent exactly.
FOCAL_LENGTH = (FRAME_HEIGHT / 2) / math.tan(math.radians(45.0) / 2)
CAMERA_MATRIX = np.array(
    [[FOCAL_LENGTH, 0.0, FRAME_WIDTH / 2], [0.0, FOCAL_LENGTH, FRAME_HEIGHT / 2], [0.0, 0.0, 1.0]]
)


@dataclass(frozen=True)
class Pose:
    """Where the print sits in front of the camera.

    size: the print's longer side in frame pixels when seen face-on; centre: where the print's centre
    lands in the frame, in pixels from the frame centre; tilt_x, tilt_y: rotation of the print away
    from the camera about its horizontal and vertical axes, degrees; roll: rotation in its own plane,
    degrees, clockwise as seen on screen.
    """

    size: float
    centre: tuple[float, float] = (0.0, 0.0)
    tilt_x: float = 0.0
    tilt_y: float = 0.0
    roll: float = 0.0


@dataclass(frozen=True)
class Camera:
    """What the phone's camera does to the picture: focus blur (Gaussian sigma, pixels), sensor noise
    (Gaussian sigma, grey levels), exposure gain, gamma, a shadow across the frame (0 none, 1 the
    far side black), and motion blur: the streak a moving hand draws during the exposure, its length
    in pixels and its direction in degrees (0 along the frame's rows)."""

    blur: float = 0.0
    noise: float = 2.0
    gain: float = 1.0
    gamma: float = 1.0
    shadow: float = 0.0
    motion: float = 0.0
    motion_angle: float = 0.0


@dataclass(frozen=True)
class CameraView:
    """One 640 x 480 RGB frame; target_corners are the print's top-left, top-right, bottom-right and
    bottom-left corners in frame pixels, or None when no target is in view."""

    name: str
    frame: np.ndarray
    target_corners: np.ndarray | None


# The views every target is seen in: ordinary hand-held shots and the hard cases named in issue 2.
# Other tests and benchmarks pick views by name: a renamed view breaks them.
TARGET_VIEWS: tuple[tuple[str, Pose, Camera, float], ...] = (
    ("face-on", Pose(size=300), Camera(), 0.2),
    ("tilted-forward", Pose(size=320, tilt_x=35), Camera(), 0.3),
    ("tilted-sideways", Pose(size=300, tilt_y=-40, roll=8), Camera(), 0.3),
    ("rotated-45", Pose(size=300, roll=45), Camera(), 0.3),
    ("rotated-120-tilted", Pose(size=300, roll=120, tilt_x=-25), Camera(), 0.3),
    ("defocused", Pose(size=320, tilt_y=15), Camera(blur=1.6), 0.3),
    ("noisy-dim", Pose(size=300, roll=-15), Camera(noise=9.0, gain=0.55, gamma=1.2), 0.3),
    ("bright-shadowed", Pose(size=300, tilt_x=-20), Camera(gain=1.25, gamma=0.8, shadow=0.6), 0.3),
    ("cluttered-off-centre", Pose(size=260, centre=(70, -40), tilt_y=20), Camera(), 1.0),
    ("close-up-partial", Pose(size=720, centre=(60, 50), roll=10), Camera(), 0.3),
    ("steep-tilt", Pose(size=340, tilt_x=58), Camera(), 0.3),
    ("heavy-blur", Pose(size=300, roll=-5), Camera(blur=2.8), 0.3),
    ("tiny", Pose(size=125, centre=(10, -10)), Camera(), 0.5),
    ("low-light", Pose(size=300, roll=30), Camera(noise=12.0, gain=0.3, gamma=1.3), 0.3),
)

# Frames with no target: the same desk, or another picture instead of the target.
EMPTY_VIEWS: tuple[tuple[str, Camera, float], ...] = (("empty-desk", Camera(noise=5.0, gain=0.8), 1.0),)


def target_plane_homography(target_size: tuple[int, int], pose: Pose) -> np.ndarray:
    """The 3 x 3 map from target coordinates (x right, y down, pixels, (0, 0) the top-left corner of
    the image) to frame pixels, for a print in `pose` seen through the controller's camera."""
    width, height = target_size
    distance = FOCAL_LENGTH * max(width, height) / pose.size
    rx, ry, rz = (math.radians(a) for a in (pose.tilt_x, pose.tilt_y, pose.roll))
    about_x = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)], [0, math.sin(rx), math.cos(rx)]])
    about_y = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    about_z = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    rotation = about_x @ about_y @ about_z
    centre_on_screen = np.array(
        [pose.centre[0] * distance / FOCAL_LENGTH, pose.centre[1] * distance / FOCAL_LENGTH, distance]
    )
    translation = centre_on_screen - rotation @ np.array([width / 2, height / 2, 0.0])
    return CAMERA_MATRIX @ np.column_stack([rotation[:, 0], rotation[:, 1], translation])


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a homography to (N, 2) points."""
    mapped = np.column_stack([points, np.ones(len(points))]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]


def target_corners(target_size: tuple[int, int], homography: np.ndarray) -> np.ndarray:
    width, height = target_size
    return project(homography, np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float))


def corners_within(found: np.ndarray | None, truth: np.ndarray, fraction: float = 0.1) -> bool:
    """True when each found corner lies within `fraction` of the true target's on-screen diagonal of
    the true corner (the longer of the two diagonals of the true quadrilateral)."""
    if found is None:
        return False
    diagonal = max(np.linalg.norm(truth[2] - truth[0]), np.linalg.norm(truth[3] - truth[1]))
    return bool(np.all(np.linalg.norm(np.asarray(found, dtype=float) - truth, axis=1) <= fraction * diagonal))


def located_in(view: CameraView, corners: np.ndarray | None, fraction: float = 0.1) -> bool:
    """True when `view` shows a target and `corners` (found by a client, or None) are within
    `fraction` of its diagonal of the true ones."""
    return view.target_corners is not None and corners_within(corners, view.target_corners, fraction)


def desk_background(rng: np.random.Generator, clutter: float) -> np.ndarray:
    """A table top with objects on it: a wood-like gradient, then `clutter` (0..1) times a few dozen
    shapes, strokes and printed words, blurred a little as out-of-focus surroundings are."""
    ys = np.arange(FRAME_HEIGHT, dtype=np.float32)[:, None, None]
    xs = np.arange(FRAME_WIDTH, dtype=np.float32)[None, :, None]
    base = rng.uniform(90, 190, size=3).astype(np.float32)
    slope = rng.uniform(-0.08, 0.08, size=(2, 3)).astype(np.float32)
    grain = 6 * np.sin(ys / np.float32(rng.uniform(3, 9)) + 0.3 * np.sin(xs / np.float32(40.0)))
    desk = base + xs * slope[0] + ys * slope[1] + grain
    canvas = np.clip(desk, 0, 255).astype(np.uint8)
    for _ in range(int(round(40 * clutter))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(0, 4)
        x, y = int(rng.integers(0, FRAME_WIDTH)), int(rng.integers(0, FRAME_HEIGHT))
        if kind == 0:
            axes = (int(rng.integers(8, 70)), int(rng.integers(8, 70)))
            cv2.ellipse(canvas, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            corners = rng.integers(-60, 60, size=(4, 2)) + np.array([x, y])
            cv2.fillPoly(canvas, [corners.astype(np.int32)], colour, cv2.LINE_AA)
        elif kind == 2:
            end = (x + int(rng.integers(-150, 150)), y + int(rng.integers(-150, 150)))
            cv2.line(canvas, (x, y), end, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            word = "".join(chr(int(c)) for c in rng.integers(65, 91, size=int(rng.integers(3, 9))))
            cv2.putText(
                canvas,
                word,
                (x, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                float(rng.uniform(0.5, 1.6)),
                colour,
                int(rng.integers(1, 3)),
                cv2.LINE_AA,
            )
    return cv2.GaussianBlur(canvas, (0, 0), 0.8)


def place_print(canvas: np.ndarray, picture: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Lay `picture` (RGB) onto `canvas` through `homography` (picture edge coordinates to frame
    pixels), shrinking it first by area averaging so that a large photo does not alias."""
    height, width = picture.shape[:2]
    on_screen = target_corners((width, height), homography)
    longest_edge = max(np.linalg.norm(on_screen[(i + 1) % 4] - on_screen[i]) for i in range(4))
    shrink = min(1.0, 1.5 * longest_edge / max(width, height))
    if shrink < 1.0:
        picture = cv2.resize(
            picture,
            (max(1, round(width * shrink)), max(1, round(height * shrink))),
            interpolation=cv2.INTER_AREA,
        )
    sy, sx = picture.shape[0] / height, picture.shape[1] / width
    # Pixel centres: index i of the shrunk picture is at edge coordinate (i + 0.5) / shrink, and the
    # frame's pixel index is its coordinate (MindAR reports feature points the same way).
    from_index = np.array([[1 / sx, 0, 0.5 / sx], [0, 1 / sy, 0.5 / sy], [0, 0, 1]])
    warp = homography @ from_index
    size = (FRAME_WIDTH, FRAME_HEIGHT)
    warped = cv2.warpPerspective(picture, warp, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpPerspective(np.full(picture.shape[:2], 255, np.uint8), warp, size, flags=cv2.INTER_LINEAR)
    alpha = cover.astype(np.float32)[..., None] / 255.0
    return (canvas * (1 - alpha) + warped * alpha).astype(np.uint8)


def expose(frame: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """What the sensor records: shadow, exposure, gamma, focus blur, then noise and 8-bit rounding."""
    light = frame.astype(np.float32) / 255.0
    if camera.shadow:
        ramp = np.linspace(1.0, 1.0 - camera.shadow, FRAME_WIDTH, dtype=np.float32)
        light = light * ramp[None, :, None]
    light = np.clip(light * camera.gain, 0, 1) ** camera.gamma
    if camera.blur:
        light = cv2.GaussianBlur(light, (0, 0), camera.blur)
    if camera.motion:
        light = cv2.filter2D(light, -1, motion_kernel(camera.motion, camera.motion_angle))
    recorded = light * 255.0 + camera.noise * rng.standard_normal(size=light.shape, dtype=np.float32)
    return np.clip(np.round(recorded), 0, 255).astype(np.uint8)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line of `length` pixels at `angle` degrees, the point spread of a steady sweep."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, 4 * size)):
        kernel[round(centre + t * dy), round(centre + t * dx)] = 1.0
    return kernel / kernel.sum()


def views_of_target(target: np.ndarray, seed: int = 0) -> list[CameraView]:
    """The frames of TARGET_VIEWS for one target (an RGB array as a person sees the print)."""
    return views_in_poses(target, TARGET_VIEWS, seed)


def views_in_poses(
    target: np.ndarray, specs: Sequence[tuple[str, Pose, Camera, float]], seed: int = 0
) -> list[CameraView]:
    """One frame per (name, pose, camera, clutter) of `specs`: the target (an RGB array as a person sees
    the print) in that pose on a desk with that clutter (0..1), through that camera. The random desk
    and sensor noise of the i-th spec come from the seed [seed, i], so a view stays the same when
    specs are added after it."""
    height, width = target.shape[:2]
    views = []
    for index, (name, pose, camera, clutter) in enumerate(specs):
        rng = np.random.default_rng([seed, index])
        homography = target_plane_homography((width, height), pose)
        frame = place_print(desk_background(rng, clutter), target, homography)
        views.append(
            CameraView(name, expose(frame, camera, rng), target_corners((width, height), homography))
        )
    return views


def views_without_target(other_pictures: Sequence[np.ndarray], seed: int = 0) -> list[CameraView]:
    """Frames with no target: EMPTY_VIEWS, then each of `other_pictures` (RGB prints that are not
    targets) lying on the desk, tilted a little."""
    views = []
    for index, (name, camera, clutter) in enumerate(EMPTY_VIEWS):
        rng = np.random.default_rng([seed, 1000 + index])
        views.append(CameraView(name, expose(desk_background(rng, clutter), camera, rng), None))
    for index, picture in enumerate(other_pictures):
        rng = np.random.default_rng([seed, 2000 + index])
        pose = Pose(size=330, tilt_x=float(rng.uniform(-20, 20)), roll=float(rng.uniform(-30, 30)))
        height, width = picture.shape[:2]
        frame = place_print(
            desk_background(rng, 0.4), picture, target_plane_homography((width, height), pose)
        )
        views.append(CameraView(f"other-picture-{index}", expose(frame, Camera(), rng), None))
    return views
