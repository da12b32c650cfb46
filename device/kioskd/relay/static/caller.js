// The caller page: a browser user of the call protocol (PROTOCOL.md), written to behave like
// the existing web app so that a kiosk can be tried (and tested) against a real browser.
//
// URL parameters, for tests, rigs and demos:
//   ?token=SECRET    sign in at once        ?name=TEXT      the name shown after "signed in"
//   ?call=USER_ID    pre-fill the callee    ?ring=SECONDS   ring timeout (default 30)
//   ?autoanswer=1    answer incoming calls at once
//   ?reoffer=MODE    how a re-offer from the peer is answered: "auto" (default: on the
//                    connection we have, else on a new one), "in-place" (only on the
//                    connection we have: the web app's way), "new-connection" (always new)
//   ?ice=JSON        the RTCPeerConnection's iceServers (default none), e.g.
//                    [{"urls":"turn:203.0.113.10:3478","username":"u","credential":"p"}]
"use strict";

const OFFER = "webrtc:offer";
const ANSWER = "webrtc:answer";
const CANDIDATE = "webrtc:ice-candidate";
const CALL_END = "webrtc:call-end";
const CALL_REJECT = "webrtc:call-reject";
const CALL_TIMEOUT = "webrtc:call-timeout";
const ERROR = "webrtc:error";

const params = new URLSearchParams(location.search);
const RING_TIMEOUT_MS = (Number(params.get("ring")) || 30) * 1000;
const DISCONNECT_GRACE_MS = 3000; // "disconnected" often recovers by itself
const AUTO_ANSWER = params.get("autoanswer") === "1";
const REOFFER_MODE = ["in-place", "new-connection"].includes(params.get("reoffer"))
  ? params.get("reoffer") : "auto";
const ICE_SERVERS = iceServers(params.get("ice"));
const MAX_QUEUED = 64; // remote candidates kept before their description; more is a flood
const MAX_EVENTS = 500;

const $ = (id) => document.getElementById(id);
const ui = {
  signin: $("signin"), token: $("token"), name: $("name"), me: $("me"),
  callee: $("callee"), videoCall: $("video-call"), audioCall: $("audio-call"),
  hangup: $("hangup"), incoming: $("incoming"), incomingFrom: $("incoming-from"),
  incomingType: $("incoming-type"), answer: $("answer"), decline: $("decline"),
  status: $("status"), remote: $("remote"), local: $("local"),
};

// What tests (and the curious, from the console) can read.
const caller = (window.caller = { state: "idle", signedIn: false, events: [], stats });

let socket = null;
let call = null; // the one current call, or null when idle
let early = []; // candidates that came ahead of their offer (while idle)

// -- helpers --------------------------------------------------------------------------------

// ?ice=JSON: a list of RTCIceServer (a web app gets its TURN servers from its backend).
function iceServers(text) {
  if (!text) return [];
  try {
    const servers = JSON.parse(text);
    if (Array.isArray(servers)) return servers;
  } catch (err) {
    // reported below
  }
  console.warn("ignored ?ice=: not a JSON list of ICE servers");
  return [];
}

// User ids may be numbers or strings (the web app uses both): 42 and "42" are the same user.
const samePeer = (a, b) => a != null && b != null && String(a) === String(b);

function newCallId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8)); // works without a secure context
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function setStatus(text) {
  caller.state = text;
  ui.status.textContent = text;
  updateButtons();
}

function updateButtons() {
  const idle = call === null;
  ui.videoCall.disabled = ui.audioCall.disabled = !(caller.signedIn && idle);
  ui.hangup.disabled = idle;
  ui.incoming.hidden = idle || call.phase !== "ringing";
}

function record(dir, event, data) {
  const d = data && typeof data === "object" ? data : {};
  caller.events.push({ dir, event, from: d.from, to: d.to, callId: d.callId,
                       reason: d.reason, code: d.code, type: d.type });
  if (caller.events.length > MAX_EVENTS) caller.events.shift();
}

