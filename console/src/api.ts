// The console's calls: its own API (/console/api) and the gateway's REST routes, each
// with the signed-in bearer token. The token lives in sessionStorage only.

const KEY = "meshkit-console-token";

export function takeTokenFromFragment(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export const token = (): string | null => sessionStorage.getItem(KEY);
export const setToken = (t: string): void => sessionStorage.setItem(KEY, t.trim());
export const signOut = (): void => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (init.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...init, headers: { ...headers, ...(init.headers as object) } });
  const text = await resp.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { message: text };
  }
  if (!resp.ok) {
    const code = body?.details?.[0]?.reason ?? "";
    throw new ApiError(resp.status, `HTTP ${resp.status}: ${body?.message ?? resp.statusText}${code ? ` (${code})` : ""}`);
  }
  return body as T;
}

export interface Session {
  subject: string;
  scopes: string[];
  admin: boolean;
  admin_enabled: boolean;
  refresh_s: number;
  traces: boolean;
}

export interface Instance {
  id: string;
  address: string;
  port: number;
  health: string;
}
export interface Service {
  name: string;
  instances: Instance[];
  healthy: number;
  events_per_s: number;
}
export interface Edge {
  source: string;
  target: string;
  action: "allow" | "deny";
  l7: boolean;
  rate: number;
  error_rate: number;
  p99_ms: number | null;
  calls: number;
}
export interface Breaker {
  instance: string;
  caller: string;
  target: string;
  state: string;
}
export interface Topology {
  services: Service[];
  edges: Edge[];
  breakers: Breaker[];
  window_s: number;
}
export interface Scenario {
  name: string;
  service: string;
  summary: string;
  description: string;
  active: boolean;
}
export interface StatusChange {
  status: string;
  changeTime?: string;
  reason?: string;
}
export interface Order {
  orderId: string;
  status: string;
  items?: { sku: string; quantity: number }[];
  total?: { currencyCode: string; units?: string; nanos?: number };
  createTime?: string;
  history?: StatusChange[];
  cancelReason?: string;
  trackingNumber?: string;
}
export interface Span {
  span_id: string;
  name: string;
  service: string;
  kind: string;
  depth: number;
  start_ms: number;
  duration_ms: number;
  error: string;
}
export interface Trace {
  trace_id: string;
  duration_ms: number;
  services: string[];
  spans: Span[];
}
