// Looks for .mind targets in camera frames with MindAR 1.2.5's own detector, matcher and pose estimator.
//
// usage: node locate.mjs JOB.json
// JOB: {"runs": [{"mind": "a.mind", "frames": ["f0.png", ...], "cropPositions": 9}, ...]}
// Prints one JSON line on stdout: {"runs": [{"frames": [result, ...]}, ...]} where a result is
//   {"targetIndex": i or -1, "corners": [[x, y] x 4] or null, "cropIndex", "matches", "keyframeIndex"}.
//
// Each frame is searched the way MindAR's controller searches a still camera image while no target is
// tracked: the detector runs on a power-of-two crop of the frame, the crop moving through the nine
// positions of CropDetector.detectMoving (centre first), and every crop's feature points go to the
// matcher for each target in turn, as the controller's worker does; the first target the matcher finds
// ends the search. The pose is MindAR's estimate (homography decomposed with the controller's camera
// matrix), and the corners are the target's corners projected with that pose, as the AR scene draws them.
import fs from 'node:fs';
import { tf } from './tf-cpu.mjs';
import { CompilerBase } from 'mind-ar/src/image-target/compiler-base.js';
import { CropDetector } from 'mind-ar/src/image-target/detector/crop-detector.js';
import { Matcher } from 'mind-ar/src/image-target/matching/matcher.js';
import { Estimator } from 'mind-ar/src/image-target/estimation/estimator.js';
import {
  buildModelViewProjectionTransform,
  computeScreenCoordiate,
} from 'mind-ar/src/image-target/estimation/utils.js';
import { readPngRgba } from './png-image.mjs';

// CropDetector.detectMoving cycles through a 3 x 3 grid of crops, from index 4 (the centre) in a new
// controller.
const CROP_POSITIONS = 9;
const FIRST_CROP_INDEX = 4;

// The controller's camera: vertical field of view 45 degrees, principal point at the frame centre.
function projectionTransformFor(width, height) {
  const f = height / 2 / Math.tan((45.0 * Math.PI) / 180 / 2);
  return [
    [f, 0, width / 2],
    [0, f, height / 2],
    [0, 0, 1],
  ];
}

// The grey image MindAR's InputLoader makes from a video frame: luma weights, values 0..255 as floats.
function greyFrameTensor(image) {
  const { width, height, data } = image;
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++) {
    const r = data[4 * i] / 255;
    const g = data[4 * i + 1] / 255;
    const b = data[4 * i + 2] / 255;
    grey[i] = (0.299 * r + 0.587 * g + 0.114 * b) * 255.0;
  }
  return tf.tensor(grey, [height, width], 'float32');
}

class FrameSearcher {
  constructor(width, height) {
    this.projectionTransform = projectionTransformFor(width, height);
    this.cropDetector = new CropDetector(width, height);
    this.matcher = new Matcher(width, height);
    this.estimator = new Estimator(this.projectionTransform);
    this.featureCache = new Map();
  }

  // Feature points depend on the frame and crop only, so they are kept for the next .mind in the job.
  featurePointsAt(frame, cropIndex) {
    const key = `${frame.path}#${cropIndex}`;
    if (!this.featureCache.has(key)) {
      this.cropDetector.lastRandomIndex = cropIndex;
      this.featureCache.set(key, this.cropDetector.detectMoving(frame.tensor()).featurePoints);
    }
    return this.featureCache.get(key);
  }

  search(frame, targets, cropPositions) {
    for (let attempt = 0; attempt < cropPositions; attempt++) {
      const cropIndex = (FIRST_CROP_INDEX + attempt) % CROP_POSITIONS;
      const featurePoints = this.featurePointsAt(frame, cropIndex);
      for (let targetIndex = 0; targetIndex < targets.length; targetIndex++) {
        const { keyframeIndex, screenCoords, worldCoords } = this.matcher.matchDetection(
          targets[targetIndex].matchingData,
          featurePoints,
        );
        if (keyframeIndex === -1) continue;
        // The controller's worker stops at the first target the matcher finds, pose or not.
        const modelViewTransform = this.estimator.estimate({ screenCoords, worldCoords });
        if (!modelViewTransform) break;
        return {
          targetIndex,
          corners: this.projectCorners(modelViewTransform, targets[targetIndex].targetImage),
          cropIndex,
          matches: screenCoords.length,
          keyframeIndex,
        };
      }
    }
    return { targetIndex: -1, corners: null, cropIndex: null, matches: 0, keyframeIndex: -1 };
  }

  projectCorners(modelViewTransform, { width, height }) {
    const mvp = buildModelViewProjectionTransform(this.projectionTransform, modelViewTransform);
    return [
      [0, 0],
      [width, 0],
      [width, height],
      [0, height],
    ].map(([x, y]) => {
      const p = computeScreenCoordiate(mvp, x, y, 0);
      return [p.x, p.y];
    });
  }
}

const jobPath = process.argv[2];
if (!jobPath) {
  process.stderr.write('usage: node locate.mjs JOB.json\n');
  process.exit(2);
}
const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
const searchers = new Map();

// A frame is decoded when a crop of it is first needed and its tensor kept until the job ends.
class Frame {
  constructor(path) {
    this.path = path;
    this.image = readPngRgba(path);
    this.tensorT = null;
  }

  tensor() {
    if (this.tensorT === null) this.tensorT = greyFrameTensor(this.image);
    return this.tensorT;
  }
}

const frames = new Map();
function frameAt(path) {
  if (!frames.has(path)) frames.set(path, new Frame(path));
  return frames.get(path);
}

const runs = job.runs.map((run) => {
  const targets = new CompilerBase().importData(fs.readFileSync(run.mind));
  if (targets.length === 0) throw new Error(`${run.mind}: not a version 2 .mind file`);
  return {
    frames: run.frames.map((framePath) => {
      const frame = frameAt(framePath);
      const { width, height } = frame.image;
      const key = `${width}x${height}`;
      if (!searchers.has(key)) searchers.set(key, new FrameSearcher(width, height));
      return searchers.get(key).search(frame, targets, Math.min(run.cropPositions ?? CROP_POSITIONS, CROP_POSITIONS));
    }),
  };
});

process.stdout.write(JSON.stringify({ runs }) + '\n');
