// A studio's first day in ARV's web console, driven in Debian's headless Chromium; prints a JSON report.
//
// Usage: node console_day.mjs '{"part": "operator" | "owner", "base": "http://127.0.0.1:PORT", ...}'
//
// part "operator": {link, password, company, companyEmail, ownerEmail, shots}: sets the operator's
//   password through the one-time link `arv users create --admin` printed, creates the company, invites
//   its owner, opens the users and usage pages, signs out and opens the sign-in and forgotten-password
//   pages.
// part "owner": {link, password, photo, video, downloads, shots, uploadBytesPerS}: sets the owner's
//   password through the invitation's link, creates a project, uploads the photo and the video (the
//   upload throttled to `uploadBytesPerS`, so that its progress can be watched), waits on the content's
//   page, without reloading it, for the marker to become ready and the quality picture to show,
//   downloads the QR code and the 10x15 cm print sheet into `downloads`, creates an API key, and opens
//   the notifications, settings and a page that does not exist.
//
// Every page visited is checked with axe-core and its screenshot saved in `shots`; the report lists each
// page's serious and critical violations, and every console message that is an error (a script that
// failed, a resource the Content-Security-Policy refused).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { launchChromium } from "./chromium.mjs";

const options = JSON.parse(process.argv[2]);
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const { context, close } = await launchChromium({ camera: null, grantCamera: false });
const page = await context.newPage();
const report = { pages: [], errors: [] };
page.on("console", (message) => {
  if (message.type() === "error") report.errors.push(`${message.text()} (${message.location().url || page.url()})`);
});
page.on("pageerror", (error) => report.errors.push(String(error)));

// axe-core runs through the DevTools protocol, which the page's CSP does not govern (the page itself
// may load only its own scripts).
async function check(name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => axe.run(document, { resultTypes: ["violations"] }));
  const violations = result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  await page.screenshot({ path: join(options.shots, `${options.part}-${String(report.pages.length + 1).padStart(2, "0")}-${name}.png`), fullPage: true });
  report.pages.push({ name, url: page.url(), status: lastStatus, violations });
}

let lastStatus = null;
page.on("response", (response) => {
  if (response.request().isNavigationRequest() && response.frame() === page.mainFrame()) {
    lastStatus = response.status();
  }
});

async function submit(form) {
  await Promise.all([page.waitForNavigation(), page.locator(form).locator("button[type=submit]").click()]);
}

async function setPassword(link, password) {
  await page.goto(link);
  await check("set-password");
  await page.fill("input[name=password]", password);
  await submit("form[action='/console/set-password']");
}

async function operatorPart() {
  await setPassword(options.link, options.password);
  await check("companies");
  await page.fill("#company-name", options.company);
  await page.fill("#company-email", options.companyEmail);
  await submit("form[action='/console/companies']");
  const invite = page.locator("form[action$='/invite']").first();
  await invite.locator("input[name=email]").fill(options.ownerEmail);
  await Promise.all([page.waitForNavigation(), invite.locator("button[type=submit]").click()]);
  report.inviteNotice = await page.locator("[role=status]").first().innerText();
  await check("owner-invited");
  await page.goto(`${options.base}/console/users`);
  await check("users");
  await page.goto(`${options.base}/console/usage`);
  await check("usage");
  await submit("form[action='/console/logout']");
  await check("signed-out");
  await page.goto(`${options.base}/console/forgot-password`);
  await check("forgot-password");
}

