// A peer of the VM tier (tests/vagrant/workloads.sh): the AWS SDK for JavaScript v3's default
// credential chain (fromNodeProviderChain of @aws-sdk/credential-providers, unmodified,
// pinned in package-lock.json) resolving credentials with nothing but the environment it was
// started with, as a program in an ECS task or an EKS pod does (`fake-metadata ctl task env`
// / `ctl pod env`). Prints one JSON object on stdout; exits 1 when the chain found nothing.
// Never the key itself: its first four characters and a SHA-256 fingerprint.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { fromNodeProviderChain } = require("@aws-sdk/credential-providers");

const pkg = path.join(__dirname, "node_modules", "@aws-sdk", "credential-providers", "package.json");
const out = { peer: "js-sdk-v3", sdk: JSON.parse(fs.readFileSync(pkg, "utf8")).version, node: process.version };
const fingerprint = (s) => crypto.createHash("sha256").update(s).digest("hex").slice(0, 16);

fromNodeProviderChain()()
  .then((c) => {
    // $source: the SDK's credential features; CREDENTIALS_HTTP ("z") is the container provider.
    out.provider = Object.keys(c.$source || {}).join(",");
    out.key_prefix = c.accessKeyId.slice(0, 4);
    out.key_sha256 = fingerprint(c.accessKeyId);
    out.secret = Boolean(c.secretAccessKey);
    out.token = Boolean(c.sessionToken);
    out.expiry = c.expiration ? c.expiration.toISOString().replace(/\.000Z$/, "Z") : null;
    out.account_id = c.accountId || null;
  })
  .catch((e) => {
    out.error = `${e.name}: ${e.message}`;
    process.exitCode = 1;
  })
  .finally(() => console.log(JSON.stringify(out)));
