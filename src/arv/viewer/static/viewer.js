// The AR page: finds the print with MindAR and plays the content's video on it.
// Its state is <body data-state>: loading, scanning, tracking, expired or error (data-reason says which).
// The video's is <body data-video>: preparing while its renditions are made (the poster is on the print
// and the page asks again every few seconds), then ready. <body data-print> says what the print shows:
// poster or video (nothing yet when absent).
import * as THREE from "three";
import { MindARThree } from "mindar-image-three";
// MindAR's own Controller (what MindARThree runs), from the chunk of the pinned build that holds it
// (assets.py maps the name): the page builds one to warm MindAR up before the camera answers.
import { C as Controller } from "mindar-image-controller";

// How often the page asks whether a video being prepared is ready.
const PREPARING_POLL_MS = 5000;
// Connections on which the small rendition plays, when there is one (Network Information API).
const SLOW_CONNECTION_TYPES = new Set(["slow-2g", "2g", "3g"]);
// Below the small rendition's need with room to spare, and below the 1.6 Mbit/s Chromium reports before
// it has measured the link: only a link measured slow (or said to be) gets the small rendition.
const SLOW_DOWNLINK_MBPS = 1.5;

// The camera size asked for. MindAR processes every frame at the video's size (grey conversion, the
// tracker's projection) and detects in a square crop whose side is the power of two nearest half the
// short side: 640x480 gives 256, a 1920x1080 stream 512 (four times the detector's work on every frame
// while searching) and six times the pixels to convert. 640x480 is 4:3 like phone sensors (no crop) and
// still shows a print seen small across a table at about 100 pixels wide. Asking for a known size also
// lets the shaders be compiled for it before the camera answers (they are compiled per size).
const CAMERA_WIDTH = 640;
const CAMERA_HEIGHT = 480;
// MindAR's pose filter: One-Euro on each of the pose matrix's 16 elements, cut-offs in cycles per ms,
// cut-off = filterMinCF + filterBeta * |smoothed speed| (per ms). MindAR's beta (1000) multiplies speeds
// of elements measured in target pixels: a held print's shake alone raises the cut-off far above anything
// that smooths, so MindAR's default filter follows every tremor. With beta 0.01, a shake of a pixel
// adds a few hundredths of a Hz and the pose is smoothed at the minimum cut-off of 0.4 Hz (MindAR: 1 Hz),
// while a phone moving a 1000-pixel target by a tenth of its width per second raises it by about 1 Hz
// and faster motion higher, so the video keeps up with the print. Measured by benchmarks/viewer.py.
const POSE_FILTER = { filterMinCF: 0.0004, filterBeta: 0.01 };
// Frames tracked beyond the first before the print counts as found (MindAR: 5): fewer is sooner. A false
// match must still hold for 3 frames (a view without the print is never tracked: test_viewer_browser.py).
const WARMUP_FRAMES = 2;

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

