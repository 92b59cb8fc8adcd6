// Debian's headless Chromium as the viewer's tests and benchmarks start it: a fresh profile, no
// background traffic (this machine's network is closed), autoplay, and a fake camera playing a file.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";

// `camera`: a .y4m the fake camera plays (none: no camera); `grantCamera`: false to refuse it;
// `withoutWebGL`: a browser without WebGL, as on old phones. Returns {context, close}.
export async function launchChromium({ camera = null, grantCamera = true, withoutWebGL = false } = {}) {
  const executablePath =
    process.env.ARV_CHROMIUM || execFileSync("sh", ["-c", "command -v chromium"]).toString().trim();
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
  if (camera) {
    args.push(`--use-file-for-fake-video-capture=${camera}`);
  }
  if (withoutWebGL) {
    // SwiftShader is what gives headless Chromium its WebGL.
    args.push("--disable-gpu", "--disable-software-rasterizer");
  }
  if (grantCamera) {
    args.push("--use-fake-ui-for-media-stream");
  }
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args,
    viewport: { width: 480, height: 640 },
    permissions: grantCamera ? ["camera"] : [],
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}
