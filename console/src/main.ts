// The mesh console: topology with live traffic, the storefront, live orders with their
// saga timeline and trace waterfall, intentions and fault scenarios (docs/console.md).

import "./style.css";
import { ApiError, call, setToken, signOut, takeTokenFromFragment, token } from "./api";
import type { Edge, Order, Scenario, Session, Topology, Trace } from "./api";
import { Graph } from "./graph";
import { clock, edgeLabel, edgeLook, money, shortStatus, TERMINAL } from "./model";

const $ = <T extends HTMLElement>(sel: string, root: ParentNode = document): T =>
  root.querySelector(sel) as T;

function h(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

const CATALOG = [
  { sku: "SKU-MOUSE", name: "Mouse", price: [19, 990000000] },
  { sku: "SKU-KEYBOARD", name: "Keyboard", price: [49, 900000000] },
  { sku: "SKU-MONITOR", name: "Monitor", price: [189, 0] },
  { sku: "SKU-CABLE", name: "Cable", price: [4, 990000000] },
];
const CARDS = [
  { token: "tok_visa", label: "Visa test card (captures)" },
  { token: "tok_decline", label: "Declining card (card_declined)" },
  { token: "tok_insufficient", label: "Insufficient funds" },
];

let session: Session;
let graph: Graph;
const orders = new Map<string, Order>();
const failed: { id: string; at: string; message: string }[] = [];
const watching = new Map<string, EventSource>();
let selected: string | null = null;
const MAX_WATCHES = 3; // EventSources hold a connection each (6 per host in HTTP/1.1)

function layout(): void {
  $("#app").replaceChildren(
    h("header", {},
      h("div", { class: "brand" }, h("strong", {}, "meshkit-shop"), " mesh console"),
      h("div", { class: "who", id: "who" }),
    ),
    h("main", {},
      h("section", { class: "col wide" },
        h("div", { class: "card", id: "topology-card" },
          h("div", { class: "card-head" }, h("h2", {}, "Topology"), h("span", { class: "muted", id: "topo-note" })),
          h("ul", { id: "services", class: "chips" }),
          h("div", { id: "graph", "aria-label": "service topology graph" }),
          h("div", { class: "legend" },
            h("span", { class: "key live" }, "calls, all well"), h("span", { class: "key failing" }, "> 5 % errors"),
            h("span", { class: "key deny" }, "denied by intention"), h("span", { class: "key idle" }, "allowed, no calls"),
            h("span", { class: "key events" }, "events over NATS")),
        ),
        h("div", { class: "card" },
          h("div", { class: "card-head" }, h("h2", {}, "Intentions"), h("span", { class: "muted", id: "admin-note" })),
          h("table", { id: "edges" }, h("thead", {}, h("tr", {},
            h("th", {}, "caller → service"), h("th", {}, "intention"), h("th", {}, "rate"),
            h("th", {}, "errors"), h("th", {}, "p99"), h("th", {}, ""))), h("tbody")),
        ),
        h("div", { class: "card two" },
          h("div", {}, h("h2", {}, "Fault scenarios"), h("ul", { id: "faults", class: "plain" })),
          h("div", {}, h("h2", {}, "Circuit breakers"), h("ul", { id: "breakers", class: "plain" })),
        ),
      ),
      h("section", { class: "col" },
        h("div", { class: "card", id: "storefront" },
          h("h2", {}, "Storefront"),
          h("form", { id: "order-form" },
            h("label", {}, "Item", h("select", { name: "sku" }, ...CATALOG.map((c) =>
              h("option", { value: c.sku }, `${c.name} — ${(c.price[0] + c.price[1] / 1e9).toFixed(2)} EUR`)))),
            h("label", { class: "qty" }, "Qty", h("input", { name: "quantity", type: "number", min: "1", max: "99", value: "1" })),
            h("label", {}, "Payment", h("select", { name: "payment" }, ...CARDS.map((c) => h("option", { value: c.token }, c.label)))),
            h("button", { type: "submit", id: "place" }, "Place order"),
          ),
          h("div", { id: "place-result", role: "status" }),
        ),
        h("div", { class: "card" },
          h("div", { class: "card-head" }, h("h2", {}, "Orders"), h("span", { class: "muted" }, "live, newest first")),
          h("ul", { id: "orders", class: "orders" }),
        ),
        h("div", { class: "card", id: "detail" }, h("p", { class: "muted" }, "Select an order to see its saga and trace.")),
      ),
    ),
  );
  graph = new Graph($("#graph"));
  window.addEventListener("resize", () => graph.resize());
  $("#order-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void placeOrder(new FormData(ev.target as HTMLFormElement));
  });
}

