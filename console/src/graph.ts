// The topology as a cytoscape graph: a node per service (its instances and health), an
// edge per intention between two registered services (allow: green/grey, deny: red,
// failing calls: amber), labelled with its live rate, errors and p99; dashed edges to the
// event bus show each service's events handled a second.

import cytoscape from "cytoscape";
import type { Topology } from "./api";
import { edgeLabel, edgeLook } from "./model";

const COLORS = { deny: "#d64545", failing: "#e8a33d", live: "#2f9e6b", idle: "#9aa7b4" };
// Left to right as a request travels: the edge, then the synchronous path, then the saga.
const POSITIONS: Record<string, { x: number; y: number }> = {
  gateway: { x: 90, y: 60 },
  order: { x: 345, y: 170 },
  inventory: { x: 600, y: 60 },
  shipping: { x: 120, y: 290 },
  payment: { x: 570, y: 290 },
  "events (NATS)": { x: 345, y: 400 },
};

export class Graph {
  private cy: cytoscape.Core;

  constructor(private container: HTMLElement) {
    this.cy = cytoscape({
      container,
      userZoomingEnabled: false,
      userPanningEnabled: false,
      boxSelectionEnabled: false,
      autoungrabify: true,
      style: [
        {
          selector: "node",
          style: {
            shape: "round-rectangle",
            width: 176,
            height: 52,
            "background-color": "#ffffff",
            "border-width": 2,
            "border-color": "data(border)",
            label: "data(label)",
            "text-wrap": "wrap",
            "text-valign": "center",
            "font-size": 13,
            "font-family": "system-ui, sans-serif",
            color: "#1d2733",
          },
        },
        {
          selector: "node.bus",
          style: {
            "background-color": "#f3f5f8",
            "border-style": "dashed",
            width: 560,
            height: 30,
            color: "#5b6b7b",
            "text-valign": "bottom",
            "text-margin-y": 6,
          },
        },
        {
          selector: "edge",
          style: {
            width: 3,
            "curve-style": "bezier",
            "line-color": "data(color)",
            "target-arrow-color": "data(color)",
            "target-arrow-shape": "triangle",
            label: "data(label)",
            "font-size": 11,
            "font-family": "system-ui, sans-serif",
            color: "#1d2733",
            "text-background-color": "#ffffff",
            "text-background-opacity": 1,
            "text-background-padding": "2px",
            "text-wrap": "wrap",
            "text-rotation": "none",
          },
        },
        { selector: "edge.deny", style: { "line-style": "solid", width: 4 } },
        {
          selector: "edge.events",
          style: { "line-style": "dashed", width: 1.5, "target-arrow-shape": "none", label: "" },
        },
      ],
    });
  }

  update(t: Topology): void {
    // Every refresh draws the graph anew, positions kept: updating labels in place left
    // stale label textures on the canvas in headless chromium.
    const els: cytoscape.ElementDefinition[] = [];
    const node = (id: string, data: Record<string, unknown>, classes: string) =>
      els.push({ group: "nodes", data: { id, ...data }, classes, position: POSITIONS[id] });
    const edge = (id: string, data: Record<string, unknown>, classes: string) =>
      els.push({ group: "edges", data: { id, ...data }, classes });
    for (const s of t.services) {
      const total = s.instances.length;
      const ok = s.healthy === total && total > 0;
      const events = s.events_per_s > 0 ? ` · ${s.events_per_s.toFixed(1)} ev/s` : "";
      node(s.name, { label: `${s.name}\n${s.healthy}/${total} healthy${events}`, border: ok ? COLORS.live : COLORS.deny },
        ok ? "service healthy" : "service unhealthy");
    }
    const domain = t.services.filter((s) => s.name !== "gateway");
    if (domain.length) {
      node("events (NATS)", { label: "events · NATS JetStream", border: "#9aa7b4" }, "bus");
      for (const s of domain) edge(`events:${s.name}`, { source: s.name, target: "events (NATS)", color: "#b8c2cc", label: "" }, "events");
    }
    for (const e of t.edges) {
      const look = edgeLook(e);
      edge(`${e.source}->${e.target}`, {
        source: e.source,
        target: e.target,
        color: COLORS[look],
        label: e.action === "deny" ? `DENIED\n${edgeLabel(e)}` : edgeLabel(e),
      }, `intention ${look}`);
    }
    const cy = this.cy;
    cy.batch(() => {
      cy.elements().remove();
      cy.add(els);
    });
    // What the graph shows, for a test to read (the canvas has no DOM of its own).
    this.container.dataset.edges = JSON.stringify(
      Object.fromEntries(t.edges.map((e) => [`${e.source}->${e.target}`, edgeLook(e)])),
    );
    if (t.services.some((s) => !POSITIONS[s.name])) cy.layout({ name: "circle" }).run();
    else cy.fit(undefined, 24);
  }

  resize(): void {
    this.cy.resize();
    this.cy.fit(undefined, 24);
  }
}
