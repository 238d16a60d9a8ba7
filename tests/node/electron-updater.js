// Drives electron-updater's own AppImageUpdater (generic provider) under plain Node, for the
// e2e tests (tests/tests/e2e/electron.rs). The smallest stand-in for the Electron runtime:
// an AppAdapter object (version, data dirs, lifecycle no-ops) and an HttpExecutor on Node's
// http module, whose download method is ElectronHttpExecutor's (it hands electron-updater's
// own sha512 check the bytes). Everything else is electron-updater's code.
//
// Input (argv[2], JSON): {"base": URL, "channel": null|"beta", "devices": [{"id": UUID,
// "version": "1.0.0", "download": bool}], "headers": {...}}
// Output (stdout, JSON): one object per device: {"id", "available", "version", "error"}.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const http = require("http");
const { AppImageUpdater } = require("electron-updater/out/AppImageUpdater");
const { HttpExecutor, configureRequestUrl, configureRequestOptions } = require("builder-util-runtime");

class NodeHttpExecutor extends HttpExecutor {
  createRequest(options, callback) {
    return http.request(options, callback);
  }
  // As ElectronHttpExecutor.download, with Node's requests.
  async download(url, destination, options) {
    return await options.cancellationToken.createPromise((resolve, reject, onCancel) => {
      const requestOptions = { headers: options.headers || undefined };
      configureRequestUrl(url, requestOptions);
      configureRequestOptions(requestOptions);
      this.doDownload(requestOptions, {
        destination,
        options,
        onCancel,
        callback: (error) => (error == null ? resolve(destination) : reject(error)),
        responseHandler: null,
      }, 0);
    });
  }
}

function adapter(version, dir) {
  return {
    version,
    name: "halftone-e2e",
    isPackaged: true,
    appUpdateConfigPath: path.join(dir, "app-update.yml"),
    userDataPath: dir,
    baseCachePath: path.join(dir, "cache"),
    whenReady: () => Promise.resolve(),
    quit() {},
    relaunch() {},
    onQuit() {},
  };
}

async function main() {
  const input = JSON.parse(process.argv[2]);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "halftone-electron-"));
  // AppImageUpdater refuses to run outside an AppImage; it only reads this path to install.
  process.env.APPIMAGE = path.join(root, "running.AppImage");
  fs.writeFileSync(process.env.APPIMAGE, "old build");
  const out = [];
  for (const device of input.devices) {
    const dir = path.join(root, device.id);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, ".updaterId"), device.id);
    // What electron-builder writes into the app: read for the download cache's name.
    fs.writeFileSync(path.join(dir, "app-update.yml"), `provider: generic\nurl: ${input.base}\nupdaterCacheDirName: halftone-e2e-${device.id}\n`);
    const updater = new AppImageUpdater(null, adapter(device.version, dir));
    // Before the feed URL: the provider takes the executor when it is made.
    updater.httpExecutor = new NodeHttpExecutor();
    updater.setFeedURL({ provider: "generic", url: input.base });
    updater.logger = null;
    updater.autoDownload = false;
    updater.autoInstallOnAppQuit = false;
    updater.disableDifferentialDownload = true;
    if (input.channel) {
      updater.channel = input.channel;
    }
    if (input.headers) {
      updater.requestHeaders = input.headers;
    }
    const result = { id: device.id, available: false, version: null, error: null };
    try {
      const r = await updater.checkForUpdates();
      result.available = r.isUpdateAvailable;
      result.version = r.updateInfo.version;
      if (device.download && r.isUpdateAvailable) {
        const files = await updater.downloadUpdate();
        result.file = files[0];
        result.bytes = fs.readFileSync(files[0]).toString("base64");
      }
    } catch (e) {
      result.error = String(e && e.message ? e.message : e);
    }
    out.push(result);
  }
  fs.rmSync(root, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
