// The AR page: finds the print with MindAR and plays the content's video on it.
// Its state is <body data-state>: loading, scanning, tracking, expired or error (data-reason says which).
// The video's is <body data-video>: preparing while its renditions are made (the poster is on the print
// and the page asks again every few seconds), then ready. <body data-print> says what the print shows:
// poster or video (nothing yet when absent).
import * as THREE from "three";
import { MindARThree } from "mindar-image-three";

// How often the page asks whether a video being prepared is ready.
const PREPARING_POLL_MS = 5000;
// Connections on which the small rendition plays, when there is one (Network Information API).
const SLOW_CONNECTION_TYPES = new Set(["slow-2g", "2g", "3g"]);
// Below the small rendition's need with room to spare, and below the 1.6 Mbit/s Chromium reports before
// it has measured the link: only a link measured slow (or said to be) gets the small rendition.
const SLOW_DOWNLINK_MBPS = 1.5;

const body = document.body;
const video = document.getElementById("arv-video");
const soundButton = document.getElementById("arv-sound");
const progressLine = document.getElementById("arv-progress");
const config = JSON.parse(document.getElementById("arv-config").textContent);

function show(state, reason) {
  body.dataset.state = state;
  if (reason) {
    body.dataset.reason = reason;
  } else {
    delete body.dataset.reason;
  }
}

function setMuted(muted) {
  video.muted = muted;
  body.dataset.muted = String(muted);
}

// Fill the target plane with a picture like CSS object-fit: cover, so a video or poster of another
// shape is cropped, never stretched.
function coverTexture(texture, planeAspect, width, height) {
  const aspect = width / height;
  if (!aspect) {
    return;
  }
  if (aspect > planeAspect) {
    texture.repeat.set(planeAspect / aspect, 1);
  } else {
    texture.repeat.set(1, aspect / planeAspect);
  }
  texture.offset.set((1 - texture.repeat.x) / 2, (1 - texture.repeat.y) / 2);
}

function onSlowConnection() {
  const connection = navigator.connection;
  if (!connection) {
    return false;
  }
  const downlink = connection.downlink;
  return (
    Boolean(connection.saveData) ||
    SLOW_CONNECTION_TYPES.has(connection.effectiveType) ||
    (typeof downlink === "number" && downlink > 0 && downlink < SLOW_DOWNLINK_MBPS)
  );
}

function playbackUrl(content) {
  return content.small_video_url && onSlowConnection() ? content.small_video_url : content.video_url;
}

let awaitingFirstFrame = false;

// performance.mark("arv-video-first-frame") at the first frame shown after playback starts on the print,
// so that the time from "arv-target-found" to the picture moving can be measured.
function markFirstFrame() {
  if (awaitingFirstFrame) {
    return;
  }
  awaitingFirstFrame = true;
  const mark = () => {
    awaitingFirstFrame = false;
    performance.mark("arv-video-first-frame");
  };
  if ("requestVideoFrameCallback" in video) {
    video.requestVideoFrameCallback(mark);
    return;
  }
  const onTime = () => {
    if (video.currentTime > 0) {
      video.removeEventListener("timeupdate", onTime);
      mark();
    }
  };
  video.addEventListener("timeupdate", onTime);
}

function hasVideo() {
  return body.dataset.video === "ready";
}

function playVideo() {
  if (!hasVideo()) {
    return;
  }
  markFirstFrame();
  video.play().catch((error) => console.warn("the video did not start", error));
}

function unmute() {
  if (video.muted) {
    setMuted(false);
    if (body.dataset.state === "tracking") {
      playVideo();
    }
  }
}

function errorReason(status, content) {
  if (content.state === "not_ready" || content.state === "unknown" || content.state === "deleted") {
    return content.state;
  }
  return status === 404 ? "unknown" : "failed";
}

function hasWebGL() {
  // MindAR's detector runs on WebGL (TensorFlow.js has no CPU fallback in the browser).
  const canvas = document.createElement("canvas");
  return Boolean(canvas.getContext("webgl2") || canvas.getContext("webgl"));
}

function showProgress(progress) {
  progressLine.textContent =
    typeof progress === "number" ? progressLine.dataset.words.replace("{percent}", String(Math.floor(progress))) : "";
}

// The picture on the print: the content's video once it plays, its poster (or nothing) before.
class PrintSurface {
  constructor(anchor, planeAspect) {
    this.planeAspect = planeAspect;
    this.material = new THREE.MeshBasicMaterial();
    this.plane = new THREE.Mesh(new THREE.PlaneGeometry(1, 1 / planeAspect), this.material);
    // MindAR's anchor measures the target in target widths, centred: the plane is 1 wide.
    anchor.group.add(this.plane);
    this.plane.visible = false;
    this.posterUrl = null;
    this.showsVideo = false;
  }

