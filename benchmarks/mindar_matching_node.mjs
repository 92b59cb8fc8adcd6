// MindAR 1.2.5's matching half (keyframe pyramid, detector, FREAK, cluster trees) on one grey image,
// in Node.js on the tfjs CPU backend: the baseline of benchmarks/mindar_profile.py.
//
// usage: node benchmarks/mindar_matching_node.mjs GREY.raw WIDTH HEIGHT [OUT.json]
// GREY.raw holds WIDTH x HEIGHT bytes, one grey level per pixel. Prints one JSON line on stdout:
// {"seconds", "cpuSeconds", "maxRssBytes", "keyframes", "points"}; OUT.json receives the keyframes.
// Uses the npm packages installed in tests/mindar_client.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

const client = new URL('../tests/mindar_client/', import.meta.url);
const mindar = new URL('node_modules/mind-ar/src/image-target/', client);
const { tf } = await import(new URL('tf-cpu.mjs', client));
const { Detector } = await import(new URL('detector/detector.js', mindar));
const { buildImageList } = await import(new URL('image-list.js', mindar));
const { build: buildClusterTree } = await import(new URL('matching/hierarchical-clustering.js', mindar));

const [greyPath, widthText, heightText, outPath] = process.argv.slice(2);
const width = Number(widthText);
const height = Number(heightText);
const data = new Uint8Array(fs.readFileSync(greyPath));

const started = performance.now();
const cpuStarted = process.cpuUsage();
const keyframes = [];
for (const image of buildImageList({ data, width, height })) {
  const detector = new Detector(image.width, image.height);
  tf.tidy(() => {
    const input = tf.tensor(image.data, [image.data.length], 'float32').reshape([image.height, image.width]);
    const { featurePoints } = detector.detect(input);
    const maximaPoints = featurePoints.filter((p) => p.maxima);
    const minimaPoints = featurePoints.filter((p) => !p.maxima);
    keyframes.push({
      maximaPoints,
      minimaPoints,
      maximaPointsCluster: buildClusterTree({ points: maximaPoints }),
      minimaPointsCluster: buildClusterTree({ points: minimaPoints }),
      width: image.width,
      height: image.height,
      scale: image.scale,
    });
  });
}
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStarted);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;

// Linux's rusage maximum survives exec (a child reports at least its parent's size); the memory map's
// own high-water mark does not.
function peakRssBytes() {
  try {
    const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
    if (line) return Number(line.split(/\s+/)[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
const maxRssBytes = peakRssBytes();
if (outPath) fs.writeFileSync(outPath, JSON.stringify(keyframes));

process.stdout.write(
  JSON.stringify({
    seconds,
    cpuSeconds,
    maxRssBytes,
    keyframes: keyframes.length,
    points: keyframes.reduce((n, k) => n + k.maximaPoints.length + k.minimaPoints.length, 0),
  }) + '\n',
);