function signIn(message = ""): void {
  $("#app").replaceChildren(
    h("div", { class: "signin card" },
      h("h1", {}, "meshkit-shop mesh console"),
      h("p", {}, "Sign in with an access token from the shop's OAuth2 server (Ory Hydra) carrying ",
        h("code", {}, "console:read"), ". With ", h("code", {}, "make run"), " up, ",
        h("code", {}, "make console"), " prints a sign-in link; or paste a token here."),
      message ? h("p", { class: "error" }, message) : "",
      h("form", { id: "signin" },
        h("textarea", { name: "token", rows: "4", placeholder: "eyJhbGciOi…", "aria-label": "access token" }),
        h("button", { type: "submit" }, "Sign in")),
    ),
  );
  $("#signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken(String(new FormData(ev.target as HTMLFormElement).get("token") ?? ""));
    void start();
  });
}

// --- topology, intentions, faults -------------------------------------------------

async function refreshTopology(): Promise<void> {
  const t = await call<Topology>("/console/api/topology");
  graph.update(t);
  const healthy = t.services.filter((s) => s.instances.length > 0 && s.healthy === s.instances.length).length;
  $("#topo-note").textContent = `${healthy}/${t.services.length} services healthy · figures over the last ${t.window_s} s`;
  $("#services").replaceChildren(...t.services.map((s) => {
    const ok = s.instances.length > 0 && s.healthy === s.instances.length;
    return h("li", { class: `chip ${ok ? "ok" : "bad"}`, "data-service": s.name, "data-healthy": String(ok) },
      h("span", { class: `dot ${ok ? "live" : "deny"}` }), s.name,
      h("span", { class: "muted small" }, ` ${s.healthy}/${s.instances.length}`),
      h("span", { class: "muted small", title: s.instances.map((i) => `${i.id} ${i.address}:${i.port} ${i.health}`).join("\n") },
        s.instances.length === 1 ? ` · :${s.instances[0].port}` : ` · ${s.instances.length} instances`));
  }));
  renderEdges(t.edges);
  renderBreakers(t);
}

function renderEdges(edges: Edge[]): void {
  const rows = edges.map((e) => {
    const look = edgeLook(e);
    const flip = h("button", { class: e.action === "deny" ? "lift" : "deny", "data-edge": `${e.source}->${e.target}` },
      e.action === "deny" ? "Lift deny" : "Deny");
    if (!session.admin) flip.setAttribute("disabled", "");
    flip.addEventListener("click", () => void flipIntention(e, flip));
    return h("tr", { class: `edge-row ${look}`, "data-edge": `${e.source}->${e.target}`, "data-look": look, "data-action": e.action },
      h("td", {}, h("span", { class: `dot ${look}` }), `${e.source} → ${e.target}`),
      h("td", {}, e.action === "deny" ? "deny" : e.l7 ? "allow (per method)" : "allow"),
      h("td", {}, `${e.rate.toFixed(2)}/s`),
      h("td", {}, e.calls ? `${(e.error_rate * 100).toFixed(0)} %` : "–"),
      h("td", {}, e.p99_ms === null ? "–" : `${e.p99_ms.toFixed(1)} ms`),
      h("td", { title: edgeLabel(e) }, flip));
  });
  $("#edges tbody").replaceChildren(...rows);
}

