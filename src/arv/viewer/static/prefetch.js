// Starts the downloads the AR view needs (what to play, then its marker) while the libraries load;
// viewer.js awaits `window.arvPrepared`: {status, content, markerBuffer} (the marker's bytes, which
// MindAR's controller is given directly). A module without imports: it runs as soon as the page is parsed.
const config = JSON.parse(document.getElementById("arv-config").textContent);

async function prepare() {
  // no-store: rotation and expiry must take effect on the next load, never from a cached answer.
  const response = await fetch(config.contentUrl, { cache: "no-store", headers: { Accept: "application/json" } });
  const content = await response.json().catch(() => ({}));
  if (response.status !== 200) {
    return { status: response.status, content, markerBuffer: null };
  }
  // Downloaded here rather than by MindAR, whose loader never settles when the download fails.
  const marker = await fetch(content.marker_url);
  if (!marker.ok) {
    throw new Error(`the marker could not be downloaded (HTTP ${marker.status})`);
  }
  return { status: 200, content, markerBuffer: await marker.arrayBuffer() };
}

window.arvPrepared = prepare();
// viewer.js reports a failure; this keeps it from counting as unhandled before then.
window.arvPrepared.catch(() => {});
