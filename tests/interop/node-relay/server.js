#!/usr/bin/env node
// A minimal Socket.IO v4 relay of the web app's backend kind, written from docs' PROTOCOL.md
// (the call protocol contract) alone, so that kioskd is tested against the real Node.js
// `socket.io` server and not only against our own Python relay.
//
//   node server.js TOKENS_FILE [PORT]        (or RELAY_TOKENS=... RELAY_PORT=... node server.js)
//
// TOKENS_FILE is JSON: {"<token>": {"userId": ..., "username": ...}}. PORT 0 (the default)
// takes any free port. It listens on 127.0.0.1 and prints one line `LISTENING <port>` on
// stdout when ready; everything else goes to stderr. SIGTERM (or SIGINT) stops it cleanly.
//
// RELAY_FIELDS=strict forwards only the fields listed in PROTOCOL.md's event table (dropping
// extension fields such as callId and reason), the way a backend that whitelists fields would.
// The default forwards every field the sender put in, like a backend that spreads the payload.
"use strict";

const fs = require("fs");
const http = require("http");
const { Server } = require("socket.io");

const tokensPath = process.argv[2] || process.env.RELAY_TOKENS;
const port = Number(process.argv[3] || process.env.RELAY_PORT || 0);
const strict = (process.env.RELAY_FIELDS || "").toLowerCase() === "strict";

if (!tokensPath || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error("usage: node server.js TOKENS_FILE [PORT]");
  process.exit(2);
}

const tokens = JSON.parse(fs.readFileSync(tokensPath, "utf8"));

// Per PROTOCOL.md's table: the fields each event carries besides `to` / `from`, and whether
// the relayed payload carries `fromUsername` (webrtc:ice-candidate's does not).
const EVENTS = {
  "webrtc:offer": { fields: ["offer", "type"], username: true },
  "webrtc:answer": { fields: ["answer"], username: true },
  "webrtc:ice-candidate": { fields: ["candidate"], username: false },
  "webrtc:call-end": { fields: [], username: true },
  "webrtc:call-reject": { fields: [], username: true },
  "webrtc:call-timeout": { fields: [], username: true },
};

function log(...parts) {
  console.error(new Date().toISOString(), ...parts);
}

function room(userId) {
  return `user:${String(userId)}`;
}

function isUserId(value) {
  return typeof value === "string" ? value.length > 0
    : typeof value === "number" && Number.isFinite(value);
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

const io = new Server(httpServer, { cors: { origin: "*" } });

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  const token = auth.token;
  if (typeof token === "string" && Object.prototype.hasOwnProperty.call(tokens, token)) {
    socket.data.user = tokens[token];
    return next();
  }
  log("refused a connection: unknown token");
  return next(new Error("unauthorized"));
});

io.on("connection", (socket) => {
  const user = socket.data.user;
  socket.join(room(user.userId));
  log(`connected ${socket.id} as ${JSON.stringify(user.userId)} (${user.username})`);

  for (const [event, spec] of Object.entries(EVENTS)) {
    socket.on(event, (payload) => {
      // A hostile or broken client may send anything: only an object with a usable `to`
      // is relayed, everything else is dropped here.
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        log(`dropped ${event} from ${user.userId}: payload is not an object`);
        return;
      }
      const to = payload.to;
      if (!isUserId(to)) {
        log(`dropped ${event} from ${user.userId}: bad "to"`);
        return;
      }
      const target = room(to);
      const sockets = io.sockets.adapter.rooms.get(target);
      if (!sockets || sockets.size === 0) {
        log(`${event} from ${user.userId} to ${JSON.stringify(to)}: user offline`);
        socket.emit("webrtc:error", {
          code: "user-offline",
          message: `User ${String(to)} is not online`,
          to,
        });
        return;
      }
      let relayed;
      if (strict) {
        relayed = {};
        for (const field of spec.fields) {
          if (Object.prototype.hasOwnProperty.call(payload, field)) relayed[field] = payload[field];
        }
      } else {
        const { to: _to, from: _from, fromUsername: _name, ...rest } = payload;
        relayed = rest;
      }
      relayed.from = user.userId;
      if (spec.username) relayed.fromUsername = user.username;
      log(`${event} ${JSON.stringify(user.userId)} -> ${JSON.stringify(to)}`);
      io.to(target).emit(event, relayed);
    });
  }

  socket.on("disconnect", (reason) => {
    log(`disconnected ${socket.id} (${user.userId}): ${reason}`);
  });
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  // Closes every client connection, then the HTTP server.
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
});