function send(event, payload) {
  record("out", event, payload);
  socket.emit(event, payload);
}

// Does a received message belong to the current call? Messages without callId belong to the
// current call with that peer (PROTOCOL.md, extensions).
function belongs(data) {
  return call !== null && samePeer(data.from, call.peer) &&
    (!data.callId || !call.id || data.callId === call.id);
}

function mediaConstraints(type) {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true,
                  sampleRate: 48000 };
  if (type === "audio") return { audio, video: false };
  // What the web app asks for: 720p30 on desktop and Android, 480p24 on iOS.
  const ios = /iPad|iPhone|iPod/.test(navigator.userAgent);
  const video = ios
    ? { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } }
    : { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  return { audio, video };
}

// -- one call ---------------------------------------------------------------------------------

function startCall(fields) {
  call = { id: undefined, peer: null, peerName: "", type: "video", direction: "outgoing",
           phase: "calling", offer: null, pc: null, stream: null, queue: [], localQueue: [],
           remoteSet: false, signalled: false, contacted: false, ringTimer: null,
           graceTimer: null, ...fields };
  return call;
}

// Local media for call `c`; false if the call ended while the camera was being opened.
async function openMedia(c) {
  if (c.stream) return true; // a re-offer keeps the camera and microphone already open
  const stream = await navigator.mediaDevices.getUserMedia(mediaConstraints(c.type));
  if (call !== c) {
    stream.getTracks().forEach((t) => t.stop());
    return false;
  }
  c.stream = stream;
  ui.local.srcObject = stream;
  return true;
}

// A fresh peer connection for `c` (replacing any earlier one: a re-offer comes with a new
// connection on the other side), with the local tracks added.
function newPeerConnection(c) {
  if (c.pc) c.pc.close();
  clearTimeout(c.graceTimer); // it watched the replaced connection
  const pc = new RTCPeerConnection({ iceServers: ICE_SERVERS });
  Object.assign(c, { pc, remoteSet: false, signalled: false, localQueue: [], graceTimer: null });
  const remote = new MediaStream();
  ui.remote.srcObject = remote;
  for (const track of c.stream.getTracks()) pc.addTrack(track, c.stream);

  pc.onicecandidate = (e) => {
    if (call !== c || c.pc !== pc) return;
    const msg = { to: c.peer, candidate: e.candidate ? e.candidate.toJSON() : null,
                  callId: c.id };
    // Candidates go right behind the offer or answer, never ahead of it.
    if (c.signalled) send(CANDIDATE, msg);
    else c.localQueue.push(msg);
  };
  pc.ontrack = (e) => {
    if (c.pc === pc) remote.addTrack(e.track);
  };
  pc.onconnectionstatechange = () => connectionChanged(c, pc);
  return pc;
}

// After our offer or answer went out: send the candidates gathered meanwhile.
function signalled(c) {
  c.signalled = c.contacted = true;
  const queued = c.localQueue;
  c.localQueue = [];
  queued.forEach((msg) => send(CANDIDATE, msg));
}

async function addCandidate(pc, init) {
  try {
    await pc.addIceCandidate(init);
  } catch (err) {
    console.warn("ignored a remote candidate:", err.message, init.candidate);
  }
}

// After the remote description is set: apply the candidates that came ahead of it.
async function flushCandidates(c, pc) {
  c.remoteSet = true;
  const queued = c.queue;
  c.queue = [];
  for (const init of queued) await addCandidate(pc, init);
}

function connectionChanged(c, pc) {
  if (call !== c || c.pc !== pc) return; // a replaced or closed connection
  const state = pc.connectionState;
  console.info("connection", state);
  if (state === "connected") {
    clearTimeout(c.graceTimer);
    c.graceTimer = null;
    c.phase = "connected";
    setStatus("connected");
  } else if (state === "disconnected") {
    c.graceTimer ??= setTimeout(() => {
      if (call === c && c.pc === pc && pc.connectionState !== "connected") {
        endCall("ended: connection lost", CALL_END, "failed");
      }
    }, DISCONNECT_GRACE_MS);
  } else if (state === "failed") {
    endCall("ended: failed", CALL_END, "failed");
  }
}