async function ownerPart() {
  await setPassword(options.link, options.password);
  report.afterPassword = page.url();
  await check("projects");
  await page.fill("#project-name", "Wedding prints");
  const inAMonth = new Date(Date.now() + 30 * 86400e3).toISOString().slice(0, 10);
  await page.fill("#project-expires", inAMonth);
  await submit("form[action='/console/projects']");
  await check("project");

  // A file of the wrong type is refused in the browser, before anything is sent.
  await page.fill("#title", "Anna and Peter");
  await page.setInputFiles("#image", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a photo") });
  const sent = [];
  const countPosts = (request) => request.method() === "POST" && sent.push(request.url());
  page.on("request", countPosts);
  await page.click("#content-upload button[type=submit]");
  const refusal = page.locator("#content-upload [data-upload-error]");
  await refusal.waitFor({ state: "visible" });
  report.refusedInBrowser = { text: await refusal.innerText(), posts: sent.length, url: page.url() };
  page.off("request", countPosts);

  // The upload, throttled so that its progress shows; the bar's values are sampled as it moves.
  await page.setInputFiles("#image", options.photo);
  // The video is dropped on its drop zone, as a file dragged from the desktop.
  const dropped = await page.evaluateHandle(
    ([base64, name]) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], name, { type: "video/mp4" }));
      return transfer;
    },
    [readFileSync(options.video).toString("base64"), "clip.mp4"],
  );
  await page.locator("#content-upload [data-drop]:has(#video)").dispatchEvent("drop", { dataTransfer: dropped });
  report.droppedVideo = await page.evaluate(() => document.querySelector("#video").files[0]?.name);
  const devtools = await context.newCDPSession(page);
  await devtools.send("Network.enable");
  await devtools.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: options.uploadBytesPerS,
  });
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.querySelector("#content-upload progress");
    const sample = () => {
      const last = window.__progress[window.__progress.length - 1];
      if (bar.value !== last) window.__progress.push(bar.value);
    };
    window.__sampler = setInterval(sample, 20);
  });
  const landed = page.waitForURL(/\/console\/contents\/\d+/, { timeout: 120000 });
  await page.click("#content-upload button[type=submit]");
  // Read the samples before the page moves on: the last ones are taken from the bar as it stood.
  const samples = [];
  while (!/\/console\/contents\//.test(page.url())) {
    try {
      samples.splice(0, samples.length, ...(await page.evaluate(() => window.__progress)));
    } catch (_) {
      break; // the page is navigating away: the upload finished
    }
    await page.waitForTimeout(50);
  }
  await landed;
  await devtools.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  report.progress = samples;
  report.contentUrl = page.url();

  // The marker's status, followed without a reload: a mark on this window survives only if the page
  // is never loaded again.
  await page.evaluate(() => (window.__sameLoad = true));
  const marker = page.locator("[data-marker-status]");
  report.markerStatuses = [await marker.getAttribute("data-marker-status")];
  await check("content-compiling");
  const started = Date.now();
  while (Date.now() - started < options.markerTimeoutMs) {
    const now = await marker.getAttribute("data-marker-status");
    if (now !== report.markerStatuses[report.markerStatuses.length - 1]) report.markerStatuses.push(now);
    if (now === "ready" || now === "failed") break;
    await page.waitForTimeout(200);
  }
  report.sameLoad = await page.evaluate(() => window.__sameLoad === true);
  const picture = page.locator("figure.quality img");
  await picture.waitFor({ timeout: 20000 });
  await page.waitForFunction(() => {
    const img = document.querySelector("figure.quality img");
    return img && img.complete && img.naturalWidth > 0;
  });
  report.qualityPicture = await picture.evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
  report.verdict = await page.locator(".verdict").innerText();
  report.publicUrl = await page.inputValue("#public-link");
  await check("content-ready");

  for (const [name, selector] of [
    ["qr.png", "a[href$='/qr.png'][download]"],
    ["print-10x15.pdf", "a[href$='/print-10x15.pdf']"],
  ]) {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(selector)]);
    await download.saveAs(join(options.downloads, name));
  }
  report.printLinks = await page.$$eval("a[href$='.pdf']", (links) => links.map((a) => a.getAttribute("href")));

  await page.goto(`${options.base}/console/keys`);
  await page.fill("#key-label", "shop laptop");
  await submit("form[action='/console/keys']");
  report.newKeyShown = (await page.inputValue("#new-key")).startsWith("arv_");
  await check("keys");
  await page.goto(`${options.base}/console/notifications`);
  await check("notifications");
  await page.goto(`${options.base}/console/settings`);
  await check("settings");
  // A page that does not exist: its 404 is the one error the browser may report.
  const errorsBefore = report.errors.length;
  await page.goto(`${options.base}/console/projects/2147483647`);
  await check("not-found");
  report.errors = report.errors.slice(0, errorsBefore).concat(
    report.errors.slice(errorsBefore).filter((e) => !e.includes("status of 404")),
  );
}

try {
  await (options.part === "operator" ? operatorPart() : ownerPart());
  report.ok = true;
} catch (error) {
  report.ok = false;
  report.failure = `${error.stack || error}`;
  report.failedAt = page.url();
  await page.screenshot({ path: join(options.shots, `${options.part}-failure.png`), fullPage: true }).catch(() => {});
} finally {
  await close();
}
console.log(JSON.stringify(report));
