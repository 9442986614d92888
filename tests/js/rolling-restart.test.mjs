// The rolling restart of scripts/rolling-restart.mjs in a short form: redis-server, two
// instances with --cluster behind a balancer, 50 clients on 10 channels, 50 publishes/s, each
// instance restarted with SIGTERM in turn. Every client must end with every channel's messages
// exactly once, in offset order, every acknowledged publish among them. Skipped when
// redis-server is missing, unless WSLOOP_REQUIRE_REDIS is set (CI sets it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { binary } from "./helpers.mjs";
import { run } from "../../scripts/rolling-restart.mjs";

function haveRedis() {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const skip = !haveRedis() && !process.env.WSLOOP_REQUIRE_REDIS && "redis-server is not installed";

test("a rolling restart of a two-instance cluster loses and repeats nothing", { skip, timeout: 120_000 }, async () => {
  const lines = [];
  const report = await run({ clients: 50, channels: 10, rate: 50, settle: 2, binary: binary(), log: (l) => lines.push(l) });
  assert.deepEqual(report.failures, [], lines.join("\n"));
  assert.ok(report.kept > 100, "too few publishes to show anything: " + lines.join("\n"));
  assert.ok(report.acknowledged > 0.9 * report.published, lines.join("\n"));
  assert.equal(report.delivered, report.expected, lines.join("\n"));
  assert.ok(report.recoveries >= 50, "every client reconnected at least once: " + lines.join("\n"));
});