// The one way back to idle: tell the peer (if `event`), stop the tracks, close the
// connection, clear the timers and queues.
function endCall(text, event = null, reason = undefined) {
  const c = call;
  if (!c) return;
  call = null;
  if (event && c.contacted) send(event, { to: c.peer, reason, callId: c.id });
  clearTimeout(c.ringTimer);
  clearTimeout(c.graceTimer);
  c.queue = [];
  c.localQueue = [];
  if (c.stream) c.stream.getTracks().forEach((t) => t.stop());
  if (c.pc) c.pc.close();
  ui.local.srcObject = null;
  ui.remote.srcObject = null;
  setStatus(text);
}

// An error in a call flow ends that call (if it is still the current one).
function failed(c, err) {
  console.error(err);
  if (call !== c) return;
  // A callee that has not answered yet rejects; otherwise the call is ended.
  const event = c.direction === "incoming" && !c.signalled ? CALL_REJECT : CALL_END;
  endCall(`ended: ${err.name === "NotAllowedError" ? "no camera access" : "failed"}`,
          event, "failed");
}

function startRingTimer(c, onTimeout) {
  clearTimeout(c.ringTimer);
  c.ringTimer = setTimeout(() => {
    if (call === c && c.phase === (c.direction === "outgoing" ? "calling" : "ringing")) {
      onTimeout();
    }
  }, RING_TIMEOUT_MS);
}

// -- caller side ------------------------------------------------------------------------------

async function placeCall(type) {
  const to = ui.callee.value.trim();
  if (!to || call || !caller.signedIn) return;
  const c = startCall({ peer: to, type, direction: "outgoing", phase: "calling", id: newCallId() });
  early = [];
  setStatus("calling");
  try {
    if (!(await openMedia(c))) return;
    const pc = newPeerConnection(c);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (call !== c || c.pc !== pc) return;
    send(OFFER, { to, offer: { type: offer.type, sdp: offer.sdp }, type, callId: c.id });
    signalled(c);
    startRingTimer(c, () => endCall("timeout", CALL_TIMEOUT));
  } catch (err) {
    failed(c, err);
  }
}

async function onAnswer(data) {
  const c = call;
  if (!belongs(data) || c.phase !== "calling" || !c.pc) return;
  const pc = c.pc;
  clearTimeout(c.ringTimer);
  c.phase = "connecting";
  c.peerName = data.fromUsername || c.peerName;
  setStatus("connecting");
  try {
    await pc.setRemoteDescription(data.answer);
    if (call === c && c.pc === pc) await flushCandidates(c, pc);
  } catch (err) {
    if (c.pc === pc) failed(c, err);
  }
}

// -- callee side ------------------------------------------------------------------------------

function validOffer(data) {
  const offer = data.offer;
  return offer && offer.type === "offer" && typeof offer.sdp === "string" && offer.sdp !== "";
}

function onOffer(data) {
  if (data.from == null) return;
  if (!validOffer(data)) {
    send(CALL_REJECT, { to: data.from, reason: "failed", callId: data.callId });
    return;
  }
  const type = data.type === "audio" ? "audio" : "video";

  if (call && samePeer(data.from, call.peer) && call.phase !== "calling") {
    reoffer(call, data, type);
    return;
  }
  if (call) { // anyone else, or the callee of our own pending call: busy
    send(CALL_REJECT, { to: data.from, reason: "busy", callId: data.callId });
    return;
  }

  // contacted: the caller waits for our answer, so every end of this call is told to them.
  const c = startCall({ peer: data.from, peerName: data.fromUsername || String(data.from),
                        id: data.callId, type, direction: "incoming", phase: "ringing",
                        offer: data.offer, contacted: true });
  // Keep the early candidates of this call (or of no call in particular).
  c.queue = early.filter((e) => samePeer(e.from, c.peer) && (!e.callId || e.callId === c.id))
    .map((e) => e.candidate);
  early = [];
  ui.incomingFrom.textContent = c.peerName;
  ui.incomingType.textContent = type;
  setStatus("ringing");
  // The kiosk (aiortc) sends its candidates inside the SDP: nothing to trickle back to us.
  startRingTimer(c, () => endCall("timeout", CALL_REJECT, "timeout"));
  if (AUTO_ANSWER) answer();
}

