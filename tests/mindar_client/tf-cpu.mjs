// Puts tfjs on its CPU backend with MindAR's CPU kernels registered, before any MindAR module runs.
import * as tf from '@tensorflow/tfjs';
import 'mind-ar/src/image-target/detector/kernels/cpu/index.js';

// tfjs picks its fastest backend itself; MindAR registered CPU kernels only, so the CPU backend is pinned.
await tf.setBackend('cpu');
await tf.ready();

export { tf };
