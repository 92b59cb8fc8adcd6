// Opens ARV's AR page in Debian's headless Chromium with a fake camera and reports what happened, as JSON.
//
// Usage: node viewer_session.mjs '{"url": ..., "camera": "feed.y4m" | null, "until": ["tracking"],
//                                  "timeoutS": 30, "holdS": 1.5, "grantCamera": true, "tap": false,
//                                  "screenshot": "tracking.png" | null, "withoutWebGL": false,
//                                  "refoundWithinS": null, "connection": null, "videoPicture": false,
//                                  "signalFile": null, "videoReadyWithinS": null, "corners": false}'
// Watches <body data-state> until it reaches one of `until` (or `timeoutS` passes), saves a screenshot
// once the print shows the playing video (or the poster, while the video is prepared) if asked, reads
// the video's picture if `videoPicture`, writes `signalFile` (the page's text then) if asked, waits up
// to `videoReadyWithinS` for a video being prepared to play, taps the screen if `tap`, watches `holdS`
// seconds more, and prints {states, videoStates, finalState, finalVideo, finalPrint, pageLoads,
// cameraRequests, video, videoSamples, mutedBeforeTap, bytesBeforeCamera, marks, errors}.
//
// `corners` records where the tracked print's four corners are on screen at each pose MindAR gives
// (report.corners: [[seconds since navigation, x0, y0, ... x3, y3], ...], CSS pixels), on any page that
// uses MindAR's three.js build: ARV's and a plain MindAR page alike (see recordCorners).
//
// `connection` stands in for navigator.connection ({saveData, effectiveType, downlink}), as a phone on
// a fast or a slow network reports it.
//
// Or: node viewer_session.mjs --serve '{"camera": ..., "grantCamera": ..., "withoutWebGL": ...}' keeps
// one browser (one camera) open and opens a page for each line of options it reads on stdin, printing
// one report line for each: several page loads without starting a browser for each.
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { launchChromium } from "./chromium.mjs";

const serving = process.argv[2] === "--serve";
const launchOptions = JSON.parse(process.argv[serving ? 3 : 2]);
const { context, close } = await launchChromium({
  camera: launchOptions.camera,
  grantCamera: launchOptions.grantCamera !== false,
  withoutWebGL: Boolean(launchOptions.withoutWebGL),
});

// The page's video now and `gapMs` later: its position, frames shown, and (if `picture`) the picture it
// shows, drawn to a canvas at most 96 pixels long, as [r, g, b, ...] by rows from the top.
function sampleVideo(page, picture, gapMs = 400) {
  return page.evaluate(
    async ([picture, gapMs]) => {
      const video = document.getElementById("arv-video");
      const sample = () => ({
        currentTime: video.currentTime,
        frames: video.getVideoPlaybackQuality().totalVideoFrames,
        paused: video.paused,
      });
      const before = sample();
      let drawn = null;
      if (picture && video.videoWidth) {
        const scale = 96 / Math.max(video.videoWidth, video.videoHeight);
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(video.videoWidth * scale));
        canvas.height = Math.max(1, Math.round(video.videoHeight * scale));
        const context = canvas.getContext("2d");
        context.drawImage(video, 0, 0, canvas.width, canvas.height);
        const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
        const rgb = [];
        for (let i = 0; i < rgba.length; i += 4) rgb.push(rgba[i], rgba[i + 1], rgba[i + 2]);
        drawn = { width: canvas.width, height: canvas.height, rgb };
      }
      await new Promise((resolve) => setTimeout(resolve, gapMs));
      return {
        before,
        after: sample(),
        picture: drawn,
        videoWidth: video.videoWidth,
        videoHeight: video.videoHeight,
        src: video.currentSrc,
      };
    },
    [picture, gapMs],
  );
}

// The print shows the video once it has played a little, or the poster while the video is prepared.
function printShown() {
  const print = document.body.dataset.print;
  return (
    document.body.dataset.state === "tracking" &&
    (print === "poster" || (print === "video" && document.getElementById("arv-video").currentTime > 0.3))
  );
}