// MindAR's anchor matrix while the print is not seen (MindAR hides the anchor with it).
const HIDDEN_MATRIX = new THREE.Matrix4().set(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

// The camera size the page expects to be answered with: a phone held upright may deliver its frames
// turned (480x640), and MindAR then processes them at that size.
function expectedCameraSize() {
  const upright = navigator.maxTouchPoints > 0 && window.innerHeight > window.innerWidth;
  return upright ? [CAMERA_HEIGHT, CAMERA_WIDTH] : [CAMERA_WIDTH, CAMERA_HEIGHT];
}

// MindARThree with ARV's changes to how it starts, which its options cannot reach (a patch by
// subclass: MindAR's files are used as published):
// - the camera is asked for at CAMERA_WIDTH x CAMERA_HEIGHT (MindAR asks for no size: the browser picks);
// - MindAR's warm-up runs while the camera is being asked for (and the marker downloaded), not after the
//   camera answered. MindARThree.start() waits for the camera, and only then builds its Controller,
//   loads the marker and runs the Controller's dummyRun(), which compiles TensorFlow.js's WebGL shaders
//   of the detector and the tracker for the video's size (the WebGL backend itself starts at their
//   first operation): 1.3 s in headless Chromium on an idle 2-core machine, 2-3 s under load, mostly
//   the detector's. Here the Controller is built, given the marker and dummy-run on a
//   blank frame of the expected size as soon as the camera is asked for, and becomes MindAR's
//   controller when the camera answers at that size (at another size, one is built for it as MindAR
//   does; the shaders of the detector, whose crop is the same, stay compiled);
// - so _startAR() is ARV's: it does what MindAR's does after the warm-up (sizes the view, places each
//   anchor's group at each pose, calls onTargetFound / onTargetLost / onTargetUpdate, starts
//   processing), for three.js anchors (addAnchor); ARV adds no CSS anchors.
class ArvMindAR extends MindARThree {
  // `marker`: a promise of the marker's bytes.
  constructor(options, marker) {
    super(options);
    this.marker = marker;
    this.markerBuffer = null;
    this.warmController = null;
  }

  async start() {
    this.ui.showLoading();
    const camera = this._startVideo();
    // Awaited below, after the marker: a refusal meanwhile must not count as unhandled.
    camera.catch(() => {});
    performance.mark("arv-warm-up-started");
    let warming = null;
    try {
      warming = this._warmingController(...expectedCameraSize());
    } catch (error) {
      // Only the head start is lost: _startAR() builds the controller as MindAR would.
      console.warn("MindAR's warm-up failed", error);
    }
    try {
      this.markerBuffer = await this.marker;
    } catch (error) {
      // No marker, no AR view: the camera goes off again as soon as it has answered.
      if (warming) {
        warming.controller.worker.terminate();
      }
      camera.then(
        () => this.video.srcObject.getTracks().forEach((track) => track.stop()),
        () => {},
      );
      throw error;
    }
    if (warming) {
      try {
        this.warmController = warming.finish();
      } catch (error) {
        console.warn("MindAR's warm-up failed", error);
        warming.controller.worker.terminate();
      }
    }
    performance.mark("arv-warm-up-done");
    try {
      await camera;
    } catch (error) {
      this._dropWarmController();
      throw error;
    }
    await this._startAR();
  }

  _controllerOptions(width, height) {
    return {
      inputWidth: width,
      inputHeight: height,
      maxTrack: this.maxTrack,
      filterMinCF: this.filterMinCF,
      filterBeta: this.filterBeta,
      warmupTolerance: this.warmupTolerance,
      missTolerance: this.missTolerance,
      onUpdate: (data) => this._update(data),
    };
  }

  // MindAR's Controller.dummyRun() in two halves, on a blank frame of the given size: the detector's
  // (its crop does not depend on the marker) now, while the marker may still be downloading, and the
  // tracker's (which needs the marker) in finish(), which returns the controller.
  _warmingController(width, height) {
    const controller = new Controller(this._controllerOptions(width, height));
    const frame = document.createElement("canvas");
    frame.width = width;
    frame.height = height;
    const input = controller.inputLoader.loadInput(frame);
    try {
      controller.cropDetector.detect(input);
    } catch (error) {
      input.dispose();
      controller.worker.terminate();
      throw error;
    }
    performance.mark("arv-warm-up-detector");
    const finish = () => {
      try {
        controller.addImageTargetsFromBuffer(this.markerBuffer);
        controller.tracker.dummyRun(input);
      } finally {
        input.dispose();
      }
      return controller;
    };
    return { controller, finish };
  }

  // A MindAR Controller of the given input size with the page's options and the marker, dummy-run on
  // `input` as MindAR does.
  _controller(width, height, input) {
    const controller = new Controller(this._controllerOptions(width, height));
    controller.addImageTargetsFromBuffer(this.markerBuffer);
    controller.dummyRun(input);
    return controller;
  }

  _dropWarmController() {
    if (this.warmController) {
      this.warmController.worker.terminate();
      this.warmController = null;
    }
  }

  // MindAR's _startVideo() with a camera size: the same element and contract (this.video, sized to the
  // stream, resolves once the stream's size is known; rejects when there is no camera).
  _startVideo() {
    this.video = document.createElement("video");
    for (const name of ["autoplay", "muted", "playsinline"]) {
      this.video.setAttribute(name, "");
    }
    Object.assign(this.video.style, { position: "absolute", top: "0px", left: "0px", zIndex: "-2" });
    this.container.appendChild(this.video);
    const constraints = {
      audio: false,
      video: {
        facingMode: this.shouldFaceUser ? "user" : "environment",
        width: { ideal: CAMERA_WIDTH },
        height: { ideal: CAMERA_HEIGHT },
      },
    };
    return navigator.mediaDevices.getUserMedia(constraints).then((stream) => {
      performance.mark("arv-camera-answered");
      return new Promise((resolve) => {
        this.video.addEventListener("loadedmetadata", () => {
          this.video.setAttribute("width", this.video.videoWidth);
          this.video.setAttribute("height", this.video.videoHeight);
          resolve();
        });
        this.video.srcObject = stream;
      });
    });
  }

  async _startAR() {
    const { videoWidth: width, videoHeight: height } = this.video;
    const warm = this.warmController;
    if (warm && warm.inputWidth === width && warm.inputHeight === height) {
      this.controller = warm;
      this.warmController = null;
    } else {
      this._dropWarmController();
      this.controller = this._controller(width, height, this.video);
    }
    this.resize();
    // MindAR's anchor space: 1 is the target's width, the origin its centre.
    this.postMatrixs = this.controller.markerDimensions.map(([markerWidth, markerHeight]) =>
      new THREE.Matrix4().compose(
        new THREE.Vector3(markerWidth / 2, markerHeight / 2, 0),
        new THREE.Quaternion(),
        new THREE.Vector3(markerWidth, markerWidth, markerWidth),
      ),
    );
    this.ui.hideLoading();
    this.ui.showScanning();
    this.controller.processVideo(this.video);
  }

  // The Controller's onUpdate: each pose of a target (worldMatrix null: lost) moves its anchors.
  _update({ type, targetIndex, worldMatrix }) {
    if (type !== "updateMatrix") {
      return;
    }
    for (const anchor of this.anchors) {
      if (anchor.targetIndex !== targetIndex) {
        continue;
      }
      const seen = worldMatrix !== null;
      anchor.group.visible = seen;
      anchor.group.matrix = seen
        ? new THREE.Matrix4().fromArray(worldMatrix).multiply(this.postMatrixs[targetIndex])
        : HIDDEN_MATRIX.clone();
      if (anchor.visible !== seen) {
        anchor.visible = seen;
        const callback = seen ? anchor.onTargetFound : anchor.onTargetLost;
        if (callback) {
          callback();
        }
      }
      if (anchor.onTargetUpdate) {
        anchor.onTargetUpdate();
      }
    }
    if (this.anchors.some((anchor) => anchor.visible)) {
      this.ui.hideScanning();
    } else {
      this.ui.showScanning();
    }
  }
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
  const { status, content } = await window.arvContent;
  if (content.state === "expired") {
    show("expired");
    return;
  }
  if (status !== 200) {
    show("error", errorReason(status, content));
    return;
  }
  setMuted(true);

  const mindar = new ArvMindAR(
    {
      container: document.getElementById("arv-scene"),
      // Unused: ArvMindAR gives the controller the marker's bytes.
      imageTargetSrc: null,
      maxTrack: 1,
      uiLoading: "no",
      uiScanning: "no",
      uiError: "no",
      ...POSE_FILTER,
      warmupTolerance: WARMUP_FRAMES,
    },
    window.arvMarker,
  );
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
    // MindAR rejects without a reason; no camera stream means the camera was refused or is missing,
    // unless the marker could not be downloaded.
    const markerFailed = await window.arvMarker.then(
      () => false,
      () => true,
    );
    const cameraStarted = Boolean(mindar.video && mindar.video.srcObject);
    console.warn("the AR view did not start", error);
    show("error", cameraStarted || markerFailed ? "failed" : "camera");
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