  showPoster(url) {
    if (!url || url === this.posterUrl || this.showsVideo) {
      return;
    }
    this.posterUrl = url;
    new THREE.TextureLoader().load(
      url,
      (texture) => {
        if (this.showsVideo) {
          texture.dispose();
          return;
        }
        texture.colorSpace = THREE.SRGBColorSpace;
        coverTexture(texture, this.planeAspect, texture.image.width, texture.image.height);
        this.setMap(texture, "poster");
      },
      undefined,
      () => console.warn("the poster did not load"),
    );
  }

  showVideo() {
    const texture = new THREE.VideoTexture(video);
    texture.colorSpace = THREE.SRGBColorSpace;
    const fit = () => coverTexture(texture, this.planeAspect, video.videoWidth, video.videoHeight);
    video.addEventListener("loadedmetadata", fit);
    fit();
    this.showsVideo = true;
    this.setMap(texture, "video");
  }

  setMap(texture, what) {
    const previous = this.material.map;
    this.material.map = texture;
    this.material.needsUpdate = true;
    this.plane.visible = true;
    body.dataset.print = what;
    if (previous) {
      previous.dispose();
    }
  }
}

function startVideo(content, surface) {
  if (content.poster_url) {
    video.poster = content.poster_url;
  }
  video.src = playbackUrl(content);
  body.dataset.video = "ready";
  surface.showVideo();
  if (body.dataset.state === "tracking") {
    playVideo();
  }
}

// While the video is prepared: ask again every few seconds (the same view, not counted again) and swap
// the video in as soon as it plays, without reloading the page. `end(state, reason)` closes the AR view
// when the content went away meanwhile (expired, deleted).
function awaitVideo(surface, end) {
  const ask = async () => {
    let response;
    try {
      response = await fetch(`${config.contentUrl}?repeat=true`, {
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
    } catch (error) {
      console.warn("could not ask whether the video is ready", error);
      setTimeout(ask, PREPARING_POLL_MS);
      return;
    }
    const content = await response.json().catch(() => ({}));
    if (response.status === 200 && content.state === "active") {
      startVideo(content, surface);
      return;
    }
    if (content.state === "expired") {
      end("expired");
      return;
    }
    if (response.status === 200) {
      surface.showPoster(content.poster_url);
      showProgress(content.progress);
    } else if (response.status === 404 || response.status === 410) {
      end("error", errorReason(response.status, content));
      return;
    }
    setTimeout(ask, PREPARING_POLL_MS);
  };
  setTimeout(ask, PREPARING_POLL_MS);
}

async function main() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !hasWebGL()) {
    show("error", "unsupported");
    return;
  }
  // Started by prefetch.js while this module and its libraries were loading.
  const { status, content, markerUrl } = await window.arvPrepared;
  if (content.state === "expired") {
    show("expired");
    return;
  }
  if (status !== 200) {
    show("error", errorReason(status, content));
    return;
  }
  setMuted(true);

  const mindar = new MindARThree({
    container: document.getElementById("arv-scene"),
    imageTargetSrc: markerUrl,
    maxTrack: 1,
    uiLoading: "no",
    uiScanning: "no",
    uiError: "no",
  });
  const { renderer, scene, camera } = mindar;
  const anchor = mindar.addAnchor(0);
  const surface = new PrintSurface(anchor, content.target_width / content.target_height);
  let ended = false;
  const end = (state, reason) => {
    ended = true;
    renderer.setAnimationLoop(null);
    if (mindar.video && mindar.video.srcObject) {
      mindar.stop();
    }
    show(state, reason);
  };
  if (content.state === "preparing") {
    body.dataset.video = "preparing";
    surface.showPoster(content.poster_url);
    showProgress(content.progress);
    awaitVideo(surface, end);
  } else {
    // Set before the camera starts (preload="auto"): the first frame is decoded by the time the print
    // is found.
    startVideo(content, surface);
  }
  anchor.onTargetFound = () => {
    if (ended) {
      return;
    }
    performance.mark("arv-target-found");
    show("tracking");
    playVideo();
  };
  anchor.onTargetLost = () => {
    video.pause();
    if (!ended) {
      show("scanning");
    }
  };

  performance.mark("arv-camera-requested");
  try {
    await mindar.start();
  } catch (error) {
    // MindAR rejects without a reason; no camera stream means the camera was refused or is missing.
    const cameraStarted = Boolean(mindar.video && mindar.video.srcObject);
    console.warn("the AR view did not start", error);
    show("error", cameraStarted ? "failed" : "camera");
    return;
  }
  performance.mark("arv-scanning");
  if (ended) {
    return;
  }
  if (body.dataset.state === "loading") {
    show("scanning");
  }
  renderer.setAnimationLoop(() => renderer.render(scene, camera));
}

soundButton.addEventListener("click", (event) => {
  event.stopPropagation();
  unmute();
});
document.addEventListener("click", unmute);
window.addEventListener("unhandledrejection", (event) => {
  // MindAR fails inside its own promises (a damaged marker, WebGL lost); the page must not spin forever.
  console.error("the AR view failed", event.reason);
  if (body.dataset.state === "loading") {
    show("error", "failed");
  }
});
main().catch((error) => {
  console.error("the AR view failed", error);
  show("error", "failed");
});