async function flipIntention(e: Edge, button: HTMLElement): Promise<void> {
  button.setAttribute("disabled", "");
  try {
    await call("/console/api/intentions", {
      method: "POST",
      body: JSON.stringify({ source: e.source, destination: e.target, action: e.action === "deny" ? "allow" : "deny" }),
    });
    await refreshTopology();
  } catch (err) {
    $("#admin-note").textContent = String((err as Error).message);
  }
}

function renderBreakers(t: Topology): void {
  const items = t.breakers.length
    ? t.breakers.map((b) => h("li", { class: `breaker ${b.state}` }, h("span", { class: `dot ${b.state === "closed" ? "live" : b.state === "open" ? "deny" : "failing"}` }),
        `${b.caller} → ${b.target}: `, h("strong", {}, b.state)))
    : [h("li", { class: "muted" }, "no breaker yet (one appears with a service's first outgoing call)")];
  $("#breakers").replaceChildren(...items);
}

async function refreshFaults(): Promise<void> {
  const { scenarios } = await call<{ scenarios: Scenario[] }>("/console/api/faults");
  $("#faults").replaceChildren(...scenarios.map((s) => {
    const toggle = h("input", { type: "checkbox", "data-fault": s.name, "aria-label": s.name });
    (toggle as HTMLInputElement).checked = s.active;
    if (!session.admin) toggle.setAttribute("disabled", "");
    toggle.addEventListener("change", async () => {
      try {
        await call(`/console/api/faults/${encodeURIComponent(s.name)}`, {
          method: "POST", body: JSON.stringify({ active: (toggle as HTMLInputElement).checked }),
        });
      } catch (err) {
        $("#admin-note").textContent = String((err as Error).message);
      }
      void refreshFaults();
    });
    return h("li", { class: s.active ? "fault active" : "fault", title: s.description },
      h("label", {}, toggle, h("strong", {}, s.name)), h("div", { class: "muted small" }, s.summary));
  }));
}

// --- storefront and orders ----------------------------------------------------------

async function placeOrder(form: FormData): Promise<void> {
  const item = CATALOG.find((c) => c.sku === form.get("sku"))!;
  const result = $("#place-result");
  result.className = "pending";
  result.textContent = "placing…";
  try {
    const { order } = await call<{ order: Order }>("/v1/orders", {
      method: "POST",
      body: JSON.stringify({
        items: [{ sku: item.sku, quantity: Number(form.get("quantity") || 1),
          unitPrice: { currencyCode: "EUR", units: String(item.price[0]), nanos: item.price[1] } }],
        shippingAddress: { recipient: "Ada Lovelace", lines: ["Main St 1"], city: "Berlin", postalCode: "10115", countryCode: "DE" },
        paymentToken: form.get("payment"),
        idempotencyKey: crypto.randomUUID(),
      }),
    });
    result.className = "ok";
    result.textContent = `placed ${order.orderId}`;
    orders.set(order.orderId, order);
    select(order.orderId);
    watch(order.orderId);
  } catch (err) {
    const message = (err as Error).message;
    result.className = "error";
    result.textContent = `order refused — ${message}`;
    failed.unshift({ id: `failed-${Date.now()}`, at: new Date().toISOString(), message });
    // The detail shows the refusal, not the order selected before it.
    selected = null;
    $("#detail").replaceChildren(
      h("div", { class: "card-head" }, h("h2", {}, "Order refused"), h("span", { class: "badge FAILED" }, "REFUSED")),
      h("p", { class: "reason", id: "refusal" }, message),
      h("p", { class: "muted small" }, "No order was created: the gateway or a service refused it before the saga began."),
    );
  }
  renderOrders();
}

