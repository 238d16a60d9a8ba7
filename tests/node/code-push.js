// Drives the CodePush JavaScript acquisition SDK (`code-push`'s AcquisitionManager, the code
// react-native-code-push runs) under plain Node, for the e2e tests (tests/tests/e2e/codepush.rs).
// The app's side is the smallest stand-in: an Http.Requester on Node's http module (what
// react-native-code-push implements with fetch), and, for a download, what
// react-native-code-push's native side does with the package: fetch `downloadUrl` and refuse
// bytes whose SHA-256 is not the package's `packageHash`.
//
// Input (argv[2], JSON): {"server": URL, "key": deployment key, "devices": [{"id": clientUniqueId,
// "appVersion": "1.0.0", "label": null|"1.1.0", "packageHash": null|hex, "download": bool,
// "report": null|"DeploymentSucceeded"|"DeploymentFailed", "reportDownload": bool, "ip": null|address
// (sent as X-Forwarded-For, for a server that trusts the loopback proxy)}]}
// Output (stdout, JSON): one object per device: {"id", "available", "label", "packageHash",
// "isMandatory", "appVersion", "error", "reported"}.
"use strict";
const crypto = require("crypto");
const http = require("http");
const { AcquisitionManager } = require("code-push/script/acquisition-sdk");

// The Http.Requester interface: request(verb, url, [body], callback(error, {statusCode, body})).
const VERBS = ["GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"];
class NodeRequester {
  constructor(extraHeaders) {
    this.extraHeaders = extraHeaders || {};
  }
  request(verb, url, bodyOrCallback, maybeCallback) {
    const callback = typeof bodyOrCallback === "function" ? bodyOrCallback : maybeCallback;
    const body = typeof bodyOrCallback === "string" ? bodyOrCallback : null;
    const headers = { "Accept": "application/json", "X-CodePush-SDK-Version": "code-push-node-test", ...this.extraHeaders };
    if (body !== null) headers["Content-Type"] = "application/json";
    const req = http.request(url, { method: VERBS[verb], headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => callback(null, { statusCode: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", (e) => callback(e, null));
    if (body !== null) req.write(body);
    req.end();
  }
}

function fetchBytes(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`download: ${res.statusCode}`)));
    }).on("error", reject);
  });
}

async function device(input, d) {
  const sdk = new AcquisitionManager(new NodeRequester(d.ip ? { "X-Forwarded-For": d.ip } : {}), {
    serverUrl: input.server,
    appVersion: d.appVersion,
    clientUniqueId: d.id,
    deploymentKey: input.key,
  });
  const current = { appVersion: d.appVersion, label: d.label || undefined, packageHash: d.packageHash || undefined,
                    deploymentKey: input.key, isMandatory: false, description: "" };
  const out = { id: d.id, available: false, label: null, packageHash: null, error: null, reported: null };
  try {
    const remote = await new Promise((resolve, reject) =>
      sdk.queryUpdateWithCurrentPackage(current, (e, p) => (e ? reject(e) : resolve(p))));
    if (remote && !remote.updateAppVersion) {
      Object.assign(out, { available: true, label: remote.label, packageHash: remote.packageHash,
                           isMandatory: remote.isMandatory, appVersion: remote.appVersion, size: remote.packageSize });
      if (d.download) {
        const bytes = await fetchBytes(remote.downloadUrl);
        const hash = crypto.createHash("sha256").update(bytes).digest("hex");
        if (hash !== remote.packageHash) throw new Error(`package hash mismatch: got ${hash}, expected ${remote.packageHash}`);
        out.bytes = bytes.toString("base64");
      }
      if (d.reportDownload) {
        await new Promise((resolve, reject) => sdk.reportStatusDownload(remote, (e) => (e ? reject(e) : resolve())));
      }
      if (d.report) {
        const previous = d.label || d.appVersion;
        await new Promise((resolve, reject) =>
          sdk.reportStatusDeploy(remote, d.report, previous, undefined, (e) => (e ? reject(e) : resolve())));
        out.reported = d.report;
      }
    }
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
  }
  return out;
}

(async () => {
  const input = JSON.parse(process.argv[2]);
  const results = [];
  // A few at a time, as many phones would.
  for (let i = 0; i < input.devices.length; i += 16) {
    results.push(...await Promise.all(input.devices.slice(i, i + 16).map((d) => device(input, d))));
  }
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