// Runs in the page before its scripts: catches MindARThree as MindAR's bundle publishes it
// (window.MINDAR.IMAGE.MindARThree), notes each anchor added, and at every animation frame in which an
// anchor shows a new pose (MindAR sets a new group.matrix for each), projects the target's corners
// (the anchor's plane is 1 target width wide, centred) with the scene's camera to screen pixels.
function recordCorners() {
  const anchors = [];
  window.__arvCorners = [];
  let published;
  const image = {};
  Object.defineProperty(image, "MindARThree", {
    configurable: true,
    enumerable: true,
    get: () => published,
    set(value) {
      published = value;
      const addAnchor = value.prototype.addAnchor;
      value.prototype.addAnchor = function (targetIndex) {
        const anchor = addAnchor.call(this, targetIndex);
        anchors.push({ mindar: this, anchor, last: null });
        return anchor;
      };
    },
  });
  window.MINDAR = { IMAGE: image };
  // Column-major 4x4 (three.js) times a column vector.
  const apply = (m, v) => [0, 1, 2, 3].map((r) => m[r] * v[0] + m[4 + r] * v[1] + m[8 + r] * v[2] + m[12 + r] * v[3]);
  const sample = () => {
    for (const entry of anchors) {
      const { mindar, anchor } = entry;
      const matrix = anchor.group.matrix;
      if (!anchor.group.visible || matrix === entry.last || !mindar.controller || !mindar.controller.markerDimensions) {
        continue;
      }
      entry.last = matrix;
      const [width, height] = mindar.controller.markerDimensions[anchor.targetIndex];
      const half = height / width / 2;
      const camera = mindar.camera;
      const box = mindar.container;
      const row = [performance.now() / 1000];
      for (const [x, y] of [[-0.5, half], [0.5, half], [0.5, -half], [-0.5, -half]]) {
        const world = apply(matrix.elements, [x, y, 0, 1]);
        const clip = apply(camera.projectionMatrix.elements, apply(camera.matrixWorldInverse.elements, world));
        row.push(((clip[0] / clip[3] + 1) / 2) * box.clientWidth, ((1 - clip[1] / clip[3]) / 2) * box.clientHeight);
      }
      window.__arvCorners.push(row);
    }
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}

// One load of the page `options.url`, and the report of what it did.
async function openPage(options) {
  const report = {
    states: [],
    videoStates: [],
    cameraRequests: 0,
    errors: [],
    video: null,
    marks: {},
    bytesBeforeCamera: null,
    // Each document loaded: a page that reloaded itself loaded more than one.
    pageLoads: 0,
  };
  const page = await context.newPage();
  try {
    const started = Date.now();
    page.on("pageerror", (error) => report.errors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error") report.errors.push(message.text());
    });
    page.on("domcontentloaded", () => (report.pageLoads += 1));
    // Counts camera requests from inside the page, before any of its scripts run.
    await page.addInitScript(() => {
      window.__arvCameraRequests = 0;
      const devices = navigator.mediaDevices;
      if (devices && devices.getUserMedia) {
        const original = devices.getUserMedia.bind(devices);
        devices.getUserMedia = (constraints) => {
          window.__arvCameraRequests += 1;
          performance.mark("arv-get-user-media");
          return original(constraints);
        };
      }
    });
    if (options.corners) {
      await page.addInitScript(recordCorners);
    }
    if (options.connection) {
      await page.addInitScript((connection) => {
        Object.defineProperty(Navigator.prototype, "connection", { get: () => connection, configurable: true });
      }, options.connection);
    }
    await page.exposeFunction("__arvState", (state, videoPaused) =>
      report.states.push({ state, t: (Date.now() - started) / 1000, videoPaused }),
    );
    await page.exposeFunction("__arvVideoState", (video) =>
      report.videoStates.push({ video, t: (Date.now() - started) / 1000 }),
    );
    await page.addInitScript(() => {
      document.addEventListener("DOMContentLoaded", () => {
        // The content video's state at each change: it must play while tracking, and only then.
        window.__arvTrackingStarts = 0;
        const report = () => {
          const video = document.getElementById("arv-video");
          if (document.body.dataset.state === "tracking") window.__arvTrackingStarts += 1;
          window.__arvState(document.body.dataset.state, video ? video.paused : null);
        };
        report();
        new MutationObserver(report).observe(document.body, {
          attributes: true,
          attributeFilter: ["data-state"],
        });
        // Whether the page has its video or waits for it to be prepared; the page may have said so
        // already (its content can arrive before this event), so the state now comes first.
        const reportVideo = () => window.__arvVideoState(document.body.dataset.video || null);
        if (document.body.dataset.video) reportVideo();
        new MutationObserver(reportVideo).observe(document.body, {
          attributes: true,
          attributeFilter: ["data-video"],
        });
      });
    });
    const response = await page.goto(options.url, { waitUntil: "domcontentloaded" });
    report.httpStatus = response ? response.status() : null;
    const until = options.until || [];
    const timeoutMs = (options.timeoutS ?? 30) * 1000;
    try {
      await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state), until, {
        timeout: timeoutMs,
        polling: 50,
      });
    } catch {
      report.timedOut = true;
    }
    if (options.screenshot) {
      // What the person sees while the print is shown (a few frames later, so that a new texture
      // is on screen). On a busy machine the fake camera can carry the print away while the
      // screenshot is taken: then it is taken again the next time the print is shown.
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline) {
        const shown = await page
          .waitForFunction(printShown, null, { timeout: Math.max(1, deadline - Date.now()), polling: 20 })
          .then(() => true, () => false);
        if (!shown) break;
        await page.waitForTimeout(200);
        await page.screenshot({ path: options.screenshot }).catch(() => {});
        if (await page.evaluate(printShown).catch(() => false)) break;
      }
    }
    if (options.videoPicture) {
      await page
        .waitForFunction(printShown, null, { timeout: 20000, polling: 20 })
        .then(async () => {
          report.videoSamples = [await sampleVideo(page, true)];
        })
        .catch(() => {});
    }
    if (options.signalFile) {
      const text = await page.evaluate(() => document.body.innerText);
      writeFileSync(options.signalFile, JSON.stringify({ t: (Date.now() - started) / 1000, text }));
    }
    if (options.videoReadyWithinS) {
      // The video being prepared becomes ready: it plays on the print without the page reloading.
      const played = await page
        .waitForFunction(
          () => document.body.dataset.video === "ready" && document.getElementById("arv-video").currentTime > 0.3,
          null,
          { timeout: options.videoReadyWithinS * 1000, polling: 50 },
        )
        .then(() => true)
        .catch(() => false);
      report.videoPlayedAtS = played ? (Date.now() - started) / 1000 : null;
      if (played) {
        report.videoSamples = [...(report.videoSamples || []), await sampleVideo(page, options.videoPicture)];
      }
    }
    if (options.tap) {
      report.mutedBeforeTap = await page.evaluate(() => document.getElementById("arv-video")?.muted ?? null);
      await page.mouse.click(240, 320);
    }
    if (options.refoundWithinS) {
      // The print leaves the view and comes back: wait for the second start of tracking.
      await page
        .waitForFunction(() => window.__arvTrackingStarts >= 2, null, { timeout: options.refoundWithinS * 1000 })
        .catch(() => {});
    }
    await page.waitForTimeout((options.holdS ?? 0) * 1000);
    Object.assign(
      report,
      await page.evaluate(() => {
        const video = document.getElementById("arv-video");
        const marks = {};
        for (const mark of performance.getEntriesByType("mark")) marks[mark.name] = mark.startTime / 1000;
        const cameraAt = marks["arv-get-user-media"];
        let bytes = 0;
        const resources = [];
        for (const entry of performance.getEntriesByType("resource")) {
          if (cameraAt !== undefined && entry.startTime / 1000 > cameraAt) continue;
          resources.push({ name: entry.name, bytes: entry.transferSize });
          bytes += entry.transferSize;
        }
        const [navigation] = performance.getEntriesByType("navigation");
        if (navigation) bytes += navigation.transferSize;
        return {
          corners: window.__arvCorners || null,
          finalState: document.body.dataset.state,
          finalReason: document.body.dataset.reason || null,
          finalVideo: document.body.dataset.video || null,
          finalPrint: document.body.dataset.print || null,
          text: document.body.innerText,
          cameraRequests: window.__arvCameraRequests,
          marks,
          bytesBeforeCamera: cameraAt === undefined ? null : bytes,
          resourcesBeforeCamera: resources,
          video: video
            ? {
                paused: video.paused,
                currentTime: video.currentTime,
                readyState: video.readyState,
                muted: video.muted,
                src: video.currentSrc,
                poster: video.poster,
              }
            : null,
        };
      }),
    );
  } finally {
    await page.close();
  }
  return report;
}

try {
  if (serving) {
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim()) process.stdout.write(JSON.stringify(await openPage(JSON.parse(line))) + "\n");
    }
  } else {
    process.stdout.write(JSON.stringify(await openPage(launchOptions)) + "\n");
  }
} finally {
  await close();
}
