// Opens ARV's AR page in Debian's headless Chromium with a fake camera and reports what happened, as JSON.
//
// Usage: node viewer_session.mjs '{"url": ..., "camera": "feed.y4m" | null, "until": ["tracking"],
//                                  "timeoutS": 30, "holdS": 1.5, "grantCamera": true, "tap": false,
//                                  "screenshot": "tracking.png" | null, "withoutWebGL": false,
//                                  "refoundWithinS": null}'
// Watches <body data-state> until it reaches one of `until` (or `timeoutS` passes), saves a screenshot
// once the video plays on the print if asked, taps the screen if `tap`, watches `holdS` seconds more, and prints {states, finalState, cameraRequests, video,
// mutedBeforeTap, bytesBeforeCamera, marks, errors}.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";

const options = JSON.parse(process.argv[2]);
const chromiumPath = process.env.ARV_CHROMIUM || execFileSync("sh", ["-c", "command -v chromium"]).toString().trim();
const profile = mkdtempSync(join(tmpdir(), "arv-chromium-"));

const args = [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
  "--use-fake-device-for-media-stream",
];
if (options.camera) {
  args.push(`--use-file-for-fake-video-capture=${options.camera}`);
}
if (options.withoutWebGL) {
  // A browser without WebGL, as on old phones: SwiftShader is what gives headless Chromium its WebGL.
  args.push("--disable-gpu", "--disable-software-rasterizer");
}
if (options.grantCamera !== false) {
  args.push("--use-fake-ui-for-media-stream");
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args,
  viewport: { width: 480, height: 640 },
  permissions: options.grantCamera === false ? [] : ["camera"],
});
const report = { states: [], cameraRequests: 0, errors: [], video: null, marks: {}, bytesBeforeCamera: null };
try {
  const page = context.pages()[0] || (await context.newPage());
  const started = Date.now();
  page.on("pageerror", (error) => report.errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") report.errors.push(message.text());
  });
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
  await page.exposeFunction("__arvState", (state, videoPaused) =>
    report.states.push({ state, t: (Date.now() - started) / 1000, videoPaused }),
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
    // Once the video has frames on the plane, what the person sees.
    await page
      .waitForFunction(
        () => document.body.dataset.state === "tracking" && document.getElementById("arv-video").currentTime > 0.3,
        null,
        { timeout: 20000, polling: 20 },
      )
      .then(() => page.screenshot({ path: options.screenshot }))
      .catch(() => {});
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
        finalState: document.body.dataset.state,
        finalReason: document.body.dataset.reason || null,
        text: document.body.innerText,
        cameraRequests: window.__arvCameraRequests,
        marks,
        bytesBeforeCamera: cameraAt === undefined ? null : bytes,
        resourcesBeforeCamera: resources,
        video: video
          ? { paused: video.paused, currentTime: video.currentTime, readyState: video.readyState, muted: video.muted }
          : null,
      };
    }),
  );
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
