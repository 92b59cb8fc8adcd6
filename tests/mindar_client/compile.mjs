// Compiles target images into a .mind file with MindAR 1.2.5's own compiler on the tfjs CPU backend.
//
// usage: node compile.mjs OUT.mind IMAGE.png [IMAGE.png ...]
// Prints one JSON line on stdout: {"seconds", "peakRssBytes", "targets"}.
// The images are decoded with pngjs; MindAR's offline compiler would draw them on a node-canvas, which
// here is replaced by a canvas-shaped view of the decoded pixels (the compiler only reads getImageData).
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import './tf-cpu.mjs';
import { CompilerBase } from 'mind-ar/src/image-target/compiler-base.js';
import { buildTrackingImageList } from 'mind-ar/src/image-target/image-list.js';
import { extractTrackingFeatures } from 'mind-ar/src/image-target/tracker/extract-utils.js';
import { readPngRgba } from './png-image.mjs';

function decodedImageCanvas(image) {
  return {
    getContext: () => ({
      drawImage: () => {},
      getImageData: () => ({ data: image.data, width: image.width, height: image.height }),
    }),
  };
}

class PngCompiler extends CompilerBase {
  createProcessCanvas(image) {
    return decodedImageCanvas(image);
  }

  // The same two tracking levels MindAR's offline compiler builds, run synchronously as it does.
  compileTrack({ targetImages }) {
    return Promise.resolve(
      targetImages.map((targetImage) => extractTrackingFeatures(buildTrackingImageList(targetImage), () => {})),
    );
  }
}

// The peak resident memory of this process since it started. Linux's VmHWM belongs to the address space
// exec made; getrusage's maxRSS is carried across exec and so can report the parent's size instead.
function peakRssBytes() {
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const match = status.match(/^VmHWM:\s+(\d+) kB/m);
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux: fall through to getrusage
  }
  return process.resourceUsage().maxRSS * 1024;
}

const [outPath, ...imagePaths] = process.argv.slice(2);
if (!outPath || imagePaths.length === 0) {
  process.stderr.write('usage: node compile.mjs OUT.mind IMAGE.png [IMAGE.png ...]\n');
  process.exit(2);
}

const started = performance.now();
const images = imagePaths.map(readPngRgba);
const compiler = new PngCompiler();
await compiler.compileImageTargets(images, () => {});
const buffer = compiler.exportData();
const seconds = (performance.now() - started) / 1000;
fs.writeFileSync(outPath, buffer);

process.stdout.write(
  JSON.stringify({
    seconds,
    peakRssBytes: peakRssBytes(),
    targets: images.map((image) => ({ width: image.width, height: image.height })),
  }) + '\n',
);
