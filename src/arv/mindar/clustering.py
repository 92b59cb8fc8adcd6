"""The k-medoids tree of feature points by descriptor Hamming distance that MindAR's matcher walks."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

# A node with at most this many points is a leaf.
MIN_POINTS_PER_NODE = 16
# Each split tries this many random sets of centres and keeps the one with the least total distance.
ASSIGNMENT_HYPOTHESES = 128
CENTRES_PER_NODE = 8
# MindAR seeds its generator with this value for every tree, which makes trees reproducible.
RANDOM_SEED = 1234


# MindAR's generator: the linear congruential generator with the MSVC ``rand`` constants, modulo 2^31,
# whose draws are bits 16..30 of the state.
_LCG_MULTIPLIER = 214013
_LCG_INCREMENT = 2531011
_LCG_MODULUS = 1 << 31


@lru_cache(maxsize=4)
def _lcg_draws(count: int, seed: int = RANDOM_SEED) -> np.ndarray:
    """The first ``count`` raw draws (0..32767) of MindAR's generator from ``seed``, computed in blocks."""
    block = 1024
    states = np.empty(block, dtype=np.int64)
    state = seed
    for i in range(block):
        state = (_LCG_MULTIPLIER * state + _LCG_INCREMENT) % _LCG_MODULUS
        states[i] = state
    # One step of `block` draws at once: state -> jump_multiplier * state + jump_increment.
    jump_multiplier, jump_increment = 1, 0
    for _ in range(block):
        jump_multiplier = (_LCG_MULTIPLIER * jump_multiplier) % _LCG_MODULUS
        jump_increment = (_LCG_MULTIPLIER * jump_increment + _LCG_INCREMENT) % _LCG_MODULUS
    blocks = [states]
    while len(blocks) * block < count:
        blocks.append((jump_multiplier * blocks[-1] + jump_increment) % _LCG_MODULUS)
    draws = ((np.concatenate(blocks)[:count] >> 16) & 0x7FFF).astype(np.int64)
    draws.flags.writeable = False  # shared by every tree through the cache
    return draws


class MindARRandom:
    """MindAR's seeded generator, replayed from a precomputed sequence of draws so trees match MindAR's."""

    def __init__(self) -> None:
        self._draws = _lcg_draws(ASSIGNMENT_HYPOTHESES * CENTRES_PER_NODE * 64)
        self._used = 0

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` raw draws."""
        if self._used + count > self._draws.size:
            self._draws = _lcg_draws(2 * (self._used + count))
        draws = self._draws[self._used : self._used + count]
        self._used += count
        return draws


def hamming_distances(descriptors: np.ndarray) -> np.ndarray:
    """(n, n) int32 matrix of bit differences between (n, bytes) uint8 descriptors."""
    # Zero-padded to whole 64-bit words (the padding never differs), compared one word at a time.
    padded = np.zeros((descriptors.shape[0], -(-descriptors.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, : descriptors.shape[1]] = descriptors
    distances = np.zeros((descriptors.shape[0], descriptors.shape[0]), dtype=np.int32)
    for word in padded.view(np.uint64).T:
        distances += np.bitwise_count(word[:, None] ^ word[None, :])
    return distances


def build_cluster_tree(descriptors: np.ndarray) -> dict[str, Any]:
    """The ``{"rootNode": ...}`` tree MindAR stores for one set of points (maxima or minima).

    A node is ``{"centerPointIndex", "leaf", "pointIndexes"}`` for a leaf or ``{"centerPointIndex",
    "leaf", "children"}``; the root's centre is None and the others' are the centre's point index as a
    string, and children come in increasing centre index, as MindAR's JavaScript object keys give them.

    Parameters:
        descriptors: (n, 84) uint8 FREAK descriptors, in the order of the keyframe's point list.
    """
    distances = hamming_distances(descriptors) if descriptors.shape[0] else np.zeros((0, 0), np.int32)
    random = MindARRandom()
    return {"rootNode": _build_node(distances, list(range(descriptors.shape[0])), None, random)}


def _build_node(
    distances: np.ndarray, point_indexes: list[int], centre: str | None, random: MindARRandom
) -> dict[str, Any]:
    clusters: dict[int, list[int]] = {}
    if len(point_indexes) > max(CENTRES_PER_NODE, MIN_POINTS_PER_NODE):
        assignment = _k_medoids(distances, point_indexes, random)
        for member, local_centre in zip(point_indexes, assignment, strict=True):
            clusters.setdefault(point_indexes[local_centre], []).append(member)
    if len(clusters) <= 1:
        return {"centerPointIndex": centre, "leaf": True, "pointIndexes": list(point_indexes)}
    children = [_build_node(distances, clusters[key], str(key), random) for key in sorted(clusters)]
    return {"centerPointIndex": centre, "leaf": False, "children": children}


def _k_medoids(distances: np.ndarray, point_indexes: list[int], random: MindARRandom) -> np.ndarray:
    """For each point of the node, the local index of its nearest centre under the best hypothesis.

    The hypotheses are drawn in MindAR's order (one shuffled index list, re-shuffled in place for each
    hypothesis) and then scored all at once; ties go to the first centre and the first hypothesis.
    """
    size = len(point_indexes)
    swaps = (random.take(ASSIGNMENT_HYPOTHESES * CENTRES_PER_NODE) % size).tolist()
    order = list(range(size))
    drawn: list[list[int]] = []
    for draw, k in enumerate(swaps):
        # Each hypothesis swaps each of the first centres with a random position of the running order.
        i = draw % CENTRES_PER_NODE
        order[i], order[k] = order[k], order[i]
        if i == CENTRES_PER_NODE - 1:
            drawn.append(order[:CENTRES_PER_NODE])
    centres = np.array(drawn, dtype=np.int64)
    members = np.asarray(point_indexes)
    local = distances[np.ix_(members, members)]
    # Distance of every point to the k-th centre of every hypothesis: (points, hypotheses) per k.
    nearest_distance = local[:, centres[:, 0]]
    nearest_centre = np.zeros(nearest_distance.shape, dtype=np.int64)
    for k in range(1, CENTRES_PER_NODE):
        distance = local[:, centres[:, k]]
        closer = distance < nearest_distance
        nearest_distance = np.where(closer, distance, nearest_distance)
        nearest_centre[closer] = k
    best = int(np.argmin(nearest_distance.sum(axis=0)))
    return centres[best, nearest_centre[:, best]]