function watch(id: string): void {
  if (watching.has(id) || watching.size >= MAX_WATCHES) return;
  const es = new EventSource(`/v1/orders/${encodeURIComponent(id)}:watch?access_token=${encodeURIComponent(token() ?? "")}`);
  watching.set(id, es);
  const stop = () => {
    es.close();
    watching.delete(id);
  };
  es.onmessage = (ev) => {
    const { order } = JSON.parse(ev.data) as { order: Order };
    orders.set(order.orderId, order);
    renderOrders();
    if (selected === order.orderId) void renderDetail();
    if (TERMINAL.has(order.status)) stop();
  };
  es.addEventListener("end", stop);
  es.addEventListener("error", stop);
}

async function refreshOrders(): Promise<void> {
  const { orders: list = [] } = await call<{ orders?: Order[] }>("/v1/orders?pageSize=15");
  for (const o of list) {
    const known = orders.get(o.orderId);
    if (!known || (known.history?.length ?? 0) <= (o.history?.length ?? 0)) orders.set(o.orderId, o);
    if (!TERMINAL.has(o.status)) watch(o.orderId);
  }
  renderOrders();
}

function renderOrders(): void {
  const sorted = [...orders.values()].sort((a, b) => (b.createTime ?? "").localeCompare(a.createTime ?? "")).slice(0, 15);
  // Orders and refused placements, newest first, in one list.
  const entries: { at: string; el: HTMLElement }[] = failed.slice(0, 3).map((f) => ({
    at: f.at,
    el: h("li", { class: "order failed-place" }, h("span", { class: "badge FAILED" }, "REFUSED"),
      h("span", { class: "small" }, `${clock(f.at)} · ${f.message}`)),
  }));
  for (const o of sorted) {
    const status = shortStatus(o.status);
    const li = h("li", { class: `order${selected === o.orderId ? " selected" : ""}`, "data-order": o.orderId, "data-status": status },
      h("span", { class: `badge ${status}` }, status),
      h("span", { class: "mono" }, o.orderId.slice(0, 13)),
      h("span", { class: "small muted" }, `${o.items?.map((i) => `${i.quantity}× ${i.sku.replace("SKU-", "").toLowerCase()}`).join(", ") ?? ""} · ${money(o)}`),
      o.cancelReason ? h("span", { class: "small reason" }, o.cancelReason) : "");
    li.addEventListener("click", () => select(o.orderId));
    entries.push({ at: o.createTime ?? "", el: li });
  }
  const rows = entries.sort((a, b) => b.at.localeCompare(a.at)).map((e) => e.el);
  if (!rows.length) rows.push(h("li", { class: "muted" }, "No orders yet: place one in the storefront."));
  $("#orders").replaceChildren(...rows);
}

function select(id: string): void {
  selected = id;
  renderOrders();
  void renderDetail();
}

let traceCache: { id: string; spans: number; traces: Trace[]; at: number } | null = null;

async function renderDetail(): Promise<void> {
  const id = selected;
  const o = id ? orders.get(id) : undefined;
  if (!id || !o) return;
  let traces = traceCache?.id === id ? traceCache.traces : [];
  const stale = !traceCache || traceCache.id !== id || Date.now() - traceCache.at > 1500;
  if (stale) {
    try {
      traces = (await call<{ traces: Trace[] }>(`/console/api/orders/${encodeURIComponent(id)}/trace`)).traces;
      traceCache = { id, spans: traces.reduce((n, t) => n + t.spans.length, 0), traces, at: Date.now() };
    } catch {
      /* shown as no trace */
    }
  }
  if (selected !== id) return;
  const status = shortStatus(o.status);
  const history = o.history ?? [];
  const t0 = history.length ? new Date(history[0].changeTime ?? 0).getTime() : 0;
  $("#detail").replaceChildren(
    h("div", { class: "card-head" }, h("h2", {}, "Order ", h("span", { class: "mono" }, id)),
      h("span", { class: `badge ${status}`, id: "detail-status" }, status)),
    o.cancelReason ? h("p", { class: "reason", id: "detail-reason" }, `cancelled: ${o.cancelReason}`) : "",
    h("h3", {}, "Saga"),
    h("ol", { class: "timeline", id: "timeline" }, ...history.map((c) =>
      h("li", { class: shortStatus(c.status) },
        h("span", { class: `badge ${shortStatus(c.status)}` }, shortStatus(c.status)),
        h("span", { class: "small muted" }, `+${Math.max(0, new Date(c.changeTime ?? 0).getTime() - t0)} ms`),
        c.reason ? h("span", { class: "small" }, c.reason) : ""))),
    h("h3", {}, "Trace"),
    traces.length ? waterfall(traces) : h("p", { class: "muted", id: "no-trace" }, session.traces ? "waiting for spans (each service exports them in batches, every few seconds)…" : "traces go to OTLP here, not to the local sink: see your tracing backend"),
  );
}