// The peer of this call sent a new offer (it is recovering its connection): answer it in
// place, without ringing again.
function reoffer(c, data, type) {
  if (data.callId && data.callId !== c.id) {
    c.id = data.callId; // adopt it: the peer may have missed our end of the old one
    c.queue = [];
  }
  c.offer = data.offer;
  c.type = type;
  // Still ringing, or still opening the camera to answer: the newest offer is answered.
  if (c.phase === "ringing" || !c.pc) return;
  c.phase = "connecting";
  setStatus("connecting");
  const answered = REOFFER_MODE === "new-connection" ? acceptOffer(c) : acceptInPlace(c);
  answered.catch((err) => failed(c, err));
}

// A re-offer applied to the connection we have: to it an ICE restart (and, with a new DTLS
// fingerprint, a new DTLS association), the tracks and the remote video stay. Chromium
// refuses an offer that renumbers the negotiated session ("RTP extension ID reassignment"):
// then, unless in-place is all we may do (the web app's way), a new connection answers it.
async function acceptInPlace(c) {
  const pc = c.pc;
  const offer = c.offer;
  c.signalled = false; // the restarted ICE's candidates go right behind our answer
  let answer;
  try {
    await pc.setRemoteDescription(offer);
    answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
  } catch (err) {
    if (call !== c || c.pc !== pc || c.offer !== offer) return; // replaced meanwhile
    if (REOFFER_MODE === "in-place") throw err;
    console.warn("re-offer not accepted in place, answering on a new connection:", err.message);
    await acceptOffer(c);
    return;
  }
  if (call !== c || c.pc !== pc) return;
  send(ANSWER, { to: c.peer, answer: { type: answer.type, sdp: answer.sdp }, callId: c.id });
  signalled(c);
  connectionChanged(c, pc); // a connection that never left "connected" fires no change
}

async function answer() {
  const c = call;
  if (!c || c.phase !== "ringing") return;
  clearTimeout(c.ringTimer);
  c.phase = "connecting";
  setStatus("connecting");
  try {
    if (!(await openMedia(c))) return;
    await acceptOffer(c);
  } catch (err) {
    failed(c, err);
  }
}

// set remote description -> create answer -> set local description -> emit the answer ->
// apply the queued candidates (PROTOCOL.md, callee).
async function acceptOffer(c) {
  const pc = newPeerConnection(c);
  let answer;
  try {
    await pc.setRemoteDescription(c.offer);
    answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
  } catch (err) {
    if (call === c && c.pc === pc) throw err;
    return; // a newer offer replaced (and closed) this connection meanwhile
  }
  if (call !== c || c.pc !== pc) return;
  send(ANSWER, { to: c.peer, answer: { type: answer.type, sdp: answer.sdp }, callId: c.id });
  signalled(c);
  await flushCandidates(c, pc);
}

function decline() {
  if (call && call.phase === "ringing") endCall("declined", CALL_REJECT, "declined");
}

// -- both sides -------------------------------------------------------------------------------

function onCandidate(data) {
  const init = data.candidate;
  if (!init || !init.candidate) return; // end of candidates: accept and ignore
  if (!call) { // it may have overtaken its offer
    early = [...early, data].slice(-MAX_QUEUED);
    return;
  }
  if (!belongs(data)) return;
  if (!call.pc || !call.remoteSet) {
    if (call.queue.length < MAX_QUEUED) call.queue.push(init);
    return;
  }
  addCandidate(call.pc, init);
}

function hangUp() {
  if (!call) return;
  if (call.phase === "ringing") decline();
  else endCall("ended: hangup", CALL_END, "hangup");
}

