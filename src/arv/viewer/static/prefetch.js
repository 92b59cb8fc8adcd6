// Starts the downloads the AR view needs (what to play, then its marker) while the libraries load.
// viewer.js awaits `window.arvContent` ({status, content}) before it asks for the camera, and
// `window.arvMarker` (the marker's bytes; null when there is no content to show) only once MindAR's
// tracker needs them, so that a slow marker download overlaps the camera's start and MindAR's warm-up.
// A module without imports: it runs as soon as the page is parsed.
const config = JSON.parse(document.getElementById("arv-config").textContent);

async function fetchContent() {
  // no-store: rotation and expiry must take effect on the next load, never from a cached answer.
  const response = await fetch(config.contentUrl, { cache: "no-store", headers: { Accept: "application/json" } });
  const content = await response.json().catch(() => ({}));
  return { status: response.status, content };
}

async function fetchMarker({ status, content }) {
  if (status !== 200) {
    return null;
  }
  // Downloaded here rather than by MindAR, whose loader never settles when the download fails.
  const marker = await fetch(content.marker_url);
  if (!marker.ok) {
    throw new Error(`the marker could not be downloaded (HTTP ${marker.status})`);
  }
  return marker.arrayBuffer();
}

window.arvContent = fetchContent();
window.arvMarker = window.arvContent.then(fetchMarker);
// viewer.js reports a failure; this keeps it from counting as unhandled before then.
window.arvContent.catch(() => {});
window.arvMarker.catch(() => {});
