// Pure helpers (unit-tested in model.test.ts): how an edge, a status, an amount look.

import type { Edge, Order } from "./api";

export type EdgeLook = "deny" | "failing" | "live" | "idle";

/** An edge is red when denied, amber when more than 5 % of its recent calls failed. */
export function edgeLook(e: Edge): EdgeLook {
  if (e.action === "deny") return "deny";
  if (e.calls > 0 && e.error_rate > 0.05) return "failing";
  return e.calls > 0 ? "live" : "idle";
}

export function edgeLabel(e: Edge): string {
  if (e.calls === 0) return e.action === "deny" ? "denied" : "no calls";
  const p99 = e.p99_ms === null ? "" : `\np99 ${e.p99_ms < 10 ? e.p99_ms.toFixed(1) : Math.round(e.p99_ms)} ms`;
  return `${e.rate.toFixed(e.rate < 10 ? 1 : 0)}/s · ${(e.error_rate * 100).toFixed(0)}% err${p99}`;
}

export const shortStatus = (s: string): string => s.replace(/^ORDER_STATUS_/, "");

export const TERMINAL = new Set(["ORDER_STATUS_CONFIRMED", "ORDER_STATUS_CANCELLED"]);

export function money(o: Order): string {
  if (!o.total) return "";
  const units = Number(o.total.units ?? 0) + (o.total.nanos ?? 0) / 1e9;
  return `${units.toFixed(2)} ${o.total.currencyCode}`;
}

/** "12:03:04.123" of an RFC 3339 time. */
export function clock(t?: string): string {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d.getTime()) ? t : d.toISOString().slice(11, 23);
}