/** "/shop.order.v1.OrderService/PlaceOrder" as "OrderService/PlaceOrder", event spans
 * "shop.events.v1.OrderPlaced process" as "OrderPlaced process". */
const spanName = (name: string): string => name.replace(/^\/?shop\.[a-z]+\.v\d+\./, "");

function waterfall(traces: Trace[]): HTMLElement {
  const box = h("div", { class: "waterfall", id: "waterfall" });
  for (const t of traces) {
    box.append(h("div", { class: "trace-head small muted" },
      `trace ${t.trace_id.slice(0, 16)} · ${t.spans.length} spans · ${t.services.join(", ")} · ${t.duration_ms.toFixed(1)} ms`));
    const total = Math.max(t.duration_ms, 0.001);
    for (const s of t.spans) {
      const left = (s.start_ms / total) * 100;
      const width = Math.max((s.duration_ms / total) * 100, 0.4);
      box.append(h("div", { class: `span-row${s.error ? " error" : ""}`, title: `${s.name} (${s.kind}) ${s.duration_ms.toFixed(2)} ms${s.error ? " — " + s.error : ""}` },
        h("div", { class: "span-name", style: `padding-left:${Math.min(s.depth, 8) * 6}px` }, h("span", { class: `svc ${s.service}` }, s.service), ` ${spanName(s.name)}`),
        h("div", { class: "span-track" }, h("div", { class: `span-bar ${s.service}`, style: `left:${left}%;width:${width}%` }),
          h("span", { class: "span-ms", style: left + width > 80 ? `right:${100 - left + 1}%` : `left:${left + width}%` }, `${s.duration_ms.toFixed(1)} ms`))));
    }
  }
  return box;
}

// --- start ----------------------------------------------------------------------------

function every(seconds: number, fn: () => Promise<void>): void {
  const run = async () => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        signOut();
        signIn("Your token was refused (expired?): sign in again.");
        return;
      }
      console.warn(err);
    }
    setTimeout(run, seconds * 1000);
  };
  void run();
}

async function start(): Promise<void> {
  if (!token()) return signIn();
  try {
    session = await call<Session>("/console/api/session");
  } catch (err) {
    signOut();
    return signIn(`Sign-in refused: ${(err as Error).message}`);
  }
  layout();
  const who = $("#who");
  who.append(h("span", {}, `signed in as ${session.subject.slice(0, 18)}`),
    h("span", { class: session.admin ? "pill admin" : "pill" }, session.admin ? "admin" : session.admin_enabled ? "read only" : "admin off"),
    Object.assign(h("button", { class: "link" }, "sign out"), { onclick: () => { signOut(); location.reload(); } }));
  $("#admin-note").textContent = session.admin
    ? "flip an intention: the next calls are decided by it"
    : session.admin_enabled ? "your token lacks console:admin" : "admin actions are off (make run CONSOLE_ADMIN=1)";
  every(session.refresh_s, refreshTopology);
  every(session.refresh_s, refreshFaults);
  every(2, refreshOrders);
  every(1.5, async () => { if (selected) await renderDetail(); });
}

takeTokenFromFragment();
void start();
