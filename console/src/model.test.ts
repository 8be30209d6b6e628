import { describe, expect, it } from "vitest";
import type { Edge } from "./api";
import { edgeLabel, edgeLook, shortStatus } from "./model";

const edge = (over: Partial<Edge>): Edge => ({
  source: "order",
  target: "inventory",
  action: "allow",
  l7: true,
  rate: 0,
  error_rate: 0,
  p99_ms: null,
  calls: 0,
  ...over,
});

describe("edgeLook", () => {
  it("is red for a deny whatever the traffic", () => {
    expect(edgeLook(edge({ action: "deny" }))).toBe("deny");
    expect(edgeLook(edge({ action: "deny", calls: 5 }))).toBe("deny");
  });
  it("is amber past 5 % errors, live with calls, idle without", () => {
    expect(edgeLook(edge({ calls: 10, error_rate: 0.5 }))).toBe("failing");
    expect(edgeLook(edge({ calls: 10, error_rate: 0.01 }))).toBe("live");
    expect(edgeLook(edge({}))).toBe("idle");
  });
});

describe("edgeLabel", () => {
  it("shows rate, errors and p99", () => {
    expect(edgeLabel(edge({ calls: 3, rate: 0.2, error_rate: 0, p99_ms: 4.25 }))).toBe(
      "0.2/s · 0% err\np99 4.3 ms",
    );
    expect(edgeLabel(edge({}))).toBe("no calls");
  });
});

it("shortStatus drops the enum prefix", () => {
  expect(shortStatus("ORDER_STATUS_CONFIRMED")).toBe("CONFIRMED");
});