const handlers = {
  [OFFER]: onOffer,
  [ANSWER]: onAnswer,
  [CANDIDATE]: onCandidate,
  [CALL_END]: (data) => { if (belongs(data)) endCall(`ended: ${data.reason || "hangup"}`); },
  // declined, busy, timeout, policy, failed...
  [CALL_REJECT]: (data) => { if (belongs(data)) endCall(data.reason || "declined"); },
  [CALL_TIMEOUT]: (data) => { if (belongs(data)) endCall("timeout"); },
  [ERROR]: (data) => {
    console.warn("relay error:", data.code, data.message);
    if (call && samePeer(data.to, call.peer)) {
      endCall(data.code === "user-offline" ? "offline" : `error: ${data.code}`);
    }
  },
};

// What the kiosk reports (for tests): numbers from this side's getStats().
async function stats() {
  const pc = call && call.pc;
  if (!pc) return null;
  const report = await pc.getStats();
  const s = { connectionState: pc.connectionState, framesDecoded: 0, videoBytesReceived: 0,
              audioPacketsReceived: 0, audioBytesReceived: 0, framesEncoded: 0,
              videoBytesSent: 0, audioBytesSent: 0, videoCodec: null, sendVideoCodec: null };
  const codecOf = (r) => (r.codecId && report.get(r.codecId) ? report.get(r.codecId).mimeType
                                                               : null);
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      s.framesDecoded += r.framesDecoded || 0;
      s.videoBytesReceived += r.bytesReceived || 0;
      s.videoCodec = codecOf(r) || s.videoCodec;
    } else if (r.type === "inbound-rtp" && r.kind === "audio") {
      s.audioPacketsReceived += r.packetsReceived || 0;
      s.audioBytesReceived += r.bytesReceived || 0;
    } else if (r.type === "outbound-rtp" && r.kind === "video") {
      s.framesEncoded += r.framesEncoded || 0;
      s.videoBytesSent += r.bytesSent || 0;
      s.sendVideoCodec = codecOf(r) || s.sendVideoCodec;
    } else if (r.type === "outbound-rtp" && r.kind === "audio") {
      s.audioBytesSent += r.bytesSent || 0;
    }
  });
  return s;
}

// -- signing in -------------------------------------------------------------------------------

function setMe(text, signedIn) {
  caller.signedIn = signedIn;
  ui.me.textContent = text;
  updateButtons();
}

function signIn(token, name) {
  if (socket) socket.disconnect();
  setMe("signing in...", false);
  socket = io({ auth: { token } });
  socket.on("connect", () => setMe(name ? `signed in as ${name}` : "signed in", true));
  // A refused token is final (the client does not retry it); anything else is retried.
  socket.on("connect_error", (err) =>
    setMe(err.message === "unauthorized" ? "unauthorized" : `cannot connect (${err.message})`,
          false));
  socket.on("disconnect", (reason) => setMe(`disconnected (${reason})`, false));
  for (const [event, handle] of Object.entries(handlers)) {
    socket.on(event, (data) => {
      record("in", event, data);
      if (data && typeof data === "object") handle(data);
    });
  }
}

ui.signin.addEventListener("submit", (e) => {
  e.preventDefault();
  signIn(ui.token.value.trim(), ui.name.value.trim());
});
ui.videoCall.addEventListener("click", () => placeCall("video"));
ui.audioCall.addEventListener("click", () => placeCall("audio"));
ui.hangup.addEventListener("click", hangUp);
ui.answer.addEventListener("click", answer);
ui.decline.addEventListener("click", decline);
// Closing the tab ends the call for the peer too, instead of leaving it to time out.
window.addEventListener("pagehide", () => { if (call) hangUp(); });

ui.callee.value = params.get("call") || "";
ui.name.value = params.get("name") || "";
if (params.get("token")) {
  ui.token.value = params.get("token");
  signIn(ui.token.value, ui.name.value);
}
updateButtons();
