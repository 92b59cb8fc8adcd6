// The AR page: finds the print with MindAR and plays the content's video on it.
// Its state is <body data-state>: loading, scanning, tracking, expired or error (data-reason says which).
import * as THREE from "three";
import { MindARThree } from "mindar-image-three";

const body = document.body;
const video = document.getElementById("arv-video");
const soundButton = document.getElementById("arv-sound");

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

// Fill the target plane with the video like CSS object-fit: cover, so a video of another shape is
// cropped, never stretched.
function coverTexture(texture, planeAspect) {
  const videoAspect = video.videoWidth / video.videoHeight;
  if (!videoAspect) {
    return;
  }
  if (videoAspect > planeAspect) {
    texture.repeat.set(planeAspect / videoAspect, 1);
  } else {
    texture.repeat.set(1, videoAspect / planeAspect);
  }
  texture.offset.set((1 - texture.repeat.x) / 2, (1 - texture.repeat.y) / 2);
}

function playVideo() {
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
  video.src = content.video_url;
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
  // MindAR's anchor measures the target in target widths, centred: the plane is 1 wide.
  const planeAspect = content.target_width / content.target_height;
  const texture = new THREE.VideoTexture(video);
  texture.colorSpace = THREE.SRGBColorSpace;
  const plane = new THREE.Mesh(
    new THREE.PlaneGeometry(1, 1 / planeAspect),
    new THREE.MeshBasicMaterial({ map: texture }),
  );
  video.addEventListener("loadedmetadata", () => coverTexture(texture, planeAspect));
  const anchor = mindar.addAnchor(0);
  anchor.group.add(plane);
  anchor.onTargetFound = () => {
    performance.mark("arv-target-found");
    show("tracking");
    playVideo();
    video.requestVideoFrameCallback?.(() => performance.mark("arv-video-first-frame"));
  };
  anchor.onTargetLost = () => {
    video.pause();
    show("scanning");
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
