import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { reconcileStep, type ReconcileView } from "./reconcile-step.ts";

const v = (n: number) => ({ version: n, contentSha256: `c${n}` });
const view = (over: Partial<ReconcileView> = {}): ReconcileView => ({
  desired: v(1),
  applied: v(1),
  caddyMatches: true,
  rejectedContentSha256: undefined,
  hold: undefined,
  ...over,
});

describe("reconcileStep: what one reconcile does", () => {
  it("nothing when Caddy runs the desired state", () => assert.equal(reconcileStep(view()), "none"));
  it("loads the desired state when behind or when Caddy drifted", () => {
    assert.equal(reconcileStep(view({ desired: v(2) })), "load-desired");
    assert.equal(reconcileStep(view({ caddyMatches: false })), "load-desired");
    assert.equal(reconcileStep(view({ applied: undefined })), "load-desired");
  });
  it("only moves the version when the content already runs", () => {
    assert.equal(reconcileStep(view({ desired: { version: 2, contentSha256: "c1" } })), "bump-version");
  });
  it("does not retry content Caddy refused", () => {
    assert.equal(reconcileStep(view({ desired: v(2), rejectedContentSha256: "c2" })), "none");
  });
  it("keeps a held preload against any other desired state", () => {
    assert.equal(reconcileStep(view({ desired: v(1), applied: v(2), hold: v(2) })), "keep-held");
    assert.equal(reconcileStep(view({ desired: v(1), applied: v(2), hold: v(2), caddyMatches: false })), "reload-held");
  });
  it("a committed hold is an ordinary state", () => {
    assert.equal(reconcileStep(view({ desired: v(2), applied: v(2), hold: v(2) })), "none");
  });
});
