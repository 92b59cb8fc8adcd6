// Opens ARV's AR page in Debian's headless Chromium on a throttled network and reports when the content
// video showed its first frame after the print was found, as JSON (benchmarks/video.py drives it).
//
// Usage: node video_first_frame.mjs '{"url": ..., "camera": "feed.y4m", "timeoutS": 120,
//                                     "downKbps": 1600, "upKbps": 1600, "latencyMs": 150,
//                                     "rendition": "served" | "small"}'
// The network is throttled through CDP (Network.emulateNetworkConditions) before the page loads.
// `rendition: "small"` makes the page play the content's small rendition: the content JSON the page
// fetches gets its video_url replaced by small_video_url, inside the page, so the request itself stays
// throttled. Prints {finalState, marks (first of each, seconds since navigation), connection,
// videoSrc, errors}.
// Chromium is started as the browser tests start it (their packages: scripts/install-node-deps.sh).
import { launchChromium } from "../tests/browser/chromium.mjs";

const options = JSON.parse(process.argv[2]);
const { context, close } = await launchChromium({ camera: options.camera });
const report = { errors: [], marks: {}, connection: null, finalState: null, videoSrc: null };
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (error) => report.errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") report.errors.push(message.text());
  });
  if (options.rendition === "small") {
    await page.addInitScript(() => {
      const original = window.fetch.bind(window);
      window.fetch = async (resource, init) => {
        const response = await original(resource, init);
        if (!String(resource).includes("/api/ar/") || response.status !== 200) return response;
        const content = await response.json();
        if (!content.small_video_url) throw new Error("the content has no small rendition");
        content.video_url = content.small_video_url;
        return new Response(JSON.stringify(content), { status: 200, headers: response.headers });
      };
    });
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: options.latencyMs,
    downloadThroughput: (options.downKbps * 1000) / 8,
    uploadThroughput: (options.upKbps * 1000) / 8,
    connectionType: "cellular3g",
  });
  await page.goto(options.url, { waitUntil: "domcontentloaded", timeout: options.timeoutS * 1000 });
  await page
    .waitForFunction(() => performance.getEntriesByName("arv-video-first-frame").length > 0
      || document.body.dataset.state === "error", null, { timeout: options.timeoutS * 1000, polling: 50 })
    .catch(() => {});
  Object.assign(
    report,
    await page.evaluate(() => {
      const marks = {};
      for (const mark of performance.getEntriesByType("mark")) {
        if (!(mark.name in marks)) marks[mark.name] = mark.startTime / 1000;
      }
      const connection = navigator.connection
        ? {
            effectiveType: navigator.connection.effectiveType,
            downlinkMbps: navigator.connection.downlink,
            rttMs: navigator.connection.rtt,
            type: navigator.connection.type ?? null,
            saveData: navigator.connection.saveData,
          }
        : null;
      return {
        finalState: document.body.dataset.state,
        finalReason: document.body.dataset.reason || null,
        marks,
        connection,
        videoSrc: document.getElementById("arv-video")?.currentSrc ?? null,
      };
    }),
  );
} finally {
  await close();
}
process.stdout.write(JSON.stringify(report) + "\n");
