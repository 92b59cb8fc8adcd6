// Decodes a PNG file into RGBA pixels with pngjs (MindAR's Node tooling would use node-canvas instead).
import fs from 'node:fs';
import { PNG } from 'pngjs';

/** @returns {{width: number, height: number, data: Uint8Array}} RGBA, 8 bits per channel */
export function readPngRgba(path) {
  const png = PNG.sync.read(fs.readFileSync(path));
  return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
}
